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
``mean-fbeta`` (their average: both must be good), with ``--beta``. The defaults (:class:`evalkit.config.RunConfig`) are ``joint`` with ``mean-fbeta``:
one cut per label, tuned on (cross-fitted) validation scores so that both the micro and the macro
F-beta are good. ``global`` (one shared cut) is the steadier choice with few validation samples;
``per-class`` maximises macro F-beta when every label must count the same and the validation split
has enough positives per label.

The fitted result is one typed, immutable value, :class:`Thresholds` (strategy + per-label cuts,
or K for ``top-k``), used from fitting to the report, the artifacts and ``evaluate --threshold``.
"""

from __future__ import annotations

from evalkit.thresholds.strategy import (
    OBJECTIVES,
    STRATEGIES,
    ThresholdStrategy,
    check_strategy,
    parse_objective,
    parse_strategy,
)

#: names that load numpy, imported on first use (the strategy parser above stays light for the CLI)
_LAZY = {**dict.fromkeys(("MAX_CANDIDATES", "MIN_POSITIVES", "decision_thresholds", "fbeta_curve", "fit_thresholds",
                          "objective_curve", "pr_curve", "predict", "_objective"), "fit"),
         **dict.fromkeys(("DEFAULT_OBJECTIVE", "Thresholds", "evaluate", "read_thresholds"), "value")}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"evalkit.thresholds.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'evalkit.thresholds' has no attribute {name!r}")


__all__ = [
    "DEFAULT_OBJECTIVE", "MAX_CANDIDATES", "MIN_POSITIVES", "OBJECTIVES", "STRATEGIES", "ThresholdStrategy",
    "Thresholds", "check_strategy", "decision_thresholds", "evaluate", "fbeta_curve", "fit_thresholds",
    "_objective", "objective_curve", "parse_objective", "parse_strategy", "pr_curve", "predict", "read_thresholds",
]
