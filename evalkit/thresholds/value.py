"""The threshold strategy (parsed from text) and the fitted, typed :class:`Thresholds` value.

One parser (:func:`parse_strategy`) reads every ``--threshold`` text; :func:`read_thresholds` adds
the forms only ``evaluate --threshold`` accepts (a comma list, a JSON / CSV file). A
:class:`Thresholds` is immutable; it serialises to the report's ``threshold`` block
(:meth:`Thresholds.to_dict`, also ``thresholds.json`` and ``preprocess.json``) and is rebuilt from it
(:meth:`Thresholds.from_dict`), so the form never changes on the way from fitting to the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.config import RunConfig
from evalkit.errors import InputError
from evalkit.thresholds.strategy import (  # noqa: F401  (re-exported)
    _FITTED, OBJECTIVES, STRATEGIES, ThresholdStrategy, _is_float, check_strategy, parse_objective, parse_strategy,
)

#: the default objective is :class:`~evalkit.config.RunConfig`'s (the one place defaults live)
DEFAULT_OBJECTIVE: str = RunConfig.model_fields["objective"].default
TOP_K_NOTE = "top-k: each sample's K highest-scoring labels; a per-sample cut, no per-label threshold"



@dataclass(frozen=True)
class Thresholds:
    """How scores become decisions: a strategy plus per-label cuts ``(C,)`` float64 in (0, 1), or
    for ``top-k`` the K of the per-sample cut (``values is None``). Immutable.

    Attributes:
        strategy: the parsed strategy (``given`` for cuts read from a list or file).
        values: per-label cuts, or ``None`` for top-k.
        n_labels: C (taken from ``values`` when they are given).
        source: where given / recorded cuts came from (``file:t.json``, ``run 1a2b``), else ``None``.
        fitted_on / objective / beta: how fitted cuts were chosen (``"validation"``, an objective of
            :data:`OBJECTIVES`, the F-beta's beta); ``None`` when nothing was fitted.
    """

    strategy: ThresholdStrategy
    values: tuple[float, ...] | None
    n_labels: int = 0
    source: str | None = None
    fitted_on: str | None = None
    objective: str | None = None
    beta: float | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.values is not None:
            object.__setattr__(self, "n_labels", len(self.values))

    @property
    def k(self) -> int | None:
        """K of ``top-k:K``, else ``None``."""
        return int(self.strategy.value) if self.strategy.per_sample else None

    @property
    def label(self) -> str:
        """The text reports show (``joint``, ``fixed:0.5``, ``file:t.csv``, ``joint (from run 1a2b)``)."""
        if self.strategy.name == "given":
            return self.source or "per-class (given)"
        return f"{self.strategy.label} (from {self.source})" if self.source else self.strategy.label

    def array(self) -> np.ndarray:
        """``(C,)`` float64 cuts (NaN for top-k, which has none)."""
        if self.values is None:
            return np.full(self.n_labels, np.nan)
        return np.asarray(self.values, dtype=np.float64)

    def evaluate(self, targets, probabilities, *, beta: float, label_names=None, threshold_free: str = "exact") -> dict:
        """The metric engine's output for these thresholds (see :func:`evaluate`)."""
        return evaluate(self.strategy, targets, probabilities, self.array(), beta=beta,
                        label_names=label_names, threshold_free=threshold_free)

    def to_dict(self) -> dict[str, Any]:
        """The report's ``threshold`` block: ``strategy`` (text), ``values`` (one per label; null for
        top-k), and ``k`` / ``note`` (top-k) or ``fitted_on`` / ``objective`` / ``beta`` (fitted)."""
        values = list(self.values) if self.values is not None else [None] * self.n_labels
        out: dict[str, Any] = {"strategy": self.label, "values": values}
        if self.strategy.per_sample:
            out.update(k=self.k, note=TOP_K_NOTE)
        if self.fitted_on:
            out.update(fitted_on=self.fitted_on, objective=self.objective, beta=self.beta)
        return out | self.extra

    @classmethod
    def from_dict(cls, block: dict, n_labels: int, *, where: str, source: str | None = None) -> "Thresholds":
        """Rebuild from a ``threshold`` block (a report, ``preprocess.json``, ``thresholds.json``).

        Raises:
            InputError: a block without ``k`` or ``values``, or with a wrong count or values outside (0, 1).
        """
        if not isinstance(block, dict):
            raise InputError(f"{where}: threshold: expected an object with strategy and values, got {block!r}")
        name = str(block.get("strategy", "given")).split(" ", 1)[0]
        if block.get("k") is not None:
            strategy = parse_strategy(f"top-k:{block['k']}")
            check_strategy(strategy, n_labels)
            return cls(strategy, None, n_labels, source=source)
        values = _check_values(block.get("values"), n_labels, where)
        strategy = ThresholdStrategy(name) if name in _FITTED else ThresholdStrategy("given")
        if name.startswith("fixed:") and len(set(values)) == 1:
            strategy = parse_strategy(name)
        if strategy.name == "given":
            source = f"{name} (from {source})" if source else name
        return cls(strategy, values, source=source)

    @classmethod
    def fixed(cls, cut: float, n_labels: int) -> "Thresholds":
        """The same cut in (0, 1) for every label (``fixed:T``)."""
        s = parse_strategy(f"fixed:{cut}")
        return cls(s, (float(s.value),) * n_labels)


def _check_values(values, n_labels: int, where: str) -> tuple[float, ...]:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{where}: thresholds must be numbers, got {str(values)[:80]}") from None
    if arr.shape != (n_labels,):
        raise InputError(f"{where}: expected {n_labels} thresholds (one per label), got {arr.size}")
    if not (np.isfinite(arr) & (arr > 0) & (arr < 1)).all():
        raise InputError(f"{where}: every threshold must lie in (0, 1)")
    return tuple(float(v) for v in arr)


def given_thresholds(value, label_names: list[str], where: str = "threshold") -> Thresholds:
    """Thresholds given in Python: a number (one cut for every label) or a sequence / array of one
    per label, each in (0, 1); a string is :func:`read_thresholds`' text.

    Raises:
        InputError: naming ``where``: not numbers, wrong count, values outside (0, 1).
    """
    if isinstance(value, str):
        return read_thresholds(value, label_names)
    C = len(label_names)
    if np.ndim(value) == 0 and not isinstance(value, (bool, np.bool_)):
        return Thresholds.fixed(_check_values([value] * C, C, where)[0], C)
    return Thresholds(ThresholdStrategy("given"), _check_values(value, C, where), source="per-class (given)")


def read_thresholds(text: str, label_names: list[str]) -> Thresholds:
    """Thresholds given to ``evaluate --threshold``: ``fixed:T`` / a number, ``top-k:K``, a comma list
    (one per label), or a file: JSON (a list, a ``{label: threshold}`` object, or an evalkit report /
    ``thresholds.json`` whose ``threshold`` block is reused) or CSV with columns ``label,threshold``.

    Label-keyed files are strict: every label exactly once, no unknown or duplicated label.

    Raises:
        InputError: a fitted strategy (it needs validation data: use ``evalkit run``), wrong count,
            unknown / missing / duplicated labels, values outside (0, 1), unreadable file.
    """
    C = len(label_names)
    t = str(text).strip()
    if "," in t and all(_is_float(x) for x in t.split(",")):
        return Thresholds(ThresholdStrategy("given"), _check_values([float(x) for x in t.split(",")], C, "--threshold"),
                          source="per-class (given)")
    path = Path(t)
    if t and path.exists():
        if path.is_dir():
            raise InputError(f"--threshold: {t} is a directory; expected a JSON or CSV file of per-label thresholds")
        return _read_file(path, label_names)
    strategy = parse_strategy(t) if not (t.endswith((".json", ".csv"))) else None
    if strategy is None:
        raise InputError(f"--threshold: {t}: no such file")
    if strategy.fitted:
        raise InputError(f"--threshold: {strategy.label} is fitted on validation data, which evaluate does not have; "
                         "expected a number, top-k:K, a comma list or a file of per-label thresholds")
    check_strategy(strategy, C)
    if strategy.per_sample:
        return Thresholds(strategy, None, C)
    return Thresholds.fixed(strategy.value, C)


def _by_label(pairs: list[tuple[str, Any]], label_names: list[str], where: str) -> list[Any]:
    seen: dict[str, Any] = {}
    for name, value in pairs:
        key = str(name)
        if key in seen:
            raise InputError(f"{where}: label {key!r} is given twice; expected each label once")
        seen[key] = value
    unknown = [n for n in seen if n not in set(label_names)]
    if unknown:
        raise InputError(f"{where}: unknown labels {unknown[:5]}; expected labels of the data")
    missing = [n for n in label_names if n not in seen]
    if missing:
        raise InputError(f"{where}: no threshold for labels {missing[:5]}")
    return [seen[n] for n in label_names]


def _threshold_block(data) -> tuple[dict | None, list[str] | None]:
    """The threshold block of a JSON file evalkit wrote, with the label of each value when the file
    names them: a report (``threshold`` + ``per_class[].label``), ``preprocess.json`` (``threshold``),
    a run's ``thresholds.json`` (``strategy`` / ``values`` / ``labels`` at the top). ``(None, None)``
    for anything else (a list, a ``{label: threshold}`` object)."""
    if not isinstance(data, dict):
        return None, None
    if "threshold" in data:
        rows = data.get("per_class")
        labels = [r.get("label") for r in rows] if isinstance(rows, list) and all(isinstance(r, dict) for r in rows) else None
        return data["threshold"], labels if labels and all(isinstance(n, str) for n in labels) else None
    if "strategy" in data and ("values" in data or "k" in data):
        labels = data.get("labels")
        return data, labels if isinstance(labels, list) and all(isinstance(n, str) for n in labels) else None
    return None, None


def _read_file(path: Path, label_names: list[str]) -> Thresholds:
    import json

    where, C = str(path), len(label_names)
    source = f"file:{path.name}"
    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM (Excel) is no part of the first column name
    except UnicodeDecodeError:
        raise InputError(f"{where}: not UTF-8 text; expected a JSON or CSV file of thresholds") from None
    except OSError as e:
        raise InputError(f"{where}: cannot read ({e.strerror or e})") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"{where}: invalid JSON ({e.msg} at line {e.lineno})") from None
        block, labels = _threshold_block(data)
        if block is not None:  # a report, preprocess.json, or a run's thresholds.json artifact
            if labels is not None and isinstance(block, dict) and block.get("values") is not None:
                if len(labels) != len(block["values"]):
                    raise InputError(f"{where}: {len(labels)} labels but {len(block['values'])} threshold values")
                block = block | {"values": _by_label(list(zip(labels, block["values"])), label_names, where)}
            return Thresholds.from_dict(block, C, where=f"{where}: threshold", source=source)
        if isinstance(data, dict):
            data = _by_label(list(data.items()), label_names, where)
        if not isinstance(data, list):
            raise InputError(f"{where}: expected a list of thresholds, a {{label: threshold}} object or a report")
        return Thresholds(ThresholdStrategy("given"), _check_values(data, C, where), source=source)
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or not {"label", "threshold"} <= set(rows[0]):
        raise InputError(f"{where}: expected CSV columns label,threshold")
    values = _by_label([(r["label"], r["threshold"]) for r in rows], label_names, where)
    return Thresholds(ThresholdStrategy("given"), _check_values(values, C, where), source=source)


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
    """The metric engine's output (``summary`` and ``per_class``) under ``strategy``.

    Label-wise strategies hand their ``(C,)`` thresholds straight to the engine. ``top-k`` has no
    per-label threshold: its decisions (:func:`evalkit.thresholds.predict`) are scored by the engine
    as 0/1 probabilities at a 0.5 cut, the threshold-free metrics come from the real probabilities,
    and the per-class ``threshold`` entries are ``None``.

    Args:
        targets: ``(N, C)`` in {0, 1}. probabilities: ``(N, C)`` in [0, 1].
        thresholds: ``(C,)`` float64 cuts (ignored for top-k).
    """
    from evalkit.metrics import compute_metrics
    from evalkit.report import metrics_block
    from evalkit.thresholds.fit import predict

    def run(scores, thr, tf):
        return metrics_block(compute_metrics(targets, scores, scores_kind="probabilities", threshold=thr, beta=beta,
                                             label_names=label_names, threshold_free=tf))

    if not strategy.per_sample:
        return run(probabilities, thresholds, threshold_free)
    hard = run(predict(strategy, probabilities, thresholds).astype(np.float64), 0.5, "none")
    if threshold_free != "none":
        soft = run(probabilities, 0.5, threshold_free)
        hard["summary"] = {k: soft["summary"][k] if v is None else v for k, v in hard["summary"].items()}
        for row, srow in zip(hard["per_class"], soft["per_class"]):
            row.update(average_precision=srow["average_precision"], auroc=srow["auroc"])
    for row in hard["per_class"]:
        row["threshold"] = None
    return hard

