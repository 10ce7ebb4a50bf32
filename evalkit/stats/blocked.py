"""Poisson-bootstrap sums over blocks of rows: every resample of every headline metric in one pass
over the rows, in bounded memory, for large evaluations.

Each row block ``b`` of :data:`BLOCK` rows (global row index ``b*BLOCK ..``) gets its own Poisson(1)
weights ``(R, BLOCK)`` seeded by ``(seed, "rows", b)`` (:func:`block_weights`): a row's weights depend
only on the seed and its global index, never on how the rows are batched, so a streaming evaluation
can add each batch's contribution as it passes (:class:`BlockSums`) and keep nothing but the sums:
``(R, 3C + 2K + 3)`` float64 (1000 resamples x 100 labels: 2.6 MB) plus one block's weights
(``R x BLOCK`` float32: 32 MB at R = 1000). The per-row statistics of a block are stacked into one
float32 matrix ``F`` (tp | predicted | true per label, the per-sample values and their defined
flags, the mAP / AUROC influences, the row weight; all times the sample weight), so a block costs
one single-precision matrix product ``W_b @ F_b`` (BLAS), accumulated in float64 across blocks
(relative error of a sum < 1e-6; the 0/1 counts with whole-number weights are exact).

Used for ``ranking="linear"`` with the Poisson scheme (:func:`evalkit.stats.bootstrap.bootstrap_distribution`);
exact AP / AUROC resampling needs every row's weight per label at once and stays on the chunked path.
"""

from __future__ import annotations

import numpy as np

BLOCK = 8192
"""Rows per block (weights ``R x BLOCK`` float32 per block in flight: 32 MB at R = 1000)."""


def block_weights(seed: int, block: int, resamples: int, rows: int = BLOCK, dtype=np.float32) -> np.ndarray:
    """Poisson(1) weights ``(resamples, rows)`` of the row block ``block`` (its first ``rows``
    rows; the same values whatever ``rows`` is, as long as it covers them), float32 or, with
    ``dtype=np.uint8``, the same whole numbers in a quarter of the memory."""
    from evalkit.stats.bootstrap import poisson_table

    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x524F5753, block]))  # "ROWS"
    u = rng.integers(0, 1 << 16, size=(resamples, BLOCK), dtype=np.uint16)[:, :rows]
    table = poisson_table()
    return (table if dtype == np.float32 else table.astype(dtype))[u]


def poisson_weights(seed: int, resamples: int, n: int, dtype=np.float32) -> np.ndarray:
    """Every resample's Poisson(1) weights ``(resamples, n)`` of rows ``0 .. n``: the row blocks'
    :func:`block_weights` side by side, i.e. the very weights a streaming evaluation of the same
    rows draws, so an in-memory evaluation and a streamed one resample alike."""
    return np.concatenate([block_weights(seed, b, resamples, min(BLOCK, n - b * BLOCK), dtype)
                           for b in range(-(-n // BLOCK))], axis=1) if n else np.zeros((resamples, 0), dtype)


def row_matrix(st, lo: int, hi: int, plan: dict) -> np.ndarray:
    """float32 ``(hi - lo, D)``: rows ``lo:hi`` of the stacked per-row statistics ``F`` (module
    docstring) of :class:`evalkit.stats.rowstats.RowStats` ``st`` under ``plan`` (:func:`column_plan`):
    exact labels' counts, per-row (tp, predicted, true) totals, per-sample values and defined flags,
    mAP / AUROC influences, ones, the linearised labels' 8 influence columns."""
    v = st.values[:, lo:hi].T
    ok = ~np.isnan(v)
    rk = st.ranking
    inf = np.zeros((hi - lo, 2)) if rk is None else np.stack([rk["ap_inf"][lo:hi], rk["auc_inf"][lo:hi]], axis=1)
    c = st.counts[lo:hi]
    C = c.shape[1] // 3
    totals = np.stack([c[:, k * C:(k + 1) * C].sum(1, dtype=np.int32) for k in range(3)], axis=1)
    F = np.concatenate([c[:, plan["exact_cols"]], totals, np.where(ok, v, 0.0), ok, inf, np.ones((hi - lo, 1)),
                        c @ plan["gradients"]], axis=1, dtype=np.float32)
    w = st.weights[lo:hi]
    return F if np.all(w == 1.0) else F * w[:, None].astype(np.float32)


def column_plan(st, resamples: int) -> dict:
    """Which labels are resampled exactly / linearly (:mod:`evalkit.stats.linearized`) and the
    gradients of the linearised ones: ``{"linear": bool (C,), "exact_cols": int (3E,),
    "gradients": float64 (3C, 8), "observed": float64 (3C,)}``."""
    from evalkit.stats.linearized import gradients, linear_labels

    if np.all(st.weights == 1.0):
        observed = st.counts.sum(0, dtype=np.int64).astype(np.float64)
    else:
        observed = sum(st.weights[i:i + BLOCK] @ st.counts[i:i + BLOCK].astype(np.float64)
                       for i in range(0, st.n_rows, BLOCK))
    linear = linear_labels(observed, resamples, st.n_rows)
    exact_cols = np.flatnonzero(np.tile(~linear, 3))
    return {"linear": linear, "exact_cols": exact_cols, "gradients": gradients(observed, st.beta, linear),
            "observed": observed}


class BlockSums:
    """Running ``sum_b W_b @ F_b`` ``(R, D)`` over row blocks, fed by rows in any batching.

    Args:
        resamples: R; seed: the bootstrap seed.
    ``add(F, start)`` adds rows ``start ..`` (``F`` float32 ``(n, D)``); ``sums`` is the float64 total.
    Memory: the sums, one block's weights and at most one partial block of rows.
    """

    def __init__(self, resamples: int, seed: int) -> None:
        self.resamples, self.seed = resamples, seed
        self.sums: np.ndarray | None = None

    def add(self, F: np.ndarray, start: int) -> None:
        end = start + F.shape[0]
        for b in range(start // BLOCK, -(-end // BLOCK)):
            lo, hi = max(start, b * BLOCK), min(end, (b + 1) * BLOCK)
            W = block_weights(self.seed, b, self.resamples, hi - b * BLOCK)[:, lo - b * BLOCK:]
            part = (W @ F[lo - start:hi - start]).astype(np.float64)
            self.sums = part if self.sums is None else self.sums + part


def blocked_distribution(st, resamples: int, seed: int) -> dict[str, np.ndarray]:
    """Every headline metric under ``resamples`` Poisson resamples (linear AP / AUROC), from the
    row-block sums of ``st`` (:class:`evalkit.stats.rowstats.RowStats`); blocks are split between
    evalkit's 2 numpy threads. Returns ``{name: float64 (R,)}`` as
    :func:`evalkit.stats.rowstats.resampled_metrics`."""
    from evalkit.metrics._parallel import THREADS, submit
    from evalkit.stats.bootstrap import single_threaded_blas

    n = st.n_rows
    blocks = -(-n // BLOCK)
    plan = column_plan(st, resamples)

    def share(t: int) -> np.ndarray | None:
        acc = BlockSums(resamples, seed)
        for b in range(t, blocks, THREADS):
            lo, hi = b * BLOCK, min(n, (b + 1) * BLOCK)
            acc.add(row_matrix(st, lo, hi, plan), lo)
        return acc.sums

    with single_threaded_blas():
        parts = [p for p in (f.result() for f in [submit(share, t) for t in range(THREADS)]) if p is not None]
    return metrics_from_blocks(st, sum(parts[1:], parts[0]), plan)


def metrics_from_blocks(st, S: np.ndarray, plan: dict) -> dict[str, np.ndarray]:
    """Every headline metric ``{name: (R,)}`` from the block sums ``S`` ``(R, D)`` laid out as
    :func:`row_matrix` under ``plan``."""
    from evalkit.metrics.extra import prf
    from evalkit.stats.bootstrap import drop_empty
    from evalkit.stats.linearized import combine
    from evalkit.stats.rowstats import linear_ranking, metrics_from_sums

    E3, K = plan["exact_cols"].size, st.values.shape[0]
    ex, totals = S[:, :E3], S[:, E3:E3 + 3]
    vsum, wsum = S[:, E3 + 3:E3 + 3 + K], S[:, E3 + 3 + K:E3 + 3 + 2 * K]
    rest = S[:, E3 + 3 + 2 * K:]
    rank = linear_ranking(st, rest[:, 0:2], rest[:, 2]) if st.ranking is not None else None
    if not plan["linear"].any():
        return drop_empty(metrics_from_sums(st, ex, vsum, wsum, rank), rest[:, 2])
    out = metrics_from_sums(st, totals, vsum, wsum, rank)  # micro from the totals; macro / weighted below
    tp, pred, true = np.split(ex, 3, axis=1)
    exact = dict(zip(("precision", "recall", "f1", "fbeta"), prf(tp, pred, true, st.beta, st.zero_division)))
    exact["true"] = true
    lin = plan["linear"]
    o_tp, o_pred, o_true = (x[lin] for x in np.split(plan["observed"], 3))
    points = dict(zip(("precision", "recall", "f1", "fbeta"), prf(o_tp, o_pred, o_true, st.beta, st.zero_division)))
    return drop_empty(out | combine(exact, rest[:, 3:], rest[:, 2], points, totals[:, 2], float(st.weights.sum())),
                      rest[:, 2])


class StreamingIntervals:
    """Bootstrap intervals of a streaming evaluation (``evaluate --predictions``): each batch's rows
    add their Poisson-weighted statistics to :class:`BlockSums` (every label exact) and to the sums
    of :data:`~evalkit.stats.bootstrap.JACKKNIFE_GROUPS` row groups (global row index modulo the
    group count; BCa's jackknife is the total minus one group), and are dropped.

    Memory: ``(R + groups) x (3C + 2K + 3)`` float64 sums (2.6 MB at R = 1000, C = 100) plus one
    block's weights (``R x BLOCK`` float32, 32 MB) and statistics while it is added; never the rows.
    mAP / macro AUROC need every row's score at once: they get an interval only from the metric
    engine's exact-mode sort keys (``add_to(..., ranking_keys=)``, :func:`ranking_distribution`),
    which that mode keeps anyway.

    Args:
        spec: :class:`~evalkit.stats.bootstrap.BootstrapSpec`; thresholds ``(C,)``; scores_kind,
            beta, zero_division: as the engine's; ranking: whether LRAP is computed (threshold-free on).
    """

    def __init__(self, spec, thresholds, *, scores_kind: str, beta: float, zero_division: float = 0.0,
                 ranking: bool = True) -> None:
        from evalkit.stats.bootstrap import JACKKNIFE_GROUPS

        self.spec, self.thresholds, self.kind = spec, np.asarray(thresholds, dtype=np.float64), scores_kind
        self.beta, self.zd, self.ranking = float(beta), float(zero_division), ranking
        self.sums, self.groups, self.n, self.G = BlockSums(spec.resamples, spec.seed), None, 0, JACKKNIFE_GROUPS
        self.positives, self.plan = None, None

    def update(self, targets, scores) -> None:
        """Add a batch: ``targets`` / ``scores`` ``(B, C)`` (rows ``n .. n + B`` of the evaluation)."""
        from evalkit.stats.rowstats import row_stats

        for lo in range(0, len(targets), BLOCK):
            t, s = targets[lo:lo + BLOCK], scores[lo:lo + BLOCK]
            st = row_stats(t, s, scores_kind=self.kind, thresholds=self.thresholds, beta=self.beta,
                           zero_division=self.zd, ranking=self.ranking, per_label=False)
            self.plan = self.plan if self.n else _exact_plan(st)
            F = row_matrix(st, 0, st.n_rows, self.plan)
            self.sums.add(F, self.n)
            g = (self.n + np.arange(st.n_rows)) % self.G
            part = np.zeros((self.G, F.shape[1]))
            np.add.at(part, g, F.astype(np.float64))
            self.groups = part if self.groups is None else self.groups + part
            pos = (np.asarray(t) != 0).sum(0)
            self.positives = pos if self.positives is None else self.positives + pos
            self.n += st.n_rows

    def add_to(self, summary: dict, beta_key: str, label_names, ranking_keys: np.ndarray | None = None) -> dict:
        """The report ``summary`` with the intervals and ``ci_unstable_labels`` added
        (:func:`evalkit.stats.bootstrap.add_intervals`); with ``ranking_keys`` (the engine's exact-mode
        sort keys ``(N, C)`` of the same rows, in order) mAP and macro AUROC too."""
        from evalkit.stats.bootstrap import MIN_POSITIVES, add_intervals, interval, summary_points
        from evalkit.stats.studentized import studentized_interval

        st = self._empty_stats()
        dist = metrics_from_blocks(st, self.sums.sums, self.plan)
        jack = metrics_from_blocks(st, self.groups.sum(0) - self.groups, self.plan) if self.spec.method == "bca" else {}
        se = {}
        if ranking_keys is not None and len(ranking_keys) == self.n:
            rank_dist, rank_jack, se = ranking_distribution(ranking_keys, self.spec)
            dist, jack = dist | rank_dist, jack | rank_jack
        points = summary_points(summary, beta_key)
        ints = {k: interval(v, points.get(k), self.spec, jack.get(k)) for k, v in dist.items()}
        for k, (se_star, se_obs) in se.items():
            ints[k] = studentized_interval(dist[k], points.get(k), se_star, se_obs, self.spec.level) or ints[k]
        unstable = [str(label_names[j]) for j in np.flatnonzero(self.positives < MIN_POSITIVES)]
        return add_intervals(summary, ints, beta_key, unstable)

    def _empty_stats(self):
        from evalkit.stats.rowstats import RowStats

        K = len(self.plan["keys"])
        return RowStats(np.zeros((0, 3 * self.plan["linear"].size), dtype=np.uint8), np.zeros((K, 0)),
                        self.plan["keys"], np.zeros(0), None, self.beta, self.zd)


def _exact_plan(st) -> dict:
    """:func:`column_plan` with every label exact (a streaming evaluation does not know the counts yet)."""
    C = st.n_labels
    return {"linear": np.zeros(C, dtype=bool), "exact_cols": np.arange(3 * C), "gradients": np.zeros((3 * C, 8)),
            "observed": np.zeros(3 * C), "keys": st.keys}


def ranking_distribution(keys: np.ndarray, spec) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict]:
    """Resampled mAP / macro AUROC of a streaming evaluation, on the very resamples of its other
    metrics (each row's Poisson weights from its global index, :func:`block_weights`), from the
    metric engine's exact-mode sort keys (:func:`evalkit.stats.rowstats.ranking_from_keys`).

    Exact (every resample's AP / AUROC from cumulative weights) while resamples x rows x labels <=
    :data:`~evalkit.stats.rowstats.EXACT_BUDGET` and the ``(R, N)`` float32 weights fit in
    :data:`EXACT_WEIGHTS` values; else first-order influences summed over row blocks (the delta
    method, as :func:`blocked_distribution`). Memory: one sort order per label when exact
    (4 bytes x N x C), else two ``(N,)`` influence vectors, besides the keys.

    Args:
        keys: int ``(N, C)``, rows in evaluation order; spec: :class:`~evalkit.stats.bootstrap.BootstrapSpec`.
    Returns:
        ``(dist, jack, se)``: ``{"mean_average_precision": (R,), "macro_auroc": (R,)}``; for BCa, the
        grouped-jackknife values (row index modulo the group count), else ``{}``; for percentile
        intervals resampled exactly, ``{"mean_average_precision": (se* (R,), observed se)}`` for its
        studentized interval (:mod:`evalkit.stats.studentized`), else ``{}``.
    """
    from evalkit.stats.bootstrap import CHUNK, JACKKNIFE_GROUPS, drop_empty, single_threaded_blas
    from evalkit.stats.rowstats import RowStats, linear_ranking, ranking_from_keys, resampled_ranking

    N, C = keys.shape
    R = spec.resamples
    exact = exact_fits(R, N, C)
    st = RowStats(np.zeros((N, 0), dtype=np.uint8), np.zeros((0, N)), (), np.ones(N),
                  ranking_from_keys(keys, exact_order=exact), 1.0, 0.0)
    G = min(JACKKNIFE_GROUPS, N)
    names = ("mean_average_precision", "macro_auroc")
    with single_threaded_blas():
        if exact:
            W = poisson_weights(spec.seed, R, N)
            parts = [resampled_ranking(st, W[r:r + CHUNK], "exact") for r in range(0, R, CHUNK)]
            dist = dict(zip(names, (np.concatenate([p[k] for p in parts]) for k in range(2))))
            jack, se = {}, {}
            if spec.method == "bca":
                Wj = np.ones((G, N), dtype=np.float32)
                Wj[np.arange(N) % G, np.arange(N)] = 0.0
                jack = dict(zip(names, resampled_ranking(st, Wj, "exact")))
            else:  # percentile: mAP's studentized interval (evalkit.stats.studentized)
                from evalkit.stats.studentized import resampled_map_se

                se = {names[0]: resampled_map_se(st, -(-R // CHUNK), lambda c: W[c * CHUNK:(c + 1) * CHUNK])}
            return drop_empty(dist, W.sum(1)), jack, se
        F = np.stack([st.ranking["ap_inf"], st.ranking["auc_inf"], np.ones(N)], axis=1).astype(np.float32)
        acc = BlockSums(R, spec.seed)
        for lo in range(0, N, BLOCK):
            acc.add(F[lo:lo + BLOCK], lo)
        dist = dict(zip(names, linear_ranking(st, acc.sums[:, :2], acc.sums[:, 2])))
        jack = {}
        if spec.method == "bca":
            part = np.zeros((G, 3))
            np.add.at(part, np.arange(N) % G, F.astype(np.float64))
            S = part.sum(0) - part
            jack = dict(zip(names, linear_ranking(st, S[:, :2], S[:, 2])))
        return drop_empty(dist, acc.sums[:, 2]), jack, {}


EXACT_WEIGHTS = 5e7
"""At most this many ``(R, N)`` weights in memory for the exact resampling of mAP / AUROC (float32 in a
streaming evaluation: 200 MB; uint8 in memory: 50 MB)."""


def exact_fits(resamples: int, rows: int, labels: int) -> bool:
    """Whether ``ranking="auto"`` resamples AP / AUROC exactly: resamples x rows x labels within
    :data:`~evalkit.stats.rowstats.EXACT_BUDGET` and resamples x rows within :data:`EXACT_WEIGHTS`.
    The same rule in memory and streaming, so both draw the same resamples the same way."""
    from evalkit.stats.rowstats import EXACT_BUDGET

    return resamples * rows * labels <= EXACT_BUDGET and resamples * rows <= EXACT_WEIGHTS
