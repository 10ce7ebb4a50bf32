"""evalkit's metric engine: exact, fast, streaming, distributed multi-label metrics.

Public API::

    from evalkit.metrics import MultilabelEngine, compute_metrics, binarize
    from evalkit.metrics import shard_range, shard_rows          # distributed helpers
    from evalkit.metrics.io import iter_prediction_batches       # .npz / .parquet / .csv batches

See :mod:`evalkit.metrics.engine` for the definitions and their sources.
"""

from __future__ import annotations

from evalkit.metrics.distributed import shard_range, shard_rows
from evalkit.metrics.engine import DEFAULT_BINS, MultilabelEngine, binarize, compute_metrics

__all__ = ["DEFAULT_BINS", "MultilabelEngine", "binarize", "compute_metrics", "shard_range", "shard_rows"]
