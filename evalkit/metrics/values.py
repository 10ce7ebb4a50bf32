"""The result of the metric engine: plain numpy arrays and floats (definitions: :mod:`evalkit.metrics.functional`).

:class:`MetricValues` is immutable (a ``NamedTuple`` whose arrays are read-only), so the engine can
cache it and hand the same object to every caller. It is a ``NamedTuple`` rather than a frozen
dataclass because torchmetrics' ``compute`` wrapper (``apply_to_collection``) rebuilds a dataclass
result by setting its fields, which a frozen dataclass refuses, while a NamedTuple is rebuilt
through its constructor. JSON shaping lives in :func:`evalkit.report.metrics_block`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Averages(NamedTuple):
    """One average (micro, macro, weighted or samples) of the thresholded metrics, floats in [0, 1].

    ``accuracy`` is label-wise accuracy (not in scikit-learn's averages); ``precision``, ``recall``,
    ``f1`` and ``fbeta`` are scikit-learn's ``precision_recall_fscore_support`` /
    ``fbeta_score`` with the same ``average=`` and ``zero_division``.
    """

    accuracy: float
    precision: float
    recall: float
    f1: float
    fbeta: float


class MetricValues(NamedTuple):
    """Every metric of one evaluation (C labels, N samples); built by ``MultilabelEngine.compute()``.

    Per-label arrays are read-only numpy arrays of shape ``(C,)`` in column order:

    * ``tp``, ``fp``, ``fn``, ``tn``, ``support`` (= tp + fn): int64 counts at ``p >= threshold``;
    * ``accuracy`` ((tp + tn) / N), ``precision``, ``recall``, ``f1``, ``fbeta``: float64 in [0, 1]
      (0/0 takes ``zero_division``; scikit-learn ``precision_recall_fscore_support(average=None)``);
    * ``average_precision``: float64 in [0, 1], 0 for a label without positives
      (``average_precision_score``); ``auroc``: float64 in [0, 1], NaN for a label with one class
      only (``roc_auc_score``). Both are ``None`` when ``threshold_free="none"``.
    * ``thresholds``: float64, the decision thresholds.

    Scalars: ``micro`` / ``macro`` / ``weighted`` / ``samples`` (:class:`Averages`),
    ``subset_accuracy`` (``accuracy_score``), ``hamming_loss`` (``hamming_loss``), and the
    threshold-free ``mean_average_precision`` (mean AP over the labels with at least one positive in
    the evaluated data, NaN if none: a label without positives has no defined AP),
    ``mean_average_precision_all_labels`` (scikit-learn's ``average_precision_score(average="macro")``:
    every label, AP 0 without positives), ``labels_without_positives`` (how many labels the first
    leaves out), ``macro_auroc`` (mean over labels with a defined AUROC, NaN if none), ``micro_average_precision``, ``micro_auroc`` (NaN if undefined),
    ``label_ranking_average_precision``, ``coverage_error`` (a label count in [0, C]),
    ``label_ranking_loss`` - floats, all ``None`` when ``threshold_free="none"``.

    Conventions: ``None`` = not computed, NaN = mathematically undefined (the report writes both
    as ``null``). ``beta`` is the F-beta's beta (key :func:`evalkit.metrics.names.fbeta_key`).
    """

    label_names: tuple[str, ...]
    beta: float
    n_samples: int
    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    tn: np.ndarray
    support: np.ndarray
    accuracy: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    fbeta: np.ndarray
    average_precision: np.ndarray | None
    auroc: np.ndarray | None
    micro: Averages
    macro: Averages
    weighted: Averages
    samples: Averages
    subset_accuracy: float
    hamming_loss: float
    mean_average_precision: float | None
    macro_auroc: float | None
    micro_average_precision: float | None
    micro_auroc: float | None
    label_ranking_average_precision: float | None
    coverage_error: float | None
    label_ranking_loss: float | None
    mean_average_precision_all_labels: float | None = None
    labels_without_positives: int | None = None
    extra: dict | None = None

    # ``extra`` (:func:`evalkit.metrics.extra.extras_block`): ``per_label`` {jaccard, specificity,
    # npv, mcc} float64 ``(C,)``; ``averages`` {metric: {micro, macro, weighted[, samples]}};
    # ``scalars`` {average_precision_weighted / _samples, auroc_weighted / _samples, one_error,
    # precision_at_<k>, ndcg_at_<k>}; ``ks``. With sample weights the counts are float64 weight sums.

    @property
    def num_labels(self) -> int:
        """C, the number of labels."""
        return len(self.label_names)


def frozen(a: np.ndarray) -> np.ndarray:
    """``a`` as a read-only array (a view when ``a`` is already an ndarray)."""
    a = np.asarray(a).view()
    a.flags.writeable = False
    return a
