"""Multi-label NumPy archives (``.npz``, as written by ``numpy.savez`` / ``savez_compressed``).

Arrays:

* ``X``: features ``(N, F)``, or channel-first image tensors ``(N, 3, H, W)`` (1 or 4 channels are
  accepted too); any integer, boolean or floating dtype; stored as float32 (images are not rescaled).
* ``Y``: targets ``(N, C)``, values 0/1 (any integer / boolean / floating dtype).
* ``labels`` (optional): ``(C,)`` string array of label names; default ``label_0 .. label_{C-1}``.
* ``feature_names`` (optional, 2-D ``X`` only): ``(F,)`` string array; default ``f0 .. f{F-1}``.

Sparse features (kept sparse: a ``scipy.sparse.csr_matrix``, memory grows with the non-zeros), instead
of ``X``, either in the ``scipy.sparse.save_npz`` layout (``data``, ``indices``, ``indptr``, ``shape``
and optionally ``format`` = ``csr``; add ``Y`` and ``labels`` with ``numpy.savez``) or as ``X_data``,
``X_indices``, ``X_indptr``, ``X_shape``.

Loaded with ``allow_pickle=False``: object arrays (e.g. lists of Python strings saved without a string
dtype) are refused -- save names with ``np.array(names, dtype=str)``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from evalkit.data.common import (
    check_alloc,
    check_drop_columns,
    check_npy_size,
    check_unique,
    dataset_name,
    npy_header,
    one_line,
)
from evalkit.data.core import Dataset
from evalkit.errors import InputError

_NAMES = {"labels": "label", "feature_names": "feature"}


def read_npz(path: Path, *, drop_columns: list[str] | str | None = None) -> Dataset:
    """Read a ``.npz`` archive with arrays ``X``, ``Y`` and optional ``labels``, ``feature_names``.

    Every array's ``.npy`` header is read first: an array whose declared shape and dtype need more
    bytes than its archive member holds (or more than :data:`evalkit.data.common.MAX_BYTES`), and
    name arrays of the wrong shape, are refused before anything is allocated.

    Args:
        path: the archive.
        drop_columns: features to leave out, by ``feature_names`` (default names ``f0`` ...); only
            for 2-D ``X``.

    Returns:
        Dataset with ``X`` float32 ``(N, F)`` or ``(N, C_img, H, W)``, ``Y`` uint8 ``(N, C)``,
        ``feature_names`` (empty for images), ``label_names``,
        ``meta = {"format": ".npz", "dropped": [...], "notes": []}``.

    Raises:
        InputError: (exit code 2) not a readable archive; object (pickled) arrays; declared sizes
            beyond the member or the limit; ``X`` or ``Y`` missing or of the wrong shape / dtype;
            ``X`` without a feature column (or empty images);
            ``Y`` not 0/1; non-finite ``X``; names of the wrong length or dtype; duplicate names;
            unknown ``drop_columns`` names.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):  # numpy would fall back to pickle for anything else
        raise InputError(f"{path}: not a readable .npz archive (expected a zip file written by numpy.savez)")
    try:
        with zipfile.ZipFile(path) as zf:
            headers = {info.filename[:-4]: npy_header(zf, info)
                       for info in zf.infolist() if info.filename.endswith(".npy")}
    except (OSError, zipfile.BadZipFile, EOFError, ValueError, SyntaxError) as exc:
        raise InputError(f"{path}: not a readable .npz archive: {one_line(exc)}") from None
    csr_keys = _csr_layout(headers)
    wanted = [k for k in ("X", "Y", "labels", "feature_names", *csr_keys.values()) if k in headers]
    _check_declared(path, {k: v for k, v in headers.items() if k not in csr_keys.values()},
                    [k for k in wanted if k not in csr_keys.values()])
    for key in csr_keys.values():
        shape, dtype, held = headers[key]
        if dtype.hasobject:
            raise InputError(f"{path}: contains object arrays, which are not loaded (allow_pickle=False)")
        check_npy_size(path, key, shape, dtype, held)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in wanted}
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise InputError(f"{path}: not a readable .npz archive: {one_line(exc)}") from None
    if csr_keys:
        arrays["X"] = _csr(path, arrays, csr_keys)

    for key in ("X", "Y"):
        if key not in arrays:
            raise InputError(
                f"{path}: array {key!r} missing; expected arrays X (N, F), Y (N, C) "
                f"[labels (C,), feature_names (F,)], found: {', '.join(sorted(headers)) or 'none'}"
            )
    X, Y = arrays["X"], arrays["Y"]
    sparse = X.__class__.__module__.startswith("scipy.sparse")
    if X.dtype.kind not in "biuf":
        raise InputError(f"{path}: X has dtype {X.dtype}; expected numbers")
    if X.ndim == 4:
        if X.shape[1] not in (1, 3, 4) and X.shape[3] in (1, 3, 4):
            raise InputError(
                f"{path}: X has shape {X.shape}, which looks channel-last; expected images as (N, 3, H, W)"
            )
    elif X.ndim != 2:
        raise InputError(f"{path}: X has shape {X.shape}; expected (N, F) features or (N, 3, H, W) images")
    if 0 in X.shape[1:]:  # would pass every later check and fail deep in training (hashing, the model)
        found = f"array {csr_keys['shape']!r} holds {list(X.shape)}" if csr_keys else f"array 'X' has shape {X.shape}"
        expected = "at least one feature column" if X.ndim == 2 else "images of at least 1x1 pixel and 1 channel"
        raise InputError(f"{path}: {found}; expected {expected}")
    if Y.ndim != 2:
        raise InputError(f"{path}: Y has shape {Y.shape}; expected (N, C) multi-hot targets")
    if Y.dtype.kind not in "biuf":
        raise InputError(f"{path}: Y has dtype {Y.dtype}; expected 0/1 numbers")
    if X.shape[0] != Y.shape[0]:
        raise InputError(f"{path}: X has {X.shape[0]} rows but Y has {Y.shape[0]}; expected the same N")
    bad = (Y != 0) & (Y != 1)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        raise InputError(f"{path}: Y must hold 0 or 1, found {Y[i, j].item()!r} at row {i}, column {j}")
    values = X.data if sparse else X
    if values.dtype.kind == "f":
        finite = np.isfinite(values)
        if not finite.all():
            raise InputError(f"{path}: X has {int((~finite).sum())} NaN or infinite values; expected finite numbers")
    Xf = X.astype(np.float32)
    if not np.isfinite(Xf.data if sparse else Xf).all():
        raise InputError(f"{path}: X has values too large for float32")

    C = Y.shape[1]
    label_names = _names(path, arrays, "labels", C) or [f"label_{k}" for k in range(C)]
    dropped: list[str] = []
    if X.ndim == 2:
        feature_names = _names(path, arrays, "feature_names", X.shape[1]) or [f"f{k}" for k in range(X.shape[1])]
        dropped = check_drop_columns(path, drop_columns, feature_names)
        if dropped:
            keep = [k for k, n in enumerate(feature_names) if n not in set(dropped)]
            if not keep:
                raise InputError(f"{path}: no feature left after dropping {dropped}")
            Xf, feature_names = Xf[:, keep], [feature_names[k] for k in keep]
    else:
        if "feature_names" in arrays:
            raise InputError(f"{path}: feature_names given for image tensors X {X.shape}; expected none")
        if drop_columns is not None:
            raise InputError(f"{path}: --drop-columns applies to (N, F) features; X holds images {X.shape}")
        feature_names = []
    return Dataset(
        name=dataset_name(path),
        X=Xf,
        Y=Y.astype(np.uint8),
        feature_names=feature_names,
        label_names=label_names,
        source=str(path),
        meta={"format": ".npz", "dropped": dropped, "notes": [], "sparse": sparse},
    )


def _csr_layout(headers: dict) -> dict[str, str]:
    """``{"data": key, "indices": key, "indptr": key, "shape": key}`` of a CSR matrix stored in the
    archive (``save_npz`` layout or ``X_*``), or ``{}`` for dense ``X``."""
    for prefix in ("X_", ""):
        keys = {part: prefix + part for part in ("data", "indices", "indptr", "shape")}
        if all(k in headers for k in keys.values()) and "X" not in headers:
            if (prefix + "format") in headers:
                keys["format"] = prefix + "format"
            return keys
    return {}


def _csr(path: Path, arrays: dict, keys: dict[str, str]):
    """The CSR matrix of the ``keys`` arrays, checked (never densified)."""
    import scipy.sparse as sp

    if "format" in keys:
        fmt = arrays[keys["format"]]
        fmt = fmt.item().decode() if isinstance(fmt.item(), bytes) else str(fmt.item())
        if fmt != "csr":
            raise InputError(f"{path}: sparse features in {fmt!r} format; expected csr (scipy.sparse.save_npz of a csr_matrix)")
    shape = arrays[keys["shape"]]
    if shape.shape != (2,) or shape.dtype.kind not in "iu" or (shape < 0).any():
        raise InputError(f"{path}: {keys['shape']} must hold (N, F); got {shape.tolist()}")
    n, f = (int(v) for v in shape)
    data, indices, indptr = arrays[keys["data"]], arrays[keys["indices"]], arrays[keys["indptr"]]
    if data.ndim != 1 or indices.ndim != 1 or indptr.ndim != 1 or indices.dtype.kind not in "iu" \
            or indptr.dtype.kind not in "iu" or len(indptr) != n + 1 or len(data) != len(indices) \
            or (len(indptr) and (indptr[0] != 0 or indptr[-1] != len(data) or (np.diff(indptr) < 0).any())) \
            or (len(indices) and (indices.min() < 0 or indices.max() >= f)):
        raise InputError(f"{path}: inconsistent CSR arrays {keys['data']} / {keys['indices']} / {keys['indptr']} "
                         f"for shape ({n}, {f}); expected scipy.sparse.save_npz output of a csr_matrix")
    if data.dtype.kind not in "biuf":
        raise InputError(f"{path}: {keys['data']} has dtype {data.dtype}; expected numbers")
    X = sp.csr_matrix((data, indices, indptr), shape=(n, f))
    X.sum_duplicates()
    return X


def _check_declared(path: Path, headers: dict, wanted: list[str]) -> None:
    """Refuse, before loading, object arrays and declared sizes the archive cannot hold or the limit
    forbids; name arrays must be 1-D with as many entries as ``Y`` has columns / ``X`` features."""
    for key in wanted:
        shape, dtype, held = headers[key]
        if dtype.hasobject:
            raise InputError(
                f"{path}: contains object arrays, which are not loaded (allow_pickle=False); "
                "expected numeric X / Y and string-dtype labels / feature_names"
            )
        check_npy_size(path, key, shape, dtype, held)
        check_alloc(path, f"array {key!r}", shape, max(dtype.itemsize, 4 if key == "X" else 1))
    for key, axis_of in (("labels", "Y"), ("feature_names", "X")):
        if key in wanted and axis_of in headers and len(headers[axis_of][0]) == 2:
            shape, dtype, _ = headers[key]
            _name_shape(path, key, shape, dtype, headers[axis_of][0][1])


def _name_shape(path: Path, key: str, shape: tuple, dtype: np.dtype, n: int) -> None:
    if dtype.kind not in "US" or len(shape) != 1:
        raise InputError(f"{path}: {key} has dtype {dtype} and shape {shape}; expected a ({n},) string array")
    if shape[0] != n:
        raise InputError(f"{path}: {key} has {shape[0]} names; expected {n}")


def _names(path: Path, arrays: dict, key: str, n: int) -> list[str] | None:
    if key not in arrays:
        return None
    a = arrays[key]
    _name_shape(path, key, a.shape, a.dtype, n)
    names = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in a.tolist()]
    check_unique(path, names, _NAMES[key])
    return names
