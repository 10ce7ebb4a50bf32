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


def parameters(model: type[BaseModel], *, skip: tuple[str, ...] = ()) -> list[inspect.Parameter]:
    """One keyword ``inspect.Parameter`` per field of ``model`` (and the reader options for its
    ``reader_options`` field), annotated for Typer with the field's help and shown default."""
    out: list[inspect.Parameter] = []
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        if name == "reader_options":
            for rname, (typ, help_) in READER_FLAGS.items():
                out.append(_param(rname, Optional[typ], typer.Option(None, _flag(rname), help=escape(help_),
                                                                    show_default=False)))
            continue
        default = field.get_default(call_default_factory=True)
        help_ = field.description or ""
        choices = _choices(field.annotation)
        if choices and "," not in help_ and " or " not in help_:
            help_ += f" One of: {', '.join(choices)}."
        typ = _base_type(field.annotation)
        decls = FLAGS.get(name, (_flag(name),))
        if typ is bool:
            decl = f"{decls[0]}/--no-{decls[0][2:]}"
            out.append(_param(name, bool, typer.Option(default, decl, help=escape(help_))))
        elif typ is dict or (typ is list and name in ("gates", "max_drop")) or name == "loss_options":
            out.append(_param(name, Optional[list[str]], typer.Option(None, *decls, help=escape(help_), show_default=False)))
        else:
            ptype = str if typ in (list, str) else typ
            out.append(_param(name, Optional[ptype], typer.Option(_shown(default), *decls, help=escape(help_))))
    return out


def _param(name: str, annotation, info) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation)


def with_parameters(extra: list[inspect.Parameter]):
    """Decorator: append ``extra`` keyword parameters to a command's signature (the command receives
    them in ``**kwargs``)."""

    def wrap(fn):
        sig = inspect.signature(fn, eval_str=True)
        params = [p for p in sig.parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
        fn.__signature__ = sig.replace(parameters=params + extra)
        fn.__annotations__ = {**getattr(fn, "__annotations__", {}), **{p.name: p.annotation for p in extra}}
        return fn

    return wrap


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
    return out


def validation_message(err, source: str = "options") -> str:
    """A pydantic ``ValidationError`` as one line naming the options (``--lr: ...``)."""
    parts = []
    for e in err.errors():
        loc = [str(x) for x in e["loc"]]
        name = FLAGS.get(loc[0], (_flag(loc[0]),))[0] if loc else "value"
        extra = f" (got {e['input']!r})" if "input" in e and e.get("type") != "missing" else ""
        parts.append(f"{name}: {e['msg']}{extra}")
    return "; ".join(parts) if source == "options" else f"{source}: " + "; ".join(parts)
