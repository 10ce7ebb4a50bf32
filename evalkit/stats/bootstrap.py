"""Bootstrap confidence intervals over test rows for every headline metric, in one vectorised pass.

What is resampled: the N test rows (samples), with replacement - the test set is treated as a
draw from the population the model will meet; the model and its thresholds are fixed. Each of the
R resamples is a weight vector (how often each row was drawn), and every headline metric of every
resample comes from the per-row sufficient statistics of :mod:`evalkit.stats.rowstats` by matrix
products, in chunks of :data:`CHUNK` resamples (memory O(CHUNK x N) besides the statistics) - never
by re-running the evaluation R times. A row drawn k times ranks as k adjacent rows in AP unless its
score ties another row's (:func:`evalkit.stats.rowstats.copies_untied`).

Resample weights (``scheme``):
  ``"poisson"`` (default): an independent Poisson(1) weight per row and resample (Hanley & MacGibbon
  2006; Chamandy et al. 2012), drawn from a 16-bit quantile table (:func:`poisson_table`). A row's
  weights depend only on the seed and its index, never on how rows are batched, which is what a
  streaming evaluation needs (:class:`evalkit.stats.blocked.StreamingIntervals`: each batch adds its
  rows' contributions to each resample's sums, no row kept). A resample that draws no row at all
  (probability e^-N) is left out (:func:`drop_empty`).
  ``"multinomial"`` (Efron's bootstrap): N draws of rows, the weights sum to N.
Large evaluations (``ranking="linear"``, Poisson) go through :mod:`evalkit.stats.blocked`: one pass
over row blocks, well-populated labels linearised (:mod:`evalkit.stats.linearized`); smaller ones
resample in chunks of :data:`CHUNK` resamples with every AP / AUROC exact. Both are seeded: same
inputs and seed, same interval.

Interval ``method``: ``"percentile"`` (default) or ``"bca"`` (bias-corrected and accelerated,
Efron 1987; the acceleration from a grouped jackknife over :data:`JACKKNIFE_GROUPS` row
groups, evaluated by the same matrix products). Under ``"percentile"``, an exactly resampled mAP
gets the studentized (bootstrap-t) interval instead (:mod:`evalkit.stats.studentized`; the report's
``confidence_interval.studentized`` names it): its percentile interval under-covered.

Degenerate inputs: N = 1 gives the point value as both ends (every resample is the same row); a
metric undefined in some resamples (e.g. a label whose few positives were not drawn) is summarised
over the resamples where it is defined, and is ``None`` when it is undefined in all of them. Labels
with fewer than :data:`MIN_POSITIVES` positives are listed as ``ci_unstable_labels``: their AP /
AUROC / recall swing with one or two rows, so the macro intervals lean on few rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from evalkit.errors import InputError
from evalkit.metrics._parallel import submit

CHUNK = 50
"""Resamples evaluated together (weights ``CHUNK x N`` float32 per chunk; 2 chunks in flight)."""
JACKKNIFE_GROUPS = 100
MIN_POSITIVES = 10
MAP = "mean_average_precision"
"""A label with fewer positives is flagged in ``ci_unstable_labels``."""


@dataclass(frozen=True)
class BootstrapSpec:
    """How the intervals are computed.

    Attributes:
        level: coverage in (0, 1), e.g. 0.95. resamples: R >= 10. method: ``"percentile"`` or
        ``"bca"``. seed: any int >= 0. scheme: ``"multinomial"`` or ``"poisson"``. ranking:
        ``"auto"``, ``"exact"`` or ``"linear"`` (AP / AUROC, :mod:`evalkit.stats.rowstats`).
    Raises:
        InputError: a value outside these ranges (one line naming the field).
    """

    level: float = 0.95
    resamples: int = 1000
    method: str = "percentile"
    seed: int = 0
    scheme: str = "poisson"
    ranking: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.level, bool) or not (isinstance(self.level, (int, float, np.integer, np.floating))
                                                and 0 < self.level < 1):
            raise InputError(f"ci: expected a confidence level in (0, 1) such as 0.95, got {self.level!r}")
        object.__setattr__(self, "level", float(self.level))  # numpy scalars (np.float32(0.9)) as plain floats
        if isinstance(self.resamples, bool) or not isinstance(self.resamples, (int, np.integer)) or self.resamples < 10:
            raise InputError(f"ci_resamples: expected an integer >= 10, got {self.resamples!r}")
        if self.method not in ("percentile", "bca"):
            raise InputError(f"ci_method: expected 'percentile' or 'bca', got {self.method!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise InputError(f"seed: expected an integer >= 0, got {self.seed!r}")
        if self.scheme not in ("multinomial", "poisson"):
            raise InputError(f"ci_scheme: expected 'multinomial' or 'poisson', got {self.scheme!r}")
        if self.ranking not in ("auto", "exact", "linear"):
            raise InputError(f"ci_ranking: expected 'auto', 'exact' or 'linear', got {self.ranking!r}")

    def to_dict(self) -> dict:
        """The report's ``confidence_interval`` block."""
        return asdict(self)


def resample_weights(n: int, spec: BootstrapSpec, chunk: int, poisson: np.ndarray | None = None) -> np.ndarray:
    """The weights of resamples ``chunk*CHUNK ..`` (at most :data:`CHUNK` of them), float32 ``(r, n)``
    (whole numbers: exact).

    ``"poisson"``: rows ``chunk*CHUNK ..`` of :func:`evalkit.stats.blocked.poisson_weights` (each row's
    weights from the seed and its index, in row blocks, exactly as a streaming evaluation draws them;
    pass ``poisson``, that ``(R, n)`` array, to draw it once for every chunk). Each weight is a uniform
    16-bit integer looked up in the Poisson(1) quantile table :func:`poisson_table` (each probability
    within 2^-16 of Poisson(1)'s; ~5x faster than ``rng.poisson``). ``"multinomial"``: deterministic
    in ``(spec.seed, chunk)``.
    """
    r = min(CHUNK, spec.resamples - chunk * CHUNK)
    if spec.scheme == "poisson":
        if poisson is None:
            from evalkit.stats.blocked import poisson_weights

            poisson = poisson_weights(spec.seed, spec.resamples, n, np.uint8)
        return poisson[chunk * CHUNK:chunk * CHUNK + r].astype(np.float32)
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, chunk]))
    itype = np.int32 if r * n < 2**31 else np.int64
    draws = rng.integers(0, n, size=(r, n), dtype=itype)
    draws += (np.arange(r, dtype=itype) * n)[:, None]
    return np.bincount(draws.reshape(-1), minlength=r * n).reshape(r, n).astype(np.float32)


_POISSON: list[np.ndarray] = []


def poisson_table() -> np.ndarray:
    """float32 ``(65536,)``: entry ``u`` is the Poisson(1) quantile of ``(u + 0.5) / 65536`` (so a
    uniform 16-bit ``u`` gives a weight k with probability within 2^-16 of ``e^-1 / k!``)."""
    if not _POISSON:
        cdf = np.cumsum(np.exp(-1.0) / np.cumprod(np.r_[1.0, np.arange(1.0, 20.0)]))  # P(X <= k), k = 0..19
        u = (np.arange(1 << 16) + 0.5) / (1 << 16)
        _POISSON.append(np.searchsorted(cdf, u).astype(np.float32))
    return _POISSON[0]


def bootstrap_distribution(stats, spec: BootstrapSpec) -> dict[str, np.ndarray]:
    """The R resampled values of every headline metric (:func:`evalkit.stats.rowstats.resampled_metrics`).

    Returns:
        ``{name: float64 (R,)}`` with NaN where a metric is undefined in a resample.
    """
    from evalkit.stats.blocked import blocked_distribution, poisson_weights

    ranking = ranking_mode(spec, stats)
    if ranking == "linear" and spec.scheme == "poisson":
        return blocked_distribution(stats, spec.resamples, spec.seed)
    # Poisson: every resample's weights drawn once (uint8, R x N bytes), as a streaming evaluation draws them
    poisson = poisson_weights(spec.seed, spec.resamples, stats.n_rows, np.uint8) if spec.scheme == "poisson" else None
    with single_threaded_blas():
        parts = [f.result() for f in [submit(_chunk_metrics, stats, spec, c, ranking, poisson)
                                      for c in range(-(-spec.resamples // CHUNK))]]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _chunk_metrics(stats, spec: BootstrapSpec, chunk: int, ranking: str, poisson) -> dict[str, np.ndarray]:
    from evalkit.stats.rowstats import resampled_metrics

    W = resample_weights(stats.n_rows, spec, chunk, poisson)
    return drop_empty(resampled_metrics(stats, W, ranking), W.sum(1))


def drop_empty(dist: dict[str, np.ndarray], total: np.ndarray) -> dict[str, np.ndarray]:
    """``dist`` with NaN for the resamples of no weight at all (Poisson weights can leave out every
    row: probability e^-N; such an empty test set defines no metric, so it is left out)."""
    empty = np.asarray(total) <= 0
    return dist if not empty.any() else {k: np.where(empty, np.nan, v) for k, v in dist.items()}


def single_threaded_blas():
    """Context: BLAS runs one thread per caller while the chunks run on evalkit's 2-thread pool.

    OpenBLAS' own threads spin at barriers and stall badly when other processes share the cores
    (measured 14x slower than single-threaded on this 2-core machine under load); chunks of
    resamples in parallel threads use the cores without barriers. Uses ``threadpoolctl`` (a
    scikit-learn dependency); the limit is process-wide while the context lasts."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def ranking_mode(spec: BootstrapSpec, stats) -> str:
    """``"exact"`` or ``"linear"`` for the AP / AUROC resampling (``"auto"``: by cost)."""
    from evalkit.stats.blocked import exact_fits

    if spec.ranking != "auto":
        return spec.ranking
    return "exact" if exact_fits(spec.resamples, stats.n_rows, stats.n_labels) else "linear"


def interval(dist: np.ndarray, point: float, spec: BootstrapSpec, jack: np.ndarray | None = None) -> list | None:
    """``[low, high]`` from resampled values ``dist`` (NaNs dropped), or ``None`` if none is defined.

    ``"bca"`` needs ``point`` and the jackknife values ``jack`` (else falls back to percentile).
    """
    d = np.asarray(dist, dtype=np.float64)
    d = d[~np.isnan(d)]
    if d.size == 0 or point is None or not math.isfinite(point):
        return None
    alpha = (1 - spec.level) / 2
    q = [alpha, 1 - alpha]
    if spec.method == "bca" and jack is not None:
        q = _bca_quantiles(d, point, jack, q)
    lo, hi = np.quantile(d, q)
    return [float(min(lo, hi)), float(max(lo, hi))]


def _bca_quantiles(d: np.ndarray, point: float, jack: np.ndarray, q: Sequence[float]) -> list[float]:
    from scipy.stats import norm

    jack = jack[~np.isnan(jack)]
    below = (np.sum(d < point) + 0.5 * np.sum(d == point)) / d.size
    if jack.size < 3 or not 0 < below < 1:
        return list(q)
    z0 = norm.ppf(below)
    diff = jack.mean() - jack
    den = 6.0 * (diff**2).sum() ** 1.5
    a = float((diff**3).sum() / den) if den > 0 else 0.0
    z = norm.ppf(q)
    return list(norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z))))


def jackknife_values(stats, spec: BootstrapSpec) -> dict[str, np.ndarray]:
    """Grouped jackknife (leave one of :data:`JACKKNIFE_GROUPS` row groups out: row index modulo the
    group count, as a streaming evaluation groups them) of every headline metric, for the BCa acceleration."""
    from evalkit.stats.rowstats import resampled_metrics

    n = stats.n_rows
    G = min(JACKKNIFE_GROUPS, n)
    groups = np.arange(n) % G
    W = np.ones((G, n))
    W[groups, np.arange(n)] = 0.0
    with single_threaded_blas():
        return resampled_metrics(stats, W, ranking_mode(spec, stats))


def bootstrap_intervals(stats, points: dict[str, float], spec: BootstrapSpec) -> dict[str, list | None]:
    """``{name: [low, high] | None}`` for every headline metric.

    Args:
        stats: :class:`evalkit.stats.rowstats.RowStats`; points: the observed values by the same
            names (the engine's values; used by BCa).
    """
    dist = bootstrap_distribution(stats, spec)
    jack = jackknife_values(stats, spec) if spec.method == "bca" else {}
    out = {k: interval(v, points.get(k), spec, jack.get(k)) for k, v in dist.items()}
    if studentizes(spec, stats) and dist.get(MAP) is not None:
        from evalkit.stats.blocked import poisson_weights
        from evalkit.stats.studentized import resampled_map_se, studentized_interval

        poisson = poisson_weights(spec.seed, spec.resamples, stats.n_rows, np.uint8) if spec.scheme == "poisson" else None
        se_star, se = resampled_map_se(stats, -(-spec.resamples // CHUNK),
                                       lambda c: resample_weights(stats.n_rows, spec, c, poisson))
        out[MAP] = studentized_interval(dist[MAP], points.get(MAP), se_star, se, spec.level) or out[MAP]
    return out


def studentizes(spec: BootstrapSpec, stats) -> bool:
    """Whether mAP gets the studentized interval (:mod:`evalkit.stats.studentized`) for these row statistics."""
    rk = stats.ranking
    return rk is not None and rk.get("order") is not None and _studentized(spec, (stats.n_rows, stats.n_labels), True)


def _studentized(spec: BootstrapSpec, shape: tuple, ranking: bool) -> bool:
    """The one rule: ``percentile`` intervals with mAP resampled exactly (``ranking`` on and ``spec.ranking``
    exact, or auto and ``shape`` ``(N, C)`` within the exact budget); first-order resampling and BCa keep theirs."""
    exact = spec.ranking == "exact" or (spec.ranking == "auto" and _exact_fits(spec.resamples, shape))
    return ranking and exact and spec.method == "percentile"


def unstable_labels(targets, label_names: Sequence[str], min_positives: int = MIN_POSITIVES) -> list[str]:
    """Names of the labels with fewer than ``min_positives`` positive rows (``ci_unstable_labels``)."""
    counts = (np.asarray(targets) != 0).sum(axis=0)
    return [str(label_names[j]) for j in np.flatnonzero(counts < min_positives)]


def summary_points(summary: dict, beta_key: str) -> dict[str, float]:
    """The report summary's observed values under the resampled names (:func:`headline_names`)."""
    from evalkit.stats.rowstats import headline_names

    out = {}
    for name, (block, key) in headline_names(beta_key).items():
        v = (summary.get(block) or {}).get(key) if block else summary.get(key)
        out[name] = math.nan if v is None else float(v)
    return out


def add_intervals(summary: dict, intervals: dict[str, list | None], beta_key: str, unstable: list[str]) -> dict:
    """A copy of the report ``summary`` with ``<metric>_ci`` keys (``summary.<average>.<metric>_ci``
    and ``summary.<scalar>_ci``) and ``ci_unstable_labels``; existing keys are unchanged."""
    from evalkit.stats.rowstats import headline_names

    out = {k: dict(v) if isinstance(v, dict) else v for k, v in summary.items()}
    for name, (block, key) in headline_names(beta_key).items():
        if name in intervals:
            (out[block] if block else out)[f"{key}_ci"] = intervals[name]
    out["ci_unstable_labels"] = list(unstable)
    return out


def report_intervals(targets, scores, *, scores_kind: str, thresholds, beta: float, zero_division: float,
                     sample_weight, label_names: Sequence[str], summary: dict, spec: BootstrapSpec,
                     ranking: bool = True) -> dict:
    """The report ``summary`` with intervals added (:func:`add_intervals`) for in-memory scores.

    Args:
        targets, scores: ``(N, C)`` as given to :func:`evalkit.evaluate_scores`; summary: the
            engine's report summary (observed values); ranking: intervals of mAP / macro AUROC too.
    Raises:
        InputError: as :func:`evalkit.stats.rowstats.row_stats`.
    """
    from evalkit.metrics.names import fbeta_key
    from evalkit.stats.rowstats import row_stats

    st = row_stats(targets, scores, scores_kind=scores_kind, thresholds=thresholds, beta=beta,
                   zero_division=zero_division, sample_weight=sample_weight, ranking=ranking,
                   exact_order=spec.ranking == "exact" or (spec.ranking == "auto" and _exact_fits(spec.resamples,
                                                                                               np.shape(targets))))
    key = fbeta_key(beta)
    ints = bootstrap_intervals(st, summary_points(summary, key), spec)
    return add_intervals(summary, ints, key, unstable_labels(targets, label_names))


def report_block(spec: BootstrapSpec, shape: tuple, ranking: bool) -> dict:
    """The report's ``confidence_interval`` block: ``spec``'s fields, plus ``"studentized":
    ["mean_average_precision"]`` when mAP's interval is the studentized one (:func:`_studentized`, for
    ``shape`` ``(N, C)`` test rows x labels and ``ranking`` on or off)."""
    return spec.to_dict() | ({"studentized": [MAP]} if _studentized(spec, shape, ranking) else {})


def _exact_fits(resamples: int, shape: tuple) -> bool:
    from evalkit.stats.blocked import exact_fits

    return len(shape) == 2 and exact_fits(resamples, shape[0], shape[1])


def spec_or_none(level: float, resamples: int, method: str, seed: int) -> BootstrapSpec | None:
    """The :class:`BootstrapSpec` of a run's / job's ``ci`` settings, ``None`` when ``level`` is 0 (off)."""
    return BootstrapSpec(level=float(level), resamples=int(resamples), method=method, seed=int(seed)) if level else None


def with_intervals(metrics: dict, targets, probabilities, thresholds, *, beta: float, label_names,
                   spec: BootstrapSpec | None, threshold_free: str = "exact") -> dict:
    """Add the bootstrap intervals of ``spec`` to a metrics block (``metrics["summary"]`` replaced
    by :func:`add_intervals`'s copy) and return the report blocks to add: ``{"confidence_interval":
    spec}``, or ``{}`` when ``spec`` is ``None`` or the thresholds are per-sample (``top-k``: no
    per-label cut to resample; no intervals).

    Args:
        metrics: the engine's block (``summary`` / ``per_class``) for ``targets`` ``(N, C)`` and
            ``probabilities`` ``(N, C)`` under ``thresholds`` (:class:`evalkit.thresholds.Thresholds`).
    """
    if spec is None or thresholds.strategy.per_sample:
        return {}
    metrics["summary"] = report_intervals(targets, probabilities, scores_kind="probabilities",
                                          thresholds=thresholds.array(), beta=beta, zero_division=0.0,
                                          sample_weight=None, label_names=label_names, summary=metrics["summary"],
                                          spec=spec, ranking=threshold_free != "none")
    return {"confidence_interval": report_block(spec, np.shape(targets), threshold_free != "none")}
