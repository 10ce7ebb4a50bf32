"""Per-row sufficient statistics of the headline metrics, for resampling rows in one vectorised pass.

A bootstrap resample (or any re-weighting) of the N test rows is a weight vector ``W`` ``(N,)``;
R of them form ``W`` ``(R, N)``. Every headline metric is a function of weighted sums of per-row
contributions, so R resamples cost a few matrix products, not R evaluations:

* per-label tp / predicted / true counts: sparse ``(N, C)`` 0/1 matrices M, resampled counts
  ``W @ M`` ``(R, C)`` (cost R x nnz) -> micro / macro / weighted precision, recall, F1, F-beta;
* per-sample values ``(K, N)`` (:func:`evalkit.metrics.extra.row_values`: samples-averaged
  precision ... F-beta, exact match, Hamming, LRAP) -> ``W @ values`` (NaN-aware);
* AP / AUROC per label (-> mAP, macro AUROC), two ways:
  ``"exact"``: each label's rows sorted once (descending score, tie groups); a chunk of resamples
  gathers its weights in that order and takes cumulative sums at the tie groups' ends
  (:func:`evalkit.metrics.weighted.ap_auroc_from_cums`); the copies of a row of unique score rank as
  adjacent distinct rows (:func:`copies_untied`). Cost R x N x C, memory chunk x N.
  ``"linear"``: the first-order (delta-method) expansion around the observed data,
  ``AP(W) ~ AP + c W @ g`` with ``g`` the empirical influence of each row on the label's AP /
  AUROC (derivatives of the weighted AP / Mann-Whitney statistic, computed from one sort per
  label in O(N log N)); the label means give one ``(N,)`` influence vector for mAP and one for
  macro AUROC, so R resamples cost one ``(R, N) @ (N,)`` product. Accurate to second order in
  1/sqrt(N) (checked against ``"exact"`` in the tests); ``"auto"`` uses exact while
  R x N x C <= :data:`EXACT_BUDGET`.

All resampled values follow the engine's definitions (zero_division, NaN-aware averages), and
:func:`resampled_metrics` with ``W = 1`` reproduces the engine's point estimates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from evalkit.metrics.extra import prf
from evalkit.metrics.names import AVERAGES, row_keys
from evalkit.metrics.weighted import ap_auroc_from_cums, group_ends

EXACT_BUDGET = 3e8
"""``ranking="auto"`` resamples AP / AUROC exactly while resamples x rows x labels stays below this."""

HEADLINE_SCALARS = ("subset_accuracy", "hamming_loss", "mean_average_precision", "macro_auroc",
                    "label_ranking_average_precision")
"""Scalar headline metrics with intervals (besides ``<average>.<precision|recall|f1|fbeta>``)."""

_ROW = {"subset_accuracy": "exact", "hamming_loss": "hamming", "label_ranking_average_precision": "lrap"}
_SAMPLES = ("precision", "recall", "f1", "fbeta")


@dataclass(frozen=True)
class RowStats:
    """Per-row contributions of one evaluation (built by :func:`row_stats`).

    Attributes:
        counts: uint8 ``(N, 3C)`` = [tp | predicted | true] 0/1 per row and label.
        values: float64 ``(K, N)`` per-sample values (NaN = undefined), ``keys`` their names.
        weights: float64 ``(N,)`` sample weights (ones without ``sample_weight``).
        ranking: ``None`` (no threshold-free metrics) or a dict: ``order`` int32 ``(C, N)`` rows by
            descending score per label (``None`` unless kept for exact resampling), ``ends`` list of
            bool masks of tie-group ends, ``y`` targets ``(C, N)``, ``ap_inf`` / ``auc_inf`` float64
            ``(N,)`` influence of each row on mAP / macro AUROC, ``ap`` / ``auc`` the observed means.
        beta, zero_division: as the engine's.
    Memory: N x (3C + 8K + 16) bytes plus, for exact ranking resampling, 5 bytes x N x C.
    """

    counts: np.ndarray
    values: np.ndarray
    keys: tuple[str, ...]
    weights: np.ndarray
    ranking: dict | None
    beta: float
    zero_division: float

    @property
    def n_rows(self) -> int:
        return self.values.shape[1]

    @property
    def n_labels(self) -> int:
        return self.counts.shape[1] // 3


def row_stats(targets, scores, *, scores_kind: str, thresholds, beta: float, zero_division: float = 0.0,
              sample_weight=None, ranking: bool = True, exact_order: bool = True, per_label: bool = True) -> RowStats:
    """The per-row statistics of ``(N, C)`` targets and scores (decisions exactly as the engine's).

    Args:
        targets: ``(N, C)`` in {0, 1}; scores: ``(N, C)`` logits or probabilities (``scores_kind``).
        thresholds: ``(C,)`` decision thresholds (probability >= threshold).
        sample_weight: optional ``(N,)`` non-negative weights.
        ranking: also prepare LRAP and mAP / macro AUROC; exact_order: keep the per-label sort orders
            (4 bytes x N x C) for ``ranking="exact"`` resampling; per_label: ``False`` leaves mAP /
            macro AUROC out (they need every row's score; a streaming batch has only its own).
    Raises:
        InputError: invalid inputs (as :func:`evalkit.metrics.compute_metrics`).
    """
    import torch

    from evalkit.metrics.extra import row_values
    from evalkit.metrics.functional import (_as_tensor, _comparable_threshold, _multilabel_engine_format,
                                            _multilabel_engine_tensor_validation, _multilabel_engine_update,
                                            _threshold_vector)
    from evalkit.metrics.weighted import check_sample_weight

    t, s = _as_tensor(targets, "targets"), _as_tensor(scores, "scores")
    C = t.shape[1] if t.ndim == 2 else 0
    _multilabel_engine_tensor_validation(s, t, C, scores_kind)
    s, t = _multilabel_engine_format(s, t)
    thr = _comparable_threshold(_threshold_vector(thresholds, C), s.dtype, s.device)
    _, rows, ranked = _multilabel_engine_update(s, t, thr, scores_kind, ranking=ranking)
    y = (t != 0).numpy()
    pred = ((torch.sigmoid(s) if scores_kind == "logits" else s) >= thr).numpy()
    S = s.numpy()
    w = np.ones(len(y)) if sample_weight is None else check_sample_weight(sample_weight, len(y))
    ks = ()  # no top-k values: none is a headline metric
    vals = row_values(S, y, rows, ranked, beta=beta, zero_division=zero_division, ks=ks)
    keep = [row_keys(ks).index(k) for k in (*_SAMPLES, "exact", "hamming", "lrap")]
    counts = np.concatenate([y & pred, pred, y], axis=1).view(np.uint8)
    rk = _ranking_stats(S, y, w, exact_order) if ranking and per_label else None
    return RowStats(counts, vals[keep], (*_SAMPLES, "exact", "hamming", "lrap"), w, rk, float(beta), float(zero_division))


def ranking_from_keys(keys: np.ndarray, exact_order: bool) -> dict:
    """:class:`RowStats`' ``ranking`` statistics (unit row weights) from the metric engine's exact-mode
    sort keys, so a streaming evaluation can resample mAP / macro AUROC without keeping the scores.

    Args:
        keys: int32 / int64 ``(N, C)``, rows in evaluation order: ``code(score) << 1 | target``
            (:func:`evalkit.metrics.threshold_free.make_keys` / ``make_logit_keys``); ``code`` is
            strictly monotone in the score, so ``keys >> 1`` ranks the rows as the scores do, ties kept.
        exact_order: keep the per-label sort orders (4 bytes x N x C) for exact resampling.
    """
    keys = np.asarray(keys)
    return _ranking_stats(keys >> 1, (keys & 1).astype(bool), np.ones(keys.shape[0]), exact_order)


def resampled_ranking(st: RowStats, W: np.ndarray, ranking: str) -> tuple[np.ndarray, np.ndarray]:
    """Resampled (mAP, macro AUROC) ``(R,)`` each of ``st`` (``st.ranking`` set) under row weights
    ``W`` ``(R, N)`` (``st.weights`` applied): ``ranking`` ``"exact"`` or ``"linear"`` (module docstring)."""
    if ranking == "exact":
        return _ranking_exact(st, W)
    return _ranking_linear(st, W if np.all(st.weights == 1.0) else np.asarray(W, dtype=np.float64) * st.weights)


def _ranking_stats(S: np.ndarray, y: np.ndarray, w: np.ndarray, exact_order: bool) -> dict:
    """Sort orders and influence vectors of AP / AUROC per label (see the module docstring); the
    labels are split between evalkit's 2 numpy threads (:mod:`evalkit.metrics._parallel`)."""
    from evalkit.metrics._parallel import THREADS, submit

    N, C = S.shape
    St, yt = np.ascontiguousarray(S.T), np.ascontiguousarray(y.T)
    order = np.empty((C, N), dtype=np.int32) if exact_order else None
    parts = [submit(_label_range, St, yt, w, order, range(j, C, THREADS)) for j in range(THREADS)]
    parts = [p.result() for p in parts]
    ends = [None] * C
    aps, aucs, inf = np.full(C, np.nan), np.full(C, np.nan), np.zeros((2, N))
    for p, js in zip(parts, (range(j, C, THREADS) for j in range(THREADS))):
        for j, (last, ap, auc) in zip(js, p[0]):
            ends[j], aps[j], aucs[j] = last, ap, auc
        inf += p[1]
    n_ap, n_auc = max(1, int((~np.isnan(aps)).sum())), max(1, int((~np.isnan(aucs)).sum()))
    return {"order": order, "ends": ends if exact_order else [], "y": yt, "ap_inf": inf[0] / n_ap,
            "auc_inf": inf[1] / n_auc, "ap": _mean_defined(aps), "auc": _mean_defined(aucs)}


def _label_range(St: np.ndarray, yt: np.ndarray, w: np.ndarray, order, js) -> tuple[list, np.ndarray]:
    """``([(tie-group ends, AP, AUROC) per label in js], summed influences (2, N))`` (one thread's share)."""
    N = St.shape[1]
    out, inf, g = [], np.zeros(N, dtype=np.complex128), np.empty(N, dtype=np.complex128)
    unit = bool(np.all(w == 1.0))
    for j in js:
        o = _descending(St[j])
        last = group_ends(St[j][o])
        if order is not None:
            order[j] = o
        ap, auc, g_ap, g_auc = _influence(last, yt[j][o], w if unit else w[o])
        out.append((last if order is not None else None, ap, auc))
        if g_ap is not None:  # AP + i AUROC: one scatter by assignment (~20x faster than ``inf[o] += ...``)
            tmp = np.empty(N, dtype=np.complex128)
            tmp.real, tmp.imag = g_ap, 0.0 if g_auc is None else g_auc
            g[o] = tmp
            inf += g
    return out, np.stack([inf.real, inf.imag])


def _descending(col: np.ndarray) -> np.ndarray:
    """Row order by descending score (tied rows adjacent, in any order): for float32 one SIMD sort
    of int64 keys (monotone score bits << 32 | row), ~3.5x faster than ``argsort``."""
    n = col.size
    if col.dtype != np.float32 or n >= 2**31:
        return np.argsort(col)[::-1]
    bits = col.view(np.int32)
    mono = (bits ^ ((bits >> 31) & 0x7FFFFFFF)).astype(np.int64)  # IEEE order -> integer order
    keys = (mono << 32) | np.arange(n, dtype=np.int64)
    keys.sort()
    return (keys[::-1] & 0xFFFFFFFF).astype(np.int32)


def _mean_defined(x: np.ndarray) -> float:
    return float(np.nanmean(x)) if not np.isnan(x).all() else math.nan


def _influence(last: np.ndarray, y: np.ndarray, w: np.ndarray):
    """AP, AUROC and each row's influence (derivative w.r.t. its weight) for one label.

    Args: rows sorted by descending score; ``last`` marks tie-group ends; y bool; w weights.
    Returns: ``(ap, auroc, g_ap (N,), g_auc (N,))`` in the sorted order; AP NaN without positive
    weight, AUROC NaN without both classes (their influences are then zeros).
    """
    if last.all():  # no ties (the common case of continuous scores): every row is its own group
        return _influence_untied(y, w)
    yw = np.where(y, w, 0.0)
    gid = np.concatenate(([0], np.cumsum(last[:-1]))) if last.size else last.astype(np.int64)
    pg = np.bincount(gid, weights=yw)
    ng = np.bincount(gid, weights=w - yw)
    Pw, Nw = pg.sum(), ng.sum()
    if Pw <= 0:
        return math.nan, math.nan, None, None
    allg = np.cumsum(pg + ng)
    prec = np.divide(np.cumsum(pg), allg, out=np.zeros_like(allg), where=allg > 0)
    ap = float((pg * prec).sum() / Pw)
    q = np.divide(pg, allg, out=np.zeros_like(allg), where=allg > 0)
    Q, Rr = np.cumsum(q[::-1])[::-1], np.cumsum((q * prec)[::-1])[::-1]
    g_ap = (y * (prec[gid] + Q[gid] - ap) - Rr[gid]) / Pw
    if Nw <= 0:
        return ap, math.nan, g_ap, None
    below = Nw - np.cumsum(ng) + 0.5 * ng
    above = np.cumsum(pg) - pg + 0.5 * pg
    auc = float((pg * below).sum() / (Pw * Nw))
    g_auc = np.where(y, below[gid], above[gid]) / (Pw * Nw) - auc * np.where(y, 1.0 / Pw, 1.0 / Nw)
    return ap, auc, g_ap, g_auc


def _influence_untied(y: np.ndarray, w: np.ndarray):
    """:func:`_influence` without tied scores (the same formulas with one row per group, fewer passes)."""
    yw = np.where(y, w, 0.0)
    cp, call = np.cumsum(yw), np.cumsum(w)
    Pw = float(cp[-1]) if cp.size else 0.0
    Nw = float(call[-1]) - Pw if cp.size else 0.0
    if Pw <= 0:
        return math.nan, math.nan, None, None
    with np.errstate(invalid="ignore", divide="ignore"):
        inv = np.where(call > 0, 1.0 / call, 0.0)
    prec, q = cp * inv, yw * inv
    ap = float(q @ cp) / Pw
    g_ap = np.cumsum(q[::-1])[::-1]  # Q
    q *= prec
    g_ap += prec
    g_ap -= ap
    g_ap *= y
    g_ap -= np.cumsum(q[::-1])[::-1]  # R
    g_ap /= Pw
    if Nw <= 0:
        return ap, math.nan, g_ap, None
    below = Nw - (call - cp) + 0.5 * (w - yw)
    auc = float(yw @ below) / (Pw * Nw)
    g_auc = np.where(y, below - auc * Nw, cp - 0.5 * yw - auc * Pw)
    g_auc /= Pw * Nw
    return ap, auc, g_ap, g_auc


def resampled_metrics(st: RowStats, W: np.ndarray, ranking: str = "linear") -> dict[str, np.ndarray]:
    """Every headline metric under R row weightings.

    Args:
        st: :func:`row_stats`; W: float ``(R, N)`` resample weights (counts of each row; ones =
            the observed data); ranking: ``"exact"`` or ``"linear"`` (module docstring).
    Returns:
        ``{"<average>.<precision|recall|f1|fbeta>": (R,), <HEADLINE_SCALARS>: (R,)}`` float64
        (NaN where undefined in a resample, e.g. no positive weight left for any label).
    """
    Ww = W if np.all(st.weights == 1.0) else np.asarray(W, dtype=np.float64) * st.weights
    counts, vsum, wsum = _products(st, Ww)
    rank = None
    if st.ranking is not None:
        rank = _ranking_exact(st, W) if ranking == "exact" else _ranking_linear(st, Ww)
    return metrics_from_sums(st, counts, vsum, wsum, rank)


def metrics_from_sums(st: RowStats, counts: np.ndarray, vsum: np.ndarray, wsum: np.ndarray,
                      rank: tuple[np.ndarray, np.ndarray] | None) -> dict[str, np.ndarray]:
    """:func:`resampled_metrics` from the resampled sums: ``counts`` ``(R, 3C)`` (tp | predicted |
    true), ``vsum`` / ``wsum`` ``(R, K)`` (weighted sums of the defined per-sample values and their
    weights) and ``rank`` = resampled (mAP, macro AUROC) ``(R,)`` each, or ``None``."""
    tp, pred, true = np.split(counts, 3, axis=1)
    zd = st.zero_division
    out = {f"micro.{k}": v for k, v in zip(_SAMPLES, prf(tp.sum(1), pred.sum(1), true.sum(1), st.beta, zd))}
    per = prf(tp, pred, true, st.beta, zd)
    for k, v in zip(_SAMPLES, per):
        out[f"macro.{k}"] = _nan_mean(v, None)
        out[f"weighted.{k}"] = _nan_mean(v, true)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = vsum / wsum
    for i, k in enumerate(st.keys):
        if k in _SAMPLES:
            out[f"samples.{k}"] = means[:, i]
    for name, k in _ROW.items():
        out[name] = means[:, st.keys.index(k)]
    if rank is not None:
        out["mean_average_precision"], out["macro_auroc"] = rank
    return out


def _products(st: RowStats, Ww: np.ndarray, block: int = 1 << 14):
    """``Ww @ counts`` ``(R, 3C)``, ``Ww @ values`` and ``Ww @ defined`` ``(R, K)`` (float64) by BLAS
    over row blocks, casting a block at a time (memory O(R x block + block x C)). The 0/1 counts
    use float32 when every weight is a whole number with sums below 2^24 (exact), else float64."""
    dt = np.float32 if Ww.sum(1).max() < 2**24 and np.array_equal(Ww, np.rint(Ww)) else np.float64
    R, K = Ww.shape[0], st.values.shape[0]
    counts = np.zeros((R, st.counts.shape[1]))
    vsum, wsum = np.zeros((R, K)), np.zeros((R, K))
    for r0 in range(0, st.n_rows, block):
        Wb = Ww[:, r0:r0 + block]
        counts += Wb.astype(dt) @ st.counts[r0:r0 + block].astype(dt)
        v = st.values[:, r0:r0 + block].T
        ok = ~np.isnan(v)
        Wb64 = Wb.astype(np.float64)
        vsum += Wb64 @ np.where(ok, v, 0.0)
        wsum += Wb64 @ ok.astype(np.float64)
    return counts, vsum, wsum


def _nan_mean(v: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Row-wise NaN-aware mean of ``(R, C)``, weighted when the weights' sum is positive."""
    ok = ~np.isnan(v)
    v0 = np.where(ok, v, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        plain = v0.sum(1) / ok.sum(1)
        if weights is None:
            return plain
        ws = np.where(ok, weights, 0.0).sum(1)
        return np.where(ws > 0, (v0 * weights).sum(1) / np.where(ws > 0, ws, 1.0), plain)


def _ranking_linear(st: RowStats, Ww: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return linear_ranking(st, Ww @ np.stack([st.ranking["ap_inf"], st.ranking["auc_inf"]], axis=1),
                          Ww.sum(1, dtype=np.float64))


def linear_ranking(st: RowStats, lin: np.ndarray, total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Resampled (mAP, macro AUROC) ``(R,)`` from ``lin`` ``(R, 2)`` = weights @ (AP, AUROC)
    influences and ``total`` ``(R,)`` = each resample's weight sum (the delta method)."""
    rk = st.ranking
    with np.errstate(invalid="ignore", divide="ignore"):
        c = st.weights.sum() / total
    return rk["ap"] + c * lin[:, 0], rk["auc"] + c * lin[:, 1]


def _ranking_exact(st: RowStats, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Resampled (mAP, macro AUROC) ``(R,)`` under copy counts ``W`` ``(R, N)`` (``st.weights`` applied
    here): every AP / AUROC exact; the copies of a row of unique score count as adjacent distinct
    rows (:func:`copies_untied`)."""
    rk = st.ranking
    unit = bool(np.all(st.weights == 1.0))
    R, C = W.shape[0], len(rk["ends"])
    ap, auc = np.full((R, C), np.nan), np.full((R, C), np.nan)
    for j in range(C):
        o, last = rk["order"][j], rk["ends"][j]
        ys = rk["y"][j][o]
        if not ys.any():
            continue
        copies = W[:, o]
        ws = copies if unit else copies * st.weights[o]
        cum_all = np.cumsum(ws, axis=1)[:, last]
        ws[:, ~ys] = 0.0
        tps = np.cumsum(ws, axis=1)[:, last]
        a, u = ap_auroc_from_cums(tps, cum_all - tps)
        a = a + copies_untied(copies, ys, last, st.weights[o], tps, cum_all)
        ap[:, j] = np.where(tps[:, -1] > 0, a, np.nan)
        auc[:, j] = u
    return _nan_mean(ap, None), _nan_mean(auc, None)


def copies_untied(copies: np.ndarray, y: np.ndarray, last: np.ndarray, s: np.ndarray, tps: np.ndarray,
                  alls: np.ndarray) -> np.ndarray:
    """What ranking a resample's copies of a row as adjacent distinct rows adds to its tied AP, ``(R,)`` (<= 0).

    A bootstrap resample that draws a row k times holds k rows of one score. scikit-learn's AP
    ties them (every positive of a tie group takes the precision at the group's end), which real test
    sets of continuous scores never do, and which raises each resample's AP: on the coverage
    benchmark (``benchmarks/bench_ci_coverage.py``) the resampled mAP sat +0.0011 above the observed
    one, against +0.0002 with the copies ranked apart - the smoothed bootstrap's answer as its noise
    goes to 0 (Silverman & Young 1987). So a positive row of unique score drawn k >= 2 times, with
    weight s, after a cumulative weight ``n0`` of which ``fp0`` negative, contributes
    ``sum_{i=1..k} s (n0 - fp0 + i s) / (n0 + i s) = k s - fp0 sum_{i=1..k} 1 / (n0 / s + i)`` instead of
    the tied ``k s (n0 - fp0 + k s) / (n0 + k s)``. Rows whose score ties another row's in the test set
    keep the tie rule: such scores are discrete, and so are the population's. AUROC is unchanged
    (copies of one row are of one class).

    Args:
        copies: float ``(R, N)`` copy counts in the label's order (descending score; only the positive
            rows are read); y: bool ``(N,)``; last: tie-group ends ``(N,)``; s: sample weights ``(N,)``;
            tps / alls: ``(R, G)`` cumulative positive / total weight at the group ends
            (as :func:`evalkit.metrics.weighted.ap_auroc_from_cums`).
    Returns:
        float64 ``(R,)``, to add to the tied AP (NaN where a resample has no positive weight).
    """
    first = np.concatenate(([True], last[:-1]))
    rows = np.flatnonzero(y & last & first & (s > 0))
    k = copies[:, rows]
    hit = np.flatnonzero(k.ravel() >= 2)
    R = copies.shape[0]
    if hit.size == 0:
        return np.zeros(R)
    r, m = np.divmod(hit, rows.size)
    at = r * tps.shape[1] + (np.cumsum(last) - 1)[rows][m]  # (resample, group) flat
    k, w = k.ravel()[hit].astype(np.float64), s[rows][m]
    n = alls.ravel()[at].astype(np.float64)
    fp0 = n - tps.ravel()[at]
    x = (n - k * w) / w
    harmonic = 1.0 / (x + 1.0) + 1.0 / (x + 2.0)  # sum_{i=1..k} 1 / (x + i), k >= 2 (mostly 2)
    for i in range(3, int(k.max()) + 1):
        more = np.flatnonzero(k >= i)
        harmonic[more] += 1.0 / (x[more] + i)
    out = np.bincount(r, weights=fp0 * (k * w / n - harmonic), minlength=R)
    with np.errstate(invalid="ignore", divide="ignore"):
        return out / tps[:, -1]


def headline_names(beta_key: str) -> dict[str, tuple[str, str]]:
    """Resampled name -> (summary block or ``""`` for a scalar, report key), e.g.
    ``"macro.fbeta" -> ("macro", "f2")``, ``"macro_auroc" -> ("", "macro_auroc")``."""
    out = {f"{avg}.{k}": (avg, beta_key if k == "fbeta" else k) for avg in AVERAGES for k in _SAMPLES}
    return out | {k: ("", k) for k in HEADLINE_SCALARS}
