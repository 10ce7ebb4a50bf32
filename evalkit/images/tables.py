"""Image tables: a CSV / Parquet file with one image path per row and the row's labels.

Paths are read from ``image_column`` (default ``path`` when the table has one) and resolved against
``image_root`` (default: the table's folder). A path that leaves the root (``../``, an absolute
path elsewhere, a symlink pointing out) is refused. Labels are given as for feature tables
(:mod:`evalkit.data.tabular`): ``label_columns``, ``label_prefix``, or ``label_list_column`` with
``label_sep`` (ChestX-ray14's ``Data_Entry_2017.csv``: ``Image Index``, ``Finding Labels`` =
``Atelectasis|Effusion``, with ``empty_label="No Finding"`` meaning no label).

Only the table is read here; images are decoded batch by batch by :mod:`evalkit.images.loader`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from evalkit.errors import InputError

#: image files evalkit reads (Pillow)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class ImageTable:
    """The rows of an image table: ``paths`` (absolute, inside ``root``), ``rows`` (1-based data row
    numbers of the table, int64 ``(N,)``: what error messages name), ``Y`` uint8 ``(N, C)`` and the
    label names."""

    source: str
    root: Path
    paths: list[str]
    rows: np.ndarray
    Y: np.ndarray
    label_names: list[str]
    meta: dict = field(default_factory=dict)

    def subset(self, index) -> "ImageTable":
        """The rows ``index`` (an int array) of this table."""
        index = np.asarray(index)
        return ImageTable(self.source, self.root, [self.paths[i] for i in index], self.rows[index], self.Y[index],
                          self.label_names, dict(self.meta))


def read_image_table(path, *, image_column: str | None = None, image_root: str | None = None,
                     label_columns=None, label_prefix: str | None = None, label_list_column: str | None = None,
                     label_sep: str = ";", empty_label: str | None = None) -> ImageTable:
    """Read an image table (``.csv``, ``.csv.gz``, ``.tsv`` or ``.parquet``); no image is opened.

    Raises:
        InputError: (exit 2, one line naming the file and, for a row, its number) unreadable table;
            no image column; an empty path; a path outside ``image_root``; an image on two rows; labels as in
            :func:`evalkit.data.tabular.read_table`.
    """
    import pandas as pd

    path = Path(path)
    kind = "parquet" if path.suffix == ".parquet" else ("tsv" if ".tsv" in path.suffixes else "csv")
    try:
        df = pd.read_parquet(path) if kind == "parquet" else pd.read_csv(path, sep="\t" if kind == "tsv" else ",",
                                                                         dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (ValueError, OSError, pd.errors.ParserError) as e:
        raise InputError(f"{path}: not a readable {kind} table ({str(e).splitlines()[0]})") from None
    if df.shape[0] == 0:
        raise InputError(f"{path}: no data rows; expected a header row followed by one image per row")
    column = _image_column(path, list(df.columns), image_column)
    root = Path(image_root).resolve() if image_root else path.resolve().parent
    if not root.is_dir():
        raise InputError(f"--image-root {root}: not a folder")
    paths = [resolve_image_path(path, root, cell, i + 1) for i, cell in enumerate(df[column].tolist())]
    _check_unique(path, paths)
    Y, names = _labels(path, df, label_columns, label_prefix, label_list_column, label_sep, empty_label)
    return ImageTable(str(path), root, paths, np.arange(1, len(paths) + 1, dtype=np.int64), Y, names,
                      {"format": "image-table", "image_column": column})


def _check_unique(table: Path, paths: list[str]) -> None:
    """Refuse an image named on two rows (after symlinks are resolved): its copies could land in the
    training and the test split, and a test image seen in training inflates every metric."""
    first: dict[str, int] = {}
    for row, p in enumerate(paths, 1):
        if first.setdefault(p, row) != row:
            raise InputError(f"{table}: rows {first[p]} and {row} name the same image {p}; expected one row per "
                             "image (a copy could land in both the training and the test split)")


def _image_column(path: Path, columns: list[str], given: str | None) -> str:
    if given is not None:
        if given not in columns:
            raise InputError(f"--image-column {given!r}: not a column of {path}; columns are: {', '.join(columns[:12])}")
        return given
    if "path" in columns:
        return "path"
    raise InputError(f"{path}: which column holds the image paths? pass --image-column (no column is named 'path')")


def resolve_image_path(table: Path, root: Path, cell, row: int) -> str:
    """The absolute path of the image named in ``cell`` (relative to ``root``, or absolute), with
    symlinks resolved; InputError when it is empty or leaves ``root``."""
    text = "" if cell is None else str(cell).strip()
    if not text or text.lower() == "nan":
        raise InputError(f"{table}: row {row}: empty image path")
    candidate = Path(text)
    resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if not resolved.is_relative_to(root):
        raise InputError(f"{table}: row {row}: image path {text!r} is outside --image-root {root}")
    return str(resolved)


def _labels(path: Path, df, label_columns, label_prefix, label_list_column, label_sep, empty_label):
    """``(Y uint8 (N, C), names)`` from the label options (exactly one), as feature tables read them."""
    from evalkit.data.common import name_list
    from evalkit.data.tabular import _binary, _multi_hot

    chosen = [o for o, v in (("--label-columns", label_columns), ("--label-prefix", label_prefix),
                             ("--label-list-column", label_list_column)) if v is not None]
    if len(chosen) != 1:
        raise InputError(f"{path}: which columns are the labels? pass exactly one of --label-columns, --label-prefix "
                         f"or --label-list-column" + (f" (got {', '.join(chosen)})" if chosen else ""))
    columns = list(df.columns)
    if label_list_column is not None:
        if label_list_column not in columns:
            raise InputError(f"--label-list-column {label_list_column!r}: not a column of {path}")
        cells = df[label_list_column]
        if empty_label is not None:
            cells = cells.map(lambda c: label_sep.join(t for t in str(c).split(label_sep) if t.strip() != empty_label))
        return _multi_hot(path, cells, label_list_column, label_sep)
    wanted = (name_list(label_columns, "label_columns") if label_columns is not None
              else [c for c in columns if label_prefix and c.startswith(label_prefix)])
    missing = [c for c in wanted if c not in columns]
    if missing or not wanted:
        raise InputError(f"{path}: label column(s) {', '.join(map(repr, missing)) or 'matching ' + repr(label_prefix)} "
                         f"not found; columns are: {', '.join(columns[:12])}")
    return np.column_stack([_binary(path, df[c], c) for c in wanted]).astype(np.uint8), wanted
