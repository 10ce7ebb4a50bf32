"""Reports and CSV artifacts: written atomically (never half a file, no temporary file left behind) and
with the mode a plain ``open(path, "w")`` would give (0o666 minus the umask), so the owner's team can
read them: 0644 under umask 022, not mkstemp's 0600."""

from __future__ import annotations

import json
import os
import stat
from contextlib import contextmanager

import pytest

from evalkit.report import write_csv_atomic, write_json_atomic


@contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _frame():
    import pandas as pd

    return pd.DataFrame({"label": ["a", "b"], "f2": [0.5, 0.25]})


@pytest.mark.parametrize("mask,expected", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600), (0o002, 0o664)])
def test_json_report_mode_follows_the_umask(tmp_path, mask, expected):
    with umask(mask):
        p = write_json_atomic({"a": 1}, tmp_path / "r.json")
    assert _mode(p) == expected, oct(_mode(p))
    assert json.loads(p.read_text()) == {"a": 1}


@pytest.mark.parametrize("mask,expected", [(0o022, 0o644), (0o077, 0o600)])
def test_csv_artifact_mode_follows_the_umask(tmp_path, mask, expected):
    with umask(mask):
        p = write_csv_atomic(_frame(), tmp_path / "per_class.csv")
    assert _mode(p) == expected, oct(_mode(p))
    assert p.read_text().splitlines() == ["label,f2", "a,0.5", "b,0.25"]


def test_replacing_an_existing_report_is_atomic_and_readable(tmp_path):
    p = tmp_path / "r.json"
    with umask(0o022):
        write_json_atomic({"v": 1}, p)
        write_json_atomic({"v": 2}, p)
    assert json.loads(p.read_text()) == {"v": 2} and _mode(p) == 0o644
    assert [q.name for q in tmp_path.iterdir()] == ["r.json"]  # no temporary file left


def test_failed_json_write_leaves_no_partial_or_temporary_file(tmp_path):
    p = tmp_path / "r.json"
    # json.dump has written part of the object when it meets the unserialisable value
    with pytest.raises(TypeError, match="not JSON serialisable: object"):
        write_json_atomic({"a": 1, "b": object()}, p)
    assert list(tmp_path.iterdir()) == []


def test_failed_json_write_keeps_the_previous_report(tmp_path):
    p = tmp_path / "r.json"
    write_json_atomic({"v": 1}, p)
    with pytest.raises(TypeError, match="not JSON serialisable"):
        write_json_atomic({"v": 2, "bad": object()}, p)
    assert json.loads(p.read_text()) == {"v": 1}
    assert [q.name for q in tmp_path.iterdir()] == ["r.json"]


def _write_then(target, text: str, exc: BaseException):
    """Like DataFrame.to_csv: ``target`` is a path or an open file; write ``text``, then fail."""
    if isinstance(target, (str, os.PathLike)):
        with open(target, "w") as f:
            f.write(text)
    else:
        target.write(text)
    raise exc


def test_failed_csv_write_leaves_no_partial_or_temporary_file(tmp_path):
    class Broken:
        def to_csv(self, f, index=False):  # half a file, then the disk fills up
            _write_then(f, "label,f2\na,", OSError(28, "No space left on device"))

    with pytest.raises(OSError, match="No space left on device"):
        write_csv_atomic(Broken(), tmp_path / "per_class.csv")
    assert list(tmp_path.iterdir()) == []


def test_interrupted_write_leaves_no_temporary_file(tmp_path):
    class Interrupt:
        def to_csv(self, f, index=False):
            _write_then(f, "label", KeyboardInterrupt())

    with pytest.raises(KeyboardInterrupt):
        write_csv_atomic(Interrupt(), tmp_path / "x.csv")
    assert list(tmp_path.iterdir()) == []


def test_cli_output_report_is_readable_by_the_group(tmp_path, cli, monkeypatch):
    from test_gates import write_predictions

    monkeypatch.chdir(tmp_path)
    pred = write_predictions(tmp_path / "p.npz")
    out = tmp_path / "reports" / "r.json"
    with umask(0o022):
        res = cli("evaluate", "--predictions", pred, "--no-track", "--no-per-class", "-o", out)
    assert res.exit_code == 0, res.output
    assert _mode(out) == 0o644, oct(_mode(out))
    assert json.loads(out.read_text())["summary"]["macro"]["f2"] is not None
    assert [q.name for q in out.parent.iterdir()] == ["r.json"]
