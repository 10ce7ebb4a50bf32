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
from typing import TYPE_CHECKING, Any

from evalkit.metrics.names import AVERAGES, THRESHOLD_FREE, fbeta_key

if TYPE_CHECKING:
    from evalkit.metrics.values import MetricValues

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


class Report(dict):
    """An evaluation report: a ``dict`` with the JSON schema above, plus helpers for notebooks."""

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self, indent=indent, default=_json_default)

    def write_json(self, path: str | os.PathLike) -> Path:
        return write_json_atomic(self, path)

    def metrics(self, split: str = "test") -> dict[str, float]:
        return metric_keys(self, split)

    def per_class_frame(self):
        import pandas as pd

        return pd.DataFrame(self["per_class"])

    @property
    def fbeta_key(self) -> str:
        return fbeta_key(self.get("beta", 2.0))


def metrics_block(values: MetricValues) -> dict:
    """The report's ``summary`` and ``per_class`` from the metric engine's values (plain Python).

    Args:
        values: :class:`evalkit.metrics.MetricValues` (from ``compute_metrics`` /
            ``MultilabelEngine.compute()``).
    Returns:
        a fresh ``{"summary": {...}, "per_class": [...]}`` (float / int / None; NaN -> None)::

            summary: micro / macro / weighted / samples -> {accuracy, precision, recall, f1, f<beta>},
                     subset_accuracy, hamming_loss, mean_average_precision, macro_auroc,
                     micro_average_precision, micro_auroc, label_ranking_average_precision,
                     coverage_error, label_ranking_loss
            per_class: [{label, support, tp, fp, fn, tn, accuracy, precision, recall, f1, f<beta>,
                         average_precision, auroc, threshold}, ...]   (C entries, column order)

        The F-beta key is :func:`evalkit.metrics.names.fbeta_key` (``f2``; for beta = 1 it is
        ``f1`` itself). Threshold-free entries are ``None`` when they were not computed.
    """
    fk = fbeta_key(values.beta)
    summary: dict[str, Any] = {}
    for avg in AVERAGES:
        a = getattr(values, avg)
        summary[avg] = {"accuracy": a.accuracy, "precision": a.precision, "recall": a.recall, "f1": a.f1, fk: a.fbeta}
    summary["subset_accuracy"] = values.subset_accuracy
    summary["hamming_loss"] = values.hamming_loss
    summary |= {k: _defined(getattr(values, k)) for k in THRESHOLD_FREE}
    ap, auroc = values.average_precision, values.auroc
    per_class = []
    for j, label in enumerate(values.label_names):
        row = {"label": label}
        row |= {k: int(getattr(values, k)[j]) for k in ("support", "tp", "fp", "fn", "tn")}
        row |= {k: float(getattr(values, k)[j]) for k in ("accuracy", "precision", "recall", "f1")}
        row[fk] = float(values.fbeta[j])
        row["average_precision"] = None if ap is None else float(ap[j])
        row["auroc"] = None if auroc is None else _defined(float(auroc[j]))
        row["threshold"] = float(values.thresholds[j])
        per_class.append(row)
    return {"summary": summary, "per_class": per_class}


def _defined(v):
    """``None`` for a missing or NaN value, else the value."""
    return None if v is None or v != v else v


def build_report(
    metrics: dict,
    *,
    dataset: dict,
    scores: str,
    strategy: str,
    thresholds,
    beta: float,
    **extra: Any,
) -> Report:
    """Assemble a :class:`Report` from :func:`metrics_block` output and the run context."""
    from evalkit import __version__

    values = [float(t) for t in thresholds]
    return Report(
        evalkit_version=__version__,
        dataset=dataset,
        scores=scores,
        threshold={"strategy": strategy, "values": values},
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
    """Write JSON via a temporary file + rename, so a crash never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, default=_json_default)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
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


# ----------------------------------------------------------------------------- terminal rendering

def _fmt(v, digits: int = 4) -> str:
    if v is None:
        return "—"
    if isinstance(v, int):
        return str(v)
    return f"{v:.{digits}f}"


def render(report: dict, console=None, *, per_class: bool = True, title: str = "Test split") -> None:
    """Print the summary table, the per-class table and the notes that explain them (rich)."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    s = report["summary"]
    fk = fbeta_key(report.get("beta", 2.0))
    cols = ["accuracy", "precision", "recall", "f1"] + ([fk] if fk != "f1" else [])
    ds = report["dataset"]
    t = Table(title=f"{title}: {ds['name']} — {ds['n_samples']} samples × {ds['n_labels']} labels "
                    f"(threshold {report['threshold']['strategy']})", title_justify="left")
    t.add_column("average")
    for c in cols:
        t.add_column(c.upper() if c.startswith("f") else c, justify="right")
    for avg in AVERAGES:
        t.add_row(avg, *(_fmt(s[avg].get(c)) for c in cols))
    console.print(t)
    lines = [
        f"subset accuracy (exact match) [bold]{_fmt(s['subset_accuracy'])}[/]   "
        f"Hamming loss [bold]{_fmt(s['hamming_loss'])}[/]   "
        f"mAP [bold]{_fmt(s.get('mean_average_precision'))}[/]   "
        f"macro AUROC [bold]{_fmt(s.get('macro_auroc'))}[/]",
    ]
    if s.get("label_ranking_average_precision") is not None:
        lines.append(
            f"ranking: LRAP {_fmt(s['label_ranking_average_precision'])}   "
            f"coverage error {_fmt(s.get('coverage_error'), 2)}   ranking loss {_fmt(s.get('label_ranking_loss'))}"
        )
    for line in lines:
        console.print(line)
    ref = report.get("reference_at_0.5")
    if per_class:
        pt = Table(title="Per class", title_justify="left")
        names = ["label", "support", "tp", "fp", "fn", "tn", "precision", "recall", "f1"]
        names += ([fk] if fk != "f1" else []) + ["accuracy", "average_precision", "auroc", "threshold"]
        for n in names:
            header = {"average_precision": "AP", "auroc": "AUROC", "threshold": "thr"}.get(n, n)
            pt.add_column(header.upper() if n.startswith("f") and n != "fp" and n != "fn" else header,
                          justify="left" if n == "label" else "right", no_wrap=n == "label")
        for row in report["per_class"]:
            pt.add_row(*(str(row[n]) if n == "label" else _fmt(row.get(n), 3) for n in names))
        console.print(pt)
    beta = report.get("beta", 2.0)
    console.print(
        "[dim]Notes: 'accuracy' is label-wise accuracy = 1 − Hamming loss; it is identical for the micro, "
        "macro and samples averages and is inflated by the many true negatives. Subset accuracy is the "
        f"strict exact-match ratio. F{beta:g} weighs recall {beta * beta:g}× as much as precision "
        f"(beta={beta:g}). Predictions use probability >= threshold; undefined values (—) are left out "
        "of macro means.[/]"
    )
    if ref:
        rs = ref["summary"]
        console.print(
            f"[dim]For reference at a fixed 0.5 cut: micro-{fk.upper()} {_fmt(rs['micro'].get(fk))}, "
            f"macro-{fk.upper()} {_fmt(rs['macro'].get(fk))}, subset accuracy {_fmt(rs['subset_accuracy'])}.[/]"
        )
