"""Paired comparisons of two score sets on the same test rows (building blocks of ``evalkit compare A B``).

* :func:`paired_bootstrap`: the bootstrap distribution of ``metric(A) - metric(B)`` where both
  systems are evaluated on the *same* resampled rows in each resample (the pairing removes the
  between-row variance both share, so a real difference is detected with far fewer rows than two
  separate intervals need). Returns the observed difference, its percentile interval and a
  two-sided p-value ``(1 + #{resamples on the other side of 0}) * 2 / (R + 1)`` (capped at 1) -
  the bootstrap test of "no difference" by inversion of the interval (Efron & Tibshirani 1993, 16.4).
* :func:`mcnemar_subset_accuracy`: McNemar's exact test of subset accuracy (McNemar 1947): among
  the rows where exactly one system matches the full label set, are both equally likely to be
  the one? ``scipy.stats.binomtest(b, b + c, 0.5)``; p = 1 when no row is discordant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from evalkit.errors import InputError


@dataclass(frozen=True)
class PairedResult:
    """A paired comparison of metric ``name``: ``a``, ``b`` observed values, ``difference = a - b``,
    ``ci`` ``[low, high]`` of the difference (``None`` if undefined in every resample), two-sided
    ``p_value`` in (0, 1], ``resamples`` R and the ``distribution`` of the R differences."""

    name: str
    a: float
    b: float
    difference: float
    ci: list | None
    p_value: float | None
    resamples: int
    distribution: np.ndarray


def paired_bootstrap(targets, scores_a, scores_b, *, metric: str = "macro.f1", scores_kind: str = "probabilities",
                     threshold=0.5, threshold_b=None, beta: float = 2.0, zero_division: float = 0.0,
                     sample_weight=None, spec=None) -> PairedResult:
    """Bootstrap the difference of one headline metric between two score sets on the same rows.

    Args:
        targets: ``(N, C)`` in {0, 1}; scores_a / scores_b: ``(N, C)`` (both ``scores_kind``).
        metric: a resampled name (:func:`evalkit.stats.rowstats.headline_names`), e.g.
            ``"macro.f1"``, ``"micro.fbeta"``, ``"mean_average_precision"``, ``"subset_accuracy"``.
        threshold / threshold_b: decision thresholds of A and B (scalar or ``(C,)``; B defaults to A's).
        spec: :class:`evalkit.stats.bootstrap.BootstrapSpec` (default: 0.95, 1000 resamples, seed 0).
    Returns:
        :class:`PairedResult`; the same ``spec`` gives the same resamples for any pair of systems.
    Raises:
        InputError: unknown metric, shape mismatch, invalid scores / targets / weights.
    """
    return paired_bootstraps(targets, scores_a, scores_b, [metric], scores_kind=scores_kind, threshold=threshold,
                             threshold_b=threshold_b, beta=beta, zero_division=zero_division,
                             sample_weight=sample_weight, spec=spec)[metric]


def paired_bootstraps(targets, scores_a, scores_b, metrics, *, scores_kind: str = "probabilities", threshold=0.5,
                      threshold_b=None, beta: float = 2.0, zero_division: float = 0.0, sample_weight=None,
                      spec=None) -> dict[str, PairedResult]:
    """:func:`paired_bootstrap` of several ``metrics`` (resampled names) at once: the per-row
    statistics and the R resamples of each system are computed once for all of them.

    Returns:
        ``{metric: PairedResult}`` in the order given.
    Raises:
        InputError: as :func:`paired_bootstrap`.
    """
    from evalkit.stats.bootstrap import BootstrapSpec, bootstrap_distribution, interval
    from evalkit.stats.rowstats import headline_names, resampled_metrics, row_stats

    spec = spec or BootstrapSpec()
    known = headline_names("fbeta")
    for metric in metrics:
        if metric not in known:
            raise InputError(f"metric: expected one of {', '.join(known)}, got {metric!r}")
    C = np.shape(targets)[1] if np.ndim(targets) == 2 else 0
    thr = [np.broadcast_to(np.asarray(t, dtype=np.float64), (C,)) for t in (threshold,
                                                                            threshold if threshold_b is None else threshold_b)]
    # the ranking metrics need the per-label sort (mAP / AUROC) or each row's ranking (LRAP)
    ranking = any(m in ("mean_average_precision", "macro_auroc", "label_ranking_average_precision") for m in metrics)
    stats = [row_stats(targets, s, scores_kind=scores_kind, thresholds=t, beta=beta, zero_division=zero_division,
                       sample_weight=sample_weight, ranking=ranking, exact_order=ranking) for s, t in zip((scores_a, scores_b), thr)]
    obs = [resampled_metrics(st, np.ones((1, st.n_rows)), "exact") for st in stats]
    da, db = (bootstrap_distribution(st, spec) for st in stats)  # same seed -> same resamples
    out = {}
    for metric in metrics:
        a, b = float(obs[0][metric][0]), float(obs[1][metric][0])
        diff = da[metric] - db[metric]
        d = diff[~np.isnan(diff)]
        p = None
        if d.size:
            p = min(1.0, 2 * (1 + min(int((d <= 0).sum()), int((d >= 0).sum()))) / (d.size + 1))
        out[metric] = PairedResult(metric, a, b, a - b, interval(diff, a - b, spec), p, spec.resamples, diff)
    return out


def mcnemar_subset_accuracy(targets, pred_a, pred_b) -> dict:
    """McNemar's exact test of subset accuracy between two sets of ``(N, C)`` 0/1 decisions.

    Returns:
        ``{"a_only": b, "b_only": c, "p_value": float in (0, 1], "test": str}``: b rows where only
        A matches the true label set, c where only B does.
    Raises:
        InputError: shapes differ.
    """
    from scipy.stats import binomtest

    Y, A, B = (np.asarray(x) != 0 for x in (targets, pred_a, pred_b))
    if not (Y.shape == A.shape == B.shape) or Y.ndim != 2:
        raise InputError(f"predictions: expected two (N, C) arrays shaped like targets {Y.shape}, "
                         f"got {A.shape} and {B.shape}")
    ok_a, ok_b = (A == Y).all(axis=1), (B == Y).all(axis=1)
    b, c = int((ok_a & ~ok_b).sum()), int((~ok_a & ok_b).sum())
    p = 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)
    return {"a_only": b, "b_only": c, "p_value": min(1.0, p) if math.isfinite(p) else 1.0,
            "test": "McNemar exact (scipy.stats.binomtest on discordant rows, two-sided)"}
