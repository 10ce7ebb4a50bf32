"""Command-line options derived from the configuration models (the one place defaults live).

Every field of :class:`~evalkit.config.RunConfig` / :class:`~evalkit.config.EvaluateJobConfig` becomes
an option with the field's name (``--weight-decay``), type, help text and default. :func:`collect`
keeps only the flags given on the command line (so a spec file's values win over defaults) and
turns them back into config values. No heavy imports here.
"""

from __future__ import annotations

import inspect
import re
import typing
from typing import Any, Optional

import typer
from pydantic import BaseModel

from evalkit.errors import InputError

#: option names that differ from ``--field-name``
FLAGS = {
    "register_model": ("--register",),
    "output": ("--output", "-o"),
    "gates": ("--gate",),
    "loss_options": ("--loss-option",),
}
#: reader options (the ``reader_options`` table), declared once for every command that reads data
READER_FLAGS: dict[str, tuple[type, str]] = {
    "label_file": (str, "ARFF: MULAN label XML (default: <name>.xml next to the data)."),
    "meka_labels": (int, "ARFF: the first N attributes are the labels (MEKA's -C N), when there is no XML."),
    "label_columns": (str, "CSV/Parquet: label columns, e.g. a,b,c."),
    "label_prefix": (str, "CSV/Parquet: every column starting with this prefix is a label."),
    "label_list_column": (str, "CSV/Parquet: one column holding each row's label names."),
    "label_sep": (str, 'Separator of --label-list-column (default ";").'),
    "drop_columns": (str, "Feature columns / attributes to leave out, e.g. id,name."),
    "image_column": (str, "Image tables: the column of image paths (default: path)."),
    "image_root": (str, "Image tables: the folder image paths are relative to (default: the table's folder); "
                        "paths leaving it are refused."),
    "empty_label": (str, 'Image tables: the --label-list-column entry meaning no label, e.g. "No Finding".'),
}


# -- help layout: panels and metavars (the one place a new option declares them) ------------------------

DATA, MODEL, TRAINING, TRACKING, RAY = ("Data", "Model", "Training", "Tracking and output",
                                                    "Ray (the cells of a spec's grid)")
INPUT, MODEL_FILE, REPORT, GATES, SEARCH = "Input", "Model file (--model)", "Thresholds and report", "Gates", "Search"
#: ExecutorConfig fields: the Ray options of ``run`` and ``tune``
RAY_OPTIONS = ("kind", "address", "max_concurrent", "cpus_per_cell", "gpus_per_cell", "max_retries")
#: ``--help`` panel of each option, by command: panel -> option names (config fields or the command's own
#: parameters). An option listed nowhere is shown in Typer's default "Options" panel. To place a new
#: option, add its name to a tuple here.
PANELS: dict[str, dict[str, tuple[str, ...]]] = {
    "run": {
        DATA: ("dataset", "test_dataset", *READER_FLAGS, "val_size", "test_size", "standardize", "workers", "augment",
               "skip_bad_images"),
        MODEL: ("model", "hidden", "dropout", "activation", "batch_norm", "image_size", "pretrained", "weights",
                "freeze_backbone", "unfreeze_after"),
        TRAINING: ("loss", "loss_options", "optimizer", "lr", "weight_decay", "epochs", "batch_size", "patience",
                   "monitor", "input_noise", "folds", "budget", "seed", "device", "amp", "threads", "fold_processes", "resume"),
        REPORT: ("threshold", "objective", "beta", "ci", "ci_resamples", "ci_method"),
        TRACKING: ("track", "experiment", "tracking_uri", "tracking_timeout", "run_name", "log_model",
                   "log_class_metrics", "log_scores", "register_model", "alias", "output", "force", "verbose"),
        RAY: RAY_OPTIONS,
    },
    "evaluate": {
        INPUT: ("spec", "predictions", "model", "dataset", "test_dataset", *READER_FLAGS, "label_map", "map_reduce"),
        MODEL_FILE: ("arch", "hidden", "trust_pickle", "preprocess", "scores", "device", "amp", "workers",
                     "skip_bad_images"),
        REPORT: ("threshold", "beta", "threshold_free", "ci", "ci_resamples", "ci_method", "batch_size", "per_class",
                 "no_per_class", "output", "force"),
        GATES: ("gates", "baseline", "max_drop", "gate_alpha", "replace_gates"),
        TRACKING: ("track", "trigger", "job", "experiment", "tracking_uri", "tracking_timeout", "log_class_metrics",
                   "log_scores"),
    },
    "tune": {SEARCH: ("num_samples",), TRACKING: ("track",), "Ray": RAY_OPTIONS[1:]},  # tune always runs on Ray
}
#: metavar of an option (``--lr FLOAT``) by name, ``"command.name"`` for one command's own; else by type:
#: int N, float FLOAT, list LIST, str TEXT, a short Literal its choices (``auto|cpu|cuda``), a flag none
METAVARS = {
    "dataset": "NAME|FILE", "test_dataset": "FILE", "label_file": "FILE", "label_columns": "LIST",
    "label_prefix": "PREFIX", "label_list_column": "COLUMN", "label_sep": "SEP", "drop_columns": "LIST",
    "model": "NAME", "weights": "FILE", "loss": "NAME", "loss_options": "KEY=VALUE", "threshold": "STRATEGY",
    "experiment": "NAME", "tracking_uri": "URI", "tracking_timeout": "SECONDS", "run_name": "NAME",
    "register_model": "NAME", "alias": "NAME", "output": "FILE", "spec": "FILE", "predictions": "FILE",
    "evaluate.model": "URI|FILE", "evaluate.threshold": "T|LIST|FILE", "preprocess": "FILE", "label_map": "FILE",
    "gates": "GATE", "max_drop": "METRIC=AMOUNT", "baseline": "last|champion|URI|RUN", "job": "NAME",
    "per_class": "top|all|none|N", "image_column": "COLUMN", "image_root": "DIR", "empty_label": "LABEL",
    "resume": "RUN_ID", "address": "auto|ray://HOST:PORT", "hidden": "LIST", "arch": "linear|mlp|cnn",
}
#: Literal choices longer than this are shown as NAME (the help lists them)
_CHOICES_WIDTH = 24


def panel_of(command: str, name: str) -> str | None:
    """The ``--help`` panel of option ``name`` of ``command`` (None: Typer's "Options")."""
    return next((panel for panel, names in PANELS.get(command, {}).items() if name in names), None)


def metavar_of(command: str, name: str, annotation=str) -> str:
    """The metavar of option ``name`` of ``command`` (``""`` for a flag), see :data:`METAVARS`."""
    if f"{command}.{name}" in METAVARS or name in METAVARS:
        return METAVARS.get(f"{command}.{name}", METAVARS.get(name))
    choices = "|".join(_choices(annotation))
    if choices:
        return choices if len(choices) <= _CHOICES_WIDTH else "NAME"
    typ = _base_type(annotation)
    return {bool: "", int: "N", float: "FLOAT", list: "LIST", dict: "KEY=VALUE"}.get(typ, "TEXT")


def _panel_rank(command: str, name: str) -> tuple[int, int]:
    """Where option ``name`` comes in ``command``'s help: its panel's place in :data:`PANELS`, then its own."""
    for i, names in enumerate(PANELS.get(command, {}).values()):
        if name in names:
            return i + 1, names.index(name)
    return 0, 0


def layout(command: str, name: str, annotation=str) -> dict[str, Any]:
    """``typer.Option`` keywords placing option ``name`` of ``command``: its panel and metavar."""
    return {"rich_help_panel": panel_of(command, name), "metavar": metavar_of(command, name, annotation)}


def escape(text: str) -> str:
    """Help text safe for Typer's rich markup (``[grid]`` stays visible)."""
    return re.sub(r"(?<!\\)\[", r"\\[", text)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _shown(default: Any) -> Any:
    """The option's default as the command line writes it (``[1024]`` -> ``"1024"``)."""
    if isinstance(default, list):
        return ",".join(map(str, default)) if default else None
    if isinstance(default, dict):
        return None
    return default


def _choices(annotation) -> tuple[str, ...]:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Literal:
        return tuple(map(str, args))
    for a in args:
        if typing.get_origin(a) is typing.Literal:
            return tuple(map(str, typing.get_args(a)))
    return ()


def _base_type(annotation) -> type:
    """The scalar type of a field annotation (``int | None`` -> int; Literal -> str; list -> list)."""
    origin = typing.get_origin(annotation)
    if origin in (list, dict):
        return origin
    if origin is typing.Literal:
        return type(typing.get_args(annotation)[0])
    for a in typing.get_args(annotation):
        if a is not type(None):
            return _base_type(a)
    return annotation if isinstance(annotation, type) else str


def parameters(model: type[BaseModel], command: str, *, skip: tuple[str, ...] = ()) -> list[inspect.Parameter]:
    """One keyword ``inspect.Parameter`` per field of ``model`` (and the reader options for its
    ``reader_options`` field), annotated for Typer with the field's help, shown default, ``command``'s
    panel and the field's metavar (:func:`layout`)."""
    out: list[inspect.Parameter] = []
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        if name == "reader_options":
            for rname, (typ, help_) in READER_FLAGS.items():
                out.append(_param(rname, Optional[typ], typer.Option(None, _flag(rname), help=escape(help_),
                                                                    show_default=False, **layout(command, rname, typ))))
            continue
        default = field.get_default(call_default_factory=True)
        help_ = field.description or ""
        choices = _choices(field.annotation)
        place = layout(command, name, field.annotation)
        if choices and "," not in help_ and " or " not in help_ and "|" not in place["metavar"]:
            help_ += f" One of: {', '.join(choices)}."
        typ = _base_type(field.annotation)
        decls = FLAGS.get(name, (_flag(name),))
        if typ is bool:
            decl = f"{decls[0]}/--no-{decls[0][2:]}"
            out.append(_param(name, bool, typer.Option(default, decl, help=escape(help_), **place)))
        elif typ is dict or (typ is list and name in ("gates", "max_drop")) or name == "loss_options":
            out.append(_param(name, Optional[list[str]], typer.Option(None, *decls, help=escape(help_),
                                                                      show_default=False, **place)))
        else:
            ptype = str if typ in (list, str) else typ
            shown = _shown(default)
            out.append(_param(name, Optional[ptype], typer.Option(shown, *decls, help=escape(help_),
                                                                  show_default=shown is not None, **place)))
    return out


def _param(name: str, annotation, info) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation)


def with_parameters(extra: list[inspect.Parameter], command: str | None = None):
    """Decorator: append ``extra`` keyword parameters to a command's signature (the command receives
    them in ``**kwargs``); with ``command``, its options are ordered by their help panel (the order of
    :data:`PANELS`), so that ``--help`` shows the panels in that order."""

    def wrap(fn):
        sig = inspect.signature(fn, eval_str=True)
        params = [p for p in sig.parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD] + extra
        if command is not None:
            head = [p for p in params if p.name == "ctx" or _is_argument(p)]
            options = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params if p not in head]
            params = head + sorted(options, key=lambda p: _panel_rank(command, p.name))
        fn.__signature__ = sig.replace(parameters=params)
        fn.__annotations__ = {**getattr(fn, "__annotations__", {}), **{p.name: p.annotation for p in extra}}
        return fn

    return wrap


def _is_argument(p: inspect.Parameter) -> bool:
    """``p`` is a Typer argument (``Annotated[..., typer.Argument(...)]``), not an option."""
    return any(isinstance(m, typer.models.ArgumentInfo) for m in getattr(p.annotation, "__metadata__", ()))


def parse_hidden(text: str, option: str = "--hidden") -> list[int]:
    """``"512,256"`` -> ``[512, 256]``. Raises InputError naming ``option``."""
    try:
        sizes = [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise InputError(f"{option}: expected comma-separated layer sizes such as 256 or 512,256, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise InputError(f"{option}: expected positive layer sizes such as 256 or 512,256, got {text!r}")
    return sizes


def parse_kv(items: list[str] | None, option: str) -> dict[str, str]:
    """``["k=v", ...]`` -> ``{k: v}``. Raises InputError on an item without ``=``."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise InputError(f"{option}: expected KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def collect(model: type[BaseModel], values: dict[str, Any], ctx=None) -> dict[str, Any]:
    """The config values of the flags given on the command line (``ctx``: the click context whose
    parameter sources tell given flags from defaults; without it, ``None`` means not given)."""
    def given_here(name: str) -> bool:  # by name: Typer may bundle its own click
        if ctx is None:
            return True
        source = ctx.get_parameter_source(name)
        return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")

    given = {k: v for k, v in values.items() if given_here(k)}
    out: dict[str, Any] = {}
    reader = {k: given.pop(k) for k in READER_FLAGS if given.get(k) is not None}
    for k in READER_FLAGS:
        given.pop(k, None)
    if "drop_columns" in reader:
        reader["drop_columns"] = [c.strip() for c in str(reader["drop_columns"]).split(",") if c.strip()]
    if reader and "reader_options" in model.model_fields:
        out["reader_options"] = reader
    for name, value in given.items():
        if value is None or name not in model.model_fields:
            continue
        if name == "hidden":
            value = parse_hidden(value)
        elif name == "loss_options":
            value = parse_kv(value, "--loss-option")
        elif hasattr(value, "value"):  # an Enum
            value = value.value
        out[name] = value
    _interval_flags_apply(out)
    return out


def _interval_flags_apply(given: dict[str, Any]) -> None:
    """``--ci-resamples`` / ``--ci-method`` typed beside ``--ci 0`` would be ignored: InputError. (Only
    flags typed together: ``--ci 0`` over a spec's ``ci_resamples``, or a grid over ``ci``, is fine.)"""
    if given.get("ci") == 0:
        from evalkit.errors import field_name

        for name in ("ci_resamples", "ci_method"):
            if name in given:
                raise InputError(f"{field_name(name)}: applies to confidence intervals ({field_name('ci')} 0.95), "
                                 f"not to {field_name('ci')} 0; drop it")


class FieldNames:
    """How the command line names a configuration field in an error message (the ``name`` of
    :meth:`evalkit.errors.EvalkitError.named`): the flag of the option whose parameter is that field on
    ``command`` (derived from the command's own options: ``output`` -> ``--output``, ``cpus_per_cell``
    -> ``--cpus-per-trial`` on ``tune``), else ``--field-name``. After :meth:`from_spec`, a field whose
    value came from the spec file (set there, no flag given) is named by its spec key instead
    (``reader_options.label_columns``, ``evaluate.trigger``)."""

    def __init__(self, command=None):
        self.flags: dict[str, str] = {}
        self.negative: dict[str, str] = {}  # --no-track
        for param in getattr(command, "params", ()):
            longs = [o for o in param.opts if o.startswith("--")]
            if longs and param.name:
                self.flags[param.name] = longs[0]
                self.negative[param.name] = next((o for o in param.secondary_opts if o.startswith("--")), "")
        self.given: set[str] = set()
        self.from_spec_keys: set[str] = set()
        self.grid: set[str] = set()
        self.table = ""

    def from_spec(self, keys: dict[str, Any], overrides: dict[str, Any], table: str = "") -> None:
        """The command reads a spec whose table (``[table]``, or the top level) holds ``keys``: a field
        set there and not overridden by a flag (``overrides``: the config values of the flags given)
        is named by its spec key."""
        def keys_of(name: str) -> set:  # a key that is no table (`grid = 5`) is the spec loader's error to report
            value = keys.get(name)
            return set(value) if isinstance(value, dict) else set()

        self.grid = keys_of("grid")
        self.from_spec_keys = set(keys) | keys_of("reader_options") | self.grid | keys_of("executor")
        self.given = set(overrides) | set(overrides.get("reader_options") or {})
        self.table = table

    def spec_key(self, field: str) -> str:
        """``field``'s key in a spec: ``reader_options.label_file``, ``executor.address``, ``grid.seed``,
        ``evaluate.job``."""
        key = f"reader_options.{field}" if field in READER_FLAGS else f"executor.{field}" if field in RAY_OPTIONS \
            else f"grid.{field}" if field in self.grid else field
        return f"{self.table}.{key}" if self.table and field not in RAY_OPTIONS else key

    def __call__(self, field: str, switch: bool | None = None) -> str:
        if field in self.from_spec_keys and field not in self.given:
            return self.spec_key(field) + ("" if switch is None else f" = {str(switch).lower()}")
        flag = self.flags.get(field) or FLAGS.get(field, (_flag(field),))[0]
        if switch is None:
            return flag
        return flag if switch else self.negative.get(field) or f"--no-{flag[2:]}"


def validation_message(err, names: FieldNames | None = None) -> str:
    """A pydantic ``ValidationError`` as one line naming the options (``--lr: ...``; ``names``: how
    fields are named, the command's flags by default)."""
    names = names or FieldNames()
    parts = []
    for e in err.errors():
        loc = [str(x) for x in e["loc"]]
        name = names(loc[1] if loc[:1] == ["reader_options"] and len(loc) > 1 else loc[0]) if loc else "value"
        extra = f" (got {e['input']!r})" if "input" in e and e.get("type") != "missing" else ""
        parts.append(f"{name}: {e['msg']}{extra}")
    return "; ".join(parts)
