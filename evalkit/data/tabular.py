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

Missing values (NaN / empty cells) in features or label columns are an :class:`InputError`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evalkit.data.core import Dataset
from evalkit.errors import InputError

_SHOW = 8  # columns listed in error messages


def read_table(
    path: Path,
    kind: str = "csv",
    *,
    label_columns: list[str] | str | None = None,
    label_prefix: str | None = None,
    label_list_column: str | None = None,
    label_sep: str = ";",
) -> Dataset:
    """Read a CSV (``kind="csv"``), TSV (``"tsv"``) or Parquet (``"parquet"``) table.

    Args:
        path: the file (CSV may be gzip-compressed, detected from ``.gz``).
        kind: ``"csv"``, ``"tsv"`` or ``"parquet"``.
        label_columns / label_prefix / label_list_column / label_sep: see the module docs; exactly one
            of the first three.

    Returns:
        Dataset with ``X`` float32 ``(N, F)``, ``Y`` uint8 ``(N, C)``, column names as feature / label
        names, ``meta = {"format", "label_selection"}``.

    Raises:
        InputError: unreadable / empty file; none or several of the label options; label columns not
            found; label values not 0/1; non-numeric feature column; missing values; no feature column.
    """
    path = Path(path)
    chosen = [
        o
        for o, v in (
            ("label_columns", label_columns),
            ("label_prefix", label_prefix),
            ("label_list_column", label_list_column),
        )
        if v is not None
    ]
    if not chosen:
        raise InputError(
            f"{path}: which columns are the labels? pass label_columns, label_prefix or label_list_column"
        )
    if len(chosen) > 1:
        raise InputError(f"{path}: pass only one of {', '.join(chosen)}")

    df = _load(path, kind, label_list_column)
    df.columns = [str(c) for c in df.columns]
    columns = list(df.columns)
    if df.shape[0] == 0:
        raise InputError(f"{path}: no data rows; expected a header row followed by samples")

    if label_list_column is not None:
        if label_list_column not in columns:
            raise InputError(
                f"{path}: label list column {label_list_column!r} not found; columns are: {_show(columns)}"
            )
        Y, label_names = _multi_hot(path, df[label_list_column], label_list_column, label_sep)
        label_cols = [label_list_column]
        selection = f"label_list_column={label_list_column!r} sep={label_sep!r}"
    else:
        if label_columns is not None:
            wanted = _column_list(label_columns)
            if not wanted:
                raise InputError(f"label_columns: expected at least one column name, got {label_columns!r}")
            missing = [c for c in wanted if c not in columns]
            if missing:
                raise InputError(
                    f"{path}: label column(s) {', '.join(map(repr, missing))} not found; columns are: {_show(columns)}"
                )
            label_cols = list(dict.fromkeys(wanted))
            selection = f"label_columns={label_cols}"
        else:
            if not label_prefix:
                raise InputError("label_prefix: expected a non-empty prefix")
            label_cols = [c for c in columns if c.startswith(label_prefix)]
            if not label_cols:
                raise InputError(
                    f"{path}: no label columns: no column name starts with {label_prefix!r}; columns are: {_show(columns)}"
                )
            selection = f"label_prefix={label_prefix!r}"
        Y = np.column_stack([_binary(path, df[c], c) for c in label_cols]).astype(np.uint8)
        label_names = label_cols

    feature_cols = [c for c in columns if c not in set(label_cols)]
    if not feature_cols:
        raise InputError(f"{path}: every column is a label; expected at least one feature column")
    X, feature_names = _features(path, df, feature_cols)
    ext = ".parquet" if kind == "parquet" else (".tsv" if kind == "tsv" else ".csv")
    return Dataset(
        name=_name(path),
        X=X,
        Y=Y,
        feature_names=feature_names,
        label_names=list(label_names),
        source=str(path),
        meta={"format": ext, "label_selection": selection},
    )


def _load(path: Path, kind: str, label_list_column: str | None):
    import pandas as pd

    if kind == "parquet":
        try:
            return pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for non-Parquet content
            raise InputError(f"{path}: not a readable Parquet file: {_one_line(exc)}") from None
    dtype = {label_list_column: "string"} if label_list_column else None
    try:
        return pd.read_csv(path, sep="\t" if kind == "tsv" else ",", dtype=dtype, low_memory=False)
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: empty file; expected a header row followed by samples") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError, EOFError) as exc:
        raise InputError(f"{path}: not a readable {kind.upper()} file: {_one_line(exc)}") from None


def _column_list(value: list[str] | tuple[str, ...] | str) -> list[str]:
    if isinstance(value, str):
        return [c.strip() for c in value.split(",") if c.strip()]
    return [str(c) for c in value]


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
        raise InputError("label_sep: expected a non-empty separator")
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


def _show(columns: list[str]) -> str:
    shown = ", ".join(columns[:_SHOW])
    return shown + (f", ... ({len(columns)} columns)" if len(columns) > _SHOW else "")


def _one_line(exc: BaseException) -> str:
    s = " ".join(str(exc).split())
    return s if len(s) <= 200 else s[:197] + "..."


def _name(path: Path) -> str:
    from evalkit.data.readers import dataset_name

    return dataset_name(path)
