"""The threshold strategy parsed from ``--threshold`` text (:class:`ThresholdStrategy`) and the
objective names: plain Python, no numpy, so that the command line checks these values before any
heavy import (``RunConfig``'s validator parses ``threshold`` with :func:`parse_strategy`)."""

from __future__ import annotations

from dataclasses import dataclass

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
_FITTED = ("global", "per-class", "pcut", "joint")


@dataclass(frozen=True)
class ThresholdStrategy:
    """A parsed ``--threshold``: ``name`` in fixed, global, per-class, joint, top-k, pcut, given;
    ``value`` is T of ``fixed:T`` or K of ``top-k:K``."""

    name: str
    value: float | None = None

    @property
    def label(self) -> str:
        """The strategy as text (``fixed:0.5``, ``top-k:3``, ``joint``)."""
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
        return self.name in _FITTED


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def parse_strategy(text: str) -> ThresholdStrategy:
    """Parse ``--threshold`` text: ``fixed:T`` (or a bare number T in (0, 1)), ``global``,
    ``per-class``, ``joint``, ``pcut`` or ``top-k:K``.

    Raises:
        InputError: an unknown strategy, T outside (0, 1), K not a whole number >= 1.
    """
    t = str(text).strip()
    if t.startswith("fixed:") or _is_float(t):
        raw = t.split(":", 1)[1] if t.startswith("fixed:") else t
        if not _is_float(raw):
            raise InputError(f"--threshold: expected fixed:T with a number T, got {text!r}")
        v = float(raw)
        if not 0.0 < v < 1.0:
            raise InputError(f"--threshold: a fixed threshold must lie in (0, 1), got {v:g}")
        return ThresholdStrategy("fixed", v)
    if t in _FITTED:
        return ThresholdStrategy(t)
    if t.startswith("top-k"):
        raw = t.split(":", 1)[1].strip() if ":" in t else ""
        if not raw.isdigit() or int(raw) < 1:
            raise InputError(f"--threshold: expected top-k:K with a whole number K >= 1, got {text!r}")
        return ThresholdStrategy("top-k", float(int(raw)))
    raise InputError(f"--threshold: unknown strategy {text!r}; expected one of: {', '.join(STRATEGIES)}")


def parse_objective(text: str) -> str:
    """Validate ``--objective`` (one of :data:`OBJECTIVES`). Raises InputError naming the accepted values."""
    t = text.strip().lower().replace("_", "-")
    if t not in OBJECTIVES:
        raise InputError(f"--objective: unknown objective {text!r}; expected one of: {', '.join(OBJECTIVES)}")
    return t


def check_strategy(strategy: ThresholdStrategy, n_labels: int) -> None:
    """Reject a strategy that cannot apply to ``n_labels`` labels (before any training starts).

    Raises:
        InputError: ``top-k:K`` with K > ``n_labels``.
    """
    if strategy.name == "top-k" and int(strategy.value) > n_labels:
        raise InputError(f"--threshold: top-k:{int(strategy.value)} asks for more labels than the data has "
                         f"({n_labels}); expected K in 1..{n_labels}")
