"""Label mapping: evaluate a model with many output labels on a coarser label set.

A label map is many-to-one: every *source* label (a model output / dataset label) maps to one
*target* label (e.g. 1000 ImageNet classes -> 16 superclasses). Files:

* CSV with a header row and columns ``source,target`` (other columns are ignored), or
* JSON object ``{"source": "target", ...}``.

Applying a map (:func:`apply_label_map`):

* scores: the model's scores are turned into probabilities first (sigmoid of logits), then the
  probabilities of the sources of each target are reduced with ``max`` (default: the target is as
  likely as its most likely source), ``sum`` (clipped to 1) or ``mean``;
* targets: a target label is positive when any of its sources is positive (``max``).

Source labels that the map does not mention are dropped (returned by :func:`apply_label_map`).
Targets keep the order of their first appearance in the file.

Errors (:class:`~evalkit.errors.InputError`): unreadable / malformed file, empty map, a source mapped
to two different targets, a target that is also a source (a cycle or chain), sources that are not
labels of the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evalkit.errors import InputError

REDUCTIONS = ("max", "sum", "mean")


@dataclass(frozen=True)
class LabelMap:
    """A validated many-to-one label map.

    Attributes:
        pairs: ``source -> target``.
        targets: target names in order of first appearance.
        source: where it came from (file path), for messages.
    """

    pairs: dict[str, str]
    targets: list[str]
    source: str = "label map"

    def matrix(self, label_names: list[str]) -> np.ndarray:
        """``(C_source, C_target)`` 0/1 membership matrix for the given source label order.

        Raises:
            InputError: a source of the map is not one of ``label_names``.
        """
        index = {n: i for i, n in enumerate(label_names)}
        unknown = [s for s in self.pairs if s not in index]
        if unknown:
            shown = ", ".join(repr(s) for s in unknown[:5]) + (f" (+{len(unknown) - 5} more)" if len(unknown) > 5 else "")
            raise InputError(f"{self.source}: unknown source label(s) {shown}; expected labels of the data "
                             f"({', '.join(label_names[:5])}{', ...' if len(label_names) > 5 else ''})")
        tindex = {t: j for j, t in enumerate(self.targets)}
        M = np.zeros((len(label_names), len(self.targets)), dtype=np.float64)
        for s, t in self.pairs.items():
            M[index[s], tindex[t]] = 1.0
        return M


def parse_label_map(pairs: dict[str, str], source: str = "label map") -> LabelMap:
    """Validate ``{source: target}`` pairs into a :class:`LabelMap`.

    Raises:
        InputError: empty map, empty names, a source given twice (also after stripping whitespace)
            with different targets, a target that is also a source.
    """
    if not pairs:
        raise InputError(f"{source}: empty label map; expected at least one source -> target pair")
    clean: dict[str, str] = {}
    for s, t in pairs.items():
        s, t = str(s).strip(), str(t).strip()
        if not s or not t:
            raise InputError(f"{source}: empty label name in pair {s!r} -> {t!r}")
        if s in clean and clean[s] != t:  # e.g. JSON keys "a" and " a" that differ only by whitespace
            raise InputError(f"{source}: source label {s!r} is given twice (maps to {clean[s]!r} and {t!r}); "
                             "expected each source label once")
        clean[s] = t
    cycles = sorted({t for t in clean.values() if t in clean})
    if cycles:
        raise InputError(f"{source}: target label(s) {', '.join(map(repr, cycles[:5]))} are also sources "
                         "(a cycle or chain); expected a one-step many-to-one map")
    targets = list(dict.fromkeys(clean.values()))
    return LabelMap(clean, targets, source)


def read_label_map(path: str | Path) -> LabelMap:
    """Read a label map file: ``.json`` (``{source: target}``) or CSV (columns ``source,target``).

    Raises:
        InputError: missing / unreadable file, wrong structure, a source mapped twice to different
            targets, or any :func:`parse_label_map` error.
    """
    import json

    p = Path(path)
    where = f"--label-map {p}"
    if not p.is_file():
        raise InputError(f"{where}: no such file; expected a CSV (source,target) or JSON {{source: target}} file")
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(f"{where}: not valid JSON ({e})") from None
        if not isinstance(data, dict) or not all(isinstance(v, (str, int)) for v in data.values()):
            raise InputError(f"{where}: expected a JSON object {{\"source label\": \"target label\", ...}}")
        return parse_label_map({str(k): str(v) for k, v in data.items()}, where)
    import pandas as pd

    try:
        df = pd.read_csv(p, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise InputError(f"{where}: empty label map; expected CSV columns source,target") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as e:
        raise InputError(f"{where}: not a readable CSV file ({' '.join(str(e).split())[:200]})") from None
    cols = {c.strip().lower(): c for c in df.columns}
    if not {"source", "target"} <= set(cols):
        raise InputError(f"{where}: expected CSV columns source,target; found {', '.join(map(str, df.columns))}")
    pairs: dict[str, str] = {}
    for s, t in zip(df[cols["source"]].str.strip(), df[cols["target"]].str.strip()):
        if s in pairs and pairs[s] != t:
            raise InputError(f"{where}: source label {s!r} maps to both {pairs[s]!r} and {t!r}; "
                             "expected each source to map to one target")
        pairs[s] = t
    return parse_label_map(pairs, where)


def reduce_scores(probabilities: np.ndarray, M: np.ndarray, reduce: str = "max") -> np.ndarray:
    """Aggregate source probabilities ``(N, C_s)`` into target probabilities ``(N, C_t)``.

    ``max``: the largest source probability; ``sum``: the sum, clipped to 1; ``mean``: the average.

    Raises:
        InputError: unknown ``reduce``.
    """
    if reduce not in REDUCTIONS:
        raise InputError(f"--map-reduce: expected one of {', '.join(REDUCTIONS)}, got {reduce!r}")
    P = np.asarray(probabilities, dtype=np.float64)
    if reduce == "max":
        out = np.zeros((P.shape[0], M.shape[1]), dtype=np.float64)
        for j in range(M.shape[1]):
            out[:, j] = P[:, M[:, j] > 0].max(axis=1)
        return out
    total = P @ M
    if reduce == "sum":
        return np.clip(total, 0.0, 1.0)
    return total / M.sum(axis=0)


def reduce_targets(Y: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Target ``(N, C_t)`` is positive when any of its sources is positive."""
    return ((np.asarray(Y, dtype=np.float64) @ M) > 0).astype(np.uint8)


def apply_label_map(label_map: LabelMap, label_names: list[str], Y: np.ndarray, probabilities: np.ndarray,
                    reduce: str = "max") -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Map targets and probabilities from ``label_names`` to the map's targets.

    Returns:
        ``(Y_mapped (N, C_t) uint8, probabilities_mapped (N, C_t) float64, target names, unmapped
        source labels)``.

    Raises:
        InputError: unknown source labels, unknown ``reduce``, shapes that disagree with ``label_names``.
    """
    names = [str(n) for n in label_names]
    if probabilities.shape[1] != len(names) or Y.shape[1] != len(names):
        raise InputError(f"{label_map.source}: scores have {probabilities.shape[1]} columns and targets "
                         f"{Y.shape[1]}, but there are {len(names)} source labels")
    M = label_map.matrix(names)
    unmapped = [n for n in names if n not in label_map.pairs]
    return reduce_targets(Y, M), reduce_scores(probabilities, M, reduce), list(label_map.targets), unmapped
