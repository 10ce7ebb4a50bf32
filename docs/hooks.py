"""MkDocs hook (``hooks:`` in mkdocs.yml): fills the generated parts of the manual at build time.

* ``<!-- evalkit-cli: COMMAND -->`` and ``<!-- evalkit-cli-commands -->``: the CLI reference, generated
  from the Typer app by ``docs/gen_cli.py`` (so a new flag appears without anyone copying it).

The reference must describe *this* checkout's evalkit, not another copy installed in the environment
(an editable install of another worktree, say): this checkout goes first on ``sys.path`` when the
build starts (MkDocs restores ``sys.path`` after loading a hook, so not at import time), and the build
stops with an error when ``evalkit`` still resolves elsewhere.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
gen_cli = None


def on_config(config):
    global gen_cli
    from mkdocs.exceptions import PluginError

    for path in (str(DOCS.parent), str(DOCS)):  # this checkout's evalkit and gen_cli, whatever the cwd
        if path in sys.path:
            sys.path.remove(path)
        sys.path.insert(0, path)
    evalkit = importlib.import_module("evalkit")
    if Path(evalkit.__file__).resolve().parent != DOCS.parent / "evalkit":
        raise PluginError(f"the CLI reference would describe {evalkit.__file__}, not {DOCS.parent / 'evalkit'} "
                          "(evalkit was imported before the build started)")
    gen_cli = importlib.import_module("gen_cli")
    return config


def on_page_markdown(markdown: str, page, config, files) -> str:
    return gen_cli.render(markdown)
