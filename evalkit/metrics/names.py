"""Metric key conventions of evalkit (no heavy imports: safe to import from the report / CLI).

The report (:mod:`evalkit.report`) shapes :class:`~evalkit.metrics.values.MetricValues` into
``summary`` / ``per_class`` JSON with exactly these keys; nothing here depends on torch or numpy.
"""

from __future__ import annotations

AVERAGES = ("micro", "macro", "weighted", "samples")
"""The averages of the thresholded metrics, in report order (scikit-learn's ``average=`` values)."""

THRESHOLD_FREE = (
    "mean_average_precision",
    "macro_auroc",
    "micro_average_precision",
    "micro_auroc",
    "label_ranking_average_precision",
    "coverage_error",
    "label_ranking_loss",
)
"""The threshold-free summary scalars, in report order."""

SAMPLE_SUMS = ("precision", "recall", "f1", "fbeta", "lrap", "rloss")
"""Per-sample quantities whose sums the engine accumulates (columns of its ``sample_fx`` state)."""


def fbeta_key(beta: float) -> str:
    """THE key of the F-beta score: ``f{beta:g}``, e.g. ``"f2"``, ``"f0.5"``, ``"f1"`` for beta = 1.

    Args:
        beta: a positive finite float (not validated here).
    Returns:
        the key used in ``summary[<average>]``, ``per_class[i]`` and tracked metric names.
    """
    return f"f{beta:g}"
