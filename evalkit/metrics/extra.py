"""Per-sample contributions and per-label confusion metrics beyond the engine's core set.

Every per-sample metric of evalkit is a mean over samples of one value per sample; this module
computes those values for a batch (:func:`row_values`), so the same numbers serve the engine's
weighted / NaN-aware sums and the bootstrap (:mod:`evalkit.stats.bootstrap`, which needs each row's
contribution). Definitions and sources (N samples, C labels; ``w`` the sample weights):

* Jaccard index (``jaccard``): tp / (tp + fp + fn) per label / per sample, micro on summed counts
  (scikit-learn ``jaccard_score``, Jaccard 1912); 0/0 takes ``zero_division``.
* specificity tn / (tn + fp), negative predictive value tn / (tn + fn) (torchmetrics
  ``MultilabelSpecificity``; Altman & Bland 1994), Matthews correlation (Matthews 1975;
  scikit-learn ``matthews_corrcoef`` per label: 0 when a marginal is empty). Averages: micro on
  summed counts, macro = mean over labels, weighted = support-weighted (as torchmetrics).
* one-error: fraction of samples whose top-scored label is not relevant (Schapire & Singer 2000);
  the top label is the first maximal score (row order), a sample without relevant label counts 1.
* precision@k = #relevant labels among the k top-scored / k; nDCG@k = DCG@k / ideal DCG@k with
  gain 1 / log2(rank + 1) (LibMultiLabel ``P@k`` / ``nDCG@k``; scikit-learn ``ndcg_score(k=)``,
  which gives 0 to a sample without relevant label). Tied scores are ranked by label index, not
  averaged as ``ndcg_score`` does: equal for untied scores.
* samples-averaged AP (scikit-learn ``average_precision_score(average="samples")``: a sample
  without relevant label scores 0) and AUROC (``roc_auc_score(average="samples")``; a sample with
  one class only is undefined and left out of the mean, where scikit-learn raises).

Ranking uses the raw scores (logits or probabilities: any monotone scores rank alike), so no
sigmoid saturation enters top-k metrics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from evalkit.errors import InputError


DEFAULT_KS = (1, 3, 5)
"""Default cut-offs of precision@k and nDCG@k."""


def _div(num, den, zd: float) -> np.ndarray:
    """``num / den`` in float64, ``zd`` (possibly NaN) where ``den == 0``."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, zd, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


#: above this beta, F-beta is recall to the last bit of a float64 (beta**2 overflows from ~1.3e154, and
#: the bootstrap's F-beta gradients hold beta**4 terms)
RECALL_BETA = 1e50


def fbeta_is_recall(beta: float) -> bool:
    """Whether F-beta is computed as recall: ``beta = inf`` (scikit-learn ``fbeta_score``) or a finite beta
    above :data:`RECALL_BETA`, where (1 + b^2) tp / (b^2 true + pred) and tp / true differ by < 1e-90."""
    return beta > RECALL_BETA


def prf(tp, pred, true, beta: float, zd: float) -> list[np.ndarray]:
    """Precision, recall, F1, F-beta (float64, elementwise) from tp / predicted / true counts.

    ``beta = inf`` (or above :data:`RECALL_BETA`) gives recall (scikit-learn ``fbeta_score``), ``beta = 0`` precision.
    """
    fb = _div(tp, true, zd) if fbeta_is_recall(beta) else _div((1 + beta**2) * tp, beta**2 * true + pred, zd)
    return [_div(tp, pred, zd), _div(tp, true, zd), _div(2.0 * tp, true + pred, zd), fb]


def top_k_values(scores: np.ndarray, targets: np.ndarray, ks: Sequence[int]) -> list[np.ndarray]:
    """One-error, precision@k and nDCG@k of each row (definitions: module docstring).

    Args:
        scores: ``(B, C)`` float scores (higher = more relevant); targets: ``(B, C)`` in {0, 1}.
        ks: cut-offs >= 1 (a k larger than C counts missing ranks as irrelevant for P@k).
    Returns:
        ``[one_error, p@k..., ndcg@k...]``, each float64 ``(B,)``; with no ``ks`` only
        ``[one_error]`` as NaN (not computed: the caller needs none of them).
    """
    B, C = scores.shape
    if not ks:
        return [np.full(B, np.nan)]
    targets = np.asarray(targets) != 0
    kmax = min(max(ks), C)
    top = _top_indices(scores, kmax)
    rel = np.take_along_axis(targets, top, axis=1).astype(np.float64)
    first = top[:, 0]
    one_error = 1.0 - np.take_along_axis(targets, first[:, None], axis=1)[:, 0].astype(np.float64)
    gains = 1.0 / np.log2(np.arange(2, kmax + 2))
    npos = targets.sum(axis=1)
    cum_rel, cum_dcg, ideal = np.cumsum(rel, axis=1), np.cumsum(rel * gains, axis=1), np.cumsum(gains)
    pk, nk = [], []
    for k in ks:
        kk = min(k, kmax)
        pk.append(cum_rel[:, kk - 1] / k)
        idcg = ideal[np.clip(np.minimum(npos, kk), 1, None) - 1]
        nk.append(np.where(npos > 0, cum_dcg[:, kk - 1] / idcg, 0.0))
    return [one_error, *pk, *nk]


def _top_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """``(B, k)`` indices of the k largest scores per row, best first, ties by lower label index
    (k argmax passes for small k - cheaper than a partition of every row - else a stable sort)."""
    if k > 16:
        return np.argsort(-scores, axis=1, kind="stable")[:, :k]
    s = np.array(scores, dtype=scores.dtype, copy=True)
    top = np.empty((s.shape[0], k), dtype=np.int64)
    rows = np.arange(s.shape[0])
    for r in range(k):
        top[:, r] = np.argmax(s, axis=1)
        s[rows, top[:, r]] = -np.inf
    return top


def row_values(scores: np.ndarray, targets: np.ndarray, rows: np.ndarray, ranked, *, beta: float,
               zero_division: float, ks: Sequence[int]) -> np.ndarray:
    """Every per-sample value of a batch, in the order of :func:`evalkit.metrics.names.row_keys`.

    Args:
        scores: ``(B, C)`` raw scores; targets: ``(B, C)`` in {0, 1}.
        rows: int ``(3, B)`` = (tp, predicted, true) per sample at the thresholds.
        ranked: ``(P, ap_sum, gt, min_a, lt)`` arrays ``(B,)`` of
            :func:`evalkit.metrics._kernels.ranked_rows`, or ``None`` (ranking values are then NaN).
    Returns:
        float64 ``(K, B)``: NaN marks a value undefined for that sample (left out of its mean).
    """
    B, C = scores.shape
    tp, pred, true = (r.astype(np.float64) for r in rows)
    vals = prf(tp, pred, true, beta, zero_division)
    vals.append(_div(tp, pred + true - tp, zero_division))  # jaccard
    vals.append(((tp == pred) & (tp == true)).astype(np.float64))  # exact match
    vals.append((pred + true - 2 * tp) / C)  # hamming
    if ranked is None:
        vals += [np.full(B, np.nan)] * 6
    else:
        P, ap, gt, min_a, lt = (np.asarray(r, dtype=np.float64) for r in ranked)
        pairs = P * (C - P)
        inf = pairs > 0
        safe = np.where(inf, pairs, 1.0)
        vals.append(np.where(inf, ap / np.maximum(P, 1), 1.0))  # LRAP
        vals.append(np.where(inf, (pairs - gt) / safe, 0.0))  # ranking loss
        vals.append(np.where(P > 0, C - min_a, 0.0))  # coverage
        vals.append(np.where(P > 0, ap / np.maximum(P, 1), 0.0))  # samples AP
        vals.append(np.where(inf, (pairs + gt - lt) / (2 * safe), np.nan))  # samples AUROC
        vals.append(np.ones(B))  # rows with ranking values (for the report's None)
    vals += top_k_values(scores, targets, ks)
    return np.stack(vals)


def weighted_row_sums(values: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Exact fixed-point sums, int64 ``(2, 4, K)`` = (value sums, weight sums) x 4 limbs x K: per
    value, the weighted sum over the rows where it is defined and the sum of those rows' weights
    (their ratio, :func:`fixed_row_means`, is the NaN-aware weighted mean, scikit-learn's
    ``_nanaverage``). Each ``x = value x weight`` is split into base-2^31 limbs
    ``a 2^31 + b + c 2^-31 + d 2^-62`` (each in [0, 2^31]), summed as integers, so totals do not
    depend on batching or process count: exact for up to 2^32 rows, resolution 2^-62.

    Raises:
        InputError: a ``value x weight`` of 2^62 (4.6e18) or more (scale the weights down: every
            weighted mean is unchanged by a common factor).
    """
    w = np.ones(values.shape[1]) if weights is None else np.asarray(weights, dtype=np.float64)
    ok = ~np.isnan(values)
    out = np.empty((2, 4, values.shape[0]), dtype=np.int64)
    for i, x in enumerate((np.where(ok, values, 0.0) * w, ok * w)):
        if x.size and x.max() >= _FX * _FX:
            raise InputError(f"sample_weight: a weight of {float(w.max()):g} makes a weighted sum of {float(x.max()):g} "
                             f"per row; expected below 2^62 (divide the weights by a common factor: the metrics do not change)")
        if x.size and x.max() * x.shape[1] < _FX:  # the usual case: two limbs (2^-31, 2^-62), sums < 2^62
            y = x * _FX
            hi = np.floor(y)
            sums = hi.astype(np.int64).sum(axis=1)
            out[i, 0], out[i, 1], out[i, 2] = 0, sums >> 31, sums & _MASK
            out[i, 3] = np.rint((y - hi) * _FX).astype(np.int64).sum(axis=1)
            continue
        for j in range(4):
            limb = np.floor(x / _FX) if j == 0 else (np.floor(x) if j < 3 else np.rint(x))
            out[i, j] = limb.astype(np.int64).sum(axis=1)
            x = (x - limb * _FX) if j == 0 else (x - limb) * _FX
    return out


_FX = 2.0**31
_MASK = (1 << 31) - 1


def fixed_row_means(fx: np.ndarray) -> np.ndarray:
    """float64 ``(K,)`` means from summed :func:`weighted_row_sums` (NaN where no row is defined).

    The limbs are first carried into canonical form (each below 2^31 but the top one), so the same
    total gives the same float whatever batches its limbs were summed in."""
    fx = np.array(fx, dtype=np.int64)
    for j in (3, 2, 1):
        fx[:, j - 1] += fx[:, j] >> 31
        fx[:, j] &= _MASK
    sums = fx[:, 0] * _FX + fx[:, 1] + fx[:, 2] / _FX + fx[:, 3] / (_FX * _FX)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sums[1] > 0, sums[0] / np.where(sums[1] > 0, sums[1], 1.0), math.nan)


def nan_average(x: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Mean of the non-NaN entries, weighted by ``weights`` when their sum is positive (else
    unweighted; scikit-learn's ``_nanaverage``); NaN when every entry is NaN."""
    x = np.asarray(x, dtype=np.float64)
    ok = ~np.isnan(x)
    if not ok.any():
        return math.nan
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)[ok]
        if w.sum() > 0:
            return float(np.average(x[ok], weights=w))
    return float(x[ok].mean())


def confusion_extras(tp, fp, fn, tn, zero_division: float) -> dict[str, np.ndarray]:
    """Per-label Jaccard, specificity, NPV and MCC (float64 ``(C,)``) from (weighted) counts."""
    tp, fp, fn, tn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn, tn))
    den = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return {"jaccard": _div(tp, tp + fp + fn, zero_division), "specificity": _div(tn, tn + fp, zero_division),
            "npv": _div(tn, tn + fn, zero_division), "mcc": _div(tp * tn - fp * fn, den, 0.0)}


def confusion_averages(tp, fp, fn, tn, zero_division: float) -> dict[str, dict[str, float]]:
    """``{metric: {"micro", "macro", "weighted"}}`` of :func:`confusion_extras` (weighted by support)."""
    per = confusion_extras(tp, fp, fn, tn, zero_division)
    micro = confusion_extras(*(np.sum(a, keepdims=True) for a in (tp, fp, fn, tn)), zero_division)
    support = np.asarray(tp, dtype=np.float64) + np.asarray(fn, dtype=np.float64)
    return {k: {"micro": float(micro[k][0]), "macro": nan_average(v), "weighted": nan_average(v, support)}
            for k, v in per.items()}


def extras_block(counts, row_means: dict[str, float], ap, auroc, *, zero_division: float,
                 ks: Sequence[int]) -> dict:
    """The ``MetricValues.extra`` dict: per-label arrays, averages and per-sample means.

    Args:
        counts: (weighted) ``(tp, fp, fn, tn)`` arrays ``(C,)``.
        row_means: per-sample means keyed as :func:`evalkit.metrics.names.row_keys`.
        ap, auroc: per-label ``(C,)`` arrays or ``None`` (threshold-free metrics off).
    """
    tp, fp, fn, tn = counts
    support = np.asarray(tp, dtype=np.float64) + np.asarray(fn, dtype=np.float64)
    ranking = ap is not None
    out = {"per_label": confusion_extras(*counts, zero_division),
           "averages": confusion_averages(*counts, zero_division),
           "ks": tuple(int(k) for k in ks)}
    out["averages"]["jaccard"]["samples"] = row_means["jaccard"]
    out["scalars"] = {
        "average_precision_weighted": nan_average(ap, support) if ranking else None,
        "average_precision_samples": row_means["ap"] if ranking else None,
        "auroc_weighted": nan_average(auroc, support) if ranking else None,
        "auroc_samples": row_means["auroc"] if ranking else None,
        "one_error": row_means["one_error"],
        **{f"precision_at_{k}": row_means[f"precision_at_{k}"] for k in ks},
        **{f"ndcg_at_{k}": row_means[f"ndcg_at_{k}"] for k in ks},
    }
    return out
