"""ARFF text -> attribute names, types and an encoded value matrix, with ``liac-arff`` doing the data.

ARFF (Weka): https://waikato.github.io/weka-wiki/formats_and_processing/arff_stable/ -- dense and
sparse ``{index value, ...}`` rows; in sparse rows an omitted value is 0, which for a nominal
attribute means its *first* declared value.

Names in ``@relation`` and ``@attribute`` lines are read here, as Weka's ``ArffLoader`` reads them
(a ``java.io.StreamTokenizer`` with ``'`` and ``"`` as quote characters), because liac-arff keeps
quotes' backslash escapes in the name (``'Swainson\\'s Thrush'`` stays ``Swainson\\'s Thrush``):

* unquoted: a run of characters other than white space, ``,``, ``%``, ``{`` and ``}``;
* quoted with ``'...'`` or ``"..."``: anything up to the matching unescaped quote -- spaces, tabs,
  ``%``, ``,``, ``{}``, the other quote character, any unicode character; a backslash escapes the
  next character: ``\\n`` ``\\t`` ``\\r`` ``\\b`` ``\\f`` are control characters, ``\\uXXXX`` a unicode
  code point, ``\\ooo`` an octal code, and any other character stands for itself (``\\'``, ``\\"``,
  ``\\\\``, ``\\%``).

Each header line is handed to liac-arff with its name replaced by a placeholder, so that liac-arff
parses only the types and the data; line numbers are kept.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from evalkit.data.common import check_alloc, check_unique, one_line, read_bytes
from evalkit.errors import InputError

_KEYWORD = re.compile(r"^(@\w+)(\s+|$)")
_PLACEHOLDER = "__evalkit_attr_"
_UNQUOTED_END = re.compile(r"[\s,%{}]")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


def parse_arff(path: Path) -> tuple[str, list[tuple[str, object]], np.ndarray, bool]:
    """Parse an ARFF file (``.arff`` or gzip-compressed ``.arff.gz``) into an encoded matrix.

    Returns:
        ``(relation, attributes, E, sparse)``: ``attributes`` as ``(name, "NUMERIC" | "REAL" |
        "INTEGER" | "STRING" | [nominal values])`` with names unquoted and unescaped (module docs);
        ``E`` float64 ``(N, A)`` (a ``scipy.sparse.csr_matrix`` for sparse data) with numeric values, nominal values as indices into the declared
        values (sparse omitted values: 0, i.e. the first declared value), string values as codes
        numbered in order of first appearance (sparse: omitted = 0, others from 1), and NaN for
        missing values (``?``); ``sparse`` True when every data row is in sparse ``{...}`` form.

    Raises:
        InputError: (exit code 2) unreadable file, empty file (``"... Invalid layout: empty file"``),
            invalid ARFF (the message carries the line number), duplicate attribute names, or a
            matrix above :data:`evalkit.data.common.MAX_BYTES`.
    """
    import arff  # liac-arff

    raw = read_bytes(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # Weka writes the platform encoding; latin-1 never fails
    lines = text.splitlines()
    if all(not s.strip() or s.strip().startswith("%") for s in lines):
        raise InputError(
            f"{path}: not a valid ARFF file: Invalid layout: empty file; expected @relation, @attribute and @data lines"
        )
    relation, names, sparse = _prepare(lines)

    line_no = 0

    def numbered():
        nonlocal line_no
        for line in lines:
            line_no += 1
            yield line

    decoder = arff.ArffDecoder()
    try:
        obj = decoder.decode(numbered(), encode_nominal=True, return_type=arff.LOD if sparse else arff.DENSE)
    except arff.ArffException as exc:  # its message carries the line (the public ``exc.line``)
        raise InputError(f"{path}: not a valid ARFF file: {one_line(exc)}") from None
    except Exception as exc:  # liac-arff lets some syntax errors escape as ValueError / IndexError
        raise InputError(
            f"{path}: not a valid ARFF file: {type(exc).__name__} at line {line_no}: {one_line(exc)}"
        ) from None

    attributes = [(_real_name(str(n), names), t) for n, t in obj["attributes"]]
    check_unique(path, [a[0] for a in attributes], "attribute")
    relation = relation if relation is not None else str(obj["relation"])
    return relation, attributes, _matrix(path, obj["data"], attributes, sparse), sparse


def unquote_name(text: str) -> tuple[str, str] | None:
    """Split ``text`` (what follows ``@attribute``) into the decoded name and the rest.

    ``"'Swainson\\'s Thrush' {0,1}"`` -> ``("Swainson's Thrush", "{0,1}")``. Returns None when no
    name can be read (an unterminated quote, or nothing after the name but for ``@relation``).
    """
    if not text:
        return None
    quote = text[0]
    if quote not in "'\"":
        m = _UNQUOTED_END.search(text)
        end = m.start() if m else len(text)
        return (text[:end], text[end:].strip()) if end else None
    out: list[str] = []
    i, n = 1, len(text)
    while i < n:
        c = text[i]
        if c == quote:
            rest = text[i + 1:]
            if rest and not rest[0].isspace():
                return None
            return "".join(out), rest.strip()
        if c == "\\" and i + 1 < n:
            i, c = _escape(text, i + 1)
        else:
            i += 1
        out.append(c)
    return None


def _escape(text: str, i: int) -> tuple[int, str]:
    """The character escaped at ``text[i]`` (just after a backslash) and the index after it."""
    c = text[i]
    if c in _ESCAPES:
        return i + 1, _ESCAPES[c]
    if c == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 1:i + 5]):
        return i + 5, chr(int(text[i + 1:i + 5], 16))
    m = re.match(r"[0-3][0-7]{0,2}|[4-7][0-7]?", text[i:])
    if m:
        return i + m.end(), chr(int(m.group(), 8))
    return i + 1, c


def _prepare(lines: list[str]) -> tuple[str | None, list[str], bool]:
    """Rewrite header lines for liac-arff (in place) and tell whether the data section is sparse.

    ``@relation`` / ``@attribute`` names are decoded here and replaced by placeholders; a tab after
    a keyword (legal ARFF, which liac-arff does not split at) becomes a space. Lines whose name cannot
    be read are left for liac-arff to report. Returns ``(relation or None, attribute names, sparse)``;
    ``sparse`` is True when the data section is non-empty and every data row is in ``{...}`` form.
    """
    relation: str | None = None
    names: list[str] = []
    in_data = seen = False
    for i, line in enumerate(lines):
        s = line.strip()
        if not in_data:
            m = _KEYWORD.match(s)
            if not m:
                continue
            keyword, rest = m.group(1).upper(), s[m.end():]
            parsed = unquote_name(rest)
            if keyword == "@DATA":
                in_data = True
            elif keyword == "@ATTRIBUTE" and parsed and parsed[1]:
                lines[i] = f"@attribute {_PLACEHOLDER}{len(names)} {parsed[1]}"
                names.append(parsed[0])
                continue
            elif keyword == "@RELATION" and parsed and not parsed[1]:
                relation = parsed[0]
                lines[i] = "@relation r"
                continue
            lines[i] = f"{m.group(1)} {rest}" if rest else m.group(1)
            continue
        if not s or s[0] == "%":
            continue
        if s[0] != "{":
            return relation, names, False
        seen = True
    return relation, names, seen


def _real_name(name: str, names: list[str]) -> str:
    if name.startswith(_PLACEHOLDER) and name[len(_PLACEHOLDER):].isdigit():
        return names[int(name[len(_PLACEHOLDER):])]
    return name


def _matrix(path: Path, data: list, attributes: list, sparse: bool) -> np.ndarray:
    """liac-arff's rows as float64 ``(N, A)``; string values become codes (see :func:`parse_arff`)."""
    n_attr = len(attributes)
    strings = [j for j, (_, t) in enumerate(attributes) if t == "STRING"]
    codes: dict[int, dict[str, int]] = {j: {} for j in strings}
    if sparse:  # a CSR matrix: memory grows with the non-zeros, not N x A
        import scipy.sparse as sp

        indptr = np.zeros(len(data) + 1, dtype=np.int64)
        cols: list = []
        vals: list = []
        for i, row in enumerate(data):
            for j in strings:
                if row.get(j) is not None:
                    row[j] = codes[j].setdefault(row[j], len(codes[j]) + 1)
            cols.extend(row.keys())
            vals.extend(np.nan if v is None else v for v in row.values())
            indptr[i + 1] = len(cols)
        E = sp.csr_matrix((np.asarray(vals, dtype=np.float64), np.asarray(cols, dtype=np.int64), indptr),
                          shape=(len(data), n_attr))
        E.sum_duplicates()
        return E
    check_alloc(path, "ARFF data matrix", (len(data), n_attr), 8)
    for row in data if strings else ():
        for j in strings:
            if row[j] is not None:
                row[j] = codes[j].setdefault(row[j], len(codes[j]))
    E = np.array(data, dtype=np.float64) if data else np.zeros((0, n_attr))  # None -> NaN
    return E.reshape(len(data), n_attr)
