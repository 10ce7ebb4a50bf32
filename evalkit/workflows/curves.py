"""Training curves of a run: the chosen model's first fold as MLflow metrics, every curve in ``curves.csv``.

A cross-fitted ``--model auto`` run trains K folds and, on fold 1, every candidate: as MLflow metrics
that would be ``3 x (K + candidates)`` curves (``fold2/val/loss``, ``fold1/auto/mlp/train/loss``, ...)
burying the answer on the run page. :class:`CurveRun` logs only the curves a person reads,
``train/loss``, ``val/loss`` and ``val/<metric>`` of the chosen model's first fold (the same model
and names as a ``--folds 1`` run), and keeps every curve for the ``curves.csv`` artifact (columns
``fold``, ``candidate``, ``metric``, ``step``, ``value``), so nothing is lost.
"""

from __future__ import annotations

import re
import tempfile
import threading
from pathlib import Path

#: ``fold<k>/`` then, for a ``--model auto`` candidate, ``auto/<arch>/`` before the metric
_KEY = re.compile(r"^(?:fold(?P<fold>\d+)/)?(?:auto/(?P<candidate>[^/]+)/)?(?P<metric>.+)$")


class CurveRun:
    """An open run (:class:`evalkit.tracking.RunLogger`) whose per-step metrics are curves: those of
    fold 1 (or of the only model) outside ``auto/`` are logged without the fold prefix
    (``fold1/train/loss`` -> ``train/loss``); all are kept in :attr:`rows` for :meth:`log_csv`.
    Everything else (params, artifacts, metrics without a step) goes to the run unchanged.
    Thread-safe (the curves of folds trained in worker processes arrive from helper threads)."""

    def __init__(self, run) -> None:
        self._run = run
        self.rows: list[tuple[int, str, str, int, float]] = []  # (fold, candidate, metric, step, value)
        self._lock = threading.Lock()

    def __getattr__(self, name: str):
        return getattr(self._run, name)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Metrics without ``step`` go to the run; a curve point (with ``step``) is kept, and logged
        when it belongs to the chosen model's first fold."""
        if step is None:
            self._run.log_metrics(metrics)
            return
        shown = {}
        with self._lock:
            for key, value in metrics.items():
                m = _KEY.match(key)
                fold, candidate = int(m["fold"] or 1), m["candidate"] or ""
                self.rows.append((fold, candidate, m["metric"], int(step), float(value)))
                if fold == 1 and not candidate:
                    shown[m["metric"]] = value
        if shown:
            self._run.log_metrics(shown, step=step)

    def log_csv(self) -> None:
        """Log every curve kept as the ``curves.csv`` artifact (nothing when no curve was kept; a
        local write error is ignored: it may run while another error unwinds the training)."""
        import pandas as pd

        from evalkit.report import write_csv_atomic

        with self._lock:
            rows = sorted(self.rows)
        if not rows:
            return
        frame = pd.DataFrame(rows, columns=["fold", "candidate", "metric", "step", "value"])
        try:
            with tempfile.TemporaryDirectory() as tmp:
                self._run.log_artifact(write_csv_atomic(frame, Path(tmp) / "curves.csv"))
        except OSError:  # no room for a temporary file: the run's own logging tells the fault
            pass
