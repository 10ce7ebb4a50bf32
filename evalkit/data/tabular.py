"""Multi-label tables: CSV / TSV (pandas) and Parquet (pyarrow).

Which columns are labels (exactly one of):

* ``label_columns``: names, a list or a comma-separated string (``"a,b,c"``); values 0/1 (or booleans).
* ``label_prefix``: every column whose name starts with the prefix (``"label_"``); values 0/1.
* ``label_list_column``: one column whose cell holds the row's label names separated by ``label_sep``
  (``"cat;dog"``; empty / missing = no labels; a Parquet ``list<string>`` column is used as is). Becomes multi-hot ``Y`` whose columns are the label
  names in sorted order. Note the label set is whatever this file contains: a separate test file
  lacking a label gets different label names (``make_splits`` then refuses the pair).

Every other column is a feature:

* numbers -> as they are; booleans -> 0/1;
* Parquet / pandas ``category`` columns -> one-hot, one column per *declared* category, named
  ``column=value`` (declared categories keep separate train and test files consistent);
* any other non-numeric column (text, dates) -> :class:`InputError` naming the column. Free-text or
  ad-hoc string columns are not guessed at: encode them first, drop them, or make them labels.
  (One-hot encoding of undeclared CSV strings was rejected because a separate test file with a
  different value set would silently produce a different feature layout.)

* text / category columns with a different value in every row (IDs, more than 20 rows) are dropped
  with a note in ``meta["notes"]``; ``drop_columns`` drops feature columns by name.

Missing values (NaN / empty cells) in features or label columns, and repeated column names in the
header (which pandas would silently rename ``a.1``), are an :class:`InputError`.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from evalkit.data.common import (
    check_alloc,
    check_drop_columns,
    check_file_size,
    check_unique,
    dataset_name,
    id_note,
    is_id_like,
    name_list,
    one_line,
    read_bytes,
    show,
)
from evalkit.data.core import Dataset
from evalkit.errors import InputError, field_name


def read_table(
    path: Path,
    kind: str = "csv",
    *,
    label_columns: list[str] | str | None = None,
    label_prefix: str | None = None,
    label_list_column: str | None = None,
    label_sep: str = ";",
    drop_columns: list[str] | str | None = None,
) -> Dataset:
    """Read a CSV (``kind="csv"``), TSV (``"tsv"``) or Parquet (``"parquet"``) table.

    Args:
        path: the file (CSV may be gzip-compressed, detected from ``.gz``).
        kind: ``"csv"``, ``"tsv"`` or ``"parquet"``.
        label_columns / label_prefix / label_list_column / label_sep: see the module docs; exactly one
            of the first three.
        drop_columns: feature columns to leave out (names, or one comma-separated string).

    Returns:
        Dataset with ``X`` float32 ``(N, F)``, ``Y`` uint8 ``(N, C)``, column names as feature / label
        names, ``meta = {"format", "label_selection", "dropped", "notes"}``.

    Raises:
        InputError: (exit code 2) unreadable / empty file; a table above the allocation limit; none or
            several of the label options; label columns not found; repeated column / label names;
            label values not 0/1; non-numeric feature column; missing values; no feature column;
            unknown ``drop_columns`` names.
    """
    path = Path(path)
    chosen = [
        o
        for o, v in (
            (field_name("label_columns"), label_columns),
            (field_name("label_prefix"), label_prefix),
            (field_name("label_list_column"), label_list_column),
        )
        if v is not None
    ]
    if not chosen:
        raise InputError(
            f"{path}: which columns are the labels? pass {field_name('label_columns')}, {field_name('label_prefix')} "
            f"or {field_name('label_list_column')}"
        )
    if len(chosen) > 1:
        raise InputError(f"{path}: pass only one of {', '.join(chosen)}")

    df, columns = _load(path, kind, label_list_column)
    if df.shape[0] == 0:
        raise InputError(f"{path}: no data rows; expected a header row followed by samples")

    if label_list_column is not None:
        if label_list_column not in columns:
            raise InputError(
                f"{path}: label list column {label_list_column!r} not found; columns are: {show(columns)}"
            )
        Y, label_names = _multi_hot(path, df[label_list_column], label_list_column, label_sep)
        label_cols = [label_list_column]
        selection = f"label_list_column={label_list_column!r} sep={label_sep!r}"
    else:
        if label_columns is not None:
            wanted = name_list(label_columns, field_name("label_columns"))
            missing = [c for c in wanted if c not in columns]
            if missing:
                raise InputError(
                    f"{path}: label column(s) {', '.join(map(repr, missing))} not found; columns are: {show(columns)}"
                )
            label_cols = wanted
            selection = f"label_columns={label_cols}"
        else:
            if not label_prefix:
                raise InputError(f"{field_name('label_prefix')}: expected a non-empty prefix")
            label_cols = [c for c in columns if c.startswith(label_prefix)]
            if not label_cols:
                raise InputError(
                    f"{path}: no label columns: no column name starts with {label_prefix!r}; columns are: {show(columns)}"
                )
            selection = f"label_prefix={label_prefix!r}"
        Y = np.column_stack([_binary(path, df[c], c) for c in label_cols]).astype(np.uint8)
        label_names = label_cols

    check_unique(path, [c for c in columns if c in set(label_cols)], "label")
    check_unique(path, columns, "column")
    feature_cols = [c for c in columns if c not in set(label_cols)]
    drop = set(check_drop_columns(path, drop_columns, feature_cols, label_cols))
    notes: list[str] = []
    for c in feature_cols:
        if c not in drop and _is_id(df[c]):
            notes.append(id_note(c, len(df)))
            drop.add(c)
    if not feature_cols:
        raise InputError(f"{path}: every column is a label; expected at least one feature column")
    if drop and not set(feature_cols) - drop:
        raise InputError(f"{path}: no feature column left after dropping {sorted(drop)}")
    X, feature_names = _features(path, df, [c for c in feature_cols if c not in drop])
    ext = ".parquet" if kind == "parquet" else (".tsv" if kind == "tsv" else ".csv")
    meta = {"format": ext, "label_selection": selection, "dropped": [c for c in columns if c in drop], "notes": notes}
    return Dataset(
        name=dataset_name(path),
        X=X,
        Y=Y,
        feature_names=feature_names,
        label_names=list(label_names),
        source=str(path),
        meta=meta,
    )


def _load(path: Path, kind: str, label_list_column: str | None):
    """The table as a DataFrame and its column names as written in the file (repeats kept)."""
    import pandas as pd

    if kind == "parquet":
        import pyarrow.parquet as pq

        try:
            meta = pq.read_metadata(path)
            columns = [str(c) for c in pq.read_schema(path).names]
            check_alloc(path, "Parquet table", (meta.num_rows, max(meta.num_columns, 1)), 8)
            check_unique(path, columns, "column")
            df = pd.read_parquet(path)
        except InputError:
            raise
        except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for non-Parquet content
            raise InputError(f"{path}: not a readable Parquet file: {one_line(exc)}") from None
        df.columns = [str(c) for c in df.columns]
        return df, columns
    source = io.BytesIO(read_bytes(path)) if path.name.lower().endswith(".gz") else path
    if source is path:
        check_file_size(path)
    sep = "\t" if kind == "tsv" else ","
    dtype = {label_list_column: "string"} if label_list_column else None
    try:
        header = pd.read_csv(source, sep=sep, header=None, nrows=1, dtype=str, keep_default_na=False)
        if isinstance(source, io.BytesIO):
            source.seek(0)
        df = pd.read_csv(source, sep=sep, dtype=dtype, low_memory=False)
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: empty file; expected a header row followed by samples") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError, EOFError) as exc:
        raise InputError(f"{path}: not a readable {kind.upper()} file: {one_line(exc)}") from None
    df.columns = [str(c) for c in df.columns]
    columns = [str(c) for c in header.iloc[0].tolist()] if len(header) else list(df.columns)
    if len(columns) != df.shape[1] or len(set(columns)) == len(columns):
        columns = list(df.columns)  # no repeats (or an unusual header): pandas' names are the file's
    return df, columns


def _is_id(s) -> bool:
    """A text / category column with a different value in every row (see :func:`is_id_like`)."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
        return False
    return is_id_like(int(s.nunique(dropna=False)), len(s))


def _binary(path: Path, s, column: str) -> np.ndarray:
    """A label column as uint8 0/1; InputError naming the column and the first bad value."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(s.dtype):
        values = s.astype("Float64")
    elif pd.api.types.is_numeric_dtype(s.dtype):
        values = s
    else:  # text such as "1" / "yes": numbers pass, anything else is reported below
        values = pd.to_numeric(s, errors="coerce")
    arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = (arr != 0) & (arr != 1)
    if bad.any():
        i = int(np.argmax(bad))
        found = "a missing value" if pd.isna(s.iloc[i]) else repr(_value(s.iloc[i]))
        raise InputError(f"{path}: label column {column!r} must hold 0 or 1, found {found} (data row {i + 1})")
    return arr.astype(np.uint8)


def _multi_hot(path: Path, s, column: str, sep: str) -> tuple[np.ndarray, list[str]]:
    if not sep:
        raise InputError(f"{field_name('label_sep')}: expected a non-empty separator")
    import pandas as pd

    rows: list[list[str]] = []
    for cell in s.tolist():
        if isinstance(cell, (list, tuple, np.ndarray)):  # Parquet list<string> column
            rows.append([str(t).strip() for t in cell if str(t).strip()])
        elif pd.isna(cell):
            rows.append([])
        else:
            rows.append([t.strip() for t in str(cell).split(sep) if t.strip()])
    names = sorted({t for r in rows for t in r})
    if not names:
        raise InputError(
            f"{path}: no label columns: label list column {column!r} holds no labels "
            f"(expected label names separated by {sep!r})"
        )
    index = {n: k for k, n in enumerate(names)}
    Y = np.zeros((len(rows), len(names)), dtype=np.uint8)
    for i, r in enumerate(rows):
        for t in r:
            Y[i, index[t]] = 1
    return Y, names


def _features(path: Path, df, feature_cols: list[str]) -> tuple[np.ndarray, list[str]]:
    import pandas as pd

    blocks: list[np.ndarray] = []
    names: list[str] = []
    for c in feature_cols:
        s = df[c]
        if isinstance(s.dtype, pd.CategoricalDtype):
            if s.isna().any():
                i = int(np.argmax(s.isna().to_numpy()))
                raise InputError(f"{path}: feature column {c!r} has missing values (first at data row {i + 1})")
            cats = list(s.cat.categories)
            codes = s.cat.codes.to_numpy()
            blocks.append((codes[:, None] == np.arange(len(cats))[None, :]).astype(np.float32))
            names.extend(f"{c}={v}" for v in cats)
            continue
        if pd.api.types.is_bool_dtype(s.dtype):
            s = s.astype("Float64")  # 0/1, missing stays missing (reported below)
        elif not pd.api.types.is_numeric_dtype(s.dtype):
            example = s.dropna().iloc[0] if s.notna().any() else None
            if example is None:
                raise InputError(f"{path}: feature column {c!r} is empty (all values missing)")
            raise InputError(
                f"{path}: feature column {c!r} is not numeric (e.g. {_value(example)!r}); expected numbers -- "
                "encode it, drop it, or select it as a label column"
            )
        arr = s.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(arr)
        if bad.any():
            i = int(np.argmax(bad))
            what = "missing/NaN" if np.isnan(arr[i]) else "infinite"
            raise InputError(
                f"{path}: feature column {c!r} has {int(bad.sum())} {what} value(s) (first at data row {i + 1}); "
                "expected finite numbers"
            )
        blocks.append(arr.astype(np.float32)[:, None])
        names.append(c)
    X = np.concatenate(blocks, axis=1)
    if not np.isfinite(X).all():
        k = int(np.nonzero(~np.isfinite(X).all(axis=0))[0][0])
        raise InputError(f"{path}: feature {names[k]!r} has values too large for float32")
    return X, names


def _value(v: object) -> object:
    """numpy / pandas scalars as plain Python values, for readable messages."""
    return v.item() if hasattr(v, "item") else v
