"""evalkit's metric engine: exact, fast, streaming, distributed multi-label metrics.

Public API::

    from evalkit.metrics import MultilabelEngine, MetricValues, compute_metrics, binarize
    from evalkit.metrics import shard_range, shard_rows          # distributed helpers
    from evalkit.metrics.io import iter_prediction_batches       # .npz / .parquet / .csv batches
    from evalkit.metrics.names import fbeta_key                  # metric key conventions

``compute_metrics`` / ``MultilabelEngine.compute()`` return :class:`MetricValues` (numpy arrays;
both take ``sample_weight``, :mod:`evalkit.metrics.weighted`; the metrics beyond P/R/F are in
``MetricValues.extra``, :mod:`evalkit.metrics.extra`; bootstrap intervals: :mod:`evalkit.stats.bootstrap`);
:func:`evalkit.report.metrics_block` shapes them into the report's JSON. The definitions and their
sources are in :mod:`evalkit.metrics.functional`.

Attributes are imported lazily, so ``evalkit.metrics.names`` can be imported without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DEFAULT_BINS": "evalkit.metrics.engine",
    "MultilabelEngine": "evalkit.metrics.engine",
    "compute_metrics": "evalkit.metrics.engine",
    "binarize": "evalkit.metrics.functional",
    "MetricValues": "evalkit.metrics.values",
    "Averages": "evalkit.metrics.values",
    "shard_range": "evalkit.metrics.distributed",
    "shard_rows": "evalkit.metrics.distributed",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import the public names on first use (PEP 562)."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'evalkit.metrics' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
