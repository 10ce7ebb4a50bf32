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
* text columns (CSV strings, Parquet strings) -> one-hot like ARFF nominal attributes, one column per
  distinct value in sorted order, named ``column=value``, at most :data:`MAX_TEXT_VALUES` values (more
  is an :class:`InputError` naming the file and column); ``meta["one_hot"]`` records ``{column:
  values}``. A separate test file (or ``evaluate --model`` data) is laid out like the training data
  by :func:`align_one_hot`: a value the training data lacks is encoded as all zeros, with a note. A
  column mixing numbers and text is an :class:`InputError` (a typo in a numeric column is not
  turned into categories).

* text / category columns with a different value in every row (IDs, more than 20 rows) are dropped
  with a note in ``meta["notes"]``; ``drop_columns`` drops feature columns by name.

Missing values (NaN / empty cells) in features or label columns, and repeated column names in the
header (which pandas would silently rename ``a.1``), are an :class:`InputError`.
"""

from __future__ import annotations

import io
import warnings
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

#: most distinct values a text feature column may have to be one-hot encoded (one column each)
MAX_TEXT_VALUES = 1000


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
    one_hot: dict[str, list[str]] = {}
    X, feature_names = _features(path, df, [c for c in feature_cols if c not in drop], one_hot)
    ext = ".parquet" if kind == "parquet" else (".tsv" if kind == "tsv" else ".csv")
    meta = {"format": ext, "label_selection": selection, "dropped": [c for c in columns if c in drop], "notes": notes}
    if one_hot:
        meta["one_hot"] = one_hot
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
        with warnings.catch_warnings():  # more fields in a row than names in the header: refused, not shifted
            warnings.simplefilter("error", pd.errors.ParserWarning)
            df = pd.read_csv(source, sep=sep, dtype=dtype, low_memory=False, index_col=False)
    except pd.errors.ParserWarning:
        raise InputError(f"{path}: not a readable {kind.upper()} file: its data rows hold more fields than the header's "
                         f"{len(header.columns)} names; expected one value per header column") from None
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
    if not is_id_like(int(s.nunique(dropna=False)), len(s)):
        return False
    # numbers with a typo are not an ID (the mixed-type error follows); parsed only for ID-like columns
    return pd.to_numeric(s.map(str), errors="coerce").notna().mean() < 0.5


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


def _features(path: Path, df, feature_cols: list[str], one_hot: dict) -> tuple[np.ndarray, list[str]]:
    """The feature matrix float32 ``(N, F)`` and its names; text columns one-hot (their values go to ``one_hot``)."""
    import pandas as pd

    blocks: list[np.ndarray] = []
    names: list[str] = []
    for c in feature_cols:
        s = df[c]
        if not isinstance(s.dtype, pd.CategoricalDtype) and not pd.api.types.is_numeric_dtype(s.dtype):
            numbers = pd.to_numeric(s.map(str, na_action="ignore"), errors="coerce")
            if numbers.notna().sum() == s.notna().sum():  # numbers stored as text (a Parquet string column)
                s = numbers
        if isinstance(s.dtype, pd.CategoricalDtype) or not (pd.api.types.is_numeric_dtype(s.dtype)
                                                            or pd.api.types.is_bool_dtype(s.dtype)):
            if s.isna().any():
                i = int(np.argmax(s.isna().to_numpy()))
                what = "is empty (all values missing)" if s.isna().all() else f"has missing values (first at data row {i + 1})"
                raise InputError(f"{path}: feature column {c!r} {what}")
            if isinstance(s.dtype, pd.CategoricalDtype):
                cats, codes = [str(v) for v in s.cat.categories], s.cat.codes.to_numpy()
            else:
                cats, codes = _text_codes(path, s, c, len(names) + len(feature_cols))
                one_hot[c] = cats
            blocks.append((codes[:, None] == np.arange(len(cats))[None, :]).astype(np.float32))
            names.extend(f"{c}={v}" for v in cats)
            continue
        if pd.api.types.is_bool_dtype(s.dtype):
            s = s.astype("Float64")  # 0/1, missing stays missing (reported below)
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


def _text_codes(path: Path, s, column: str, width: int) -> tuple[list[str], np.ndarray]:
    """A text column's distinct values (sorted) and each row's index into them.

    Raises:
        InputError: more than :data:`MAX_TEXT_VALUES` values; numbers mixed with text (``"n/a"`` in a
            numeric column); a one-hot matrix above the allocation limit (``width``: the columns besides).
    """
    import pandas as pd

    text = s.map(str)
    numeric = pd.to_numeric(text, errors="coerce").notna().to_numpy()
    if numeric.any():  # the example is the odd one out: text among numbers, or a number among text
        i = int(np.argmin(numeric)) if 2 * numeric.sum() >= len(numeric) else int(np.argmax(numeric))
        raise InputError(f"{path}: feature column {column!r} mixes numbers and text (e.g. {_value(s.iloc[i])!r} at "
                         f"data row {i + 1}); expected numbers, or text values to one-hot encode")
    codes, values = pd.factorize(text, sort=True)
    if len(values) > MAX_TEXT_VALUES:
        raise InputError(f"{path}: feature column {column!r} has {len(values)} distinct text values, more than "
                         f"{MAX_TEXT_VALUES} to one-hot encode; drop it (--drop-columns {column}) or encode it first")
    check_alloc(path, "feature matrix (after one-hot encoding)", (len(s), width + len(values)), 4)
    return [str(v) for v in values], np.asarray(codes)


def align_one_hot(test: Dataset, one_hot: dict[str, list[str]], training: str = "the training data") -> Dataset:
    """``test`` with its one-hot text columns laid out as ``one_hot`` (the training data's
    ``meta["one_hot"]``: ``{column: values}``): a training value the test lacks is a zero column, a
    test value the training data lacks is encoded as all zeros (a note in ``meta["notes"]``).
    ``test`` itself when the encodings already agree.

    Raises:
        InputError: the text columns differ (names the test file and both column sets).
    """
    mine = test.meta.get("one_hot") or {}
    if mine == one_hot:
        return test
    if set(mine) != set(one_hot):
        raise InputError(f"{test.source or test.name}: text feature columns {sorted(mine)} differ from those of "
                         f"{training} {sorted(one_hot)}; expected the same feature columns")
    index = {n: k for k, n in enumerate(test.feature_names)}
    group = {f"{c}={v}": c for c, values in mine.items() for v in values}
    columns, names, notes, seen = [], [], list(test.meta.get("notes", [])), set()
    zeros = np.zeros(test.n_samples, dtype=np.float32)
    for name in test.feature_names:
        c = group.get(name)
        if c is None:
            columns.append(test.X[:, index[name]])
            names.append(name)
        elif c not in seen:
            seen.add(c)
            columns += [test.X[:, index[f"{c}={v}"]] if v in mine[c] else zeros for v in one_hot[c]]
            names += [f"{c}={v}" for v in one_hot[c]]
            if unseen := [v for v in mine[c] if v not in set(one_hot[c])]:
                notes.append(f"{test.source or test.name}: column {c!r} has {len(unseen)} value(s) {training} lacks "
                             f"({', '.join(map(repr, unseen[:5]))}{', ...' if len(unseen) > 5 else ''}): encoded as all zeros")
    meta = dict(test.meta) | {"one_hot": dict(one_hot), "notes": notes}
    X = np.column_stack(columns).astype(np.float32) if columns else np.zeros((test.n_samples, 0), np.float32)
    return Dataset(test.name, X, test.Y, names, test.label_names, test.source, meta)


def _value(v: object) -> object:
    """numpy / pandas scalars as plain Python values, for readable messages."""
    return v.item() if hasattr(v, "item") else v
