"""Fitting thresholds on validation scores: F-beta curves and the per-strategy cut searches.

Numeric core of :mod:`evalkit.thresholds` (arrays in, ``(C,)`` float64 cuts out); the typed value that
flows through evalkit is :class:`evalkit.thresholds.Thresholds`. The decision rule everywhere is the
metric engine's ``probability >= threshold`` (:func:`evalkit.metrics.binarize`).
"""

from __future__ import annotations

import numpy as np

from evalkit.config import DEFAULT_BETA
from evalkit.errors import InputError
from evalkit.metrics.extra import fbeta_is_recall
from evalkit.thresholds.value import DEFAULT_OBJECTIVE, OBJECTIVES, ThresholdStrategy, check_strategy

#: labels with fewer validation positives than this fall back to the global cut under ``per-class``
MIN_POSITIVES = 5
#: the global search evaluates at most this many candidate cuts (quantiles of the validation scores)
MAX_CANDIDATES = 4096

# --------------------------------------------------------------------------------------------------
# curves (F-beta as a function of the cut, rule: probability >= cut)


def _fbeta(tp, fp, fn, beta: float):
    tp, fp, fn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn))
    if fbeta_is_recall(beta):  # beta * beta would be inf: inf / inf
        return np.divide(tp, tp + fn, out=np.zeros_like(tp), where=tp + fn > 0)
    b2 = beta * beta
    denom = (1 + b2) * tp + b2 * fn + fp
    return np.divide((1 + b2) * tp, denom, out=np.zeros_like(denom), where=denom > 0)


def fbeta_curve(probabilities: np.ndarray, targets: np.ndarray, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """F-beta of one label (or of pooled decisions) at every distinct cut, for ``probability >= cut``.

    Args:
        probabilities: ``(N,)`` in [0, 1]. targets: ``(N,)`` in {0, 1}.
    Returns:
        ``(cuts, fbeta)``: distinct probabilities in decreasing order and the F-beta obtained by
        predicting positive every sample with probability >= cut (zero_division=0).
    """
    order = np.argsort(-probabilities, kind="stable")
    p = probabilities[order]
    t = targets[order].astype(np.float64)
    last = np.r_[np.nonzero(np.diff(p))[0], p.size - 1]  # last index of each group of tied scores
    tp = np.cumsum(t)[last]
    fp = (last + 1) - tp
    fn = t.sum() - tp
    return p[last], _fbeta(tp, fp, fn, beta)


def pr_curve(probabilities: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall of one label at every distinct cut (rule ``probability >= cut``), for plots.

    Returns:
        ``(cuts, precision, recall)`` with cuts in decreasing order (recall 0 when there is no positive).
    """
    order = np.argsort(-probabilities, kind="stable")
    p = probabilities[order]
    t = targets[order].astype(np.float64)
    last = np.r_[np.nonzero(np.diff(p))[0], p.size - 1]
    tp = np.cumsum(t)[last]
    npos = t.sum()
    precision = tp / (last + 1)
    recall = tp / npos if npos > 0 else np.zeros_like(tp)
    return p[last], precision, recall


def _midpoint(cuts: np.ndarray, i: int) -> float:
    """The cut between candidate ``i`` and the next lower one: same validation decisions, more margin."""
    below = cuts[i + 1] if i + 1 < cuts.size else 0.0
    return float((cuts[i] + below) / 2) if cuts[i] > below else float(cuts[i])


def _best_cut(probabilities: np.ndarray, targets: np.ndarray, beta: float) -> float:
    cuts, f = fbeta_curve(probabilities, targets, beta)
    everyone = np.zeros(cuts.size, dtype=bool)
    everyone[-1] = True  # the lowest distinct score: every validation row predicted positive
    if cuts[-1] <= 0:  # a cut of 0 is no threshold in (0, 1): rows scoring 0 are never predicted
        if cuts.size == 1:
            return 0.5
        cuts, f, everyone = cuts[:-1], f[:-1], np.zeros(cuts.size - 1, dtype=bool)  # none predicts every row
    best = away_from_all_positive(int(np.argmax(f)), f, f, everyone, float(np.sum(targets)))
    return _midpoint(cuts, best)  # first maximum = highest cut among ties


def away_from_all_positive(best: int, values: np.ndarray, label_fbeta: np.ndarray, all_positive: np.ndarray,
                           positives: float) -> int:
    """The tie rule of the threshold fit: do not predict a label for every row on a gain the
    validation set cannot resolve.

    When the chosen candidate ``best`` predicts the label positive for every validation row
    (``all_positive[best]``), the candidate ``alt`` with the highest ``values`` (the objective)
    among those predicting at least one validation row negative is taken instead if the label's
    own F-beta gain of the all-positive cut is below the resolution of the validation set:
    ``label_fbeta[best] - label_fbeta[alt] < 1 / positives``, where ``positives`` is the label's
    number of validation positives (one positive found or missed moves its recall by ``1 / positives``).
    Otherwise (or without such a candidate, or without positives) ``best`` is kept.

    Args:
        best: index of the objective's maximum. values, label_fbeta: ``(K,)`` float, the objective
            and the label's F-beta in [0, 1] at each of the K candidates. all_positive: ``(K,)`` bool.
        positives: the label's validation positives (>= 0).
    Returns:
        the index of the candidate to use.
    """
    if not all_positive[best] or positives <= 0:
        return best
    partial = np.flatnonzero(~all_positive)
    if partial.size == 0:
        return best
    alt = int(partial[np.argmax(values[partial])])  # first maximum: the highest such cut
    return alt if label_fbeta[best] - label_fbeta[alt] < 1.0 / positives else best


def _candidates(probabilities: np.ndarray) -> np.ndarray:
    """Distinct positive validation scores in decreasing order (at most MAX_CANDIDATES, by quantile);
    ``[1.0]`` when every score is 0 (no cut in (0, 1) predicts a row then)."""
    cuts = _positive(np.unique(probabilities.ravel())[::-1])
    if cuts.size > MAX_CANDIDATES:
        idx = np.unique(np.linspace(0, cuts.size - 1, MAX_CANDIDATES).round().astype(int))
        cuts = cuts[idx]
    return cuts


def _positive(cuts: np.ndarray) -> np.ndarray:
    """The candidate cuts above 0 (a fitted threshold lies in (0, 1)), or ``[1.0]`` if none is."""
    cuts = cuts[cuts > 0]
    return cuts if cuts.size else np.array([1.0])


def objective_curve(probabilities: np.ndarray, targets: np.ndarray, *, beta: float,
                    objective: str = DEFAULT_OBJECTIVE) -> tuple[np.ndarray, np.ndarray]:
    """``objective`` at one cut shared by every label, for each candidate cut.

    Args:
        probabilities, targets: ``(N, C)``.
    Returns:
        ``(cuts, values)``: candidate cuts in decreasing order and the objective at each.
    """
    P = np.asarray(probabilities, dtype=np.float64)
    Y = np.asarray(targets).astype(bool)
    cuts = _candidates(P)
    asc = cuts[::-1]
    tp = np.empty((Y.shape[1], cuts.size))
    pred = np.empty_like(tp)
    for c in range(Y.shape[1]):
        pos = np.sort(P[Y[:, c], c])
        allp = np.sort(P[:, c])
        # number of scores >= cut, for every cut
        tp[c] = (pos.size - np.searchsorted(pos, asc, side="left"))[::-1]
        pred[c] = (allp.size - np.searchsorted(allp, asc, side="left"))[::-1]
    npos = Y.sum(axis=0)[:, None].astype(np.float64)
    fp, fn = pred - tp, npos - tp
    return cuts, _objective(tp, fp, fn, beta, objective)


def _objective(tp, fp, fn, beta: float, objective: str):
    """``objective`` from per-label counts ``(C, K)`` (K candidate settings) -> ``(K,)``."""
    if objective not in OBJECTIVES:
        raise InputError(f"--objective: unknown objective {objective!r}; expected one of: {', '.join(OBJECTIVES)}")
    micro = _fbeta(tp.sum(0), fp.sum(0), fn.sum(0), beta)
    macro = _fbeta(tp, fp, fn, beta).mean(axis=0)
    return {"micro-fbeta": micro, "macro-fbeta": macro, "mean-fbeta": (micro + macro) / 2}[objective]


#: candidate cuts per label for ``joint`` (quantiles of the label's validation scores)
JOINT_CANDIDATES = 128
JOINT_SWEEPS = 3


def _joint_cuts(P: np.ndarray, Y: np.ndarray, beta: float, objective: str) -> np.ndarray:
    """Coordinate ascent: each label in turn takes the cut that maximises the objective given the
    other labels' cuts; starts from the global cut; stops after JOINT_SWEEPS sweeps or no change."""
    N, C = Y.shape
    Yb = Y.astype(bool)
    start = _global_cut(P, Y, beta, objective)
    cand, tp_c, pred_c = [], [], []
    for c in range(C):
        scores = _positive(np.unique(P[:, c])[::-1])
        if scores.size > JOINT_CANDIDATES:
            scores = scores[np.unique(np.linspace(0, scores.size - 1, JOINT_CANDIDATES).round().astype(int))]
        mids = np.array([_midpoint(scores, i) for i in range(scores.size)] + [start])
        pos = np.sort(P[Yb[:, c], c])
        allp = np.sort(P[:, c])
        cand.append(mids)
        tp_c.append(pos.size - np.searchsorted(pos, mids, side="left"))
        pred_c.append(allp.size - np.searchsorted(allp, mids, side="left"))
    npos = Yb.sum(axis=0).astype(np.float64)
    choice = [cand[c].size - 1 for c in range(C)]  # index of the start cut
    tp = np.array([tp_c[c][choice[c]] for c in range(C)], dtype=np.float64)
    pred = np.array([pred_c[c][choice[c]] for c in range(C)], dtype=np.float64)
    for _ in range(JOINT_SWEEPS):
        changed = False
        for c in range(C):
            K = cand[c].size
            TP = np.repeat(tp[:, None], K, axis=1)
            PR = np.repeat(pred[:, None], K, axis=1)
            TP[c], PR[c] = tp_c[c], pred_c[c]
            values = _objective(TP, PR - TP, npos[:, None] - TP, beta, objective)
            everyone = pred_c[c] >= N
            best = away_from_all_positive(int(np.argmax(values)), values, _fbeta(tp_c[c], pred_c[c] - tp_c[c],
                                                                                 npos[c] - tp_c[c], beta),
                                          everyone, npos[c])
            if best != choice[c] and (values[best] > values[choice[c]] + 1e-12 or everyone[choice[c]] > everyone[best]):
                choice[c], tp[c], pred[c], changed = best, tp_c[c][best], pred_c[c][best], True
        if not changed:
            break
    return np.array([cand[c][choice[c]] for c in range(C)], dtype=np.float64)


def _global_cut(P: np.ndarray, Y: np.ndarray, beta: float, objective: str) -> float:
    cuts, values = objective_curve(P, Y, beta=beta, objective=objective)
    return _midpoint(cuts, int(np.argmax(values)))


def _pcut(P: np.ndarray, cardinality: float) -> float:
    cuts = _candidates(P)
    asc = np.sort(P.ravel())
    mean_pred = (asc.size - np.searchsorted(asc, cuts[::-1], side="left"))[::-1] / P.shape[0]
    return _midpoint(cuts, int(np.argmin(np.abs(mean_pred - cardinality))))  # ties: the highest cut


def fit_thresholds(
    strategy: ThresholdStrategy,
    val_probabilities: np.ndarray,
    val_targets: np.ndarray,
    *,
    beta: float = DEFAULT_BETA,
    objective: str = DEFAULT_OBJECTIVE,
    min_positives: int = MIN_POSITIVES,
    train_cardinality: float | None = None,
) -> np.ndarray:
    """Per-label thresholds ``(C,)`` float64 for ``strategy``, fitted on the validation split only.

    Args:
        val_probabilities: ``(N, C)`` probabilities in [0, 1] of the validation split.
        val_targets: ``(N, C)`` in {0, 1} of the validation split.
        beta: beta of the F-beta being tuned.
        objective: what ``global`` (and the ``per-class`` fallback) maximises, see :data:`OBJECTIVES`.
        min_positives: under ``per-class``, labels with fewer validation positives use the global cut.
        train_cardinality: mean labels per training sample (needed by ``pcut``).
    Returns:
        ``(C,)`` thresholds; all NaN for ``top-k`` (no per-label threshold: use :func:`decision_thresholds`).

    ``per-class`` and ``joint`` apply the tie rule :func:`away_from_all_positive`: a label is not cut
    below all its validation scores (predicted for every row) when that gains less F-beta than one
    validation positive's worth (``1 / positives``) over its best cut that leaves a row out.
    """
    P = np.asarray(val_probabilities, dtype=np.float64)
    Y = np.asarray(val_targets)
    C = Y.shape[1]
    check_strategy(strategy, C)
    if strategy.name == "fixed":
        return np.full(C, strategy.value, dtype=np.float64)
    if strategy.name == "top-k":
        return np.full(C, np.nan)
    if strategy.name == "global":
        return np.full(C, _global_cut(P, Y, beta, objective))
    if strategy.name == "per-class":
        fallback = _global_cut(P, Y, beta, objective)
        out = np.full(C, fallback, dtype=np.float64)
        for c in range(C):
            if Y[:, c].sum() >= max(min_positives, 1):
                out[c] = _best_cut(P[:, c], Y[:, c], beta)
        return out
    if strategy.name == "joint":
        return _joint_cuts(P, Y, beta, objective)
    if strategy.name == "pcut":
        if train_cardinality is None:
            raise ValueError("pcut needs train_cardinality")
        return np.full(C, _pcut(P, float(train_cardinality)))
    raise InputError(f"--threshold: unknown strategy {strategy.name!r}")


def decision_thresholds(strategy: ThresholdStrategy, probabilities: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """What to hand to the rule ``probability >= threshold`` (:func:`evalkit.metrics.binarize`).

    The one place where ``top-k`` differs: its cut is per sample, ``(N, 1)``, each row's K-th highest
    probability. For every other strategy, the fitted per-label thresholds ``(C,)``.
    """
    if not strategy.per_sample:
        return np.asarray(thresholds, dtype=np.float64)
    P = np.asarray(probabilities, dtype=np.float64)
    k = int(strategy.value)
    check_strategy(strategy, P.shape[1])
    kth = np.partition(P, P.shape[1] - k, axis=1)[:, P.shape[1] - k]
    return kth[:, None]


def predict(strategy: ThresholdStrategy, probabilities: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Boolean decisions ``(N, C)``: the metric engine's rule ``probability >= threshold`` applied with
    :func:`decision_thresholds` (for ``top-k`` the cut is per sample, so the rule runs on the transpose)."""
    import torch

    from evalkit.metrics import binarize

    P = torch.as_tensor(np.asarray(probabilities, dtype=np.float64))
    cut = decision_thresholds(strategy, probabilities, thresholds)
    if strategy.per_sample:
        return binarize(P.T.contiguous(), torch.as_tensor(cut[:, 0])).T.numpy()
    return binarize(P, torch.as_tensor(cut)).numpy()


