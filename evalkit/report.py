"""The evaluation Report: one structure for JSON, terminal, CSV and tracked metric names.

JSON schema (``--output``)::

    {"evalkit_version": str,
     "dataset": {"name": str, "n_samples": int, "n_labels": int, "digest": str},
     "scores": "logits" | "probabilities",
     "threshold": {"strategy": str, "values": [float, ...]},        # one per label
     "beta": float,
     "summary": {"micro": {"accuracy", "precision", "recall", "f1", "f2"}, "macro": {...},
                 "weighted": {...}, "samples": {...},
                 "subset_accuracy", "hamming_loss", "mean_average_precision", "macro_auroc", ...},
     "per_class": [{"label", "support", "tp", "fp", "fn", "tn", "accuracy", "precision", "recall",
                    "f1", "f2", "average_precision", "auroc", "threshold"}, ...]}

Metric values are floats in [0, 1] (coverage error: a label count); undefined values are ``null``.

Tracked metric names (one convention, used by ``run``, ``evaluate``, gates and ``compare``):
``<split>/<average>_<metric>`` (``test/macro_f2``), ``<split>/subset_accuracy``,
``<split>/hamming_loss``, ``<split>/macro_map``, ``<split>/macro_auroc``,
``<split>/class/<label>/<metric>``.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

AVERAGES = ("micro", "macro", "weighted", "samples")
# summary scalar -> tracked name suffix
SCALARS = {
    "subset_accuracy": "subset_accuracy",
    "hamming_loss": "hamming_loss",
    "mean_average_precision": "macro_map",
    "macro_auroc": "macro_auroc",
    "micro_average_precision": "micro_map",
    "micro_auroc": "micro_auroc",
    "label_ranking_average_precision": "lrap",
    "coverage_error": "coverage_error",
    "label_ranking_loss": "label_ranking_loss",
}
CLASS_METRICS = ("support", "tp", "fp", "fn", "tn", "accuracy", "precision", "recall", "f1", "f2",
                 "average_precision", "auroc", "threshold")


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

    def extend(self, **blocks: Any) -> "Report":
        """A new report with ``blocks`` added (or replaced); this one is unchanged."""
        return Report({**self, **blocks})

    def to_json(self, indent: int = 2) -> str:
        """The report as JSON text (numpy values converted)."""
        return json.dumps(self, indent=indent, default=_json_default)

    def write_json(self, path: str | os.PathLike) -> Path:
        """Write the report JSON atomically (see :func:`write_json_atomic`)."""
        return write_json_atomic(self, path)

    def metrics(self, split: str = "test") -> dict[str, float]:
        """Tracked metric names -> values (:func:`metric_keys`)."""
        return metric_keys(self, split)

    def per_class_frame(self):
        """The per-class rows as a ``pandas.DataFrame`` (one row per label)."""
        import pandas as pd

        return pd.DataFrame(self["per_class"])

    @property
    def fbeta_key(self) -> str:
        """The key of the reported F-beta (``"f2"``)."""
        return fbeta_key(self.get("beta", 2.0))


def fbeta_key(beta: float) -> str:
    return f"f{beta:g}"


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
        metrics: ``{"summary": ..., "per_class": [...]}`` from the metric engine.
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


_BAD_KEY_CHARS = re.compile(r"[^A-Za-z0-9_\-. :/]")


def safe_key(text: str) -> str:
    """A label name made safe for an MLflow metric key (alphanumerics, ``_-. :/``; others -> ``_``)."""
    return _BAD_KEY_CHARS.sub("_", str(text)).replace("/", "_")


def metric_keys(report: dict, split: str = "test", per_class: bool = True) -> dict[str, float]:
    """Flatten a report into tracked metric names -> values (undefined values left out)."""
    out: dict[str, float] = {}
    summary = report["summary"]
    for avg in AVERAGES:
        for name, value in summary.get(avg, {}).items():
            _put(out, f"{split}/{avg}_{name}", value)
    for name, suffix in SCALARS.items():
        _put(out, f"{split}/{suffix}", summary.get(name))
    if per_class:
        for row in report["per_class"]:
            label = safe_key(row["label"])
            for name, value in row.items():
                if name != "label":
                    _put(out, f"{split}/class/{label}/{name}", value)
    return out


def _put(out: dict, key: str, value) -> None:
    if value is None:
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


def write_json_atomic(data: dict, path: str | os.PathLike) -> Path:
    """Write JSON via a temporary file + rename, so a crash never leaves a half-written file.

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
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, default=_json_default)
            f.write("\n")
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


def write_csv_atomic(frame, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        frame.to_csv(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
