"""Read multi-label dataset files into a :class:`~evalkit.data.core.Dataset`, dispatching by extension.

Formats (see :data:`FORMATS`):

* ARFF (``.arff``, ``.arff.gz``) in both conventions of the multi-label community, read with the
  maintained ``liac-arff`` parser -- :mod:`evalkit.data.arff_reader`:

  - MULAN (Tsoumakas et al., JMLR 12, 2011; http://mulan.sourceforge.net/format.html): label
    attributes are named in an XML file ``<labels xmlns="http://mulan.sourceforge.net/labels">``
    shipped next to the ARFF file.
  - MEKA (Read et al., JMLR 17, 2016; http://waikato.github.io/meka/datasets/): the number of
    labels is in the relation name, ``@relation 'Yeast: -C 14'``; the labels are the first 14
    attributes (or the last 14 for ``-C -14``).

* CSV / TSV (``.csv``, ``.csv.gz``, ``.tsv``) and Parquet (``.parquet``, ``.pq``), read with pandas /
  pyarrow -- :mod:`evalkit.data.tabular`.
* NumPy archives (``.npz``) -- :mod:`evalkit.data.npz`.

Every reader returns features ``X`` as float32 ``(N, F)`` (or ``(N, C, H, W)`` image tensors from NPZ)
and multi-hot targets ``Y`` as uint8 ``(N, C)`` with values in {0, 1}. Every problem with the file is an
:class:`~evalkit.errors.InputError` whose one-line message names the file (or column / attribute)
and what was expected.
"""

from __future__ import annotations

from pathlib import Path

from evalkit.data.common import FORMATS, dataset_name, dataset_stem, file_format
from evalkit.data.core import Dataset
from evalkit.errors import InputError, field_name

__all__ = ["FORMATS", "dataset_name", "dataset_stem", "file_format", "read"]

_KIND = {
    ".arff": "arff",
    ".arff.gz": "arff",
    ".csv": "csv",
    ".csv.gz": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".npz": "npz",
}

# Which keyword options each kind of file understands (the others must be left unset).
_TABLE = ("label_columns", "label_prefix", "label_list_column", "drop_columns")
_OPTIONS = {
    "arff": ("label_file", "meka_labels", "drop_columns"),
    "csv": _TABLE,
    "tsv": _TABLE,
    "parquet": _TABLE,
    "npz": ("drop_columns",),
}


def read(
    path: str | Path,
    *,
    label_file: str | Path | None = None,
    label_columns: list[str] | str | None = None,
    label_prefix: str | None = None,
    label_list_column: str | None = None,
    label_sep: str = ";",
    meka_labels: int | None = None,
    drop_columns: list[str] | str | None = None,
) -> Dataset:
    """Read one dataset file; the format is chosen by the extension (see :data:`FORMATS`).

    Args:
        path: the file.
        label_file: ARFF only -- MULAN label XML file. Default: looked up next to the ARFF file
            (``emotions-train.arff`` -> ``emotions.xml``, then ``emotions-train.xml``).
        meka_labels: ARFF only -- number of labels as in MEKA's ``-C N`` (first N attributes; last
            ``|N|`` if negative). Overrides the relation name.
        label_columns: CSV/Parquet -- label column names, a list or a comma-separated string.
        label_prefix: CSV/Parquet -- every column whose name starts with this prefix is a label.
        label_list_column: CSV/Parquet -- one column holding each row's label names separated by
            ``label_sep``; becomes a multi-hot ``Y`` with the label names sorted.
        label_sep: separator for ``label_list_column`` (default ``";"``).
        drop_columns: every format -- feature columns to leave out (ARFF attribute names, table
            column names, NPZ ``feature_names``), a list or a comma-separated string. Nominal / string
            features with a different value in every row (IDs, more than 20 rows) are dropped
            without being named, with a note in ``meta["notes"]``.

    Returns:
        A :class:`Dataset` with ``X`` float32 ``(N, F)`` (NPZ images: ``(N, 3, H, W)``), ``Y`` uint8
        ``(N, C)`` in {0, 1}, feature and label names, ``source`` = the path, and ``meta`` with
        ``{"format": <extension>, "notes": [str, ...]}`` at least. ``name`` is the file stem without
        ``-train`` / ``-test`` (/ ``-train-sparse`` ...).

    Raises:
        InputError: (exit code 2) missing file, unknown extension, an option that does not apply to
            this format, declared sizes above the allocation limit, duplicate label names, or anything
            else wrong with the content (see the format readers).
    """
    p = Path(path)
    ext = file_format(p)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if not p.is_file():
        raise InputError(f"{p}: not a file")
    kind = _KIND[ext]
    given = {
        "label_file": label_file,
        "meka_labels": meka_labels,
        "label_columns": label_columns,
        "label_prefix": label_prefix,
        "label_list_column": label_list_column,
        "drop_columns": drop_columns,
    }
    for option, value in given.items():
        if value is not None and option not in _OPTIONS[kind]:
            applies = ", ".join(e for e, k in _KIND.items() if option in _OPTIONS[k])
            raise InputError(f"{p}: option {field_name(option)} does not apply to {ext} files (only to {applies})")

    if kind == "arff":
        from evalkit.data.arff_reader import read_arff

        ds = read_arff(p, label_file=label_file, meka_labels=meka_labels, drop_columns=drop_columns)
    elif kind in ("csv", "tsv", "parquet"):
        from evalkit.data.tabular import read_table

        ds = read_table(
            p,
            kind,
            label_columns=label_columns,
            label_prefix=label_prefix,
            label_list_column=label_list_column,
            label_sep=label_sep,
            drop_columns=drop_columns,
        )
    else:
        from evalkit.data.npz import read_npz

        ds = read_npz(p, drop_columns=drop_columns)
    ds.meta.setdefault("format", ext)
    ds.meta.setdefault("notes", [])
    return ds
