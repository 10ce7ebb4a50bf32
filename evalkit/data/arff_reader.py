"""Multi-label ARFF files in the MULAN and MEKA conventions, parsed with ``liac-arff``.

ARFF: https://waikato.github.io/weka-wiki/formats_and_processing/arff_stable/ (dense and sparse
``{index value, ...}`` data sections; in sparse rows an omitted value is 0, which for a nominal
attribute means its *first* declared value).

Which attributes are labels:

1. ``label_file`` given: a MULAN XML label file.
2. ``meka_labels`` given: MEKA convention with that ``N``.
3. A MULAN XML file next to the ARFF file: ``emotions-train.arff`` -> ``emotions.xml``, then
   ``emotions-train.xml``. The XML wins over a MEKA ``-C N`` in the relation name, because
   MULAN files often carry a stale one (MULAN's ``medical`` says ``-C 45`` but its 45 labels are
   the *last* attributes, not the first); the disagreement is recorded in ``meta["notes"]``.
4. MEKA ``-C N`` in the relation name (``@relation 'Yeast: -C 14'``): the first ``N`` attributes
   are labels, or the last ``|N|`` when ``N`` is negative.

MULAN XML (http://mulan.sourceforge.net/format.html)::

    <labels xmlns="http://mulan.sourceforge.net/labels">
      <label name="amazed-suprised"/> ...            (may nest: hierarchical labels)
    </labels>

All ``<label>`` elements at any depth are labels. As in MULAN, the columns of ``Y`` follow the order
of the attributes in the ARFF file.

Attribute types: numeric / real / integer features are kept as is; nominal features whose values are
exactly {0, 1} become one 0/1 column; other nominal features are one-hot encoded into one column per
declared value, named ``attr=value`` (declared values, so train and test files agree). Label
attributes may be nominal {0, 1} or numeric 0/1. String attributes, date attributes and missing
values (``?``) are not supported.
"""

from __future__ import annotations

import gzip
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from evalkit.data.core import Dataset
from evalkit.errors import InputError

MULAN_NAMESPACE = "http://mulan.sourceforge.net/labels"

_MEKA_C = re.compile(r"(?:^|[\s:'\"])-C\s*(-?\d+)")
_SPLIT_SUFFIX = re.compile(r"[-_.](train|test|trn|tst)$", re.IGNORECASE)
_KEYWORD_WS = re.compile(r"^(@\w+)\s+")
_MAX_MSG = 200


def read_arff(path: Path, *, label_file: str | Path | None = None, meka_labels: int | None = None) -> Dataset:
    """Read a multi-label ARFF file (dense or sparse; optionally gzip-compressed ``.arff.gz``).

    Args:
        path: the ARFF file.
        label_file: MULAN label XML file; default: looked up next to ``path`` (see module docs).
        meka_labels: number of labels in MEKA's convention (first ``N`` attributes, or last ``|N|``
            if negative); overrides ``-C N`` in the relation name.

    Returns:
        Dataset with ``X`` float32 ``(N, F)``, ``Y`` uint8 ``(N, C)``, ``feature_names`` (one-hot
        nominal features as ``attr=value``), ``label_names`` in ARFF attribute order, and ``meta`` with
        ``format``, ``relation``, ``label_convention`` (``"mulan"`` / ``"meka"``), ``label_file``,
        ``sparse`` and ``notes``.

    Raises:
        InputError: malformed ARFF (with liac-arff's line number), string attributes, missing values,
            label values other than 0/1, MULAN XML missing / invalid / naming attributes that are not
            in the ARFF file, ``label_file`` together with ``meka_labels``, an impossible ``-C N``.
    """
    path = Path(path)
    if label_file is not None and meka_labels is not None:
        raise InputError(f"{path}: pass either label_file (MULAN) or meka_labels (MEKA), not both")
    meka_n = _as_int(meka_labels, "meka_labels") if meka_labels is not None else None
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
        label_idx = _meka_indices(path, meka_n, n_attr, "meka_labels")
        convention = "meka"
    elif xml is not None:
        label_idx = _mulan_indices(path, xml, names)
        convention = "mulan"
        if relation_n is not None:
            if not 0 < abs(relation_n) < n_attr or _meka_indices(path, relation_n, n_attr, "") != label_idx:
                notes.append(
                    f"ignored MEKA '-C {relation_n}' in @relation: it disagrees with the MULAN label file {xml.name}"
                )
    elif relation_n is not None:
        label_idx = _meka_indices(path, relation_n, n_attr, "@relation")
        convention = "meka"
    else:
        tried = ", ".join(c.name for c in label_file_candidates(path))
        raise InputError(
            f"{path}: cannot tell which attributes are labels: no MULAN label file ({tried}) next "
            f"to it and no MEKA '-C <n>' in @relation {_short(relation, 80)!r}; "
            "pass label_file (MULAN XML) or meka_labels (number of labels)"
        )

    label_set = set(label_idx)
    feature_idx = [j for j in range(n_attr) if j not in label_set]
    if not feature_idx:
        raise InputError(f"{path}: every attribute is a label; expected at least one feature attribute")

    Y = _labels(path, E, attributes, label_idx)
    X, feature_names = _features(path, E, attributes, feature_idx)
    meta = {
        "format": ".arff.gz" if path.name.lower().endswith(".gz") else ".arff",
        "relation": relation,
        "label_convention": convention,
        "label_file": str(xml) if xml is not None else None,
        "sparse": sparse,
        "notes": notes,
    }
    return Dataset(
        name=_name(path),
        X=X,
        Y=Y,
        feature_names=feature_names,
        label_names=[names[j] for j in label_idx],
        source=str(path),
        meta=meta,
    )


def parse_arff(path: Path) -> tuple[str, list[tuple[str, object]], np.ndarray, bool]:
    """Parse an ARFF file with liac-arff into an encoded matrix.

    Returns:
        ``(relation, attributes, E, sparse)``: ``attributes`` as liac-arff gives them (``(name,
        "NUMERIC" | "REAL" | "INTEGER" | "STRING" | [nominal values])``); ``E`` float64 ``(N, A)`` with
        numeric values, nominal values as indices into the declared values (sparse omitted values:
        0, i.e. the first declared value) and NaN for missing values (``?``); ``sparse`` True when
        every data row is in sparse ``{...}`` form.

    Raises:
        InputError: the file cannot be read or is not valid ARFF (message carries liac-arff's line).
    """
    import arff  # liac-arff

    try:
        raw = gzip.open(path).read() if path.name.lower().endswith(".gz") else path.read_bytes()
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # Weka writes the platform encoding; latin-1 never fails
    lines = text.splitlines()
    sparse = _prepare(lines)

    decoder = arff.ArffDecoder()
    try:
        obj = decoder.decode(lines, encode_nominal=True, return_type=arff.LOD if sparse else arff.DENSE)
    except arff.ArffException as exc:
        raise InputError(f"{path}: not a valid ARFF file: {_short(str(exc))}") from None
    except Exception as exc:  # liac-arff lets some syntax errors escape as ValueError / IndexError
        line = getattr(decoder, "_current_line", "?")
        raise InputError(
            f"{path}: not a valid ARFF file: {type(exc).__name__} at line {line}: {_short(str(exc))}"
        ) from None

    attributes = [(str(n), t) for n, t in obj["attributes"]]
    n_attr = len(attributes)
    for name, type_ in attributes:
        if type_ == "STRING":
            raise InputError(
                f"{path}: attribute {name!r} is a string attribute; only numeric and nominal attributes are supported"
            )
    data = obj["data"]
    if sparse:
        E = np.zeros((len(data), n_attr), dtype=np.float64)
        for i, row in enumerate(data):
            if row:
                E[i, list(row.keys())] = [np.nan if v is None else v for v in row.values()]
    else:
        E = np.array(data, dtype=np.float64) if data else np.zeros((0, n_attr))  # None -> NaN
        E = E.reshape(len(data), n_attr)
    return str(obj["relation"]), attributes, E, sparse


def label_file_candidates(path: Path) -> list[Path]:
    """Where a MULAN label XML file for ``path`` may be, in order of preference.

    ``emotions-train.arff`` -> ``[emotions.xml, emotions-train.xml]``; ``scene.arff`` -> ``[scene.xml]``.
    """
    name = path.name
    stem = name[: -len(".arff.gz")] if name.lower().endswith(".arff.gz") else path.stem
    stems = [_SPLIT_SUFFIX.sub("", stem), stem]
    out: list[Path] = []
    for s in stems:
        p = path.with_name(s + ".xml")
        if s and p not in out:
            out.append(p)
    return out


def find_label_file(path: Path) -> Path | None:
    """The first existing :func:`label_file_candidates` entry, or None."""
    for p in label_file_candidates(path):
        if p.is_file():
            return p
    return None


def read_mulan_labels(xml: Path) -> list[str]:
    """Label names from a MULAN label XML file, in document order (nested labels included).

    Raises:
        InputError: unreadable or invalid XML, root element not ``<labels>``, a ``<label>`` without a
            ``name``, no labels, or duplicate names.
    """
    try:
        root = ET.parse(xml).getroot()
    except ET.ParseError as exc:
        raise InputError(f"{xml}: not a valid MULAN label file (XML error: {exc})") from None
    except OSError as exc:
        raise InputError(f"{xml}: cannot read MULAN label file: {exc.strerror or exc}") from None

    def local(tag: object) -> str:
        return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""

    if local(root.tag) != "labels":
        raise InputError(f"{xml}: expected a MULAN <labels> root element, found <{local(root.tag)}>")
    names: list[str] = []
    for el in root.iter():
        if local(el.tag) == "label":
            name = el.get("name")
            if name is None:
                raise InputError(f"{xml}: a <label> element has no name attribute")
            names.append(name)
    if not names:
        raise InputError(f"{xml}: no <label name=...> elements; expected at least one label")
    seen: set[str] = set()
    dupes = [n for n in names if n in seen or seen.add(n)]
    if dupes:
        raise InputError(f"{xml}: duplicate label names {dupes[:5]}")
    return names


def meka_label_count(relation: str) -> int | None:
    """``N`` from MEKA's ``-C N`` in a relation name (``'Yeast: -C 14'`` -> 14), or None."""
    m = _MEKA_C.search(relation)
    return int(m.group(1)) if m else None


# ----------------------------------------------------------------------------------------------------


def _mulan_indices(path: Path, xml: Path, names: list[str]) -> list[int]:
    labels = read_mulan_labels(xml)
    position = {n: j for j, n in enumerate(names)}
    missing = [n for n in labels if n not in position]
    if missing:
        shown = ", ".join(repr(n) for n in missing[:5]) + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else "")
        raise InputError(
            f"{xml}: label(s) {shown} are not attributes of {path.name}; expected every <label name> "
            "to be an attribute of the ARFF file"
        )
    return sorted(position[n] for n in labels)


def _meka_indices(path: Path, n: int, n_attr: int, where: str) -> list[int]:
    if n == 0 or abs(n) >= n_attr:
        raise InputError(
            f"{path}: MEKA label count -C {n} (from {where}) is impossible for {n_attr} attributes; "
            f"expected 1..{n_attr - 1} (or negative for the last attributes)"
        )
    return list(range(n)) if n > 0 else list(range(n_attr + n, n_attr))


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


def _prepare(lines: list[str]) -> bool:
    """Normalise header keywords for liac-arff and tell whether the data section is sparse.

    liac-arff splits ``@attribute`` / ``@relation`` lines at the first *space*, so a tab after the
    keyword (legal ARFF) is replaced by a space in place. Returns True when the data section is
    non-empty and every data row is in sparse ``{...}`` form.
    """
    in_data = False
    seen = False
    for i, line in enumerate(lines):
        s = line.strip()
        if not in_data:
            if s[:5].upper() == "@DATA":
                in_data = True
            elif s.startswith("@"):
                lines[i] = _KEYWORD_WS.sub(r"\1 ", s, count=1)
            continue
        if not s or s[0] == "%":
            continue
        if s[0] != "{":
            return False
        seen = True
    return seen


def _name(path: Path) -> str:
    name = path.name
    stem = name[: -len(".arff.gz")] if name.lower().endswith(".arff.gz") else path.stem
    return _SPLIT_SUFFIX.sub("", stem) or stem


def _short(s: str, limit: int = _MAX_MSG) -> str:
    s = " ".join(s.split())
    return s if len(s) <= limit else s[: limit - 3] + "..."
