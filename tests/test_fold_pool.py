"""Folds trained in worker processes (``--fold-processes``): the same models and the same logged
curves as one after another; errors and dead workers surface; a script without a ``__main__``
guard is safe; auto picks one process for small work."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from evalkit.config import RunConfig
from evalkit.workflows.fold_pool import MIN_FOLD_WORK, FoldPool, resolve_fold_processes

SMALL = dict(epochs=4, hidden=[32], folds=3, monitor="val_map", seed=3)


def _run(tmp_path, name, **kw):
    from evalkit.workflows.experiment import run_experiment

    events = []
    res = run_experiment(RunConfig(**{**SMALL, **kw}, output=str(tmp_path / f"{name}.json")), track=False,
                         on_event=events.append)
    rep = json.loads((tmp_path / f"{name}.json").read_text())
    return res, rep, events


def test_two_processes_give_the_report_of_one(tmp_path):
    _, one, _ = _run(tmp_path, "one", fold_processes=1)
    res, two, events = _run(tmp_path, "two", fold_processes=2)
    assert [e.data["text"] for e in events if e.kind == "note" and "processes train at once" in e.data["text"]] == \
        ["folds 2-3: 2 processes train at once (this one and 1 worker process(es); --fold-processes)"]
    assert sorted(e.data["k"] for e in events if e.kind == "fold") == [1, 2, 3]
    for key in ("summary", "per_class", "threshold", "reference_at_0.5"):
        assert one[key] == two[key], key  # bit for bit: same seeds, same rows, same thread count
    t1, t2 = one["training"], two["training"]
    assert t1["best_epoch_per_fold"] == t2["best_epoch_per_fold"]
    assert t1["epochs_run_per_fold"] == t2["epochs_run_per_fold"]


def test_two_processes_log_every_folds_curve(store, tmp_path):
    import mlflow

    from evalkit.workflows.experiment import run_experiment

    res = run_experiment(RunConfig(**SMALL, fold_processes=2, model="mlp", log_model=False), track=True)
    client = mlflow.MlflowClient(store)
    for k in (1, 2, 3):
        steps = [m.step for m in client.get_metric_history(res.run_id, f"fold{k}/train/loss")]
        assert steps == [1, 2, 3, 4], (k, steps)
        assert len(client.get_metric_history(res.run_id, f"fold{k}/val/map")) == 4
    assert client.get_run(res.run_id).data.params["fold_processes"] == "2"


def _fold_args():
    from evalkit.data.core import Dataset

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5)).astype(np.float32)
    Y = (rng.random((60, 3)) < 0.4).astype(np.int8)
    ds = Dataset("t", X, Y, [f"f{i}" for i in range(5)], ["a", "b", "c"], "test", {})
    return ds.subset(np.arange(40)), ds.subset(np.arange(40, 60))


def test_a_worker_error_is_raised_as_itself_after_the_others_end():
    train, held = _fold_args()
    good = RunConfig(model="mlp", hidden=[8], epochs=2, monitor="val_loss")
    bad = good.model_copy(update={"loss": "nope"})  # model_copy skips validation: the worker's build raises
    from evalkit.errors import InputError

    ran_here = []
    with FoldPool(1, threads=1) as pool:
        with pytest.raises(InputError, match="nope"):
            pool.run([2, 3], local=lambda k: ran_here.append(k) or "here",
                     remote_args=lambda k: (k, train, held, bad if k == 2 else good))
    assert ran_here in ([], [3])  # this process took fold 3 at most; nothing was lost silently


def test_a_dead_worker_is_reported_with_its_exit_code():
    train, held = _fold_args()
    cfg = RunConfig(model="mlp", hidden=[8], epochs=2, monitor="val_loss")
    with FoldPool(1, threads=1) as pool:
        pool._workers[0].proc.kill()
        with pytest.raises(RuntimeError, match=r"a fold worker process died \(exit code -9\)"):
            pool._workers[0].call((2, train, held, cfg))


def test_a_script_without_a_main_guard_runs_with_worker_processes(tmp_path):
    """Workers are fresh interpreters running evalkit only: the caller's script is never re-run
    (multiprocessing's spawn would re-import an unguarded script in every worker)."""
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent("""
        import evalkit
        print("script body ran")
        res = evalkit.run_experiment(evalkit.RunConfig(epochs=2, hidden=[16], folds=3, fold_processes=2), track=False)
        print("micro-F2", round(res.report["summary"]["micro"]["f2"], 4))
    """))
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("script body ran") == 1 and "micro-F2" in out.stdout


@pytest.mark.parametrize("kw, n_fit, cores, expected", [
    (dict(), 1200, 2, 2),  # yeast defaults on 2 cores: this process + 1 worker
    (dict(), 1200, 8, 4),  # at most folds - 1
    (dict(), 1200, 1, 1),
    (dict(threads=2), 1200, 2, 1),  # the cores are taken by the threads
    (dict(epochs=2, hidden=[16]), 1200, 2, 1),  # too little work to pay for a worker's start
    (dict(folds=1), 1200, 2, 1),
    (dict(device="cuda"), 1200, 2, 1),
    (dict(fold_processes=3), 10, 1, 3),  # explicit: kept (capped at folds - 1)
    (dict(fold_processes=9), 10, 1, 4),
])
def test_auto_fold_processes(monkeypatch, kw, n_fit, cores, expected):
    import evalkit.workflows.fold_pool as fp

    monkeypatch.setattr(fp, "available_cores", lambda: cores)
    assert resolve_fold_processes(RunConfig(**kw), n_fit) == expected


def test_min_fold_work_separates_yeast_from_a_two_epoch_smoke_run():
    assert 1200 * 1024 * 150 >= MIN_FOLD_WORK > 1200 * 16 * 150


def test_exit_now_keeps_what_a_normal_exit_does(tmp_path):
    """The CLI ends with ``exit_now`` (no interpreter teardown): the exit code, flushed output,
    atexit clean-ups (a TemporaryDirectory removed) and a thread pool's work all survive."""
    code = textwrap.dedent("""
        import concurrent.futures, sys, tempfile, time
        from evalkit.cli.commands import exit_now
        d = tempfile.TemporaryDirectory()
        open(d.name + "/x", "w").write("x")
        pool = concurrent.futures.ThreadPoolExecutor(1)
        pool.submit(lambda: (time.sleep(0.5), open(sys.argv[1], "w").write("done")))
        sys.stdout.write(d.name)  # no newline: only an explicit flush shows it
        exit_now(int(sys.argv[2]) if sys.argv[2].isdigit() else sys.argv[2])
    """)
    for arg, expected in (("3", 3), ("0", 0), ("bye", 1)):
        marker = tmp_path / f"m{arg}"
        out = subprocess.run([sys.executable, "-c", code, str(marker), arg], capture_output=True, text=True, timeout=60)
        assert out.returncode == expected, out.stderr
        assert out.stdout.startswith("/") and not Path(out.stdout).exists()  # printed, then cleaned up
        assert marker.read_text() == "done"  # the pool's task finished before the exit
        assert ("bye" in out.stderr) == (arg == "bye")


def test_a_prefetched_fold_streams_its_epochs_to_take():
    """Epochs reach ``take``'s callback as they end (those before the call at once), so a run killed
    while a worker trains keeps the curve so far."""
    train, held = _fold_args()
    cfg = RunConfig(model="mlp", hidden=[8], epochs=6, monitor="none")
    rows = []
    with FoldPool(1, threads=1) as pool:
        assert pool.prefetch((1, "mlp"), (5, train, held, cfg))
        assert not pool.prefetch((1, "other"), (5, train, held, cfg))  # one job per worker
        out = pool.take((1, "mlp"), rows.append)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows == out["history"] and out["best_epoch"] == 6
    assert pool.take((1, "linear")) is None


def test_folds_of_a_dead_worker_train_in_this_process():
    """A worker that dies (OOM killer, a crash) costs time, not the run: its folds come back here."""
    train, held = _fold_args()
    cfg = RunConfig(model="mlp", hidden=[8], epochs=2, monitor="val_loss")
    warnings, here = [], []
    with FoldPool(1, threads=1, warn=warnings.append) as pool:
        pool._workers[0].proc.kill()
        pool._workers[0].proc.wait()
        done = pool.run([2, 3, 4], local=lambda k: here.append(k) or f"fold{k}",
                        remote_args=lambda k: (k, train, held, cfg))
    assert sorted(done) == [2, 3, 4] and all(where == "local" for where, _ in done.values())
    assert sorted(here) == [2, 3, 4]
    assert len(warnings) == 1 and "a fold worker process died (exit code -9)" in warnings[0], warnings
    with FoldPool(1, threads=1, warn=warnings.append) as pool:  # a prefetched job: take says None, the caller trains
        pool.prefetch((1, "mlp"), (1, train, held, cfg))
        pool._workers[0].proc.kill()
        assert pool.take((1, "mlp")) is None


def test_no_worker_can_start_then_the_folds_train_here(tmp_path, monkeypatch):
    """A process limit (fork / exec failing) degrades to one process: the same report, no error."""
    import evalkit.workflows.fold_pool as fp

    _, one, _ = _run(tmp_path, "one", fold_processes=1)

    def refuse(*a, **k):
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(fp._Worker, "__init__", refuse)
    _, two, events = _run(tmp_path, "two", fold_processes=2)
    assert one["summary"] == two["summary"]
    assert not [e for e in events if e.kind == "note" and "processes train at once" in e.data["text"]]


def _slow_first_fold(monkeypatch, pending_for: int):
    """Fold 1's prefetched job counts as running for the first ``pending_for`` questions (a slow
    worker: this process trains fold 2 meanwhile), then as ended (waiting for it). Records what
    ``FoldPool.start`` queued for the workers."""
    import evalkit.workflows.fold_pool as fp

    asked, queued = [], []
    real_pending, real_start = fp.FoldPool.pending, fp.FoldPool.start

    def pending(self, key):
        asked.append(key)
        if len(asked) <= pending_for:
            return True
        self._prefetched[key][0].join()  # from here on, the job has ended
        return real_pending(self, key)

    def start(self, items, *a, **k):
        items = list(items)
        queued.append(items)
        return real_start(self, items, *a, **k)

    monkeypatch.setattr(fp.FoldPool, "pending", pending)
    monkeypatch.setattr(fp.FoldPool, "start", start)
    return asked, queued


@pytest.mark.parametrize("model, pending_for", [
    ("auto", 3),  # the choice is known after fold 2's 2nd epoch: the workers start on folds 3.. then
    ("auto", 99),  # fold 2 ends before the choice is known
    ("mlp", 3),  # a named model: nothing to choose, fold 2 is kept
])
def test_fold_2_trained_while_a_worker_trains_fold_1_is_the_same_model(tmp_path, monkeypatch, model, pending_for):
    """While a worker trains fold 1 (of the MLP candidate), this process trains fold 2 of it, in case
    it wins: the report is the one of a single process, bit for bit."""
    import evalkit.workflows.model_choice as mc

    monkeypatch.setattr(mc, "_winner", lambda table: "mlp")  # (on this small problem the linear model wins)
    kw = dict(fold_processes=2, epochs=6) if model == "auto" else dict(fold_processes=2, epochs=6, model="mlp")
    _, one, _ = _run(tmp_path, "one", **{**kw, "fold_processes": 1})
    asked, queued = _slow_first_fold(monkeypatch, pending_for)
    _, two, events = _run(tmp_path, "two", **kw)
    assert queued == [[3]], (asked, [e.data.get("text") for e in events if e.kind == "note"])  # fold 2 trained here in advance, kept
    if model == "auto":
        assert [e.data["text"] for e in events if e.kind == "note" and "chose" in e.data["text"]][0].startswith(
            "--model auto chose mlp")
    assert sorted(e.data["k"] for e in events if e.kind == "fold") == [1, 2, 3]
    for key in ("summary", "per_class", "threshold", "reference_at_0.5", "training"):
        assert one[key] == two[key], key


def test_fold_2_trained_in_advance_stops_when_its_model_loses(tmp_path, monkeypatch):
    """If the linear candidate wins, the MLP fold 2 trained while waiting is dropped at once and
    folds 2.. train the linear model: the report of a single process."""
    import evalkit.workflows.model_choice as mc

    monkeypatch.setattr(mc, "_winner", lambda table: "linear")
    kw = dict(fold_processes=2, epochs=30, patience=30)
    _, one, _ = _run(tmp_path, "one", **{**kw, "fold_processes": 1})
    asked, queued = _slow_first_fold(monkeypatch, 3)
    _, two, events = _run(tmp_path, "two", **kw)
    assert queued == [[2, 3]]
    assert len(asked) == 4  # the condition, then one question per epoch: answered at epoch 3, fold 2 stopped
    assert "--model auto chose linear" in " ".join(e.data.get("text", "") for e in events if e.kind == "note")
    for key in ("summary", "per_class", "threshold", "training"):
        assert one[key] == two[key], key


@pytest.mark.parametrize("model", ["auto", "mlp"])
def test_fold_2_trained_in_advance_logs_each_curve_once(store, monkeypatch, model):
    """The curves of fold 1 (trained by the worker) and fold 2 (trained here meanwhile) are logged
    once per epoch, under the keys a one-process run uses."""
    import mlflow

    import evalkit.workflows.model_choice as mc
    from evalkit.workflows.experiment import run_experiment

    monkeypatch.setattr(mc, "_winner", lambda table: "mlp")
    _, queued = _slow_first_fold(monkeypatch, 3)
    res = run_experiment(RunConfig(**{**SMALL, "epochs": 6}, model=model, fold_processes=2, log_model=False), track=True)
    assert queued == [[3]]
    client = mlflow.MlflowClient(store)
    for k in (1, 2, 3):
        steps = [m.step for m in client.get_metric_history(res.run_id, f"fold{k}/train/loss")]
        assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 2, (k, steps)
    if model == "auto":
        steps = [m.step for m in client.get_metric_history(res.run_id, "fold1/auto/mlp/train/loss")]
        assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 2, steps


def test_a_stalled_worker_is_killed_and_its_folds_train_in_this_process(monkeypatch):
    """A worker that stops answering (SIGSTOP, a hang) is found by its heartbeat, killed, and its
    fold comes back here with a warning, instead of hanging the run."""
    import os
    import signal

    import evalkit.workflows.fold_worker as fw

    monkeypatch.setattr(fw, "STALL_SECONDS", 3.0)
    train, held = _fold_args()
    cfg = RunConfig(model="mlp", hidden=[8], epochs=2, monitor="val_loss")
    warnings, here = [], []
    with FoldPool(1, threads=1, warn=warnings.append) as pool:
        proc = pool._workers[0].proc
        os.kill(proc.pid, signal.SIGSTOP)
        done = pool.run([2, 3], local=lambda k: here.append(k) or f"fold{k}", remote_args=lambda k: (k, train, held, cfg))
        assert proc.poll() == -signal.SIGKILL  # killed, not left stopped
    assert done == {2: ("local", "fold2"), 3: ("local", "fold3")} and sorted(here) == [2, 3]
    assert len(warnings) == 1 and "stalled (no sign of life for 3 s) and was killed" in warnings[0], warnings


def test_a_worker_that_beats_while_importing_torch_is_not_taken_for_stalled(monkeypatch):
    """Heartbeats (also during its start-up imports, seconds of silence otherwise) keep a worker
    that is slower than the stall limit alive."""
    import evalkit.workflows.fold_worker as fw

    monkeypatch.setattr(fw, "STALL_SECONDS", 1.5)
    train, held = _fold_args()
    cfg = RunConfig(model="mlp", hidden=[8], epochs=2, monitor="val_loss")
    warnings = []
    with FoldPool(1, threads=1, warn=warnings.append) as pool:
        out = pool._workers[0].call((2, train, held, cfg))  # sent at once: the worker is still importing torch
    assert len(out["history"]) == 2 and warnings == []


def test_no_thread_can_start_then_the_folds_train_here_with_a_warning(monkeypatch):
    """A pids limit that refuses new threads ("can't start new thread") degrades to training here."""
    import threading

    train, held = _fold_args()
    cfg = RunConfig(model="mlp", hidden=[8], epochs=2, monitor="val_loss")
    warnings, here = [], []
    with FoldPool(1, threads=1, warn=warnings.append) as pool:
        def refuse(self):
            raise RuntimeError("can't start new thread")

        monkeypatch.setattr(threading.Thread, "start", refuse)
        assert pool.prefetch((1, "mlp"), (1, train, held, cfg)) is False
        assert pool.take((1, "mlp")) is None  # nothing was started: the caller trains it
        done = pool.run([2, 3], local=lambda k: here.append(k) or f"fold{k}", remote_args=lambda k: (k, train, held, cfg))
        monkeypatch.undo()
    assert done == {2: ("local", "fold2"), 3: ("local", "fold3")}
    assert warnings == ["cannot start a thread (can't start new thread); the folds train one after another in "
                        "this process"]


def test_sigterm_soon_after_start_says_so_and_leaves_no_worker(tmp_path):
    """SIGTERM while the workers start: the usual one line, exit 143, and no worker outlives the CLI."""
    import os
    import signal
    import time

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-P", "-m", "evalkit", "run", "--no-track", "--epochs", "50", "--hidden",
                             "16", "--folds", "3", "--fold-processes", "2", "--device", "cpu"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120  # a bound on waiting, not a timing check
    workers: list[int] = []
    while not workers and time.monotonic() < deadline and proc.poll() is None:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        workers = [int(p) for p in children.read_text().split()] if children.exists() else []
        time.sleep(0.05)
    assert workers, "no fold worker was started"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143
    assert err.strip().splitlines()[-1] == "interrupted (SIGTERM)"
    assert all(not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
               for pid in workers)
