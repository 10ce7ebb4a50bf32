"""The evaluation Report: one structure for JSON, terminal, CSV and tracked metric names.

JSON schema (``--output``)::

    {"evalkit_version": str,
     "dataset": {"name": str, "n_samples": int, "n_labels": int, "digest": str},
     "scores": "logits" | "probabilities",
     "threshold": {"strategy": str, "values": [float, ...]},        # one per label
     "beta": float,
     "summary": {"micro": {"accuracy", "precision", "recall", "f1", "f2", "jaccard", "specificity",
                           "npv", "mcc", "<metric>_ci": [low, high] (with intervals)},
                 "macro": {...}, "weighted": {...}, "samples": {... "jaccard"},
                 "subset_accuracy", "hamming_loss", "mean_average_precision", "macro_auroc",
                 "mean_average_precision_all_labels", "labels_without_positives",
                 "average_precision_weighted", "average_precision_samples", "auroc_weighted",
                 "auroc_samples", "one_error", "precision_at_<k>", "ndcg_at_<k>",
                 "<scalar>_ci": [low, high] (with intervals), "ci_unstable_labels": [label, ...], ...,
                 "degenerate_labels": {"all", "none", "nearly_all", "nearly_none": [label, ...]}},
     "confidence_interval": {"level", "method", "resamples", "seed", "scheme", ["studentized"]}   (with intervals)
     "per_class": [{"label", "support", "tp", "fp", "fn", "tn", "accuracy", "precision", "recall",
                    "f1", "f2", "average_precision", "auroc", "threshold", "jaccard", "specificity",
                    "npv", "mcc"}, ...]}

Metric values are floats in [0, 1] (coverage error: a label count); undefined values are ``null``.
``mean_average_precision`` (mAP, tracked as ``macro_map``) averages AP over the labels with at least
one positive in the evaluated split (AP is undefined without one), as ``macro_auroc`` averages the
defined AUROCs; ``labels_without_positives`` says how many labels it leaves out, and
``mean_average_precision_all_labels`` (``macro_map_all_labels``) is scikit-learn's
``average_precision_score(average="macro")``, which scores those labels 0.

Tracked metric names (one convention, used by ``run``, ``evaluate``, gates and ``compare``):
``<split>/<average>_<metric>`` (``test/macro_f2``), ``<split>/subset_accuracy``,
``<split>/hamming_loss``, ``<split>/macro_map``, ``<split>/macro_auroc``,
``<split>/class/<label key>/<metric>`` (:func:`evalkit.metrics.names.label_key`: injective and valid for
MLflow). Gates read every name (:func:`metric_keys`); a run logs :func:`tracked_metrics` (at most
:data:`~evalkit.metrics.names.MAX_RUN_METRICS` keys with the rest of the run: the headline ones, the
keys its gates name, per-class keys only with ``--log-class-metrics``), every label in the
``per_class.json`` table and ``per_class.csv``.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalkit.metrics.names import (AVERAGES, HEADLINE_AVERAGED, HEADLINE_CI, HEADLINE_SCALARS, THRESHOLD_FREE,
                                   TRACKED_CLASSES_MAX, fbeta_key, label_key)

if TYPE_CHECKING:
    from evalkit.metrics.values import MetricValues

# summary scalar -> tracked name suffix
SCALARS = {
    "subset_accuracy": "subset_accuracy",
    "hamming_loss": "hamming_loss",
    "mean_average_precision": "macro_map",
    "mean_average_precision_all_labels": "macro_map_all_labels",
    "labels_without_positives": "labels_without_positives",
    "macro_auroc": "macro_auroc",
    "micro_average_precision": "micro_map",
    "micro_auroc": "micro_auroc",
    "label_ranking_average_precision": "lrap",
    "coverage_error": "coverage_error",
    "label_ranking_loss": "label_ranking_loss",
    "average_precision_weighted": "weighted_map",
    "average_precision_samples": "samples_map",
    "auroc_weighted": "weighted_auroc",
    "auroc_samples": "samples_auroc",
    "one_error": "one_error",
}
#: the per-sample top-k scalars, one per ``--at-k`` cut-off: ``precision_at_3`` -> ``test/precision_at_3``
TOP_K_SCALAR = re.compile(r"^(precision|ndcg)_at_\d+$")


class Report(dict):
    """An evaluation report: a read-only ``dict`` with the JSON schema above, plus helpers.

    A report is built once (:func:`build_report`) and never changed: adding blocks after the fact
    (the gates of a job, the MLflow run id) makes a new report with :meth:`extend`.

    Raises:
        TypeError: on any attempt to modify it in place.
    """

    def _readonly(self, *args, **kwargs):
        raise TypeError("a Report is immutable; use report.extend(key=value) for a new one")

    __setitem__ = __delitem__ = _readonly  # type: ignore[assignment]
    update = pop = popitem = clear = setdefault = _readonly  # type: ignore[assignment]

    def __reduce__(self):  # pickling (e.g. across Ray workers) rebuilds it through the constructor
        return (Report, (dict(self),))

    def extend(self, **blocks: Any) -> "Report":
        """A new report with ``blocks`` added (or replaced); this one is unchanged."""
        return Report({**self, **blocks})

    def to_json(self, indent: int = 2) -> str:
        """The report as JSON text (numpy values converted)."""
        return json.dumps(self, indent=indent, default=_json_default)

    def write_json(self, path: str | os.PathLike) -> Path:
        """Write the report JSON atomically (see :func:`write_json_atomic`)."""
        return write_json_atomic(self, path)

    def metrics(self, split: str = "test", max_classes: int | None = None) -> dict[str, float]:
        """Tracked metric names -> values (:func:`metric_keys`)."""
        return metric_keys(self, split, max_classes=max_classes)

    def per_class_frame(self):
        """The per-class rows as a ``pandas.DataFrame``, one row per label, with its metric ``key``."""
        return per_class_table(self)

    @property
    def fbeta_key(self) -> str:
        """The key of the reported F-beta (``"f2"``)."""
        return fbeta_key(self.get("beta", 2.0))


def metrics_block(values: MetricValues) -> dict:
    """The report's ``summary`` and ``per_class`` from the metric engine's values (plain Python).

    Args:
        values: :class:`evalkit.metrics.MetricValues` (from ``compute_metrics`` /
            ``MultilabelEngine.compute()``).
    Returns:
        a fresh ``{"summary": {...}, "per_class": [...]}`` (float / int / None; NaN -> None)::

            summary: micro / macro / weighted / samples -> {accuracy, precision, recall, f1, f<beta>,
                     jaccard, and (not samples) specificity, npv, mcc},
                     average_precision_weighted / _samples, auroc_weighted / _samples, one_error,
                     precision_at_<k>, ndcg_at_<k> (k in the engine's ks),
                     subset_accuracy, hamming_loss, mean_average_precision, macro_auroc,
                     micro_average_precision, micro_auroc, label_ranking_average_precision,
                     coverage_error, label_ranking_loss, mean_average_precision_all_labels,
                     labels_without_positives
            per_class: [{label, support, tp, fp, fn, tn, accuracy, precision, recall, f1, f<beta>,
                         average_precision, auroc, threshold, jaccard, specificity, npv, mcc}, ...]
                       (C entries, column order; counts are floats when sample weights were given)

        The F-beta key is :func:`evalkit.metrics.names.fbeta_key` (``f2``; for beta = 1 it is
        ``f1`` itself). Threshold-free entries are ``None`` when they were not computed.
    """
    fk = fbeta_key(values.beta)
    extra = values.extra or {}
    summary: dict[str, Any] = {}
    for avg in AVERAGES:
        a = getattr(values, avg)
        summary[avg] = {"accuracy": a.accuracy, "precision": a.precision, "recall": a.recall, "f1": a.f1, fk: a.fbeta}
        summary[avg] |= {k: _defined(v[avg]) for k, v in extra.get("averages", {}).items() if avg in v}
    summary["subset_accuracy"] = values.subset_accuracy
    summary["hamming_loss"] = values.hamming_loss
    summary |= {k: _defined(getattr(values, k)) for k in THRESHOLD_FREE}
    summary |= {k: _defined(v) for k, v in extra.get("scalars", {}).items()}
    ap, auroc = values.average_precision, values.auroc
    per_label = extra.get("per_label", {})
    per_class = []
    for j, label in enumerate(values.label_names):
        row = {"label": label}
        row |= {k: _count(getattr(values, k)[j]) for k in ("support", "tp", "fp", "fn", "tn")}
        row |= {k: _defined(float(getattr(values, k)[j])) for k in ("accuracy", "precision", "recall", "f1")}
        row[fk] = _defined(float(values.fbeta[j]))
        row["average_precision"] = None if ap is None else float(ap[j])
        row["auroc"] = None if auroc is None else _defined(float(auroc[j]))
        row["threshold"] = float(values.thresholds[j])
        row |= {k: _defined(float(v[j])) for k, v in per_label.items()}
        per_class.append(row)
    from evalkit.metrics.degenerate import degenerate_labels

    summary["degenerate_labels"] = degenerate_labels(per_class, values.n_samples)
    return {"summary": summary, "per_class": per_class}


def _count(x) -> int | float:
    """A count as an int; a sum of sample weights that is not a whole number as a float."""
    x = float(x)
    return int(x) if x.is_integer() else x


def _defined(v):
    """``None`` for a missing or NaN value, else the value."""
    return None if v is None or v != v else v


def build_report(
    metrics: dict,
    *,
    dataset: dict,
    scores: str,
    thresholds,
    beta: float,
    **extra: Any,
) -> Report:
    """Assemble the :class:`Report` from the metric engine's output and the run context.

    Args:
        metrics: ``{"summary": ..., "per_class": [...]}`` (:func:`metrics_block` of the engine's values).
        dataset: ``name``, ``n_samples``, ``n_labels``, ``digest``.
        scores: ``"logits"`` or ``"probabilities"`` (what the evaluated scores were).
        thresholds: the :class:`evalkit.thresholds.Thresholds` that made the decisions.
        beta: the reported F-beta's beta.
        extra: further top-level blocks (``training``, ``model``, ``notes``, ...).
    """
    from evalkit import __version__

    return Report(
        evalkit_version=__version__,
        dataset=dataset,
        scores=scores,
        threshold=thresholds.to_dict(),
        beta=float(beta),
        summary=metrics["summary"],
        per_class=metrics["per_class"],
        **extra,
    )


def metric_keys(report: dict, split: str = "test", per_class: bool = True,
                max_classes: int | None = None) -> dict[str, float]:
    """Flatten a report into tracked metric names -> values (undefined values left out).

    Per-class keys are ``<split>/class/<label key>/<metric>`` with the injective, MLflow-valid
    :func:`evalkit.metrics.names.label_key`. ``max_classes`` keeps the per-class metrics of at most
    that many labels, those with the largest support (ties: label order): what is logged to MLflow
    (:data:`~evalkit.metrics.names.TRACKED_CLASSES_MAX`); gates read every label.
    """
    out: dict[str, float] = {}
    summary = report["summary"]
    for avg in AVERAGES:
        for name, value in summary.get(avg, {}).items():
            if not isinstance(value, (list, tuple)):  # confidence intervals are not tracked metrics
                _put(out, f"{split}/{avg}_{name}", value)
    for name, suffix in SCALARS.items():
        _put(out, f"{split}/{suffix}", summary.get(name))
    for name in filter(TOP_K_SCALAR.match, summary):
        _put(out, f"{split}/{name}", summary[name])
    if per_class:
        for row in tracked_classes(report["per_class"], max_classes):
            label = label_key(row["label"])
            for name, value in row.items():
                if name != "label":
                    _put(out, f"{split}/class/{label}/{name}", value)
    return out


def tracked_classes(rows: list[dict], max_classes: int | None) -> list[dict]:
    """The per-class rows whose metrics are tracked: all, or the ``max_classes`` with the largest
    support (in label order)."""
    if max_classes is None or len(rows) <= max_classes:
        return rows
    keep = sorted(range(len(rows)), key=lambda i: (-(rows[i].get("support") or 0), i))[:max_classes]
    return [rows[i] for i in sorted(keep)]


#: the first columns of ``per_class.csv`` / the ``per_class.json`` table (``f<beta>`` for "fbeta"),
#: what a reader needs first; ``key`` (the label's metric key) and every other column follow
PER_CLASS_FIRST = ("label", "support", "precision", "recall", "fbeta", "average_precision", "auroc", "threshold")


def per_class_table(report: dict):
    """The per-class rows as a ``pandas.DataFrame``, one row per label (the ``per_class.csv``
    artifact and the run's ``per_class.json`` table: every label, whatever was tracked as metrics).

    Columns: :data:`PER_CLASS_FIRST` (``f2`` for "fbeta"; the cut is ``threshold``), then ``key``
    (:func:`~evalkit.metrics.names.label_key`), then the remaining per-class fields in report order.
    """
    import pandas as pd

    frame = pd.DataFrame(report["per_class"])
    frame.insert(1, "key", [label_key(r["label"]) for r in report["per_class"]])
    fk = fbeta_key(report.get("beta", 2.0))
    first = [fk if c == "fbeta" else c for c in PER_CLASS_FIRST]
    first = [c for c in dict.fromkeys(first) if c in frame.columns]
    return frame[first + [c for c in frame.columns if c not in first]]


def headline_metrics(report: dict, split: str = "test", scalars=HEADLINE_SCALARS) -> dict[str, float]:
    """The headline tracked metrics of ``report`` (what a run page shows; undefined values left out).

    Keys: ``<split>/<average>_<metric>`` for the four averages and
    :data:`~evalkit.metrics.names.HEADLINE_AVERAGED` (``test/macro_f2``), ``<split>/<scalar>`` for
    ``scalars`` (tracked names: ``test/macro_map``) and, when the report has intervals
    (``summary[avg]["<metric>_ci"]`` / ``summary["<scalar>_ci"]`` = ``[low, high]``), the bounds of
    :data:`~evalkit.metrics.names.HEADLINE_CI` as ``<key>_ci_low`` / ``<key>_ci_high``
    (``test/macro_f2_ci_low``). At most 16 + ``len(scalars)`` + 8 keys, whatever the label count.
    """
    fk = fbeta_key(report.get("beta", 2.0))
    summary, out = report["summary"], {}
    scalar_of = {v: k for k, v in SCALARS.items()}
    for avg in AVERAGES:
        for name in (fk if m == "fbeta" else m for m in HEADLINE_AVERAGED):
            _put(out, f"{split}/{avg}_{name}", (summary.get(avg) or {}).get(name))
    for suffix in scalars:
        _put(out, f"{split}/{suffix}", summary.get(scalar_of[suffix]))
    for name in HEADLINE_CI:
        avg, _, m = name.partition("_")
        ci = (summary.get(avg) or {}).get(f"{fk}_ci") if m == "fbeta" else summary.get(f"{scalar_of[name]}_ci")
        if isinstance(ci, (list, tuple)) and len(ci) == 2:
            key = f"{split}/{name.replace('fbeta', fk)}"
            _put(out, f"{key}_ci_low", ci[0])
            _put(out, f"{key}_ci_high", ci[1])
    return out


def tracked_metrics(report: dict, split: str = "test", *, keys=(), class_metrics: bool = False) -> dict[str, float]:
    """What a run logs as MLflow metrics: :func:`headline_metrics`, plus the ``keys`` named (e.g. by
    gates: ``test/class/Class1/f2``, ``test/micro_accuracy``; keys the report lacks are left out)
    and, with ``class_metrics`` (``--log-class-metrics``), the per-class keys of at most
    :data:`~evalkit.metrics.names.TRACKED_CLASSES_MAX` labels (largest support)."""
    out = headline_metrics(report, split)
    if class_metrics:
        head = f"{split}/class/"
        out |= {k: v for k, v in metric_keys(report, split, max_classes=TRACKED_CLASSES_MAX).items()
                if k.startswith(head)}
    if keys:
        every = metric_keys(report, split)
        out |= {k: every[k] for k in keys if k in every}
    return out


def _put(out: dict, key: str, value) -> None:
    if value is None or isinstance(value, (list, tuple, dict, str)):  # an interval, a label list: not a metric
        return
    value = float(value)
    if math.isfinite(value):
        out[key] = value


def _json_default(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _open_temp_beside(path: Path) -> tuple[int, Path]:
    """Create a new, uniquely named temporary file in ``path``'s directory, open for writing.

    Like :func:`tempfile.mkstemp` (``O_EXCL``, so never someone else's file), but created with mode
    0o666 so the kernel applies the process umask (and any default ACL of the directory) exactly as
    for a plain ``open(path, "w")``: with umask 022 the report ends up 0644, not mkstemp's 0600. The
    umask is never read or changed, so there is no process-global state to race with other threads."""
    import secrets

    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: could not create a temporary file for {path.name}")


def write_atomic(path: str | os.PathLike, write, mode: str = "w") -> Path:
    """Write ``path`` via a temporary file beside it + rename, so a crash never leaves a half-written
    file: ``write(f)`` fills the open temporary file (``mode`` "w" text or "wb" bytes).

    The file gets the mode ``open(path, "w")`` would give a new file (0o666 minus the umask).

    Raises:
        evalkit.errors.WriteError (InfraError, exit 3): the file cannot be written (disk full,
            read-only file system, permission denied); the message names ``path`` and the cause.
            Nothing is left behind (no temporary file, an earlier file at ``path`` is unchanged).
    """
    from evalkit.errors import write_error

    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _open_temp_beside(path)
        with os.fdopen(fd, mode, **({"newline": ""} if "b" not in mode else {})) as f:
            write(f)
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            try:
                Path(tmp).unlink(missing_ok=True)
            except OSError:
                pass
        if isinstance(e, OSError):
            raise write_error(path, e) from e
        raise
    return path


def write_json_atomic(data: dict, path: str | os.PathLike) -> Path:
    """Write JSON atomically (:func:`write_atomic`; WriteError, exit 3, when it cannot be written)."""

    def dump(f) -> None:
        json.dump(data, f, indent=2, default=_json_default)
        f.write("\n")

    return write_atomic(path, dump)


def write_csv_atomic(frame, path: str | os.PathLike) -> Path:
    """Write ``frame.to_csv`` via a temporary file + rename (mode as for :func:`write_json_atomic`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _open_temp_beside(path)
    try:
        with os.fdopen(fd, "w", newline="") as f:
            frame.to_csv(f, index=False)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path

