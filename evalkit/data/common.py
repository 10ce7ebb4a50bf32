"""Helpers shared by the file readers: formats and dataset names, one-line messages, name checks,
dropped columns, ID-like attributes and allocation limits.

This module imports nothing from the readers, so :mod:`evalkit.data.readers` (dispatch) and the
format readers (:mod:`~evalkit.data.arff_reader`, :mod:`~evalkit.data.tabular`,
:mod:`~evalkit.data.npz`) all import from here and never from each other.
"""

from __future__ import annotations

import ast
import gzip
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from evalkit.errors import InputError, field_name
from evalkit.inputs import SPARSE_SUFFIX, SPLIT_SUFFIX  # noqa: F401 (the suffixes dataset_name strips)

#: extension -> one-line description, shown by ``evalkit datasets``.
FORMATS: dict[str, str] = {
    ".arff": "ARFF, dense or sparse; labels from a MULAN XML file next to it (<stem>.xml, "
    "or label_file) or from MEKA's '-C N' in @relation (or meka_labels)",
    ".arff.gz": "gzip-compressed ARFF (as .arff)",
    ".csv": "CSV with a header row; labels chosen by label_columns, label_prefix or label_list_column "
    "(one column of label_sep-separated label names); every other column is a feature (text columns: one-hot, "
    "at most 1000 values)",
    ".csv.gz": "gzip-compressed CSV (as .csv)",
    ".tsv": "tab-separated values (as .csv)",
    ".parquet": "Apache Parquet table; labels chosen as for .csv; categorical and text columns are one-hot encoded",
    ".pq": "Apache Parquet table (as .parquet)",
    ".npz": "NumPy archive: X (N, F) or images (N, 3, H, W), Y (N, C) in {0, 1}, "
    "optional labels (C,) and feature_names (F,) string arrays",
}


#: nominal / string attributes with one distinct value per row are dropped as IDs above this many rows.
ID_MIN_ROWS = 20

MAX_MESSAGE = 200  # characters of foreign text (parser messages, cell values) quoted in a message
_SHOW = 8  # names listed in a message


def _physical_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return None


#: Largest array (bytes) a reader allocates: half the physical memory, at least 1 GiB (8 GiB when the
#: memory size is unknown). Declared shapes beyond it are refused before any allocation.
MAX_BYTES: int = max(2**30, (_physical_memory() or 2**34) // 2)


# --- formats and names ----------------------------------------------------------------------------


def file_format(path: str | Path) -> str:
    """The key of :data:`FORMATS` that ``path`` ends with (case-insensitive), e.g. ``".arff.gz"``.

    Raises:
        InputError: the extension is not one of :data:`FORMATS` (exit code 2).
    """
    ext = _known_extension(path)
    if ext is None:
        suffix = "".join(Path(path).suffixes[-2:]) or "(none)"
        raise InputError(f"{path}: unsupported file type {suffix!r}; expected one of: {', '.join(FORMATS)}")
    return ext


def dataset_stem(path: str | Path) -> str:
    """File name without the format extension: ``emotions-train.arff.gz`` -> ``emotions-train``.

    Raises:
        InputError: the extension is not one of :data:`FORMATS` (exit code 2).
    """
    p = Path(path)
    return p.name[: len(p.name) - len(file_format(p))]


def dataset_name(path: str | Path) -> str:
    """Short dataset name: the stem without a split suffix.

    ``emotions-train.arff`` -> ``emotions``, ``bibtex-test-sparse.arff`` -> ``bibtex``; a file with an
    unknown extension keeps its plain stem (``data.txt`` -> ``data``). Undecodable bytes of the file
    name (``b"\\xff"``) and control characters become U+FFFD (:func:`~evalkit.data.core.safe_text`).
    """
    from evalkit.data.core import safe_text

    p = Path(path)
    ext = _known_extension(p)
    stem = p.name[: len(p.name) - len(ext)] if ext else p.stem
    return safe_text(SPLIT_SUFFIX.sub("", stem) or stem)


def _known_extension(path: str | Path) -> str | None:
    name = Path(path).name.lower()
    for ext in sorted(FORMATS, key=len, reverse=True):  # ".arff.gz" before ".arff"
        if name.endswith(ext):
            return ext
    return None


# --- messages --------------------------------------------------------------------------------------


def one_line(text: object, limit: int = MAX_MESSAGE) -> str:
    """``text`` (an exception, a relation name, ...) on one line, at most ``limit`` characters."""
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def show(names: Sequence[str], limit: int = _SHOW, what: str = "columns") -> str:
    """The first ``limit`` names, comma-separated, then ``... (<count> <what>)`` when there are more."""
    shown = ", ".join(str(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} {what})" if len(names) > limit else "")


def name_list(value: Sequence[str] | str, option: str) -> list[str]:
    """Names given as a list or a comma-separated string (``"a,b"``), in order, without repeats.

    Raises:
        InputError: no name at all (exit code 2).
    """
    names = [c.strip() for c in value.split(",")] if isinstance(value, str) else [str(c) for c in value]
    names = list(dict.fromkeys(n for n in names if n))
    if not names:
        raise InputError(f"{option}: expected at least one column name, got {value!r}")
    return names


def check_unique(path: str | Path, names: Sequence[str], what: str) -> None:
    """Refuse repeated names (labels, attributes, columns) in one file.

    Raises:
        InputError: ``"<path>: duplicate <what> names 'a', 'b'; expected distinct names"`` (exit code 2).
    """
    seen: set[str] = set()
    dupes = list(dict.fromkeys(n for n in names if n in seen or seen.add(n)))
    if dupes:
        shown = ", ".join(repr(n) for n in dupes[:5]) + (f" (+{len(dupes) - 5} more)" if len(dupes) > 5 else "")
        raise InputError(f"{path}: duplicate {what} names {shown}; expected distinct names")


def check_drop_columns(path: str | Path, drop: Sequence[str] | str | None, available: Sequence[str],
                       labels: Sequence[str] = (), what: str = "column") -> list[str]:
    """Validate a ``drop_columns`` reader option against the names in the file.

    Args:
        path: the file (for messages).
        drop: names to leave out (a list or a comma-separated string), or None.
        available: the feature names that may be dropped (ARFF attributes, table columns, NPZ features).
        labels: label names, which cannot be dropped.
        what: ``"column"`` or ``"attribute"`` (for messages).

    Returns:
        The names to drop, without repeats (empty when ``drop`` is None).

    Raises:
        InputError: a name that is not in the file (the message lists the available names) or that
            is a label (exit code 2).
    """
    if drop is None:
        return []
    names = name_list(drop, field_name("drop_columns"))
    label_set = set(labels)
    are_labels = [n for n in names if n in label_set]
    if are_labels:
        raise InputError(
            f"{path}: --drop-columns {', '.join(map(repr, are_labels))} is a label; expected feature {what}s only"
        )
    known = set(available)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(
            f"{path}: --drop-columns {', '.join(map(repr, unknown))}: no such {what}; "
            f"{what}s are: {show(list(available), 20, what + 's')}"
        )
    return names


def is_id_like(n_distinct: int, n_rows: int) -> bool:
    """True for a nominal / string attribute whose every row holds a different value (an identifier
    such as a protein id): ``n_distinct == n_rows > ID_MIN_ROWS``. One-hot encoding it would add
    ``N`` columns that carry nothing a model can generalise from."""
    return n_rows > ID_MIN_ROWS and n_distinct == n_rows


def id_note(name: str, n_rows: int) -> str:
    """The ``meta["notes"]`` entry for an attribute dropped by :func:`is_id_like`."""
    return (f"dropped {name!r}: an ID-like attribute (a different value in each of the {n_rows} rows); "
            "keep it out with --drop-columns to silence this note")


# --- sizes -----------------------------------------------------------------------------------------


def check_alloc(path: str | Path, what: str, shape: Sequence[int], itemsize: int) -> None:
    """Refuse to allocate an array of ``shape`` x ``itemsize`` bytes above :data:`MAX_BYTES`.

    Raises:
        InputError: naming the file, ``what`` (array / matrix) and the shape (exit code 2).
    """
    n = int(np.prod([int(s) for s in shape], dtype=object)) * int(itemsize)
    if n > MAX_BYTES:
        raise InputError(
            f"{path}: {what} of shape {tuple(int(s) for s in shape)} would take {human_bytes(n)}, more than the "
            f"{human_bytes(MAX_BYTES)} limit; refusing to allocate it"
        )


def human_bytes(n: int) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def read_bytes(path: Path) -> bytes:
    """The content of ``path``, gunzipped when its name ends in ``.gz``, at most :data:`MAX_BYTES`.

    Raises:
        InputError: unreadable file, broken gzip data, or content above the limit (exit code 2).
    """
    try:
        if not path.name.lower().endswith(".gz"):
            check_file_size(path)
            return path.read_bytes()
        with gzip.open(path) as f:
            raw = f.read(MAX_BYTES + 1)
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot read: {one_line(exc)}") from None
    if len(raw) > MAX_BYTES:
        raise InputError(f"{path}: decompresses to more than the {human_bytes(MAX_BYTES)} limit; refusing to read it")
    return raw


def check_file_size(path: Path) -> None:
    """Refuse a file larger than :data:`MAX_BYTES` before reading it.

    Raises:
        InputError: naming the file, its size and the limit (exit code 2).
    """
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise InputError(f"{path}: {human_bytes(size)} file, more than the {human_bytes(MAX_BYTES)} limit")


# --- .npy members of .npz archives ---------------------------------------------------------------------


def npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], np.dtype, int]:
    """``(shape, dtype, data bytes the member holds)`` from a zip member's ``.npy`` header, reading
    only the header (format: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html).

    The bytes held are the member's uncompressed size (``ZipInfo.file_size``) minus the header.

    Raises:
        ValueError: not a ``.npy`` header (bad magic, unknown version, unparsable header);
            callers turn it into an :class:`InputError`.
    """
    fmt = np.lib.format
    with zf.open(info) as f:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(f)
        elif version == (3, 0):  # utf-8 header (numpy writes it only for non-latin-1 field names)
            size = int.from_bytes(f.read(4), "little")
            if size > 100_000:
                raise ValueError(f"{info.filename}: .npy header of {size} bytes")
            d = ast.literal_eval(f.read(size).decode("utf-8"))
            shape, dtype = tuple(d["shape"]), fmt.descr_to_dtype(d["descr"])
        else:
            raise ValueError(f"{info.filename}: unsupported .npy format version {version}")
        return tuple(int(n) for n in shape), dtype, info.file_size - f.tell()


def check_npy_size(path: str | Path, key: str, shape: Sequence[int], dtype: np.dtype, held: int) -> None:
    """Refuse an array whose declared ``shape`` x ``dtype`` needs more bytes than its member holds.

    Raises:
        InputError: ``"<path>: array 'X' declares shape (1, 100000000000) float64 (745.1 GiB) but its
            archive member holds 8 B; refusing to load it"`` (exit code 2).
    """
    declared = int(np.prod([int(n) for n in shape], dtype=object)) * dtype.itemsize
    if declared > held:
        raise InputError(
            f"{path}: array {key!r} declares shape {tuple(shape)} {dtype} ({human_bytes(declared)}) but its archive "
            f"member holds {human_bytes(max(held, 0))}; refusing to load it"
        )
