"""Read prediction files in batches, so a file larger than memory can be evaluated.

Formats
-------
``.npz`` (``np.savez`` or ``np.savez_compressed``)
    ``targets``: ``(N, C)`` in {0, 1} (bool / integer / float); exactly one of ``logits`` or
    ``probabilities``: ``(N, C)`` floating; optional ``labels``: ``(C,)`` label names (strings or
    numbers). Members are streamed from the zip archive row block by row block (stored or
    deflated), never loaded whole.
``.parquet`` and ``.csv``
    One column per label and kind, named ``target:<label>`` plus either ``logit:<label>`` or
    ``prob:<label>`` (e.g. ``target:cat, prob:cat, target:dog, prob:dog``). Label order is the
    order of the ``target:`` columns; other columns (ids, ...) are ignored. Parquet is read with
    pyarrow batch by batch, CSV with pandas in chunks.

Without names, labels are ``label_0 .. label_{C-1}``.

Values are not validated here (the engine does that for every batch), but structure is: every
problem raises :class:`~evalkit.errors.InputError` whose message starts with the file name.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from evalkit.errors import InputError

PREFIX_TARGET = "target:"
PREFIX_LOGIT = "logit:"
PREFIX_PROB = "prob:"

Batch = tuple[np.ndarray, np.ndarray, str, list[str]]


def iter_prediction_batches(path: str | Path, batch_size: int = 65536) -> Iterator[Batch]:
    """Yield ``(targets, scores, scores_kind, labels)`` batches of at most ``batch_size`` rows.

    Args:
        path: a ``.npz``, ``.parquet`` or ``.csv`` file (see the module docstring for the layout).
        batch_size: rows per batch (>= 1).
    Yields:
        ``targets`` ``(b, C)`` numpy array (dtype as stored), ``scores`` ``(b, C)`` floating numpy
        array, ``scores_kind`` ``"logits"`` or ``"probabilities"``, ``labels`` list of C str (the
        same list object in every batch). An NPZ / Parquet file with zero rows yields nothing.
    Raises:
        InputError: missing / unreadable file, unknown extension, missing or duplicated arrays or
            columns (a CSV header is checked as written, so a repeated name is never renamed ``a.1``),
            a CSV with a header but no data rows, mismatched shapes or labels, non-numeric columns, an
            empty target cell, a NaN / infinite score or a probability outside [0, 1] (naming the
            column and the data row).
    """
    p = Path(path)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputError(f"batch_size: expected a positive integer, got {batch_size!r}")
    from evalkit.inputs import require_predictions_file

    require_predictions_file(p)
    ext = p.suffix.lower()
    if ext == ".npz":
        yield from _iter_npz(p, int(batch_size))
    elif ext in (".parquet", ".pq"):
        yield from _iter_parquet(p, int(batch_size))
    elif ext == ".csv":
        yield from _iter_csv(p, int(batch_size))
    else:
        raise InputError(f"{p}: unsupported predictions format {ext or '(none)'!r}; expected .npz, .parquet or .csv")


# ---------------------------------------------------------------------------------------------- npz


class _NpyStream:
    """Row blocks of one C-order 2-D .npy member of a zip archive, read sequentially."""

    def __init__(self, zf: zipfile.ZipFile, member: str, where: str) -> None:
        self.f = zf.open(member)
        try:
            version = np.lib.format.read_magic(self.f)
            reader = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in reader:
                raise ValueError(f"npy format version {version}")
            self.shape, fortran, self.dtype = reader[version](self.f)
        except ValueError as e:
            raise InputError(f"{where}: array {member[:-4]!r} is not a valid .npy array ({e})") from None
        if self.dtype.hasobject:
            raise InputError(f"{where}: array {member[:-4]!r} holds Python objects; expected numbers")
        self.fortran = fortran and len(self.shape) > 1
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self._full = None

    def read(self, start: int, rows: int) -> np.ndarray:
        if self.fortran:  # column-major: cannot stream rows; load once (rare: np.savez keeps C order)
            if self._full is None:
                data = self.f.read()
                self._full = np.frombuffer(data, dtype=self.dtype).reshape(self.shape, order="F")
            return np.ascontiguousarray(self._full[start:start + rows])
        buf = bytearray(rows * self.row_bytes)  # writable result, one copy
        view = memoryview(buf)
        filled = 0
        while filled < len(buf):
            n = self.f.readinto(view[filled:])
            if not n:
                break
            filled += n
        got = filled // max(self.row_bytes, 1)
        return np.frombuffer(buf, dtype=self.dtype, count=got * int(np.prod(self.shape[1:]))).reshape(
            (got,) + tuple(self.shape[1:]))


#: the largest batch buffer of one array (wide files get fewer rows per batch)
_BATCH_BYTES = 1 << 28


def _check_declared_size(zf: zipfile.ZipFile, p: Path, key: str) -> None:
    """Refuse a member whose header declares more data than the member holds (a 368-byte file may
    declare shape (1, 10**11)), or more than the memory limit allows."""
    from evalkit.data.common import check_alloc, check_npy_size, npy_header

    try:
        info = zf.getinfo(f"{key}.npy")
    except KeyError:
        return
    try:
        shape, dtype, held = npy_header(zf, info)
    except (ValueError, SyntaxError) as e:
        raise InputError(f"{p.name}: array {key!r} is not a valid .npy array ({e})") from None
    check_npy_size(p.name, key, shape, dtype, held)
    if key == "labels":
        check_alloc(p.name, "array 'labels'", shape, dtype.itemsize)


def _iter_npz(p: Path, batch_size: int) -> Iterator[Batch]:
    where = p.name
    try:
        zf = zipfile.ZipFile(p)
    except (zipfile.BadZipFile, OSError) as e:
        raise InputError(f"{where}: not a readable .npz archive ({e})") from None
    with zf:
        names = {n[:-4] for n in zf.namelist() if n.endswith(".npy")}
        if "targets" not in names:
            raise InputError(f"{where}: expected an array 'targets' (N, C) and one of 'logits' / 'probabilities'; "
                             f"found {sorted(names)}")
        kinds = [k for k in ("logits", "probabilities") if k in names]
        if len(kinds) != 1:
            raise InputError(f"{where}: expected exactly one of arrays 'logits' or 'probabilities', found "
                             f"{kinds or 'neither'}")
        kind = kinds[0]
        for key in ("targets", kind, "labels"):
            _check_declared_size(zf, p, key)  # before any allocation: a tiny file may declare a huge shape
        targets = _NpyStream(zf, "targets.npy", where)
        scores = _NpyStream(zf, f"{kind}.npy", where)
        if len(targets.shape) != 2:
            raise InputError(f"{where}: 'targets' must have shape (N, C), got {targets.shape}")
        if scores.shape != targets.shape:
            raise InputError(f"{where}: '{kind}' has shape {scores.shape} but 'targets' has {targets.shape}")
        if scores.dtype.kind != "f":
            raise InputError(f"{where}: '{kind}' must be floating point, got dtype {scores.dtype}")
        if targets.dtype.kind not in "biuf":
            raise InputError(f"{where}: 'targets' must be numeric, got dtype {targets.dtype}")
        N, C = targets.shape
        if C == 0:
            raise InputError(f"{where}: 'targets' has shape ({N}, 0): no labels; expected at least one label column")
        if "labels" in names:
            with zf.open("labels.npy") as f:
                try:
                    arr = np.lib.format.read_array(f, allow_pickle=False)
                except ValueError as e:
                    raise InputError(f"{where}: 'labels' must be an array of strings or numbers ({e})") from None
            labels = [str(x) for x in np.asarray(arr).reshape(-1)]
            if len(labels) != C:
                raise InputError(f"{where}: 'labels' has {len(labels)} names for {C} columns")
            from evalkit.data.common import check_unique

            check_unique(where, labels, "label")
        else:
            labels = [f"label_{i}" for i in range(C)]
        kind_name = "logits" if kind == "logits" else "probabilities"
        batch_size = max(1, min(batch_size, _BATCH_BYTES // max(1, scores.row_bytes)))  # bounded buffers for wide files
        for start in range(0, N, batch_size):
            rows = min(batch_size, N - start)
            t = targets.read(start, rows)
            s = scores.read(start, rows)
            if t.shape[0] != rows or s.shape[0] != rows:
                raise InputError(f"{where}: archive is truncated (expected {N} rows)")
            _check_targets_present(t, where, [f"'targets' column {j}" for j in range(C)], start)
            _check_scores(s, where, [f"'{kind_name}' column {j}" for j in range(C)], start, kind_name)
            yield t, s, kind_name, labels


# --------------------------------------------------------------------------------- parquet / csv


def _columns(names: list[str], where: str) -> tuple[list[str], list[str], list[str], str]:
    """-> (labels, target columns, score columns, kind) from column names. Raises InputError."""
    tcols = [n for n in names if n.startswith(PREFIX_TARGET)]
    lcols = [n for n in names if n.startswith(PREFIX_LOGIT)]
    pcols = [n for n in names if n.startswith(PREFIX_PROB)]
    if not tcols:
        raise InputError(f"{where}: expected columns 'target:<label>' plus 'logit:<label>' or 'prob:<label>'; "
                         f"found {names[:6]}{' ...' if len(names) > 6 else ''}")
    if lcols and pcols:
        raise InputError(f"{where}: found both 'logit:' and 'prob:' columns; expected exactly one kind")
    if not lcols and not pcols:
        raise InputError(f"{where}: expected score columns 'logit:<label>' or 'prob:<label>' for the target columns")
    prefix, scols, kind = (PREFIX_LOGIT, lcols, "logits") if lcols else (PREFIX_PROB, pcols, "probabilities")
    labels = [n[len(PREFIX_TARGET):] for n in tcols]
    if len(set(labels)) != len(labels):
        raise InputError(f"{where}: duplicated target columns")
    slabels = {n[len(prefix):] for n in scols}
    missing = [x for x in labels if x not in slabels]
    extra = sorted(slabels - set(labels))
    if missing or extra or len(scols) != len(labels):
        raise InputError(f"{where}: labels of target and {prefix[:-1]} columns differ "
                         f"(no score for {missing[:5]}, no target for {extra[:5]})")
    return labels, tcols, [prefix + x for x in labels], kind


def _check_targets_present(t: np.ndarray, where: str, columns: list[str], first_row: int) -> None:
    """Raise InputError naming the first empty (NaN) or infinite target cell of a batch ``(rows, C)``
    whose first row is data row ``first_row`` (0-based); nothing to check for integer targets."""
    if t.dtype.kind != "f" or np.isfinite(t).all():
        return
    r, c = np.argwhere(~np.isfinite(t))[0]
    raise InputError(f"{where}: {columns[c]} is empty or not finite in data row {first_row + int(r) + 1}; "
                     "expected 0 or 1")


def _check_scores(s: np.ndarray, where: str, columns: list[str], first_row: int, kind: str) -> None:
    """Raise InputError naming the first NaN / infinite score cell of a batch ``(rows, C)`` (and, for
    probabilities, the first outside [0, 1]) whose first row is data row ``first_row`` (0-based)."""
    bad = ~np.isfinite(s)
    if kind == "probabilities":
        bad |= (s < 0) | (s > 1)
    if not bad.any():
        return
    r, c = np.argwhere(bad)[0]
    expected = "finite logits" if kind == "logits" else "probabilities in [0, 1] (declare logits for raw model outputs)"
    raise InputError(f"{where}: {columns[c]} is {float(s[r, c])} in data row {first_row + int(r) + 1}; expected {expected}")


def _stack(columns: list[np.ndarray], where: str, what: str, floating: bool) -> np.ndarray:
    try:
        out = np.column_stack(columns) if columns else np.empty((0, 0))
    except ValueError as e:
        raise InputError(f"{where}: cannot read {what} columns ({e})") from None
    if out.dtype.kind not in ("f" if floating else "biuf"):
        raise InputError(f"{where}: {what} columns must be {'floating point' if floating else 'numeric'}, "
                         f"got dtype {out.dtype}")
    return out


_PARQUET_COLUMNS = 64  # columns decoded at a time: bounds pyarrow's buffers for wide files
_PARQUET_WHOLE_GROUP = 1 << 18  # row groups up to this many rows (or batch_size) are decoded whole


def _iter_parquet(p: Path, batch_size: int) -> Iterator[Batch]:
    """Row group by row group, decoding ``_PARQUET_COLUMNS`` columns at a time into (rows, C)
    arrays (peak memory ~ one row group of the wanted columns, not the file). Row groups much larger
    than ``batch_size`` are streamed in ``batch_size`` slices instead."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    where = p.name
    try:
        pf = pq.ParquetFile(p, pre_buffer=False)
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"{where}: not a readable Parquet file ({e})") from None
    labels, tcols, scols, kind = _columns(pf.schema_arrow.names, where)
    C = len(labels)
    wanted = tcols + scols
    types = {f.name: f.type for f in pf.schema_arrow}
    for name in wanted:
        t = types[name]
        if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
            raise InputError(f"{where}: column {name!r} must be numeric, got {t}")
        if name in scols and not pa.types.is_floating(t):
            raise InputError(f"{where}: score column {name!r} must be floating point, got {t}")
    subsets = [wanted[i:i + _PARQUET_COLUMNS] for i in range(0, len(wanted), _PARQUET_COLUMNS)]
    pool = pa.default_memory_pool()

    def fill(T, S, tables) -> None:
        j = 0
        for tab in tables:
            for col in tab.columns:
                if col.null_count:
                    raise InputError(f"{where}: column {wanted[j]!r} has missing values")
                arr = col.to_numpy()
                if j < C:
                    T[:, j] = arr
                else:
                    S[:, j - C] = arr
                j += 1

    def empty(n):
        tdt = np.result_type(*[types[c].to_pandas_dtype() for c in tcols])
        sdt = np.result_type(*[types[c].to_pandas_dtype() for c in scols])
        return np.empty((n, C), dtype=tdt), np.empty((n, C), dtype=sdt)

    def checked(T, S, row0: int) -> Batch:
        _check_targets_present(T, where, tcols, row0)
        _check_scores(S, where, [f"column {c!r}" for c in scols], row0, kind)
        return T, S, kind, labels

    row0 = 0
    try:
        for g in range(pf.metadata.num_row_groups):
            n = pf.metadata.row_group(g).num_rows
            if n == 0:
                continue
            if n <= max(batch_size, _PARQUET_WHOLE_GROUP):
                T, S = empty(n)
                fill(T, S, (pf.read_row_group(g, columns=cols, use_threads=False) for cols in subsets))
                pool.release_unused()
                for s0 in range(0, n, batch_size):
                    yield checked(T[s0:s0 + batch_size], S[s0:s0 + batch_size], row0 + s0)
                del T, S
            else:
                its = [pf.iter_batches(batch_size=batch_size, row_groups=[g], columns=cols, use_threads=False)
                       for cols in subsets]
                s0 = 0
                for parts in zip(*its):
                    T, S = empty(parts[0].num_rows)
                    fill(T, S, parts)
                    del parts
                    yield checked(T, S, row0 + s0)
                    s0 += len(T)
                pool.release_unused()
            row0 += n
    except pa.ArrowException as e:
        raise InputError(f"{where}: cannot read Parquet data ({e})") from None


def _iter_csv(p: Path, batch_size: int) -> Iterator[Batch]:
    import pandas as pd

    from evalkit.data.common import check_unique

    where = p.name
    try:  # the names as written: pandas would rename a repeated 'a' to 'a.1', inventing a label
        header = pd.read_csv(p, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0].tolist()
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as e:
        raise InputError(f"{where}: not a readable CSV file ({e})") from None
    check_unique(where, [str(c) for c in header], "column")
    labels, tcols, scols, kind = _columns([str(c) for c in header], where)
    try:
        reader = pd.read_csv(p, usecols=tcols + scols, chunksize=batch_size)
        rows = 0
        for chunk in reader:
            if not len(chunk):
                continue
            rows += len(chunk)
            t = chunk[tcols].to_numpy()
            s = chunk[scols].to_numpy()
            if t.dtype == object or s.dtype == object:
                raise InputError(f"{where}: columns contain non-numeric values")
            if s.dtype.kind != "f":
                s = s.astype(np.float64)
            _check_targets_present(t, where, tcols, int(chunk.index[0]) if len(chunk) else 0)
            _check_scores(s, where, [f"column {c!r}" for c in scols], int(chunk.index[0]), kind)
            yield t, s, kind, labels
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"{where}: cannot parse CSV ({e})") from None
    if not rows:
        raise InputError(f"{where}: no data rows; expected a header row followed by one row per sample")
