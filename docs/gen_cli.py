"""The CLI reference, generated from the Typer app (never hand-copied).

Every ``<!-- evalkit-cli: COMMAND -->`` comment in a page of the manual is replaced, when the site is
built (``docs/hooks.py``, a MkDocs hook), by the Markdown this module writes for that command: its
description, usage, arguments and every option with its default and help, read from the click
command Typer builds (``typer.main.get_command``). The default shown is computed by the same Typer
functions that print ``[default: ...]`` in ``evalkit COMMAND --help``; ``tests/test_cli_reference.py``
checks the two agree for every option.

    python docs/gen_cli.py run            # print the Markdown of one command (``datasets download``: a sub-command)
    python docs/gen_cli.py --list         # the command paths the reference covers
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

MARKER = re.compile(r"<!--\s*evalkit-cli:\s*([a-z][a-z -]*?)\s*-->")
OVERVIEW = "<!-- evalkit-cli-commands -->"


def root():
    """The click group behind ``evalkit`` (the Typer app, commands registered). Typer ships its own
    copy of click (``typer._click``), so commands are told apart by what they have, not by class."""
    import typer

    from evalkit.cli import app

    return typer.main.get_command(app)


def context(cmd, name: str, parent=None):
    """A click context for ``cmd`` (Typer's class)."""
    import typer

    return typer.Context(cmd, info_name=name, parent=parent)


def is_group(cmd) -> bool:
    return hasattr(cmd, "list_commands")


def is_option(param) -> bool:
    return param.param_type_name == "option"


def find(path: str):
    """The click command at ``path`` (``"run"``, ``"datasets download"``) and a context for it."""
    group = root()
    ctx = context(group, "evalkit")
    cmd = group
    for name in path.split():
        sub = cmd.get_command(ctx, name) if is_group(cmd) else None
        if sub is None:
            raise KeyError(f"evalkit has no command {path!r}")
        cmd = sub
        ctx = context(cmd, name, ctx)
    return cmd, ctx


def command_paths() -> list[str]:
    """Every command path of the CLI, groups first then their sub-commands (``datasets``, ``datasets download``)."""
    out: list[str] = []

    def walk(cmd, prefix: str, ctx) -> None:
        if not is_group(cmd):
            return
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            path = f"{prefix} {name}".strip()
            out.append(path)
            walk(sub, path, context(sub, name, ctx))

    group = root()
    walk(group, "", context(group, "evalkit"))
    return out


@dataclass(frozen=True)
class Option:
    """One parameter as the reference shows it."""

    flags: str  # "--track / --no-track", "--output, -o"
    type: str  # what --help shows in its type column ("str", "int", "list[str]")
    default: str  # what --help shows after "default:" ("" when it shows none)
    help: str  # the help text, rich escapes removed
    panel: str  # the --help panel ("Options" unless the command names one)
    required: bool


def default_shown(param, ctx) -> str:
    """The default ``--help`` prints for ``param`` (``""`` when none): the logic of Typer's rich help
    (``typer.rich_utils._get_parameter_help``), through the same Typer methods."""
    get = getattr(param, "_extract_default_help_str", None)
    if get is None:  # a plain click parameter: click's own rule
        record = param.get_help_record(ctx) if is_option(param) else None
        m = re.search(r"\[(?:.*; )?default: (.*?)(?:;.*)?\]$", record[1]) if record else None
        return m[1] if m else ""
    value = get(ctx=ctx)
    as_text = isinstance(param.show_default, str)
    if not (as_text or (value is not None and (param.show_default or ctx.show_default))):
        return ""
    return param._get_default_string(ctx=ctx, show_default_is_str=as_text, default_value=value)


def _type(param, ctx) -> str:
    show = getattr(param, "display_type_rich", None)
    if show is not None:
        return show(ctx=ctx).strip("<>")
    return param.type.name


def options(cmd, ctx) -> list[Option]:
    """The parameters of ``cmd`` in ``--help`` order (arguments included, ``--help`` left out)."""
    out = []
    for p in cmd.get_params(ctx):
        if is_option(p) and p.name == "help":
            continue
        if is_option(p):
            flags = ", ".join(p.opts) + (" / " + ", ".join(p.secondary_opts) if p.secondary_opts else "")
        else:
            flags = (p.metavar or p.name or "").upper() if not p.metavar else p.metavar
        text = unescape(getattr(p, "help", None) or "")
        default_panel = "Options" if is_option(p) else "Arguments"
        panel = getattr(p, "rich_help_panel", None) or default_panel
        out.append(Option(flags, _type(p, ctx), default_shown(p, ctx), text, panel, p.required))
    return out


def unescape(text: str) -> str:
    """Help text without Typer's rich escapes (``\\[grid]`` -> ``[grid]``) and single line breaks."""
    text = text.replace("\\[", "[")
    return re.sub(r"(?<!\n)\n(?!\n)", " ", text).strip()


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: no pipes, tags or emphasis taken from help text."""
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("*", "\\*").replace("_", "\\_").replace("\n\n", "<br>")


def markdown(path: str) -> str:
    """The reference of ``evalkit PATH``: description, usage, then one table per ``--help`` panel."""
    cmd, ctx = find(path)
    help_text = unescape(cmd.help or "").split("\n\n")
    usage = " ".join(cmd.collect_usage_pieces(ctx))
    lines = [*(line for p in help_text if p for line in (p.replace("\n", " "), "")), "```text", f"evalkit {path} {usage}".rstrip(),
             "```", ""]
    panels: dict[str, list[Option]] = {}
    for opt in options(cmd, ctx):
        panels.setdefault(opt.panel, []).append(opt)
    for panel, opts in panels.items():
        lines += [f"**{panel}**", "", "| name | type | default | description |", "|---|---|---|---|"]
        for o in opts:
            default = f"`{o.default}`" if o.default else ("required" if o.required else "—")
            flags = "<br>".join(f"`{f.strip()}`" for f in o.flags.split(" / "))
            lines.append(f"| {flags} | {_cell(o.type)} | {default} | {_cell(o.help)} |")
        lines.append("")
    if is_group(cmd):
        lines += ["| command | what it does |", "|---|---|"]
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            lines.append(f"| `evalkit {path} {name}` | {_cell(unescape(sub.get_short_help_str(200)))} |")
        lines.append("")
    return "\n".join(lines)


def overview() -> str:
    """A table of the top-level commands and their one-line help."""
    group = root()
    ctx = context(group, "evalkit")
    lines = ["| command | what it does |", "|---|---|"]
    for name in group.list_commands(ctx):
        sub = group.get_command(ctx, name)
        lines.append(f"| [`evalkit {name}`]({name}.md) | {_cell(unescape(sub.get_short_help_str(300)))} |")
    return "\n".join(lines) + "\n"


def render(page_markdown: str) -> str:
    """``page_markdown`` with every ``<!-- evalkit-cli: PATH -->`` and ``<!-- evalkit-cli-commands -->``
    replaced by the generated reference."""
    page_markdown = page_markdown.replace(OVERVIEW, overview())
    return MARKER.sub(lambda m: markdown(m[1]), page_markdown)


if __name__ == "__main__":
    args = sys.argv[1:]
    print("\n".join(command_paths()) if args == ["--list"] else markdown(" ".join(args) or "run"))
