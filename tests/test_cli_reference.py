"""The manual's CLI reference is generated from the Typer app and shows what ``--help`` shows.

``docs/gen_cli.py`` writes each command's option table (the MkDocs hook ``docs/hooks.py`` puts it in
the pages at build time). These tests read ``evalkit COMMAND --help`` as a user sees it (a real
process, a terminal wide enough that no row wraps) and check that every option it lists is in the
reference with the same default, and nothing else is. With ``EVALKIT_DOCS_SITE=site`` (CI, after
``mkdocs build --strict``) the same check reads the built HTML page of ``evalkit run``.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))
import gen_cli  # noqa: E402

CLI_PAGES = ROOT / "docs" / "reference" / "cli"


def help_defaults(path: str) -> dict[str, str]:
    """``{primary flag: default shown}`` of every option row of ``evalkit PATH --help`` ("" = no default)."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.update(COLUMNS="4000", PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    res = subprocess.run([sys.executable, "-P", "-m", "evalkit", *path.split(), "--help"], capture_output=True,
                         text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    out = {}
    for line in res.stdout.splitlines():
        m = re.match(r"│\s+(--[\w-]+)", line)
        if not m or m[1] == "--help":
            continue
        defaults = re.findall(r"\[default: ([^\]]*)\]", line)
        out[m[1]] = defaults[-1] if defaults else ""
    return out


def markdown_defaults(markdown: str) -> dict[str, str]:
    """``{primary flag: default}`` of the option rows of a generated reference ("" = none shown)."""
    out = {}
    for line in markdown.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]  # a cell may hold an escaped \|
        flag = re.match(r"`(--[\w-]+)", cells[0]) if len(cells) == 4 else None
        if flag:
            default = re.fullmatch(r"`([^`]*)`", cells[2])
            out[flag[1]] = default[1] if default else ""
    return out


def html_defaults(page: str) -> dict[str, str]:
    """``{primary flag: default}`` of the option rows of a built reference page."""
    out = {}
    for row in re.findall(r"<tr>(.*?)</tr>", page, re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        flag = re.match(r"<code>(--[\w-]+)", cells[0]) if cells else None
        if flag and len(cells) == 4:
            code = re.fullmatch(r"<code>(.*)</code>", cells[2].strip(), re.S)
            out[flag[1]] = html.unescape(code[1]) if code else ""
    return out


@pytest.fixture(scope="module")
def run_help() -> dict[str, str]:
    return help_defaults("run")


def test_run_reference_lists_every_option_with_the_help_default(run_help):
    assert len(run_help) > 50, run_help  # every RunConfig field is an option
    documented = markdown_defaults(gen_cli.markdown("run"))
    assert set(documented) == set(run_help), (sorted(set(run_help) - set(documented)), sorted(set(documented) - set(run_help)))
    wrong = {flag: (documented[flag], shown) for flag, shown in run_help.items() if documented[flag] != shown}
    assert not wrong, f"reference default != --help default: {wrong}"
    # the defaults a user relies on, as --help prints them (so the comparison itself is not vacuous)
    assert {k: run_help[k] for k in ("--dataset", "--epochs", "--folds", "--threshold", "--beta", "--track")} == {
        "--dataset": "yeast", "--epochs": "150", "--folds": "5", "--threshold": "joint", "--beta": "2.0",
        "--track": "track"}


@pytest.mark.parametrize("path", [p for p in gen_cli.command_paths() if p != "run"])
def test_every_command_reference_matches_its_help(path):
    if gen_cli.is_group(gen_cli.find(path)[0]) and not markdown_defaults(gen_cli.markdown(path)):
        return  # a group without options of its own (its sub-commands have their own tables)
    shown = help_defaults(path)
    documented = markdown_defaults(gen_cli.markdown(path))
    assert documented == shown


def test_every_command_has_a_reference_page():
    for path in gen_cli.command_paths():
        page = CLI_PAGES / f"{path.split()[0]}.md"
        assert page.is_file(), f"no reference page for `evalkit {path}`: add {page.relative_to(ROOT)}"
        assert f"<!-- evalkit-cli: {path} -->" in page.read_text(), f"{page.name} lacks the generated table of {path}"
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in CLI_PAGES.glob("*.md"):
        assert f"reference/cli/{page.name}" in nav, f"{page.name} is not in mkdocs.yml's nav"


def test_a_renamed_flag_shows_up_as_a_difference(run_help):
    """The comparison fails when the reference and --help disagree (the check is not vacuous)."""
    documented = markdown_defaults(gen_cli.markdown("run").replace("`--epochs`", "`--max-epochs`").replace("`150`", "`15`"))
    assert set(documented) != set(run_help)
    assert documented["--patience"] == run_help["--patience"] == "15"
    assert "--epochs" not in documented


def test_help_text_escapes_become_plain_text_and_table_safe():
    assert gen_cli.unescape("an optional \\[grid] table\nof runs") == "an optional [grid] table of runs"
    assert gen_cli._cell("a|b <x> *.toml") == "a\\|b &lt;x&gt; \\*.toml"


@pytest.mark.skipif(not os.environ.get("EVALKIT_DOCS_SITE"), reason="set EVALKIT_DOCS_SITE=site after `mkdocs build` "
                    "(CI does) to check the built page")
def test_built_site_lists_every_run_option_with_the_help_default(run_help):
    page = Path(os.environ["EVALKIT_DOCS_SITE"]) / "reference" / "cli" / "run" / "index.html"
    built = html_defaults(page.read_text())
    assert set(built) == set(run_help), (sorted(set(run_help) - set(built)), sorted(set(built) - set(run_help)))
    assert {flag: built[flag] for flag in run_help} == run_help
