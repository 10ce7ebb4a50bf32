"""First-order (delta-method) resampling of the macro / weighted count metrics of large, well-populated
labels, so that 1000 resamples of a 200,000 x 100 evaluation cost a handful of ``(R, N) @ (N, k)``
products instead of ``(R, N) @ (N, 3C)``.

A label ``j`` is *linearised* when its observed tp, predicted and true counts are all at least
:data:`LINEAR_MIN` (relative standard error of each count <= 1/sqrt(LINEAR_MIN) ~ 3%; the error of the
linear approximation is then ~1% of the interval's half-width). Its precision / recall / F1 / F-beta
``f_j(tp, pred, true)`` is homogeneous of degree 0 in the counts, so (Euler) under a resample's row
weights ``W`` ``f_j(W) ~ f_j + c W @ (M_j d_j)`` with ``M_j`` the row's 0/1 (tp, predicted, true)
indicators, ``d_j`` the gradient of ``f_j`` at the observed counts and ``c = sum(w) / sum(W)``. The
weighted average's numerator ``true_j f_j`` is homogeneous of degree 1: ``~ W @ (M_j e_j)``. Summed
over the linearised labels these give 8 per-row influence columns (macro and weighted numerators of
the 4 metrics); every other label keeps its exact per-label counts (3 columns each). Only used when
exact counts would cost more than :data:`EXACT_COUNTS_BUDGET` (resamples x rows x 3C); smaller
evaluations resample every label exactly.
"""

from __future__ import annotations

import numpy as np

from evalkit.metrics.extra import fbeta_is_recall

LINEAR_MIN = 1000
EXACT_COUNTS_BUDGET = 2e9


def linear_labels(observed: np.ndarray, resamples: int, n_rows: int) -> np.ndarray:
    """bool ``(C,)``: the labels resampled linearly; ``observed`` float64 ``(3C,)`` = weighted
    (tp | predicted | true) counts."""
    tp, pred, true = np.split(np.asarray(observed, dtype=np.float64), 3)
    if resamples * n_rows * observed.size <= EXACT_COUNTS_BUDGET:
        return np.zeros(tp.size, dtype=bool)
    return np.minimum(np.minimum(tp, pred), true) >= LINEAR_MIN


def gradients(observed: np.ndarray, beta: float, linear: np.ndarray) -> np.ndarray:
    """float64 ``(3C, 8)``: d(metric)/d(count) for the linearised labels (zero rows elsewhere).

    Columns: the sums over the linearised labels of ``f_j`` for precision, recall, F1, F-beta, then the weighted
    numerators ``true_j f_j`` of the same four. Rows: tp counts, predicted counts, true counts.
    """
    tp, pred, true = np.split(np.asarray(observed, dtype=np.float64), 3)
    C = tp.size
    keep = linear.astype(np.float64)
    tp, pred, true = tp * keep, np.where(linear, pred, 1.0), np.where(linear, true, 1.0)
    zero = np.zeros(C)
    d1 = pred + true
    if fbeta_is_recall(beta):
        fb, dfb = tp / true, (1 / true, zero, -tp / true**2)
    else:
        b2, D = beta**2, beta**2 * true + pred
        fb, dfb = (1 + b2) * tp / D, ((1 + b2) / D, -(1 + b2) * tp / D**2, -b2 * (1 + b2) * tp / D**2)
    values = (tp / pred, tp / true, 2 * tp / d1, fb)
    grads = ((1 / pred, -tp / pred**2, zero), (1 / true, zero, -tp / true**2),
             (2 / d1, -2 * tp / d1**2, -2 * tp / d1**2), dfb)
    G = np.zeros((3 * C, 8))
    for m, (f, (g_tp, g_pred, g_true)) in enumerate(zip(values, grads)):
        G[:, m] = np.concatenate([g_tp, g_pred, g_true]) * np.tile(keep, 3)
        G[:, 4 + m] = np.concatenate([true * g_tp, true * g_pred, f + true * g_true]) * np.tile(keep, 3)
    return G


def combine(exact: dict[str, np.ndarray], lin: np.ndarray, total: np.ndarray, points: dict[str, np.ndarray],
            true_sum: np.ndarray, weight_sum: float) -> dict[str, np.ndarray]:
    """Resampled macro / weighted metrics ``{"macro.<m>": (R,), "weighted.<m>": (R,)}``.

    Args:
        exact: per exact label ``{"<m>": (R, E), "true": (R, E)}`` resampled values / true counts.
        lin: ``(R, 8)`` = W @ influence columns (:func:`gradients`); total: ``(R,)`` weight sums.
        points: ``{"<m>": (L,)}`` observed values of the linearised labels; true_sum: ``(R,)``
            resampled true counts over all labels; weight_sum: the observed weight sum.
    """
    out = {}
    n_lin = next(iter(points.values())).size
    with np.errstate(invalid="ignore", divide="ignore"):
        c = weight_sum / total
        for m, name in enumerate(("precision", "recall", "f1", "fbeta")):
            v = exact[name]
            macro = np.nansum(v, axis=1) + points[name].sum() + c * lin[:, m]
            out[f"macro.{name}"] = macro / ((~np.isnan(v)).sum(1) + n_lin)
            out[f"weighted.{name}"] = (np.nansum(v * exact["true"], axis=1) + lin[:, 4 + m]) / true_sum
    return out
