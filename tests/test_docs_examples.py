"""The manual's examples run: a stale command or output in docs/ fails the suite.

Which blocks run (documented in docs/development.md, "Runnable examples"):

* a ```` ```console ```` block: each ``$ COMMAND`` line (continued by a trailing ``\\`` or by lines that
  start with the shell's secondary prompt ``> ``, e.g. inside a quoted ``python -c``) runs in bash, in
  the page's working folder, and what it prints (stdout and stderr, as a terminal shows them) must
  match the lines that follow it, up to the next ``$``. The command must exit 0: an example of a
  failure ends with ``; echo "exit $?"`` and shows that line;
* a ```` ```pycon ```` block: ``>>>`` examples run by :mod:`doctest` (ELLIPSIS, NORMALIZE_WHITESPACE);
* ```` ```bash ````, ```` ```python ```` and other blocks are shown only (they need a server, a cluster, a
  GPU or an hour).

Volatile parts are elided in the expected output: a line that is only ``...`` stands for any number of
lines (none included), and ``...`` inside a line for any text on that line (timings, run ids, paths).
Trailing spaces are ignored.

Each page runs in its own temporary folder, blocks in page order (a later block sees the files and
runs of an earlier one), with an already-migrated MLflow store (``mlruns/mlflow.db``, the conftest's
copy), a copy of ``experiments/``, ``evalkit`` and ``python`` meaning this checkout's (``python -P``),
``COLUMNS=120`` and no ``MLFLOW_TRACKING_URI``.

    python -P tests/test_docs_examples.py docs/reference/cli/run.md   # print what the page's commands print now
"""

from __future__ import annotations

import difflib
import doctest
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```(console|pycon)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)


@dataclass
class Step:
    """One command of a console block (or one pycon block) and what it must print."""

    kind: str  # "console" or "pycon"
    source: str  # the command (console) or the whole block (pycon)
    expected: str
    line: int  # line of the page where it starts


def pages() -> list[Path]:
    """The pages of the manual that hold runnable blocks (docs/drafts/ is not part of the manual)."""
    drafts = DOCS / "drafts"
    return sorted(p for p in DOCS.rglob("*.md") if drafts not in p.parents and FENCE.search(p.read_text()))


def steps(page: Path) -> list[Step]:
    """The runnable steps of ``page`` in order."""
    text = page.read_text()
    out: list[Step] = []
    for m in FENCE.finditer(text):
        first = text.count("\n", 0, m.start(2)) + 1
        if m[1] == "pycon":
            out.append(Step("pycon", m[2], "", first))
            continue
        lines = m[2].splitlines()
        i = 0
        while i < len(lines):
            if not lines[i].startswith("$ "):
                raise ValueError(f"{page.relative_to(ROOT)}:{first + i}: a console block line must start with '$ '")
            start, command = i, lines[i][2:]
            while i + 1 < len(lines) and (command.endswith("\\") or lines[i + 1][:2] in ("> ", ">")):
                i += 1
                if command.endswith("\\"):
                    command = command[:-1] + "\n" + lines[i]
                else:  # the secondary prompt "> " (or ">" on an empty line) is not part of the command
                    command += "\n" + lines[i][2:]
            i += 1
            expected = []
            while i < len(lines) and not lines[i].startswith("$ "):
                expected.append(lines[i])
                i += 1
            out.append(Step("console", command, "\n".join(expected), first + start))
    return out


def pattern(expected: str) -> re.Pattern:
    """The regular expression of an expected output: ``...`` lines and ``...`` within lines elide."""
    parts = []
    for line in expected.splitlines():
        line = line.rstrip()
        if line == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:  # "..." in a line also takes the spaces beside it (a cropped progress line ends without them)
            pieces = [re.escape(p.strip(" ")) if 0 < i < line.count("...") else
                      re.escape(p.rstrip(" ") if i == 0 else p.lstrip(" ")) for i, p in enumerate(line.split("..."))]
            parts.append(" *[^\n]*? *".join(pieces) + r"\n")
    return re.compile("".join(parts))


def first_mismatch(expected: str, output: str) -> str:
    """The first documented line the output does not bear out (with the lines before it matched)."""
    lines = expected.splitlines()
    for k in range(1, len(lines) + 1):
        if not pattern("\n".join(lines[:k])).match(output):
            return f"documented line {k} is not printed: {lines[k - 1]!r}"
    return "the output goes on after the last documented line (end the block with a '...' line to elide it)"


def normalised(output: str) -> str:
    return "".join(line.rstrip() + "\n" for line in output.splitlines())


def environment(folder: Path) -> dict[str, str]:
    """PATH with ``evalkit`` and ``python`` shims for this checkout; no inherited tracking store."""
    shims = folder / ".shims"
    shims.mkdir(exist_ok=True)
    for name, command in (("evalkit", f'"{sys.executable}" -P -m evalkit "$@"'), ("python", f'"{sys.executable}" -P "$@"')):
        (shims / name).write_text(f"#!/bin/sh\nexec {command}\n")
        (shims / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PYTEST_", "COLUMNS", "LINES"))}
    env.update(PATH=f"{shims}{os.pathsep}{env.get('PATH', '')}", COLUMNS="120",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return env


def run_console(step: Step, folder: Path, env: dict[str, str]) -> str:
    res = subprocess.run(["bash", "-c", step.source], cwd=folder, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=900)
    out = normalised(res.stdout)
    if res.returncode != 0:
        raise AssertionError(f"exited {res.returncode} (an example of a failure ends with "
                             f"'; echo \"exit $?\"'):\n{out[-3000:]}")
    return out


def run_pycon(step: Step, page: Path, globs: dict) -> None:
    test = doctest.DocTestParser().get_doctest(step.source, globs, page.name, str(page), step.line - 1)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    runner.run(test, out=report.append, clear_globs=False)
    globs.update(test.globs)  # the page's later blocks see what this one defined (doctest ran on a copy)
    if runner.failures:
        raise AssertionError("".join(report))


def prepare(folder: Path, store: Path | None) -> None:
    if store is not None:
        (folder / "mlruns").mkdir(exist_ok=True)
        shutil.copy(store, folder / "mlruns" / "mlflow.db")
    shutil.copytree(ROOT / "experiments", folder / "experiments", dirs_exist_ok=True)


def where(page: Path, step: Step) -> str:
    return f"{page.relative_to(ROOT)}:{step.line}"


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_page_examples_run_as_shown(page, tmp_path, _migrated_store, monkeypatch):
    prepare(tmp_path, _migrated_store)
    monkeypatch.chdir(tmp_path)  # pycon blocks run in-process, in the page's folder
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    env = environment(tmp_path)
    globs: dict = {}
    for step in steps(page):
        if step.kind == "pycon":
            try:
                run_pycon(step, page, globs)
            except AssertionError as e:
                raise AssertionError(f"{where(page, step)}: pycon block failed\n{e}") from None
            continue
        try:
            out = run_console(step, tmp_path, env)
        except AssertionError as e:
            raise AssertionError(f"{where(page, step)}: $ {step.source}\n{e}") from None
        if not pattern(step.expected).fullmatch(out):
            diff = "\n".join(difflib.unified_diff(step.expected.splitlines(), out.splitlines(), "documented",
                                                  "printed now", lineterm="", n=1))
            raise AssertionError(f"{where(page, step)}: $ {step.source}\nprints something else: "
                                 f"{first_mismatch(step.expected, out)}\n{diff}")


def test_quick_start_api_and_every_cli_page_have_a_runnable_example():
    runnable = {p.relative_to(DOCS).as_posix() for p in pages()}
    cli_pages = {p.relative_to(DOCS).as_posix() for p in (DOCS / "reference" / "cli").glob("*.md")}
    assert "getting-started/quick-start.md" in runnable
    assert "reference/api.md" in runnable and "```pycon" in (DOCS / "reference" / "api.md").read_text()
    assert cli_pages and cli_pages <= runnable, sorted(cli_pages - runnable)


def test_readme_excerpt_is_the_tested_quick_start_output():
    """README.md shows an excerpt of the quick start's output: each of its lines is one the quick start
    page's (run) console block expects, so the README cannot keep numbers the tests no longer see."""
    readme = (ROOT / "README.md").read_text()
    excerpt = re.search(r"^```\n(Test split: yeast.*?)^```", readme, re.M | re.S)
    assert excerpt, "README.md lost its quick-start excerpt"
    page = (DOCS / "getting-started" / "quick-start.md").read_text()
    tested = {line.rstrip() for step in steps(DOCS / "getting-started" / "quick-start.md") for line in step.expected.splitlines()}
    missing = [line for line in excerpt[1].splitlines() if line.rstrip() and line.rstrip() not in tested]
    assert not missing and "evalkit run" in page, missing


@pytest.mark.parametrize("expected, output, ok", [
    ("a\n...\nd", "a\nb\nc\nd\n", True),
    ("a\n...\nd", "a\nd\n", True),
    ("run ... done", "run 12.3 s done\n", True),
    ("a\nb", "a\nc\n", False),
    ("a", "a\nextra\n", False),
    ("x 1...", "x 12   \n", True),
    ("train ... 2/2 val_map ...", "train ━━━ 2/2 val_map\n", True),
    ("a ... b", "a  x  b\n", True),
])
def test_elision_rules(expected, output, ok):
    assert bool(pattern(expected).fullmatch(normalised(output))) is ok


def test_console_blocks_split_into_commands_and_outputs(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("text\n\n```console\n$ echo a \\\n  b\na b\n$ true\n$ echo 'x\n> y'\nx\ny\n```\n\n```bash\n$ not run\n```\n")
    assert [(s.source, s.expected, s.line) for s in steps(page)] == [
        ("echo a \n  b", "a b", 4), ("true", "", 7), ("echo 'x\ny'", "x\ny", 8)]


if __name__ == "__main__":  # print what each command of a page prints now (to update a page by hand)
    import tempfile

    for arg in sys.argv[1:]:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            prepare(folder, None)
            env = environment(folder)
            for step in steps(Path(arg).resolve()):
                if step.kind == "console":
                    res = subprocess.run(["bash", "-c", step.source], cwd=folder, env=env, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True)
                    print(f"$ {step.source}\n{normalised(res.stdout)}", end="")
                    if res.returncode:
                        print(f"[exit {res.returncode}]")
