"""Multi-label ARFF files in the MULAN and MEKA conventions, parsed with ``liac-arff``.

ARFF (Weka): https://waikato.github.io/weka-wiki/formats_and_processing/arff_stable/ (dense and sparse
``{index value, ...}`` data sections; in sparse rows an omitted value is 0, which for a nominal
attribute means its *first* declared value). Quoted and escaped names follow Weka's reader:
:mod:`evalkit.data.arff_parse`.

Which attributes are labels (:mod:`evalkit.data.mulan`):

1. ``label_file`` given: a MULAN XML label file.
2. ``meka_labels`` given: MEKA convention with that ``N``.
3. A MULAN XML file next to the ARFF file: ``emotions-train.arff`` -> ``emotions.xml``, then
   ``emotions-train.xml`` (``-train-sparse`` / ``-test-sparse`` are stripped too). The XML wins over
   a MEKA ``-C N`` in the relation name, because MULAN files often carry a stale one (MULAN's
   ``medical`` says ``-C 45`` but its 45 labels are the *last* attributes, not the first); the
   disagreement is recorded in ``meta["notes"]``.
4. MEKA ``-C N`` in the relation name (``@relation 'Yeast: -C 14'``): the first ``N`` attributes
   are labels, or the last ``|N|`` when ``N`` is negative.

As in MULAN, the columns of ``Y`` follow the order of the attributes in the ARFF file.

Attribute types: numeric / real / integer features are kept as is; nominal features whose values are
exactly {0, 1} become one 0/1 column; other nominal features are one-hot encoded into one column per
declared value, named ``attr=value`` (declared values, so train and test files agree). Nominal and
string features with a different value in every row (IDs such as a protein id; more than 20 rows)
are dropped with a note in ``meta["notes"]``; ``drop_columns`` drops features by name. Label
attributes may be nominal {0, 1} or numeric 0/1. Other string attributes, date attributes and
missing values (``?``) are not supported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evalkit.data.arff_parse import parse_arff
from evalkit.data.common import check_alloc, check_drop_columns, dataset_name, id_note, is_id_like, one_line
from evalkit.data.core import Dataset
from evalkit.data.sparse import as_csr, is_sparse
from evalkit.data.mulan import (
    MULAN_NAMESPACE,
    find_label_file,
    label_file_candidates,
    meka_indices,
    meka_label_count,
    mulan_indices,
    read_mulan_labels,
)
from evalkit.errors import InputError, field_name

__all__ = [
    "MULAN_NAMESPACE",
    "find_label_file",
    "label_file_candidates",
    "meka_label_count",
    "parse_arff",
    "read_arff",
    "read_mulan_labels",
]


def read_arff(
    path: Path,
    *,
    label_file: str | Path | None = None,
    meka_labels: int | None = None,
    drop_columns: list[str] | str | None = None,
) -> Dataset:
    """Read a multi-label ARFF file (dense or sparse; optionally gzip-compressed ``.arff.gz``).

    Args:
        path: the ARFF file.
        label_file: MULAN label XML file; default: looked up next to ``path`` (see module docs).
        meka_labels: number of labels in MEKA's convention (first ``N`` attributes, or last ``|N|`` if
            negative); overrides ``-C N`` in the relation name.
        drop_columns: feature attributes to leave out (names, or one comma-separated string).

    Returns:
        Dataset with ``X`` float32 ``(N, F)`` (sparse ARFF with numeric / {0,1} features: a
        ``scipy.sparse.csr_matrix``, never densified), ``Y`` uint8 ``(N, C)``, ``feature_names`` (one-hot
        nominal features as ``attr=value``), ``label_names`` in ARFF attribute order, and ``meta`` with
        ``format``, ``relation``, ``label_convention`` (``"mulan"`` / ``"meka"``), ``label_file``,
        ``sparse``, ``dropped`` (attribute names left out) and ``notes`` (list of one-line strings).

    Raises:
        InputError: (exit code 2) empty or malformed ARFF (with the line number), string attributes,
            missing values, label values other than 0/1, duplicate attribute or label names, MULAN
            XML missing / invalid / naming attributes that are not in the ARFF file, ``label_file``
            together with ``meka_labels``, an impossible ``-C N``, unknown ``drop_columns`` names, a
            one-hot matrix above the allocation limit.
    """
    path = Path(path)
    if label_file is not None and meka_labels is not None:
        raise InputError(
            f"{path}: pass either {field_name('label_file')} (MULAN) or {field_name('meka_labels')} (MEKA), not both"
        )
    meka_n = _as_int(meka_labels, field_name("meka_labels")) if meka_labels is not None else None
    xml = None
    if meka_n is None:
        xml = Path(label_file) if label_file is not None else find_label_file(path)
        if xml is not None and not xml.is_file():
            raise InputError(f"{xml}: MULAN label file not found")

    relation, attributes, E, sparse = parse_arff(path)
    names = [a[0] for a in attributes]
    n_attr = len(names)
    notes: list[str] = []
    relation_n = meka_label_count(relation)

    if meka_n is not None:
        label_idx = meka_indices(path, meka_n, n_attr, field_name("meka_labels"))
        convention = "meka"
    elif xml is not None:
        label_idx = mulan_indices(path, xml, names)
        convention = "mulan"
        if relation_n is not None:
            if not 0 < abs(relation_n) < n_attr or meka_indices(path, relation_n, n_attr, "") != label_idx:
                notes.append(
                    f"ignored MEKA '-C {relation_n}' in @relation: it disagrees with the MULAN label file {xml.name}"
                )
    elif relation_n is not None:
        label_idx = meka_indices(path, relation_n, n_attr, "@relation")
        convention = "meka"
    else:
        tried = ", ".join(c.name for c in label_file_candidates(path))
        raise InputError(
            f"{path}: cannot tell which attributes are labels: no MULAN label file ({tried}) next "
            f"to it and no MEKA '-C <n>' in @relation {one_line(relation, 80)!r}; "
            f"pass {field_name('label_file')} XML (MULAN label file) or {field_name('meka_labels')} N (the first N "
            "attributes are labels)"
        )

    label_set = set(label_idx)
    candidates = [j for j in range(n_attr) if j not in label_set]
    drop = set(check_drop_columns(path, drop_columns, [names[j] for j in candidates],
                                  [names[j] for j in label_idx], "attribute"))
    feature_idx = []
    for j in candidates:
        if names[j] in drop:
            continue
        type_ = attributes[j][1]
        if (isinstance(type_, list) or type_ == "STRING") and is_id_like(len(np.unique(_column(E, j))), E.shape[0]):
            notes.append(id_note(names[j], E.shape[0]))
            drop.add(names[j])
            continue
        if type_ == "STRING":
            raise InputError(
                f"{path}: attribute {names[j]!r} is a string attribute; only numeric and nominal attributes are supported"
            )
        feature_idx.append(j)
    if not feature_idx:
        raise InputError(f"{path}: every attribute is a label; expected at least one feature attribute"
                         if not drop else f"{path}: no feature attribute left after dropping {sorted(drop)}")

    if is_sparse(E):
        Y = _labels(path, E[:, label_idx].toarray(), [attributes[j] for j in label_idx], range(len(label_idx)))
        if all(not isinstance(t, list) or t == ["0", "1"] for t in (attributes[j][1] for j in feature_idx)):
            X, feature_names = _sparse_features(path, E[:, feature_idx], [attributes[j][0] for j in feature_idx])
        else:  # one-hot / reversed nominal features: the dense path
            check_alloc(path, "ARFF data matrix", (E.shape[0], len(feature_idx)), 8)
            X, feature_names = _features(path, E[:, feature_idx].toarray(), [attributes[j] for j in feature_idx],
                                         list(range(len(feature_idx))))
    else:
        Y = _labels(path, E, attributes, label_idx)
        X, feature_names = _features(path, E, attributes, feature_idx)
    meta = {
        "format": ".arff.gz" if path.name.lower().endswith(".gz") else ".arff",
        "relation": relation,
        "label_convention": convention,
        "label_file": str(xml) if xml is not None else None,
        "sparse": sparse,
        "dropped": [n for n in names if n in drop],
        "notes": notes,
    }
    return Dataset(
        name=dataset_name(path),
        X=X,
        Y=Y,
        feature_names=feature_names,
        label_names=[names[j] for j in label_idx],
        source=str(path),
        meta=meta,
    )


# ----------------------------------------------------------------------------------------------------


def _column(E, j: int) -> np.ndarray:
    return E[:, [j]].toarray().ravel() if is_sparse(E) else E[:, j]


def _sparse_features(path: Path, F, names: list[str]):
    """Sparse numeric / {0,1} features as CSR float32 (missing values are refused as in the dense path)."""
    F = as_csr(F)
    bad = ~np.isfinite(F.data)
    if bad.any():
        k = int(F.indices[np.argmax(bad)])
        raise InputError(
            f"{path}: attribute {names[k]!r} has missing values '?' or NaN; missing feature values are not supported")
    X = as_csr(F.astype(np.float32))
    if not np.isfinite(X.data).all():
        raise InputError(f"{path}: a feature is too large for float32 or infinite")
    return X, list(names)


def _as_int(value: object, option: str) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise InputError(f"{option}: expected an integer number of labels, got {value!r}") from None


def _as_number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return np.nan


def _labels(path: Path, E: np.ndarray, attributes: list, label_idx: list[int]) -> np.ndarray:
    Y = np.empty((E.shape[0], len(label_idx)), dtype=np.uint8)
    for c, j in enumerate(label_idx):
        name, type_ = attributes[j]
        col = E[:, j]
        missing = np.isnan(col)
        if missing.any():
            i = int(np.argmax(missing))
            raise InputError(
                f"{path}: label attribute {name!r} has a missing value '?' (data row {i + 1}); expected 0 or 1"
            )
        if isinstance(type_, list):
            lut = np.array([_as_number(v) for v in type_], dtype=np.float64)
            values = lut[col.astype(np.intp)]
            raw = lambda i: type_[int(col[i])]  # noqa: E731
        else:
            values = col
            raw = lambda i: f"{col[i]:g}"  # noqa: E731
        bad = (values != 0) & (values != 1)  # NaN compares unequal -> bad
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError(
                f"{path}: label attribute {name!r} must be 0 or 1, found {raw(i)!r} (data row {i + 1})"
            )
        Y[:, c] = values
    return Y


def _features(path: Path, E: np.ndarray, attributes: list, feature_idx: list[int]) -> tuple[np.ndarray, list[str]]:
    F = E[:, feature_idx]
    missing = np.isnan(F)
    if missing.any():
        rows, cols = np.nonzero(missing)
        name = attributes[feature_idx[int(cols[0])]][0]
        raise InputError(
            f"{path}: attribute {name!r} has missing values '?' or NaN ({int(missing[:, cols[0]].sum())} rows, "
            f"first at data row {int(rows[0]) + 1}); missing feature values are not supported"
        )
    width = sum(len(t) if isinstance(t, list) and sorted(t) != ["0", "1"] else 1
                for t in (attributes[j][1] for j in feature_idx))
    check_alloc(path, "feature matrix (after one-hot encoding)", (E.shape[0], width), 8)
    columns: list[np.ndarray] = []
    names: list[str] = []
    plain: list[int] = []  # positions in F copied as they are (one block, fast for wide sparse data)

    def flush() -> None:
        if plain:
            columns.append(F[:, plain])
            plain.clear()

    for k, j in enumerate(feature_idx):
        name, type_ = attributes[j]
        if not isinstance(type_, list):
            plain.append(k)
            names.append(name)
        elif sorted(type_) == ["0", "1"]:
            if type_ == ["0", "1"]:  # index == value
                plain.append(k)
            else:
                flush()
                columns.append((1.0 - F[:, k])[:, None])
            names.append(name)
        else:
            flush()
            codes = F[:, k].astype(np.intp)
            columns.append((codes[:, None] == np.arange(len(type_))[None, :]).astype(np.float64))
            names.extend(f"{name}={v}" for v in type_)
    flush()
    X = np.concatenate(columns, axis=1).astype(np.float32) if columns else np.zeros((E.shape[0], 0), np.float32)
    if not np.isfinite(X).all():
        k = int(np.nonzero(~np.isfinite(X).all(axis=0))[0][0])
        raise InputError(f"{path}: feature {names[k]!r} is too large for float32 or infinite")
    return X, names
