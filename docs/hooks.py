"""MkDocs hook (``hooks:`` in mkdocs.yml): fills the generated parts of the manual at build time.

* ``<!-- evalkit-cli: COMMAND -->`` and ``<!-- evalkit-cli-commands -->``: the CLI reference, generated
  from the Typer app by ``docs/gen_cli.py`` (so a new flag appears without anyone copying it).
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
for path in (str(DOCS.parent), str(DOCS)):  # this checkout's evalkit and gen_cli, whatever the cwd
    if path not in sys.path:
        sys.path.insert(0, path)

import gen_cli  # noqa: E402


def on_page_markdown(markdown: str, page, config, files) -> str:
    return gen_cli.render(markdown)
