"""Threshold strategies: decide the per-label cut applied to probabilities. Fitted on validation only.

The decision rule is the metric engine's (:func:`evalkit.metrics.binarize`): a label is predicted
positive iff its probability >= its threshold.

Strategies (``--threshold``):

* ``fixed:T`` - the same T in (0, 1) for every label (``fixed:0.5`` is the common default).
* ``per-class`` - for each label, the cut maximising that label's F-beta on the validation split.
  Labels with fewer than ``min_positives`` validation positives fall back to 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evalkit.errors import InputError

STRATEGIES = {
    "fixed:T": "one fixed cut T in (0, 1) for every label, e.g. fixed:0.5",
    "per-class": "each label's cut maximises its F-beta on the validation split",
}

FALLBACK_THRESHOLD = 0.5


@dataclass(frozen=True)
class ThresholdStrategy:
    name: str  # "fixed" | "per-class"
    value: float | None = None

    @property
    def label(self) -> str:
        return f"{self.name}:{self.value:g}" if self.value is not None else self.name


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
    if t == "per-class":
        return ThresholdStrategy("per-class")
    raise InputError(f"--threshold: unknown strategy {text!r}; expected one of: {', '.join(STRATEGIES)}")


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def fbeta_curve(probabilities: np.ndarray, targets: np.ndarray, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """F-beta of one label at every distinct cut, for the rule ``probability >= cut``.

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
    b2 = beta * beta
    denom = (1 + b2) * tp + b2 * fn + fp
    f = np.divide((1 + b2) * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return p[last], f


def _best_cut(probabilities: np.ndarray, targets: np.ndarray, beta: float) -> float:
    cuts, f = fbeta_curve(probabilities, targets, beta)
    i = int(np.argmax(f))  # first maximum = highest cut among ties
    below = cuts[i + 1] if i + 1 < cuts.size else 0.0
    # midpoint between the chosen score and the next lower one: same validation decisions,
    # more margin for unseen scores
    return float((cuts[i] + below) / 2) if cuts[i] > below else float(cuts[i])


def fit_thresholds(
    strategy: ThresholdStrategy,
    val_probabilities: np.ndarray,
    val_targets: np.ndarray,
    *,
    beta: float = 2.0,
    min_positives: int = 1,
) -> np.ndarray:
    """Per-label thresholds ``(C,)`` float64 in (0, 1] for ``strategy``, fitted on validation only.

    Args:
        val_probabilities: ``(N, C)`` probabilities in [0, 1] of the validation split.
        val_targets: ``(N, C)`` in {0, 1} of the validation split.
        beta: F-beta tuned by ``per-class``.
        min_positives: labels with fewer validation positives use :data:`FALLBACK_THRESHOLD`.
    """
    C = val_targets.shape[1]
    if strategy.name == "fixed":
        return np.full(C, strategy.value, dtype=np.float64)
    if strategy.name == "per-class":
        out = np.full(C, FALLBACK_THRESHOLD, dtype=np.float64)
        for c in range(C):
            if val_targets[:, c].sum() >= min_positives:
                out[c] = _best_cut(val_probabilities[:, c], val_targets[:, c], beta)
        return out
    raise InputError(f"--threshold: unknown strategy {strategy.name!r}")


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
