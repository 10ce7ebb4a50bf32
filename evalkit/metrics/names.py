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
    "mean_average_precision_all_labels",
    "labels_without_positives",
)
"""The threshold-free summary scalars, in report order."""

SAMPLE_SUMS = ("precision", "recall", "f1", "fbeta", "lrap", "rloss")
"""Per-sample quantities whose sums the engine accumulates (columns of its ``sample_fx`` state)."""


def fbeta_key(beta: float) -> str:
    """THE key of the F-beta score: ``f{beta:g}``, e.g. ``"f2"``, ``"f0.5"``, ``"f1"`` for beta = 1,
    ``"f1e-05"``; an exponent's ``+`` is dropped (``"f1e06"`` for 1e6: MLflow metric names cannot hold
    a ``+``), ``"finf"`` for inf.

    Args:
        beta: a float >= 0 or inf (not validated here).
    Returns:
        the key used in ``summary[<average>]``, ``per_class[i]`` and tracked metric names.
    """
    return f"f{beta:g}".replace("e+", "e")


#: characters a label keeps in its metric key; everything else is escaped (see :func:`label_key`)
_KEEP = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-. ")
#: a label key longer than this is cut and made unique with a hash of the label
LABEL_KEY_MAX = 160
#: per-class metrics are tracked (as MLflow metrics) for at most this many labels, those with the
#: largest support; every label's numbers are always in the ``per_class.csv`` table artifact
TRACKED_CLASSES_MAX = 100


def label_key(label: str) -> str:
    """The label's part of a per-class metric key (``test/class/<key>/f2``): injective and valid
    for MLflow (which allows alphanumerics, ``_ - . : /`` and spaces, at most 250 characters, and
    no ``.`` / ``..`` path segments).

    ASCII letters, digits, ``_``, ``-``, ``.`` and spaces are kept (``Class1`` stays ``Class1``);
    every other character, ``/`` and ``:`` included, becomes ``:XX`` per UTF-8 byte (``a/b`` ->
    ``a:2Fb``, ``猫`` -> ``:E7:8C:AB``); a leading ``.`` is escaped too, and the empty name is ``:``.
    Since ``:`` only ever starts an escape, two labels never share a key. A key longer than
    :data:`LABEL_KEY_MAX` is cut and ends in ``:h`` plus 16 hex digits of the label's SHA-256.
    """
    import hashlib

    text = str(label)
    parts = []
    for i, ch in enumerate(text):
        if ch in _KEEP and not (i == 0 and ch == "."):
            parts.append(ch)
        else:
            parts.append("".join(f":{b:02X}" for b in ch.encode("utf-8")))
    key = "".join(parts) or ":"
    if len(key) > LABEL_KEY_MAX:
        key = key[: LABEL_KEY_MAX - 18] + ":h" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return key


ROW_VALUES = ("precision", "recall", "f1", "fbeta", "jaccard", "exact", "hamming", "lrap", "rloss", "coverage",
              "ap", "auroc", "ranked", "one_error")
"""Per-sample values of :func:`evalkit.metrics.extra.row_values`, before the top-k ones."""


def row_keys(ks) -> tuple[str, ...]:
    """Names of the per-sample values (rows of :func:`evalkit.metrics.extra.row_values`) for the
    cut-offs ``ks``: :data:`ROW_VALUES`, then ``precision_at_<k>`` and ``ndcg_at_<k>`` per k."""
    return (*ROW_VALUES, *(f"precision_at_{k}" for k in ks), *(f"ndcg_at_{k}" for k in ks))

#: the per-average metrics a run logs as MLflow metrics (``test/macro_f2``; ``"fbeta"``: the
#: reported F-beta's key); the rest of the report (accuracy per average, per-class rows) is in
#: ``report.json`` / ``per_class.csv`` / the ``per_class.json`` table
HEADLINE_AVERAGED = ("precision", "recall", "f1", "fbeta")
#: the summary scalars a run logs (tracked names, :data:`evalkit.report.SCALARS` values)
HEADLINE_SCALARS = ("subset_accuracy", "hamming_loss", "macro_map", "macro_auroc", "micro_map", "micro_auroc",
                    "lrap", "label_ranking_loss", "coverage_error", "labels_without_positives")
#: the scalars of the reference metrics at the 0.5 cut (the threshold-free ones equal the test split's)
REFERENCE_SCALARS = ("subset_accuracy", "hamming_loss")
#: metrics whose confidence interval (``summary[avg]["<metric>_ci"]`` / ``summary["<scalar>_ci"]``
#: ``= [low, high]``) is logged as ``<key>_ci_low`` / ``<key>_ci_high``, when the report has it (a default
#: yeast run logs 58 metric keys with these 8; every interval is in report.json)
HEADLINE_CI = ("micro_fbeta", "macro_fbeta", "macro_map", "macro_auroc")
#: the budget: a run logs at most this many metric keys without ``--log-class-metrics``
MAX_RUN_METRICS = 60
