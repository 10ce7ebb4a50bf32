"""Datasets: the :class:`Dataset` container, built-in datasets, file readers, splits, digests.

Data flows one way: ``load_dataset`` -> ``make_splits`` -> ``standardize`` -> model.
"""

from __future__ import annotations

from evalkit.data.core import Dataset, Splits
from evalkit.data.load import load_dataset
from evalkit.data.split import make_splits, standardize

__all__ = ["Dataset", "Splits", "load_dataset", "make_splits", "standardize"]
