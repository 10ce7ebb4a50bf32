"""The manual's scheduled-job sequence (docs/how-to/scheduled-jobs.md), exactly as written, passes on a
fresh setup: register the champion with a default run, then the shipped nightly spec exits 0 with
every gate passing."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REGISTER = "evalkit run --register yeast-mlp --alias champion"
NIGHTLY = "evalkit evaluate --spec experiments/nightly_yeast.toml"


@pytest.mark.slow
def test_documented_nightly_sequence_exits_0(store, tmp_path):
    page = (ROOT / "docs" / "how-to" / "scheduled-jobs.md").read_text()
    assert REGISTER in page and NIGHTLY in page  # the commands a user copies
    shutil.copytree(ROOT / "experiments", tmp_path / "experiments")
    for command in (REGISTER, NIGHTLY):
        argv = [sys.executable, "-m", "evalkit", *shlex.split(command)[1:]]
        res = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=1800)
        assert res.returncode == 0, f"{command}\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}"
    report = json.loads((tmp_path / "reports" / "nightly_yeast.json").read_text())
    assert report["gates"]["status"] == "pass"
    assert {r["status"] for r in report["gates"]["results"]} == {"pass"}
    assert len(report["gates"]["results"]) == 3  # two absolute gates and the drop against the champion
    assert report["model"]["run_id"] == report["gates"]["baseline"]["run_id"]
