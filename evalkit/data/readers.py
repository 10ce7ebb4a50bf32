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

import re
from pathlib import Path

from evalkit.data.core import Dataset
from evalkit.errors import InputError

#: extension -> one-line description, shown by ``evalkit datasets``.
FORMATS: dict[str, str] = {
    ".arff": "ARFF, dense or sparse; labels from a MULAN XML file next to it (<stem>.xml, "
    "or label_file) or from MEKA's '-C N' in @relation (or meka_labels)",
    ".arff.gz": "gzip-compressed ARFF (as .arff)",
    ".csv": "CSV with a header row; labels chosen by label_columns, label_prefix or label_list_column "
    "(one column of label_sep-separated label names); every other column is a numeric feature",
    ".csv.gz": "gzip-compressed CSV (as .csv)",
    ".tsv": "tab-separated values (as .csv)",
    ".parquet": "Apache Parquet table; labels chosen as for .csv; categorical columns are one-hot encoded",
    ".pq": "Apache Parquet table (as .parquet)",
    ".npz": "NumPy archive: X (N, F) or images (N, 3, H, W), Y (N, C) in {0, 1}, "
    "optional labels (C,) and feature_names (F,) string arrays",
}

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
_OPTIONS = {
    "arff": ("label_file", "meka_labels"),
    "csv": ("label_columns", "label_prefix", "label_list_column"),
    "tsv": ("label_columns", "label_prefix", "label_list_column"),
    "parquet": ("label_columns", "label_prefix", "label_list_column"),
    "npz": (),
}

_SPLIT_SUFFIX = re.compile(r"[-_.](train|test|trn|tst)$", re.IGNORECASE)


def file_format(path: str | Path) -> str:
    """The key of :data:`FORMATS` that ``path`` ends with (case-insensitive), e.g. ``".arff.gz"``.

    Raises:
        InputError: the extension is not one of :data:`FORMATS`.
    """
    name = Path(path).name.lower()
    for ext in sorted(FORMATS, key=len, reverse=True):  # ".arff.gz" before ".gz"-less forms
        if name.endswith(ext):
            return ext
    suffix = "".join(Path(path).suffixes[-2:]) or "(none)"
    raise InputError(
        f"{path}: unsupported file type {suffix!r}; expected one of: {', '.join(FORMATS)}"
    )


def dataset_stem(path: str | Path) -> str:
    """File name without the format extension: ``emotions-train.arff.gz`` -> ``emotions-train``."""
    p = Path(path)
    ext = file_format(p)
    return p.name[: len(p.name) - len(ext)]


def dataset_name(path: str | Path) -> str:
    """Short dataset name: the stem without a ``-train`` / ``-test`` suffix (``emotions-train.arff`` -> ``emotions``)."""
    stem = dataset_stem(path)
    return _SPLIT_SUFFIX.sub("", stem) or stem


def read(
    path: str | Path,
    *,
    label_file: str | Path | None = None,
    label_columns: list[str] | str | None = None,
    label_prefix: str | None = None,
    label_list_column: str | None = None,
    label_sep: str = ";",
    meka_labels: int | None = None,
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

    Returns:
        A :class:`Dataset` with ``X`` float32 ``(N, F)`` (NPZ images: ``(N, 3, H, W)``), ``Y`` uint8
        ``(N, C)`` in {0, 1}, feature and label names, ``source`` = the path, and ``meta`` with
        at least ``{"format": <extension>}``. ``name`` is the file stem without ``-train`` / ``-test``.

    Raises:
        InputError: missing file, unknown extension, an option that does not apply to this format,
            or anything wrong with the content (see the format readers).
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
    }
    for option, value in given.items():
        if value is not None and option not in _OPTIONS[kind]:
            applies = ", ".join(e for e, k in _KIND.items() if option in _OPTIONS[k])
            raise InputError(f"{p}: option {option} does not apply to {ext} files (only to {applies})")

    if kind == "arff":
        from evalkit.data.arff_reader import read_arff

        ds = read_arff(p, label_file=label_file, meka_labels=meka_labels)
    elif kind in ("csv", "tsv", "parquet"):
        from evalkit.data.tabular import read_table

        ds = read_table(
            p,
            kind,
            label_columns=label_columns,
            label_prefix=label_prefix,
            label_list_column=label_list_column,
            label_sep=label_sep,
        )
    else:
        from evalkit.data.npz import read_npz

        ds = read_npz(p)
    ds.meta.setdefault("format", ext)
    return ds
