"""Sparse features: CSR matrices kept sparse from reading through training.

A :class:`~evalkit.data.core.Dataset` holds sparse data (sparse ARFF, CSR ``.npz``) as a
``scipy.sparse.csr_matrix`` float32 ``(N, F)``. Training densifies one mini-batch at a time
(:func:`dense_rows`), so memory grows with the non-zeros, not with ``N x F``. scipy is imported
only when a matrix is sparse.
"""

from __future__ import annotations

import sys

import numpy as np


def is_sparse(X) -> bool:
    """True for a ``scipy.sparse`` matrix / array (without importing scipy when it is not loaded)."""
    mod = sys.modules.get("scipy.sparse")
    return mod is not None and mod.issparse(X)


def is_lazy(X) -> bool:
    """True for an image table's images on disk (:class:`evalkit.images.lazy.LazyImages`)."""
    mod = sys.modules.get("evalkit.images.lazy")
    return mod is not None and isinstance(X, mod.LazyImages)


def as_csr(X):
    """``X`` as a canonical CSR float32 matrix (sorted indices, no duplicates)."""
    import scipy.sparse as sp

    X = sp.csr_matrix(X, dtype=np.float32)
    if not X.has_canonical_format:
        X.sum_duplicates()
    return X


def dense_rows(X, index=None) -> np.ndarray:
    """Rows ``index`` (a slice, index array or ``None`` for all) of ``X`` as a dense float32 C array."""
    part = X if index is None else X[index]
    if is_lazy(part):  # images on disk: decoded (a few rows: an input example)
        return part.load()
    if is_sparse(part):
        return np.asarray(part.toarray(), dtype=np.float32)
    return np.ascontiguousarray(part, dtype=np.float32)


def vstack(parts):
    """Row-stack dense arrays or CSR matrices (CSR stays CSR)."""
    if is_lazy(parts[0]):
        return type(parts[0]).concat(parts)
    if any(is_sparse(p) for p in parts):
        import scipy.sparse as sp

        return sp.vstack([as_csr(p) for p in parts], format="csr")
    return np.concatenate(parts)


def nbytes(X) -> int:
    """Bytes held by ``X`` (CSR: data + indices + indptr)."""
    if is_sparse(X):
        return int(X.data.nbytes + X.indices.nbytes + X.indptr.nbytes)
    return int(X.nbytes)


def shape_stub(X):
    """``X`` itself when dense; for CSR a read-only zero-stride float32 view of shape ``(N, F)`` (no
    memory): what MLflow's dataset record needs (shape and dtype), without densifying."""
    if is_sparse(X) or is_lazy(X):
        return np.broadcast_to(np.zeros(1, dtype=np.float32), X.shape)
    return X
