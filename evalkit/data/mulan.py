"""Which ARFF attributes are labels: MULAN label XML files and MEKA's ``-C N``.

MULAN XML (Tsoumakas et al., JMLR 12, 2011; http://mulan.sourceforge.net/format.html)::

    <labels xmlns="http://mulan.sourceforge.net/labels">
      <label name="amazed-suprised"/> ...            (may nest: hierarchical labels)
    </labels>

All ``<label>`` elements at any depth are labels; names are XML attribute values, so ``&apos;``,
``&amp;``, ``&#9;`` ... are decoded by the XML parser and compared with the decoded ARFF names.

MEKA (Read et al., JMLR 17, 2016; http://waikato.github.io/meka/datasets/): ``-C N`` in the relation
name (``@relation 'Yeast: -C 14'``): the first ``N`` attributes are labels, the last ``|N|`` when
``N`` is negative.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from evalkit.data.common import check_unique
from evalkit.errors import InputError
from evalkit.inputs import find_label_file, label_file_candidates  # noqa: F401 (light: the CLI's output check uses them)

MULAN_NAMESPACE = "http://mulan.sourceforge.net/labels"

_MEKA_C = re.compile(r"(?:^|[\s:'\"])-C\s*(-?\d+)")


def read_mulan_labels(xml: Path) -> list[str]:
    """Label names from a MULAN label XML file, in document order (nested labels included).

    Raises:
        InputError: (exit code 2) unreadable or invalid XML, root element not ``<labels>``, a
            ``<label>`` without a ``name``, no labels, or duplicate names.
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
    check_unique(xml, names, "label")
    return names


def meka_label_count(relation: str) -> int | None:
    """``N`` from MEKA's ``-C N`` in a relation name (``'Yeast: -C 14'`` -> 14), or None."""
    m = _MEKA_C.search(relation)
    return int(m.group(1)) if m else None


def mulan_indices(path: Path, xml: Path, names: list[str]) -> list[int]:
    """Positions (ascending, i.e. ARFF order) of the labels named in ``xml`` among ``names``.

    Raises:
        InputError: (exit code 2) a label that is not an attribute; the message lists those labels,
            the closest attribute names and the attributes found.
    """
    import difflib

    labels = read_mulan_labels(xml)
    position = {n: j for j, n in enumerate(names)}
    missing = [n for n in labels if n not in position]
    if missing:
        shown = ", ".join(repr(n) for n in missing[:5]) + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else "")
        unused = [n for n in names if n not in set(labels)]
        close = [c for n in missing[:5] for c in difflib.get_close_matches(n, unused, n=1, cutoff=0.6)]
        hint = f" (closest: {', '.join(map(repr, dict.fromkeys(close)))})" if close else ""
        found = ", ".join(repr(n) for n in unused[:10]) + (f", ... ({len(unused)} in all)" if len(unused) > 10 else "")
        raise InputError(
            f"{xml}: label(s) {shown} are not attributes of {path.name}; expected every <label name> "
            f"to be an attribute of the ARFF file{hint}; its other attributes are: {found or 'none'}"
        )
    return sorted(position[n] for n in labels)


def meka_indices(path: Path, n: int, n_attr: int, where: str) -> list[int]:
    """Positions of the labels under MEKA's ``-C n`` for ``n_attr`` attributes.

    Raises:
        InputError: ``n`` is 0 or ``|n| >= n_attr`` (no feature left) (exit code 2).
    """
    if n == 0 or abs(n) >= n_attr:
        raise InputError(
            f"{path}: MEKA label count -C {n} (from {where}) is impossible for {n_attr} attributes; "
            f"expected 1..{n_attr - 1} (or negative for the last attributes)"
        )
    return list(range(n)) if n > 0 else list(range(n_attr + n, n_attr))
