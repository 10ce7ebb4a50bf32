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
    table = tmp_path / "cxr" / "Data_Entry_2017.csv"
    before = table.read_bytes()
    code, out = _cli(tmp_path, "run", "--resume", run_id, "-o", table, "--force")  # the saved run's input
    assert code == 2 and out.strip().endswith("is the input of --dataset; write the output to another path (an input "
                                              "is never overwritten, even with --force)"), out
    assert table.read_bytes() == before
    code, out = _cli(tmp_path, "run", "--resume", run_id, "--no-track")
    assert code == 2 and out.strip() == f"error: --no-track: --resume continues a tracked run (it reopens MLflow run " \
                                        f"{run_id}); drop --no-track", out
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


# -- what --resume may be given: checked against the killed run's saved configuration ------------------

RUN_ID = "0123456789abcdef0123456789abcdef"


def _killed_run(tmp_path, monkeypatch, **saved) -> Path:
    """The checkpoint folder a killed tracked image run leaves (its config.json, as
    evalkit.workflows.resume.run_checkpoint writes it), for a run of ``saved`` options on d.npz."""
    import numpy as np

    from evalkit.config import RunConfig
    from evalkit.workflows import training

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", X=rng.random((40, 3, 8, 8)).astype(np.float32), Y=rng.random((40, 2)) < 0.5)
    folder = tmp_path / "ck" / RUN_ID
    folder.mkdir(parents=True)
    config = RunConfig(dataset="d.npz", model="cnn", folds=1, epochs=30, **saved)
    (folder / "config.json").write_text(config.model_dump_json(indent=1))
    monkeypatch.setenv("EVALKIT_CHECKPOINT_DIR", str(tmp_path / "ck"))
    monkeypatch.setattr(training, "train_task", lambda *a, **k: pytest.fail("trained before the resume was refused"))
    return folder


def _no_runs(store) -> bool:
    import mlflow

    return mlflow.MlflowClient(store).search_runs([e.experiment_id for e in mlflow.MlflowClient(store)
                                                   .search_experiments()]) == []


def test_resume_output_that_is_the_runs_saved_dataset_is_refused_even_with_force(store, cli, tmp_path, monkeypatch):
    _killed_run(tmp_path, monkeypatch)
    before = (tmp_path / "d.npz").read_bytes()
    res = cli("run", "--resume", RUN_ID, "-o", "d.npz", "--force")
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == ["error: -o/--output d.npz: is the input of --dataset; write the output "
                                               "to another path (an input is never overwritten, even with --force)"]
    assert (tmp_path / "d.npz").read_bytes() == before
    assert _no_runs(store)


def test_resume_rewrites_the_runs_saved_output_only_with_force(store, cli, tmp_path, monkeypatch):
    _killed_run(tmp_path, monkeypatch, output="r.json")
    (tmp_path / "r.json").write_text("keep me")
    res = cli("run", "--resume", RUN_ID)
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [f"error: -o/--output (of run {RUN_ID}): r.json already exists; "
                                               "add --force to overwrite it"]
    assert (tmp_path / "r.json").read_text() == "keep me"
    assert _no_runs(store)


def test_resume_with_no_track_is_refused_in_one_line(store, cli, tmp_path, monkeypatch):
    from evalkit import run_experiment
    from evalkit.config import RunConfig
    from evalkit.errors import InputError

    folder = _killed_run(tmp_path, monkeypatch)
    res = cli("run", "--resume", RUN_ID, "--no-track")
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [f"error: --no-track: --resume continues a tracked run (it reopens "
                                               f"MLflow run {RUN_ID}); drop --no-track"]
    with pytest.raises(InputError, match=r"^track=False: --resume continues a tracked run"):
        run_experiment(RunConfig(resume=RUN_ID), track=False)
    assert _no_runs(store) and (folder / "config.json").is_file()
