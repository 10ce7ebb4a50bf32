"""Runs left RUNNING by a dead process are not results: ``compare`` shows each run's status, leaves
unfinished runs out of the grouped statistics and marks an incomplete grid; ``evalkit runs reap``
marks the stale RUNNING runs of evalkit whose process is gone as KILLED (same host: PID checked;
other hosts: only with --any-host)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

EVALKIT = [sys.executable, "-m", "evalkit"]


def _dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _run(client, exp_id, *, status="RUNNING", host=None, pid=None, name="r", tags=None, start=None,
         params=None, metrics=None, evalkit=True):
    t = {"evalkit.version": "test"} if evalkit else {}
    if host is not None:
        t["evalkit.host"] = host
    if pid is not None:
        t["evalkit.pid"] = str(pid)
    t.update(tags or {})
    run = client.create_run(exp_id, run_name=name, tags=t, start_time=start)
    rid = run.info.run_id
    for k, v in (params or {}).items():
        client.log_param(rid, k, v)
    for k, v in (metrics or {}).items():
        client.log_metric(rid, k, v)
    if status != "RUNNING":
        client.set_terminated(rid, status)
    return rid


def test_runs_reap_marks_runs_of_dead_processes_killed_and_leaves_the_others(store, cli):
    import mlflow

    client = mlflow.MlflowClient(store)
    exp = client.create_experiment("reap")
    here = socket.gethostname()
    hour_ago = int((time.time() - 2 * 3600) * 1000)
    dead = _run(client, exp, host=here, pid=_dead_pid(), name="dead", start=hour_ago)
    alive = _run(client, exp, host=here, pid=os.getpid(), name="alive", start=hour_ago)
    young = _run(client, exp, host=here, pid=_dead_pid(), name="young")  # started just now
    remote = _run(client, exp, host="elsewhere.example", pid=12345, name="remote", start=hour_ago)
    foreign = _run(client, exp, host=here, pid=_dead_pid(), name="not-evalkit", start=hour_ago, evalkit=False)
    done = _run(client, exp, host=here, pid=_dead_pid(), name="done", start=hour_ago, status="FINISHED")

    res = cli("runs", "reap", "--older-than", "1h", "--dry-run")
    assert res.exit_code == 0, res.output
    assert f"would mark KILLED {dead}" in res.output and "1 stale run(s) would be marked KILLED" in res.output
    assert client.get_run(dead).info.status == "RUNNING"

    res = cli("runs", "reap", "--older-than", "1h")
    assert res.exit_code == 0, res.output
    assert f"KILLED {dead} 'dead' in experiment 'reap'" in res.output and "is gone" in res.output
    assert "1 stale run(s) marked KILLED" in res.output
    status = {rid: client.get_run(rid).info.status for rid in (dead, alive, young, remote, foreign, done)}
    assert status == {dead: "KILLED", alive: "RUNNING", young: "RUNNING", remote: "RUNNING", foreign: "RUNNING",
                      done: "FINISHED"}
    assert "evalkit.reaped" in client.get_run(dead).data.tags

    res = cli("runs", "reap", "--older-than", "1h", "--any-host")
    assert res.exit_code == 0, res.output
    assert f"KILLED {remote}" in res.output and "elsewhere.example" in res.output
    assert client.get_run(remote).info.status == "KILLED"
    assert client.get_run(alive).info.status == "RUNNING"  # its process (this one) is alive
    assert client.get_run(foreign).info.status == "RUNNING"  # not evalkit's

    assert cli("runs", "reap", "--older-than", "soon").exit_code == 2


def test_every_evalkit_run_records_its_host_and_process(store, cli, tmp_path):
    from test_gates import _runs, write_predictions

    res = cli("evaluate", "--predictions", write_predictions(tmp_path / "p.npz"), "--no-per-class")
    assert res.exit_code == 0, res.output
    [run] = _runs(store)
    assert run.data.tags["evalkit.host"] == socket.gethostname()
    assert run.data.tags["evalkit.pid"] == str(os.getpid())


def _grid(client, exp, *, cells, children):
    parent = _run(client, exp, name="grid", status="RUNNING", tags={"evalkit.grid": "parent"},
                  params={"cells": str(cells)})
    ids = []
    for i, (loss, seed, status, f2) in enumerate(children):
        ids.append(_run(client, exp, name=f"c{i}", status=status, params={"loss": loss, "seed": str(seed)},
                        metrics={"test/macro_f2": f2}, tags={"mlflow.parentRunId": parent, "evalkit.grid": "child"}))
    return parent, ids


def test_compare_shows_status_leaves_unfinished_runs_out_and_marks_an_incomplete_grid(store, cli):
    import mlflow

    client = mlflow.MlflowClient(store)
    exp = client.create_experiment("killed-grid")
    parent, ids = _grid(client, exp, cells=6, children=[
        ("bce", 0, "FINISHED", 0.50), ("bce", 1, "FINISHED", 0.52), ("asl", 0, "FINISHED", 0.60),
        ("asl", 1, "RUNNING", 0.99),  # killed mid-run: its metric so far is not a result
    ])
    res = cli("compare", "--experiment", "killed-grid", "--format", "json")
    assert res.exit_code == 0, res.output
    stats = json.loads(res.output)
    asl = next(g for g in stats["groups"] if g["group"] == "asl")
    assert asl["n"] == 1 and asl["metrics"]["test/macro_f2"]["mean"] == pytest.approx(0.60)
    assert stats["left_out"] == {"RUNNING": 1}
    assert stats["grid"] == {"run_id": parent, "status": "RUNNING", "cells": 6, "children": 4, "finished": 3,
                             "complete": False}

    res = cli("compare", "--experiment", "killed-grid")
    assert res.exit_code == 0, res.output
    assert "status" in res.output and "RUNNING" in res.output and "FINISHED" in res.output
    assert "1 unfinished run(s) left out of the statistics (1 RUNNING)" in res.output
    assert "INCOMPLETE grid" in res.output and "3 of 6 cells finished" in res.output

    res = cli("compare", "--experiment", "killed-grid", "--group-by", "none", "--format", "markdown")
    assert res.exit_code == 0, res.output
    assert res.output.startswith("| run | status |")
    assert "RUNNING" in res.output


def test_compare_of_a_complete_grid_has_no_notes(store, cli):
    import mlflow

    client = mlflow.MlflowClient(store)
    exp = client.create_experiment("done-grid")
    parent, _ = _grid(client, exp, cells=2, children=[("bce", 0, "FINISHED", 0.5), ("asl", 0, "FINISHED", 0.6)])
    client.set_terminated(parent, "FINISHED")
    res = cli("compare", "--experiment", "done-grid", "--format", "json")
    stats = json.loads(res.output)
    assert stats["left_out"] == {} and stats["grid"]["complete"] is True
    res = cli("compare", "--experiment", "done-grid")
    assert "INCOMPLETE" not in res.output and "left out" not in res.output


@pytest.mark.slow
def test_kill_9_leaves_the_run_running_and_reap_ends_it_killed(store, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    # a named model logs train/loss as it trains (--model auto logs it only once the choice is made,
    # near the end of a short run: the run could finish before the kill); 3000 epochs outlast the kill
    proc = subprocess.Popen([*EVALKIT, "run", "--model", "mlp", "--epochs", "3000", "--folds", "1", "--hidden", "16",
                             "--batch-size", "16", "--monitor", "none", "--no-log-model", "--experiment", "k9"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    import mlflow

    client = mlflow.MlflowClient(store)
    run_id = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and run_id is None:
            exp = client.get_experiment_by_name("k9")
            runs = client.search_runs([exp.experiment_id]) if exp else []
            if runs and "train/loss" in runs[0].data.metrics:
                run_id = runs[0].info.run_id
            time.sleep(0.3)
        assert run_id, proc.stdout.read() if proc.poll() is not None else "no run seen"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert client.get_run(run_id).info.status == "RUNNING"  # MLflow cannot know
    assert client.get_run(run_id).data.tags["evalkit.pid"] == str(proc.pid)
    out = subprocess.run([*EVALKIT, "runs", "reap", "--older-than", "0"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"KILLED {run_id}" in out.stdout and f"process {proc.pid}" in out.stdout
    assert client.get_run(run_id).info.status == "KILLED"


def test_runs_reap_ends_a_spooled_run_whose_sync_process_is_gone(store, cli):
    """A run created by sync-spool is owned by the syncing process (evalkit.spool_pid), not by the
    process that spooled it: reap ends it when that sync died midway and leaves a live sync's run."""
    import mlflow

    client = mlflow.MlflowClient(store)
    exp = client.create_experiment("spooled")
    here = socket.gethostname()
    hour_ago = int((time.time() - 2 * 3600) * 1000)
    spooled = {"evalkit.spooled": "true", "evalkit.spool_host": here}
    died = client.create_run(exp, run_name="died", start_time=hour_ago,
                             tags={**spooled, "evalkit.spool_pid": str(_dead_pid())}).info.run_id
    syncing = client.create_run(exp, run_name="syncing", start_time=hour_ago,  # its spooled tags name a dead process
                                tags={**spooled, "evalkit.spool_pid": str(os.getpid()), "evalkit.host": here,
                                      "evalkit.pid": str(_dead_pid()), "evalkit.version": "test"}).info.run_id
    res = cli("runs", "reap", "--older-than", "1h")
    assert res.exit_code == 0, res.output
    assert f"KILLED {died} 'died' in experiment 'spooled'" in res.output and "1 stale run(s) marked KILLED" in res.output
    assert client.get_run(died).info.status == "KILLED"
    assert client.get_run(syncing).info.status == "RUNNING"  # the sync uploading it is alive
