"""``evalkit run --resume RUN_ID``: an image run killed with SIGKILL mid-epoch (after its first
checkpoint) continues in the same MLflow run and finishes with the same metrics as an uninterrupted
seeded CPU run; the checkpoint folder is removed once the run finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")

from test_images_cli import CXR, chestxray_folder  # noqa: E402

WORKTREE = Path(__file__).resolve().parents[1]


def _cli(tmp_path, *args, wait=True):
    env = dict(os.environ, PYTHONPATH=str(WORKTREE), EVALKIT_CHECKPOINT_DIR=str(tmp_path / "ck"))
    cmd = [sys.executable, "-P", "-m", "evalkit", *map(str, args)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if not wait:
        return proc
    out, _ = proc.communicate(timeout=600)
    return proc.returncode, out


def test_a_run_killed_mid_epoch_resumes_to_the_same_metrics(store, tmp_path):
    import mlflow

    chestxray_folder(tmp_path / "cxr", n=120, side=16)
    args = ["run", "--dataset", tmp_path / "cxr" / "Data_Entry_2017.csv", "--image-root", tmp_path / "cxr" / "images",
            *CXR, "--model", "cnn", "--epochs", "4", "--folds", "1", "--workers", "0", "--device", "cpu",
            "--monitor", "none", "--batch-size", "8", "--seed", "3"]
    code, out = _cli(tmp_path, *args, "-o", "full.json")
    assert code == 0, out
    assert list((tmp_path / "ck").iterdir()) == []  # a finished run leaves no checkpoint behind

    proc = _cli(tmp_path, *args, "-o", "killed.json", wait=False)
    deadline = time.monotonic() + 300
    while not list((tmp_path / "ck").glob("*/checkpoint.pt")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.05)
    time.sleep(0.3)  # into epoch 2
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL and not (tmp_path / "killed.json").exists()
    (folder,) = list((tmp_path / "ck").iterdir())
    run_id = folder.name
    client = mlflow.MlflowClient(store)
    assert client.get_run(run_id).info.status == "RUNNING"  # killed: nobody ended it
    assert client.get_run(run_id).data.tags["evalkit.checkpoint"] == str((folder / "checkpoint.pt").resolve())

    code, out = _cli(tmp_path, "run", "--resume", run_id, "--epochs", "2")
    assert code == 2 and "--epochs: --resume continues a run with its own options" in out
    code, out = _cli(tmp_path, "run", "--resume", run_id)
    assert code == 0, out
    assert not folder.exists()
    full = json.loads((tmp_path / "full.json").read_text())
    resumed = json.loads((tmp_path / "killed.json").read_text())  # the run's own -o
    for avg in ("micro", "macro", "samples"):
        assert resumed["summary"][avg]["f2"] == pytest.approx(full["summary"][avg]["f2"], abs=1e-9)
    assert resumed["summary"]["mean_average_precision"] == pytest.approx(full["summary"]["mean_average_precision"],
                                                                         abs=1e-9)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["test/micro_f2"] == pytest.approx(full["summary"]["micro"]["f2"], abs=1e-9)
    code, out = _cli(tmp_path, "run", "--resume", run_id)
    assert code == 2 and f"--resume {run_id}: no checkpoint of this run" in out
