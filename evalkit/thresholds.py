"""Threshold strategies: decide the cut applied to probabilities. Fitted on the validation split only.

The decision rule is the metric engine's (:func:`evalkit.metrics.binarize`): a label is predicted
positive iff its probability >= its threshold. Every strategy is expressed as thresholds for that
rule, so there is one decision rule in the whole toolkit.

Strategies (``--threshold``):

* ``fixed:T`` - the same T in (0, 1) for every label (``fixed:0.5`` is the textbook cut).
* ``global`` - one cut for every label, the one maximising ``--objective`` on validation.
* ``per-class`` - for each label, the cut maximising that label's F-beta on validation (this is what
  maximises macro F-beta, so ``--objective`` only matters for the fallback). Labels with fewer than
  ``min_positives`` validation positives are too rare to tune: they fall back to the ``global`` cut.
* ``joint`` - one cut per label, tuned *jointly* to maximise ``--objective`` (coordinate ascent over
  the labels, starting from the ``global`` cut; a few sweeps). Unlike ``per-class`` it can trade a
  label's own F-beta for the micro average, so it suits ``mean-fbeta``.
* ``top-k:K`` - predict each sample's K highest-scoring labels (K in 1..C). This is a *per-sample*
  cut (the row's K-th highest probability, so ``probability >= threshold`` still decides; tied
  scores at the K-th place are all predicted). Nothing is fitted, and there is no per-label
  threshold: the report's per-label ``threshold`` values are ``null`` and ``threshold.k`` holds K.
* ``pcut`` - one cut such that the mean number of predicted labels per validation sample is closest
  to the label cardinality of the *training* split (MEKA's PCut, Read et al.; MEKA fits it on the
  training predictions, we fit it on validation so training overfit does not bias the cut).

Objectives (``--objective``): ``micro-fbeta`` (F-beta of all label decisions pooled: frequent labels
weigh more), ``macro-fbeta`` (mean of the per-label F-beta: every label weighs the same), or
``mean-fbeta`` (their average: both must be good), with ``--beta``. The default strategy is ``global`` with ``micro-fbeta``: with a few hundred validation
samples one shared cut is far less noisy than C separately tuned ones (on yeast, per-class cuts won
on validation and lost on test), and micro F-beta pools every decision, so it is the steadier
estimate. Choose ``per-class`` (it maximises macro F-beta) when every label must count the same
and the validation split has enough positives per label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evalkit.errors import InputError

STRATEGIES = {
    "fixed:T": "one fixed cut T in (0, 1) for every label, e.g. fixed:0.5",
    "global": "one cut for every label, maximising --objective on the validation split",
    "per-class": "each label's cut maximises its F-beta on validation; labels too rare fall back to the global cut",
    "top-k:K": "each sample's K highest-scoring labels (a per-sample cut; no per-label thresholds)",
    "joint": "one cut per label, tuned jointly (coordinate ascent) to maximise --objective on validation",
    "pcut": "one cut reproducing the training label cardinality on validation (MEKA PCut)",
}

OBJECTIVES = {
    "micro-fbeta": "micro-averaged F-beta (pools all label decisions; frequent labels weigh more)",
    "macro-fbeta": "macro-averaged F-beta (mean over labels; every label weighs the same)",
    "mean-fbeta": "mean of micro- and macro-averaged F-beta (both must be good)",
}
DEFAULT_OBJECTIVE = "micro-fbeta"

#: labels with fewer validation positives than this fall back to the global cut under ``per-class``
MIN_POSITIVES = 5
#: the global search evaluates at most this many candidate cuts (quantiles of the validation scores)
MAX_CANDIDATES = 4096


@dataclass(frozen=True)
class ThresholdStrategy:
    name: str  # "fixed" | "global" | "per-class" | "joint" | "top-k" | "pcut"
    value: float | None = None  # T of fixed:T, K of top-k:K

    @property
    def label(self) -> str:
        if self.name == "top-k":
            return f"top-k:{int(self.value)}"
        return f"{self.name}:{self.value:g}" if self.value is not None else self.name

    @property
    def per_sample(self) -> bool:
        """True when the cut depends on the sample (top-k), so there are no per-label thresholds."""
        return self.name == "top-k"

    @property
    def fitted(self) -> bool:
        """True when the strategy looks at validation data."""
        return self.name in ("global", "per-class", "pcut", "joint")


def parse_strategy(text: str) -> ThresholdStrategy:
    """Parse ``--threshold`` text. Raises InputError with the accepted forms."""
    t = text.strip()
    if t.startswith("fixed:") or _is_float(t):
        raw = t.split(":", 1)[1] if ":" in t else t
        if not _is_float(raw):
            raise InputError(f"--threshold: expected fixed:T with a number T, got {text!r}")
        v = float(raw)
        if not 0.0 < v < 1.0:
            raise InputError(f"--threshold: a fixed threshold must lie in (0, 1), got {v:g}")
        return ThresholdStrategy("fixed", v)
    if t in ("global", "per-class", "pcut", "joint"):
        return ThresholdStrategy(t)
    if t.startswith("top-k"):
        raw = t.split(":", 1)[1].strip() if ":" in t else ""
        if not raw.isdigit() or int(raw) < 1:
            raise InputError(f"--threshold: expected top-k:K with a whole number K >= 1, got {text!r}")
        return ThresholdStrategy("top-k", float(int(raw)))
    raise InputError(f"--threshold: unknown strategy {text!r}; expected one of: {', '.join(STRATEGIES)}")


def parse_objective(text: str) -> str:
    """Validate ``--objective``. Raises InputError naming the accepted values."""
    t = text.strip().lower().replace("_", "-")
    if t not in OBJECTIVES:
        raise InputError(f"--objective: unknown objective {text!r}; expected one of: {', '.join(OBJECTIVES)}")
    return t


def check_strategy(strategy: ThresholdStrategy, n_labels: int) -> None:
    """Reject a strategy that cannot apply to ``n_labels`` labels (before any training starts)."""
    if strategy.name == "top-k" and int(strategy.value) > n_labels:
        raise InputError(f"--threshold: top-k:{int(strategy.value)} asks for more labels than the data has "
                         f"({n_labels}); expected K in 1..{n_labels}")


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


# --------------------------------------------------------------------------------------------------
# curves (F-beta as a function of the cut, rule: probability >= cut)


def _fbeta(tp, fp, fn, beta: float):
    b2 = beta * beta
    tp, fp, fn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn))
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
    return _midpoint(cuts, int(np.argmax(f)))  # first maximum = highest cut among ties


def _candidates(probabilities: np.ndarray) -> np.ndarray:
    """Distinct validation scores in decreasing order (at most MAX_CANDIDATES, by quantile)."""
    cuts = np.unique(probabilities.ravel())[::-1]
    if cuts.size > MAX_CANDIDATES:
        idx = np.unique(np.linspace(0, cuts.size - 1, MAX_CANDIDATES).round().astype(int))
        cuts = cuts[idx]
    return cuts


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
        scores = np.unique(P[:, c])[::-1]
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
            best = int(np.argmax(values))
            if values[best] > values[choice[c]] + 1e-12:
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
    beta: float = 2.0,
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


def evaluate(
    strategy: ThresholdStrategy,
    targets: np.ndarray,
    probabilities: np.ndarray,
    thresholds: np.ndarray,
    *,
    beta: float,
    label_names=None,
    threshold_free: str = "exact",
) -> dict:
    """The metric engine's output (:func:`evalkit.metrics.compute_metrics`) under ``strategy``.

    Label-wise strategies hand their ``(C,)`` thresholds straight to the engine. ``top-k`` has no
    per-label threshold: its decisions (:func:`predict`) are scored by the engine as 0/1
    probabilities at a 0.5 cut, the threshold-free metrics come from the real probabilities, and the
    per-class ``threshold`` entries are ``None``.
    """
    from evalkit.metrics import compute_metrics
    from evalkit.report import metrics_block

    if not strategy.per_sample:
        return metrics_block(compute_metrics(targets, probabilities, scores_kind="probabilities", threshold=thresholds,
                                             beta=beta, label_names=label_names, threshold_free=threshold_free))
    decisions = predict(strategy, probabilities, thresholds).astype(np.float64)
    hard = metrics_block(compute_metrics(targets, decisions, scores_kind="probabilities", threshold=0.5, beta=beta,
                                         label_names=label_names, threshold_free="none"))
    if threshold_free != "none":
        soft = metrics_block(compute_metrics(targets, probabilities, scores_kind="probabilities", threshold=0.5,
                                             beta=beta, label_names=label_names, threshold_free=threshold_free))
        for k, v in hard["summary"].items():
            if v is None:
                hard["summary"][k] = soft["summary"][k]
        for row, srow in zip(hard["per_class"], soft["per_class"]):
            for k in ("average_precision", "auroc"):
                row[k] = srow[k]
    for row in hard["per_class"]:
        row["threshold"] = None
    return hard


def parse_given(text: str, label_names: list[str]) -> tuple[str, np.ndarray]:
    """Thresholds given to ``evaluate --threshold``: a number, a comma list (one per label), or a file.

    A file may be JSON (a list, a ``{label: threshold}`` object, or an evalkit report whose
    ``threshold.values`` are reused) or CSV with columns ``label,threshold``.

    Returns:
        ``(strategy label, thresholds (C,) float64)``.
    Raises:
        InputError: wrong count, unknown labels, values outside (0, 1), unreadable file.
    """
    import json
    from pathlib import Path

    C = len(label_names)
    t = text.strip()
    if t.startswith("fixed:") or _is_float(t):
        s = parse_strategy(t)
        return s.label, np.full(C, s.value)
    if "," in t and all(_is_float(x) for x in t.split(",")):
        values = np.array([float(x) for x in t.split(",")])
        source = "per-class (given)"
    elif Path(t).exists():
        path = Path(t)
        try:
            if path.suffix.lower() == ".json":
                data = json.loads(path.read_text())
                if isinstance(data, dict) and "threshold" in data:
                    data = data["threshold"]["values"]
                if isinstance(data, dict):
                    unknown = sorted(set(data) - set(label_names))
                    if unknown:
                        raise InputError(f"{t}: unknown labels {unknown[:5]}; expected labels of the data")
                    missing = [n for n in label_names if n not in data]
                    if missing:
                        raise InputError(f"{t}: no threshold for labels {missing[:5]}")
                    data = [data[n] for n in label_names]
                values = np.asarray(data, dtype=np.float64)
            else:
                import pandas as pd

                df = pd.read_csv(path)
                if not {"label", "threshold"} <= set(df.columns):
                    raise InputError(f"{t}: expected CSV columns label,threshold")
                m = dict(zip(df["label"].astype(str), df["threshold"].astype(float)))
                missing = [n for n in label_names if n not in m]
                if missing:
                    raise InputError(f"{t}: no threshold for labels {missing[:5]}")
                values = np.array([m[n] for n in label_names])
        except (ValueError, TypeError, json.JSONDecodeError) as e:
            raise InputError(f"{t}: cannot read thresholds ({e})") from None
        source = f"file:{path.name}"
    else:
        raise InputError(f"--threshold: expected a number in (0, 1), a comma list of {C} numbers, or a file; got {text!r}")
    if values.shape != (C,):
        raise InputError(f"--threshold: expected {C} thresholds (one per label), got {values.size}")
    if not ((values > 0) & (values < 1)).all():
        raise InputError("--threshold: every threshold must lie in (0, 1)")
    return source, values
