"""Experiment specs: ``experiments/*.toml`` files validated by pydantic.

A spec holds :class:`~evalkit.config.RunConfig` fields at the top level (and ``[loss_options]`` /
``[reader_options]`` tables) plus an optional ``[grid]`` table mapping a field to a list of values.
The grid is the Cartesian product of its lists, in file order; each cell is one run::

    experiment = "yeast-losses"
    dataset = "yeast"
    log_model = false

    [grid]
    loss = ["bce", "focal", "asl"]
    seed = [0, 1, 2]

Command-line flags override spec values; a flag naming a grid field replaces that grid axis (so
``evalkit run experiments/yeast_losses.toml --seed 0`` runs every loss once).

An invalid spec is an :class:`~evalkit.errors.InputError` formatted ``file:line: field: problem``,
the line being that of the offending key in the TOML text.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from evalkit.errors import InputError, field_name
from evalkit.reader_options import UNKNOWN_OPTION

#: most cells a grid may have (the product of its axes' lengths is checked before any cell is built)
MAX_CELLS = 10_000
#: grid axes that cannot vary inside one parent run (they define where the runs go)
NOT_GRIDDABLE = ("experiment", "tracking_uri", "tracking_timeout", "output", "run_name")


@dataclass
class Spec:
    """A loaded spec: the base config values, the grid axes, and where they came from."""

    path: str
    base: dict[str, Any]
    grid: dict[str, list[Any]] = field(default_factory=dict)
    text: str = ""
    #: the ``[executor]`` table (:class:`~evalkit.config.ExecutorConfig` fields)
    executor: dict[str, Any] = field(default_factory=dict)
    #: the ``[search]`` table of ``evalkit tune`` (see :meth:`search_space`)
    search: dict[str, Any] = field(default_factory=dict)

    def executor_config(self, overrides: dict[str, Any] | None = None):
        """The :class:`~evalkit.config.ExecutorConfig`: the ``[executor]`` table, then ``overrides``
        (CLI flags; ``None`` values are ignored).

        Raises:
            InputError: ``--flag: problem`` for a bad override (the table was checked on load).
        """
        from pydantic import ValidationError

        from evalkit.config import ExecutorConfig

        given = {k: v for k, v in (overrides or {}).items() if v is not None}
        try:
            return ExecutorConfig(**(self.executor | given))
        except ValidationError as e:
            err = e.errors()[0]
            key = str(err["loc"][0]) if err["loc"] else ""
            raise InputError(f"{field_name(key)}: {_problem(err)}") from None

    def search_space(self) -> tuple[Any, dict[str, tuple[str, list]]]:
        """The ``[search]`` table as ``(SearchConfig, space)``; ``space`` maps a RunConfig field to
        ``(kind, args)``: ``choice`` ``[v1, v2, ...]``, ``uniform`` / ``loguniform`` ``[low, high]``
        (floats, ``0 < low`` for loguniform), ``randint`` ``[low, high)`` (integers).

        Raises:
            InputError: ``file:line: search.key: problem`` (no table, unknown key, bad space).
        """
        from pydantic import ValidationError

        from evalkit.config import RunConfig, SearchConfig

        if not self.search:
            raise InputError(f"{self.path}:1: search: missing [search] table (RunConfig field = {{ loguniform = "
                             "[1e-4, 1e-2] }, ..., num_samples, metric)")
        settings, space = {}, {}
        for key, value in self.search.items():
            line = find_line(self.text, (key,), section="search")
            if key in SearchConfig.model_fields:
                settings[key] = value
            elif key not in RunConfig.model_fields:
                raise InputError(f"{self.path}:{line}: search.{key}: unknown field (expected a RunConfig field or "
                                 f"one of {', '.join(SearchConfig.model_fields)})")
            elif key in NOT_GRIDDABLE or key in self.grid:
                raise InputError(f"{self.path}:{line}: search.{key}: cannot be searched here")
            else:
                space[key] = _space(value, f"{self.path}:{line}: search.{key}")
        if not space:
            raise InputError(f"{self.path}:{find_line(self.text, ('search',))}: search: no RunConfig field to search")
        try:
            config = SearchConfig(**settings)
        except ValidationError as e:
            err = e.errors()[0]
            key = str(err["loc"][0])
            raise InputError(f"{self.path}:{find_line(self.text, (key,), section='search')}: search.{key}: "
                             f"{_problem(err)}") from None
        return config, space

    def cells(self) -> Iterator[dict[str, Any]]:
        """The grid cells (``{field: value}``, Cartesian product in file order), lazily; one ``{}``
        without a grid."""
        keys = list(self.grid)
        return (dict(zip(keys, values)) for values in itertools.product(*(self.grid[k] for k in keys)))

    def configs(self, overrides: dict[str, Any] | None = None):
        """One validated :class:`RunConfig` per cell (every cell is built and checked, so that a bad
        value of any cell is refused before anything runs). ``overrides`` (CLI flags) win over spec
        values and replace grid axes they name.

        Raises:
            InputError: ``file:line: key: problem`` for the first invalid value (``--flag: problem``
                when the value came from the command line).
        """
        overrides = dict(overrides or {})
        grid = {k: v for k, v in self.grid.items() if k not in overrides}
        return [self.config(cell, overrides) for cell in Spec(self.path, self.base, grid, self.text).cells()]

    def config(self, cell: dict[str, Any], overrides: dict[str, Any] | None = None, section: str = "grid"):
        """The :class:`RunConfig` of one cell: the spec's values, then ``cell`` (values of the
        ``[section]`` table: grid axes, or a tune search's choices), then ``overrides``.

        Raises:
            InputError: ``file:line: key: problem`` (``section.key`` for a value from ``cell``).
        """
        from pydantic import ValidationError

        from evalkit.config import RunConfig

        overrides = overrides or {}
        values = self.base | cell | overrides
        for k in ("loss_options", "reader_options"):  # tables merge key by key
            if k in self.base and k in overrides:
                values[k] = dict(self.base[k]) | dict(overrides[k])
        try:
            config = RunConfig(**values)
        except ValidationError as e:
            err = e.errors()[0]
            loc = tuple(str(x) for x in err["loc"])
            key = loc[0] if loc else ""
            if key == "reader_options" and len(loc) > 1:  # a reader option may be given as its own flag
                key, flagged = loc[1], loc[1] in (overrides.get(key) or {})
            else:
                flagged = key in overrides
            if not flagged:
                raise self.located_error(loc, _problem(err), cell, section) from None
            raise InputError(f"{field_name(key)}: {_problem(err)}") from None
        self._check_loss_options(config, cell, overrides, section)
        return config

    def located_error(self, loc: tuple[str, ...], problem: str, cell: dict, section: str) -> InputError:
        """``file:line: key: problem`` for the spec key named by pydantic's ``loc``: a value from the
        cell is ``section.key`` at its line there; a list item is its list's key."""
        in_cell = bool(loc) and loc[0] in cell
        if loc and loc[0] not in ("loss_options", "reader_options"):
            loc = loc[:1]  # hidden.0 is the spec's `hidden`
        line = find_line(self.text, loc, section=section if in_cell else None)
        name = (f"{section}." if in_cell else "") + ".".join(loc)
        where = f" (grid cell {_cell_text(cell)})" if cell and not in_cell and section == "grid" else ""
        return InputError(f"{self.path}:{line}: {name}: {problem}{where}")

    def _check_loss_options(self, config, cell: dict, overrides: dict, section: str) -> None:
        """The ``[loss_options]`` table against the cell's loss (names and numbers), located in the file."""
        from evalkit.losses import get_loss_spec

        try:
            config.loss_settings  # noqa: B018 -- checks the options against the loss
        except InputError as e:
            if "loss_options" in overrides or "loss" in overrides:
                raise
            bad = [k for k in config.loss_options if k not in get_loss_spec(config.loss).options]
            loc = ("loss_options", bad[0]) if bad else ("loss_options",)
            if bad and "loss" in cell:  # the option is fine, the cell's loss does not take it
                loc = ("loss",)
            raise self.located_error(loc, str(e).split(": ", 1)[1], cell, section) from None


SPACES = ("choice", "uniform", "loguniform", "randint")


def _space(value: Any, where: str) -> tuple[str, list]:
    """``{ kind = [args] }`` -> ``(kind, args)``, checked. Raises InputError prefixed by ``where``."""
    if not (isinstance(value, dict) and len(value) == 1 and next(iter(value)) in SPACES):
        raise InputError(f"{where}: expected one of {{ choice = [...] }}, {{ uniform = [low, high] }}, "
                         f"{{ loguniform = [low, high] }}, {{ randint = [low, high] }}; got {value!r}")
    kind, args = next(iter(value.items()))
    if not isinstance(args, list) or not args:
        raise InputError(f"{where}: {kind}: expected a non-empty list, got {args!r}")
    if kind != "choice":
        num = (int,) if kind == "randint" else (int, float)
        if len(args) != 2 or not all(isinstance(a, num) and not isinstance(a, bool) for a in args) \
                or not args[0] < args[1]:
            raise InputError(f"{where}: {kind}: expected [low, high] with low < high"
                             + (" (integers)" if kind == "randint" else "") + f", got {args!r}")
        if kind == "loguniform" and args[0] <= 0:
            raise InputError(f"{where}: loguniform: expected 0 < low, got {args!r}")
    return kind, list(args)


def _cell_text(cell: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in cell.items())


def _problem(err: dict) -> str:
    msg = err["msg"].removeprefix("Value error, ")
    if err.get("type") == "extra_forbidden":
        loc = err.get("loc", ())
        if len(loc) <= 1:
            return "unknown field (expected a RunConfig field, see `evalkit run --help`, or [grid])"
        return UNKNOWN_OPTION if loc[0] == "reader_options" else "unknown field"
    if "input" in err and err.get("type") not in ("missing",):
        return f"{msg} (got {err['input']!r})"
    return msg


_KEY = r'^\s*(?:"{k}"|\'{k}\'|{k})\s*='


def find_line(text: str, loc: tuple[str, ...], *, section: str | None = None) -> int:
    """1-based line of the key named by ``loc`` in TOML ``text`` (1 when not found).

    ``loc`` is a pydantic error location such as ``("lr",)`` or ``("loss_options", "gamma")``;
    ``section`` looks inside a ``[section]`` table first (``"grid"`` for grid axes).
    """
    lines = text.splitlines()
    tables: list[tuple[str | None, int, str]] = []  # (current table, line number, line)
    current: str | None = None
    for i, line in enumerate(lines, 1):
        m = re.match(r"^\s*\[\s*([^\]]+?)\s*\]\s*(#.*)?$", line)
        if m:
            current = m.group(1).strip().strip('"')
            tables.append((None, i, line))  # header line itself
            tables.append((f"header:{current}", i, line))
            continue
        tables.append((current, i, line))

    def key_line(table: str | None, key: str) -> int | None:
        pat = re.compile(_KEY.format(k=re.escape(key)))
        for t, i, line in tables:
            if t == table and pat.match(line):
                return i
        return None

    if not loc:
        return 1
    head = loc[0]
    candidates: list[tuple[str | None, str]] = []
    if section:
        candidates.append((section, head))
    if len(loc) > 1:
        candidates += [(f"{section}.{head}", loc[1])] if section else []  # [evaluate.reader_options] key = ...
        candidates.append((head, loc[1]))  # [loss_options] gamma = ...
    candidates.append((None, head))  # top-level key (or inline table)
    for table, key in candidates:
        n = key_line(table, key)
        if n:
            return n
    headers = ([f"{section}.{head}"] if section else []) + [head]  # a [grid.head] or [head] table
    for header in headers:
        for t, i, _ in tables:
            if t == f"header:{header}":
                return i
    return 1


def load_spec(path: str | Path) -> Spec:
    """Read and validate a spec file (types are checked per cell by :meth:`Spec.configs`).

    Raises:
        InputError: missing file, TOML syntax error (``file:line: ...``), a malformed ``[grid]``.
    """
    from evalkit.config import RunConfig

    p = Path(path)
    text, data = _read_toml(p, "an experiments/*.toml spec file")
    grid = data.pop("grid", {})
    executor = data.pop("executor", {})
    search = data.pop("search", {})
    for name, table in (("executor", executor), ("search", search)):
        if not isinstance(table, dict):
            raise InputError(f"{path}:{find_line(text, (name,))}: {name}: expected {'an' if name == 'executor' else 'a'} "
                             f"[{name}] table")
    _check_executor(executor, text, str(path))
    if not isinstance(grid, dict):
        raise InputError(f"{path}:{find_line(text, ('grid',))}: grid: expected a [grid] table of field = [values]")
    fields = RunConfig.model_fields
    for k, v in grid.items():
        line = find_line(text, (k,), section="grid")
        if k not in fields:
            raise InputError(f"{path}:{line}: grid.{k}: unknown field (expected a RunConfig field)")
        if k in NOT_GRIDDABLE:
            raise InputError(f"{path}:{line}: grid.{k}: cannot vary inside one experiment; set it at the top level")
        if not isinstance(v, list) or not v:
            raise InputError(f"{path}:{line}: grid.{k}: expected a non-empty list of values, got {v!r}")
        if k in data:
            raise InputError(f"{path}:{line}: grid.{k}: also set at the top level (line "
                             f"{find_line(text, (k,))}); keep one")
    _check_size(grid, text, str(path))
    _resolve_paths(data, grid, p.parent)
    spec = Spec(str(path), data, grid, text, executor, search)
    spec.configs()  # validate every cell now, before anything runs
    return spec


def _check_size(grid: dict[str, list], text: str, path: str) -> None:
    """Refuse a grid of more than :data:`MAX_CELLS` cells (from the axes' lengths, nothing expanded)."""
    n = math.prod(len(v) for v in grid.values())
    if n > MAX_CELLS:
        axes = " x ".join(f"{k} ({len(v)})" for k, v in grid.items())
        raise InputError(f"{path}:{find_line(text, ('grid',))}: grid: {axes} = {n:,} cells; expected at most "
                         f"{MAX_CELLS:,} (split the experiment or shorten an axis)")


def _check_executor(table: dict, text: str, path: str) -> None:
    """Validate an ``[executor]`` table. Raises InputError ``file:line: executor.key: problem``."""
    from pydantic import ValidationError

    from evalkit.config import ExecutorConfig

    try:
        ExecutorConfig(**table)
    except ValidationError as e:
        err = e.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else ""
        raise InputError(f"{path}:{find_line(text, (key,), section='executor')}: executor.{key}: "
                         f"{_problem(err)}") from None


def _resolve_paths(data: dict, grid: dict, base: Path) -> None:
    """Relative data paths in a spec are relative to the spec file (built-in names stay names)."""
    from evalkit.inputs import BUILTIN_DATASETS

    def fix(v):
        if isinstance(v, str) and v.strip() and v not in BUILTIN_DATASETS and not Path(v).is_absolute() \
                and (base / v).exists():  # ("" is refused by the config, not read as the spec's folder)
            return str((base / v).resolve())
        return v

    for key in ("dataset", "test_dataset"):
        if key in data:
            data[key] = fix(data[key])
        if key in grid:
            grid[key] = [fix(v) for v in grid[key]]


def _read_toml(path: str | Path, what: str, syntax: str = "TOML syntax") -> tuple[str, dict]:
    """``(text, data)`` of a TOML file. Raises InputError: missing / unreadable / non-UTF-8 file or a
    TOML syntax error (``file:line: TOML syntax: ...``)."""
    import tomllib

    p = Path(path)
    if not p.is_file():
        kind = "a directory" if p.is_dir() else "no such spec file"
        raise InputError(f"{path}: {kind}; expected {what}")
    try:
        text = p.read_text(encoding="utf-8-sig")  # a BOM (Windows editors) is not part of the TOML
    except UnicodeDecodeError as e:
        line = p.read_bytes()[: e.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not UTF-8 text; expected {what} in UTF-8") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        return text, tomllib.loads(text)
    except RecursionError:  # arrays / inline tables nested thousands deep
        raise InputError(f"{path}:1: {syntax}: values nested too deeply; expected {what}") from None
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        line = m.group(1) if m else (len(text.splitlines()) or 1)
        raise InputError(f"{path}:{line}: {syntax}: {str(e).split(' (at ')[0]}") from None


def spec_table(path: str | Path, table: str | None = None) -> dict[str, Any]:
    """The keys and values of a spec file (of its ``[table]`` when given; ``{}`` when it cannot be
    read: :func:`load_spec` / :func:`load_evaluate_spec` report that). What the CLI names by spec key."""
    try:
        data = _read_toml(path, "a TOML spec")[1]
    except InputError:
        return {}
    data = data.get(table, {}) if table else data
    return data if isinstance(data, dict) else {}


def load_evaluate_spec(path: str | Path, overrides: dict[str, Any] | None = None, *, replace_gates: bool = False):
    """The :class:`~evalkit.config.EvaluateJobConfig` of a TOML job spec (``evaluate --spec FILE``):
    its ``[evaluate]`` table, then ``overrides`` (the flags given on the command line, as config
    fields) on top; ``reader_options`` merge key by key. The one place spec and flags are merged.

    ``gates`` / ``max_drop`` given on the command line add to the spec's (a repeated gate counts
    once); with ``replace_gates`` the spec's gates and max_drop are left out (its ``baseline`` too
    unless the command line gives a ``max_drop``, its ``gate_alpha`` unless one of them is
    ``=significant``), so only the command line's apply.

    Raises:
        InputError: missing or unreadable file, TOML syntax error (``file:line: problem``), unknown or
            ill-typed keys of the table, a malformed gate or unknown gate metric
            (``file:line: evaluate.key: problem``); an option the merged job would ignore (``--flag: ...``).
        pydantic.ValidationError: a bad override (the CLI names its flag).
    """
    from pydantic import ValidationError

    from evalkit.config import EvaluateJobConfig

    text, data = _read_toml(path, "a TOML job spec with an [evaluate] table", "invalid TOML")
    section = data.get("evaluate")
    if not isinstance(section, dict):
        raise InputError(f"{path}:1: evaluate: missing [evaluate] table")
    try:
        EvaluateJobConfig(**section)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ("evaluate", *(str(x) for x in err["loc"]))
        line = find_line(text, loc[1:], section="evaluate")
        raise InputError(f"{path}:{line}: {'.'.join(loc)}: {_problem(err)}") from None
    _check_gates(path, text, section)
    given = dict(overrides or {})
    if "reader_options" in given and "reader_options" in section:
        given["reader_options"] = dict(section["reader_options"]) | dict(given["reader_options"])
    if replace_gates:  # the spec's baseline and gate_alpha go with its gates, unless the line's gates use them
        significant = any(str(d).replace(" ", "").endswith("=significant") for d in given.get("max_drop") or ())
        section = {k: v for k, v in section.items() if k not in ("gates", "max_drop")
                   and (k != "baseline" or given.get("max_drop")) and (k != "gate_alpha" or significant)}
    for key in ("gates", "max_drop"):
        if key in given and key in section:
            given[key] = list(dict.fromkeys([*section[key], *given[key]]))
    return EvaluateJobConfig(**(section | given))


def _check_gates(path, text: str, section: dict) -> None:
    """The spec's ``gates`` / ``max_drop`` parse (:mod:`evalkit.gates`); else ``file:line: evaluate.KEY: problem``."""
    from evalkit.gates import parse_gate, parse_max_drop

    for key, parse in (("gates", parse_gate), ("max_drop", parse_max_drop)):
        for text_ in section.get(key, []):
            try:
                parse(text_)
            except InputError as e:
                problem = str(e).split(": ", 1)[1]  # without the flag the message names
                raise InputError(f"{path}:{find_line(text, (key,), section='evaluate')}: evaluate.{key}: {problem}") from None
