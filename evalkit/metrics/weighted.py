"""The metric engine with sample weights (or ``zero_division=nan``): values from weighted sums.

With ``sample_weight`` every count becomes a sum of weights (tp = sum of the weights of the samples
where the label is predicted and true, ...), every per-sample mean a weighted mean, and AP / AUROC
use weighted cumulative counts, exactly as scikit-learn's ``sample_weight`` does
(``precision_recall_fscore_support``, ``average_precision_score``, ``roc_auc_score``,
``label_ranking_average_precision_score``, ``coverage_error``, ``label_ranking_loss``, ...).
A 0/0 ratio with ``zero_division=nan`` is NaN and is left out of macro / weighted / samples means
(scikit-learn's ``_nanaverage``). Per-sample sums are exact fixed-point sums (order-independent);
weighted per-label counts are float64 sums of weights (exact for unit / integer weights, else
results agree across batchings / processes to ~1e-15, not bit for bit).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from evalkit.metrics.extra import extras_block, fixed_row_means, nan_average, prf
from evalkit.metrics.names import row_keys
from evalkit.metrics.values import Averages, MetricValues, frozen


def ap_auroc_1d(v: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Weighted step-wise AP and AUROC (ties grouped, counted 1/2) of one score vector.

    Args:
        v: ``(n,)`` scores (any dtype ordered like the scores, e.g. sort keys); y: ``(n,)`` in {0, 1};
        w: ``(n,)`` non-negative float64 weights.
    Returns:
        ``(ap, auroc)``: AP 0 without positive weight, AUROC NaN without both classes.
    """
    o = np.argsort(v, kind="stable")[::-1]
    last = group_ends(v[o])
    y, w = y[o].astype(np.float64), w[o]
    if v.size == 0:
        return 0.0, math.nan
    ap, auc = ap_auroc_from_cums(np.cumsum(w * y)[last][None], np.cumsum(w * (1.0 - y))[last][None])
    return float(ap[0]), float(auc[0])


def group_ends(v_sorted: np.ndarray) -> np.ndarray:
    """bool mask of the last element of each run of equal values (a tie group) of a sorted array."""
    last = np.ones(v_sorted.size, dtype=bool)
    last[:-1] = v_sorted[1:] != v_sorted[:-1]
    return last


def ap_auroc_from_cums(tps: np.ndarray, fps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AP and AUROC of R weightings of one ranking from their cumulative weights.

    Args:
        tps, fps: float64 ``(R, G)``: weight of the positives / negatives scoring >= each of the G
            distinct scores, scores descending (cumulative sums at the tie groups' ends).
    Returns:
        ``(ap, auroc)`` each ``(R,)``: step-wise AP (scikit-learn ``average_precision_score``; 0
        without positive weight) and the trapezoidal AUROC (ties 1/2; NaN without both classes).
    """
    P, Nn = tps[:, -1], fps[:, -1]
    den = tps + fps
    prec = np.divide(tps, den, out=np.zeros_like(den), where=den > 0)
    prev = np.concatenate([np.zeros((tps.shape[0], 1)), tps[:, :-1]], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = np.where(P > 0, ((tps - prev) * prec).sum(axis=1) / np.where(P > 0, P, 1.0), 0.0)
        pairs = P * Nn
        auc = np.where(pairs > 0, (np.diff(fps, axis=1, prepend=0.0) * (tps + prev)).sum(axis=1)
                       / (2 * np.where(pairs > 0, pairs, 1.0)), math.nan)
    return np.minimum(ap, 1.0), auc


def weighted_ap_auroc(keys: np.ndarray, weights: np.ndarray):
    """Per-label and micro AP / AUROC with sample weights, from the exact mode's sort keys.

    Args:
        keys: ``(N, C)`` int32 / int64 keys (:mod:`evalkit.metrics._kernels`); weights: ``(N,)``.
    Returns:
        ``(ap (C,), auroc (C,), micro_ap, micro_auroc)`` as :func:`~evalkit.metrics.threshold_free.exact_ap_auroc`.
    Memory: one argsort of the N*C keys for the micro values (8 bytes per key).
    """
    C = keys.shape[1]
    ap, auroc = np.zeros(C), np.full(C, math.nan)
    for j in range(C):
        ap[j], auroc[j] = ap_auroc_1d(keys[:, j] >> 1, keys[:, j] & 1, weights)
    flat = keys.reshape(-1)
    micro = ap_auroc_1d(flat >> 1, flat & 1, np.repeat(weights, C))
    return ap, auroc, *micro


def weighted_values(wcounts: np.ndarray, wrows: np.ndarray, n_rows: int, ranked, *, beta: float,
                    zero_division: float, thresholds: np.ndarray, label_names: Sequence[str],
                    ks: Sequence[int]) -> MetricValues:
    """:class:`MetricValues` from weighted sums (definitions: module docstring).

    Args:
        wcounts: float64 ``(4, C)`` weighted tp, fp, fn, tn; wrows: int64 ``(2, 4, K)`` of
            :func:`evalkit.metrics.extra.weighted_row_sums` (summed over batches); n_rows: N.
        ranked: ``(ap, auroc, micro_ap, micro_auroc)`` or ``None``.
    Returns:
        :class:`MetricValues` whose counts (tp, ..., support) are float64 sums of weights,
        ``extra`` filled (:func:`evalkit.metrics.extra.extras_block`).
    """
    means = row_means(wrows, ks)
    tp, fp, fn, tn = wcounts
    C = tp.size
    W = float(tp[0] + fp[0] + fn[0] + tn[0])
    support, pred = tp + fn, tp + fp
    per = prf(tp, pred, support, beta, zero_division)
    per_acc = (tp + tn) / W
    micro_acc = float((tp.sum() + tn.sum()) / (W * C))
    sums = (np.sum(a, keepdims=True) for a in (tp, pred, support))
    micro = Averages(micro_acc, *(float(v[0]) for v in prf(*sums, beta, zero_division)))
    macro = Averages(nan_average(per_acc), *(nan_average(v) for v in per))
    weighted = Averages(nan_average(per_acc, support), *(nan_average(v, support) for v in per))
    samples = Averages(micro_acc, *(means[k] for k in ("precision", "recall", "f1", "fbeta")))
    ap = auroc = None
    tf = [None] * 9
    if ranked is not None:
        ap, auroc, micro_ap, micro_auc = ranked
        positive = support > 0
        tf = [float(np.mean(ap[positive])) if positive.any() else math.nan, nan_average(auroc), micro_ap,
              micro_auc, means["lrap"], means["coverage"], means["rloss"], float(np.mean(ap)),
              int(C - positive.sum())]
        ap, auroc = frozen(ap), frozen(auroc)
    extra = extras_block((tp, fp, fn, tn), means, ap, auroc, zero_division=zero_division, ks=ks)
    return MetricValues(
        tuple(label_names), float(beta), int(n_rows), frozen(np.asarray(thresholds, dtype=np.float64)),
        *(frozen(a) for a in (tp, fp, fn, tn, support, per_acc, *per)), ap, auroc,
        micro, macro, weighted, samples, means["exact"], float((fp.sum() + fn.sum()) / (W * C)), *tf,
        extra=extra)


def row_means(wrows: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    """Weighted NaN-aware per-sample means keyed by :func:`evalkit.metrics.names.row_keys`, from the
    summed fixed-point ``(2, 4, K)`` sums of :func:`evalkit.metrics.extra.weighted_row_sums`."""
    return {k: float(v) for k, v in zip(row_keys(ks), fixed_row_means(wrows))}


def check_sample_weight(sample_weight, n: int) -> np.ndarray:
    """``sample_weight`` as a float64 ``(n,)`` array of its own (a copy: the engine keeps it until
    ``compute()``, so changing the caller's array afterwards changes nothing, and a read-only array,
    e.g. a pandas Series' values, is no torch warning).

    Raises:
        InputError: not numeric, wrong shape, NaN / inf or negative values.
    """
    from evalkit.errors import InputError

    try:
        if hasattr(sample_weight, "detach"):
            sample_weight = sample_weight.detach().cpu().numpy()
        w = np.array(sample_weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"sample_weight: expected {n} non-negative numbers, got {type(sample_weight).__name__}") from None
    if w.shape != (n,):
        raise InputError(f"sample_weight: expected shape ({n},) (one weight per sample), got {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        bad = w[~(np.isfinite(w) & (w >= 0))][0]
        raise InputError(f"sample_weight: expected finite non-negative weights, found {float(bad)!r}")
    if w.size and w.max() > MAX_WEIGHT:
        raise InputError(f"sample_weight: expected weights up to 1e30, found {float(w.max()):g} (divide them by a "
                         "common factor: no metric changes)")
    return w


MAX_WEIGHT = 1e30
"""Largest sample weight accepted: products of weighted counts (AUROC's pairs, MCC's denominator)
stay far from float64 overflow."""

MIN_LARGEST_WEIGHT = 1e-30
"""Smallest accepted largest weight (:func:`~evalkit.metrics.compute_metrics`): below, those products
underflow (weights of 1e-100 gave AUROC ``null`` and MCC 0)."""


def weighted_counts(pred, true, w: np.ndarray):
    """Weighted tp, fp, fn, tn ``(4, C)`` float64 tensor of one batch.

    Each count is its own weighted sum, never a difference of others: ``total - npred - ntrue + tp``
    rounds to +-1e-16 where it should be 0 (a label positive or predicted in every row), and
    ``tn / (tn + fp)`` would then be 1 instead of 0/0 (specificity, NPV, MCC).

    Args:
        pred, true: ``(B, C)`` bool tensors (decisions, targets); w: ``(B,)`` float64 weights.
    """
    import torch

    wt = torch.from_numpy(w).to(pred.device)
    return torch.stack([wt @ cell.double() for cell in (pred & true, pred & ~true, ~pred & true, ~pred & ~true)])
