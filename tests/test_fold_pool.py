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
from evalkit.workflows.fold_pool import FoldPool, WorkerDied
from evalkit.workflows.training import MIN_FOLD_WORK, resolve_fold_processes

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
    import pandas as pd

    from evalkit.workflows.experiment import run_experiment

    res = run_experiment(RunConfig(**SMALL, fold_processes=2, model="mlp", log_model=False), track=True)
    client = mlflow.MlflowClient(store)
    curves = pd.read_csv(client.download_artifacts(res.run_id, "curves.csv", str(tmp_path / "art")), keep_default_na=False)
    for k in (1, 2, 3):
        for metric in ("train/loss", "val/map"):
            steps = list(curves[(curves["fold"] == k) & (curves["metric"] == metric)]["step"])
            assert steps == [1, 2, 3, 4], (k, metric, steps)
    assert client.get_run(res.run_id).data.params["fold_processes"] == "2"


def _fold_args():
    from evalkit.data.core import Dataset

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5)).astype(np.float32)
    Y = (rng.random((60, 3)) < 0.4).astype(np.int8)
    ds = Dataset("t", X, Y, [f"f{i}" for i in range(5)], ["a", "b", "c"], "test", {})
    return ds.subset(np.arange(40)), ds.subset(np.arange(40, 60))


def _task(k, config, train=None, held=None):
    from evalkit.workflows.training import FoldTask

    if train is None:
        train, held = _fold_args()
    return FoldTask(k, 3, k, train, held, config.model_copy(update={"seed": k}))


def _pool(workers=1, **kw):
    from evalkit.workflows.warmups import fold_worker

    return FoldPool(workers, initializer=fold_worker, initargs=(1,), **kw)


def test_a_worker_error_is_raised_as_itself():
    from evalkit.errors import InputError
    from evalkit.workflows.training import train_in_worker

    good = RunConfig(model="mlp", hidden=[8], epochs=2, monitor="val_loss")
    bad = good.model_copy(update={"loss": "nope"})  # model_copy skips validation: the worker's build raises
    with _pool() as pool:
        failing = pool.submit(train_in_worker, _task(2, bad))
        fine = pool.submit(train_in_worker, _task(3, good))
        with pytest.raises(InputError, match="nope"):
            failing.result()
        assert fine.result().best_epoch in (1, 2)  # the worker goes on after an error


def test_a_dead_worker_is_reported_with_its_exit_code():
    from evalkit.workflows.training import train_in_worker

    cfg = RunConfig(model="mlp", hidden=[8], epochs=2, monitor="val_loss")
    with _pool() as pool:
        pool._workers[0].proc.kill()
        with pytest.raises(WorkerDied, match=r"a fold worker process died \(exit code -9\)"):
            pool.submit(train_in_worker, _task(2, cfg)).result()
        with pytest.raises(WorkerDied, match="no fold worker process is left"):
            pool.submit(train_in_worker, _task(3, cfg)).result()


def test_a_worker_that_stops_answering_is_stopped(tmp_path):
    """SIGSTOP (or a hung system call): no heartbeat, so the worker is killed and its call fails
    with WorkerDied instead of hanging the run forever."""
    import os
    import signal

    from evalkit.workflows.training import train_in_worker

    cfg = RunConfig(model="mlp", hidden=[8], epochs=500, monitor="none")
    with _pool(stall_seconds=3) as pool:
        future = pool.submit(train_in_worker, _task(2, cfg))
        while not future.running():
            future.exception(timeout=0.1) if future.done() else None
        os.kill(pool._workers[0].proc.pid, signal.SIGSTOP)
        with pytest.raises(WorkerDied, match="stopped answering"):
            future.result(timeout=120)
        assert pool._workers[0].proc.poll() is not None  # killed, not left stopped


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
    import evalkit.workflows.training as tr

    monkeypatch.setattr(tr, "available_cores", lambda: cores)
    assert resolve_fold_processes(RunConfig(**kw), n_fit) == expected


def test_min_fold_work_separates_yeast_from_a_two_epoch_smoke_run():
    assert 1200 * 1024 * 150 >= MIN_FOLD_WORK > 1200 * 16 * 150


def test_exit_now_keeps_what_a_normal_exit_does(tmp_path):
    """The CLI ends with ``exit_now`` (no interpreter teardown): the exit code, flushed output,
    atexit clean-ups (a TemporaryDirectory removed) and a thread pool's work all survive."""
    code = textwrap.dedent("""
        import concurrent.futures, sys, tempfile, time
        from evalkit.cli.exit_compat import exit_now
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


def test_a_worker_streams_every_event_as_it_happens():
    """A call given ``on_event`` sends its events back as they happen (epochs included), so a run
    killed while a worker trains keeps the curve so far; the result is the local path's type."""
    from evalkit.train import TrainResult
    from evalkit.workflows.training import train_in_worker

    cfg = RunConfig(model="mlp", hidden=[8], epochs=6, monitor="none")
    events = []
    with _pool() as pool:
        res = pool.submit(train_in_worker, _task(5, cfg), on_event=events.append).result()
    assert isinstance(res, TrainResult)
    rows = [e.data["row"] for e in events if e.kind == "epoch"]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows == res.history and res.best_epoch == 6
    assert [e.kind for e in events][:1] == ["train_start"] and events[-1].kind == "train_end"


def test_a_worker_folds_training_warning_is_forwarded():
    """Every training event of a worker's fold reaches the caller, warnings included (here: a label
    without positives in the fold's training rows)."""
    from evalkit.workflows.training import train_in_worker

    train, held = _fold_args()
    from evalkit.data.core import Dataset

    Y = train.Y.copy()
    Y[:, 1] = 0
    train = Dataset("t", train.X, Y, train.feature_names, train.label_names, "test", {})
    cfg = RunConfig(model="mlp", hidden=[8], epochs=2, monitor="none")
    events = []
    with _pool() as pool:
        pool.submit(train_in_worker, _task(2, cfg, train, held), on_event=events.append).result()
    warnings = [e.data["text"] for e in events if e.kind == "warning"]
    assert warnings == ["fold 2: 1 label(s) have no positives in its 40 training rows: b (its model cannot learn them)"]


def _plan(config):
    from evalkit.workflows.experiment import prepare_data
    from evalkit.workflows.training import plan_folds

    splits = prepare_data(config)
    return splits, plan_folds(splits, config)


def test_folds_of_a_dead_worker_train_in_this_process():
    """A worker that dies (OOM killer, a crash) costs time, not the run: its folds come back here,
    with one warning, and the models are those of a one-process run."""
    from evalkit.workflows.training import NamedModel, cross_fit

    cfg = RunConfig(model="mlp", hidden=[8], epochs=2, folds=4, seed=2)
    splits, plan = _plan(cfg)
    events = []
    alone = cross_fit(plan, NamedModel("cpu"), None, config=cfg, emit=lambda kind, **d: None)
    with _pool() as pool:
        pool._workers[0].proc.kill()
        pool._workers[0].proc.wait()
        done = cross_fit(plan, NamedModel("cpu"), pool, config=cfg,
                         emit=lambda kind, **d: events.append((kind, d)))
    assert [r.history for r in done] == [r.history for r in alone]
    warned = [d["text"] for kind, d in events if kind == "warning"]
    assert len(warned) == 1 and "a fold worker process died (exit code -9)" in warned[0], warned
    assert sorted(d["k"] for kind, d in events if kind == "fold") == [1, 2, 3, 4]


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


@pytest.mark.parametrize("model", ["auto", "mlp"])
def test_named_and_chosen_models_give_one_process_reports(tmp_path, model):
    """Folds taken by workers from the first and by this process from the last give the report of
    a single process, bit for bit, for a named model (all folds at once) and for ``auto`` (fold 1
    chooses, with the MLP candidate in a worker meanwhile)."""
    kw = dict(epochs=6, model=model)
    _, one, _ = _run(tmp_path, "one", **kw, fold_processes=1)
    _, two, events = _run(tmp_path, "two", **kw, fold_processes=2)
    assert sorted(e.data["k"] for e in events if e.kind == "fold") == [1, 2, 3]
    for key in ("summary", "per_class", "threshold", "reference_at_0.5", "training"):
        assert one[key] == two[key], key


@pytest.mark.parametrize("model", ["auto", "mlp"])
def test_worker_folds_log_each_curve_once(store, model, tmp_path):
    """The curves of folds trained by workers are kept once per epoch in curves.csv, as in a
    one-process run; the first fold's is the run's train/loss metric."""
    import mlflow
    import pandas as pd

    from evalkit.workflows.experiment import run_experiment

    res = run_experiment(RunConfig(**{**SMALL, "epochs": 6}, model=model, fold_processes=2, log_model=False), track=True)
    client = mlflow.MlflowClient(store)
    curves = pd.read_csv(client.download_artifacts(res.run_id, "curves.csv", str(tmp_path / "art")), keep_default_na=False)
    loss = curves[curves["metric"] == "train/loss"]
    for k in (1, 2, 3):
        steps = list(loss[(loss["fold"] == k) & (loss["candidate"] == "")]["step"])
        assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 2, (k, steps)
    logged = [m.step for m in client.get_metric_history(res.run_id, "train/loss")]
    assert logged == list(loss[(loss["fold"] == 1) & (loss["candidate"] == "")]["step"])
    if model == "auto":
        steps = list(loss[(loss["fold"] == 1) & (loss["candidate"] == "mlp")]["step"])
        assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 2, steps


def test_a_worker_that_beats_while_importing_torch_is_not_taken_for_stalled():
    """Heartbeats keep a worker alive that is silent for longer than the stall limit: an initializer
    that takes 12 s (as importing torch takes seconds on a loaded machine) under a 5 s limit, then
    the call's own imports. The limit leaves room for a loaded machine's slow interpreter start."""
    import time

    from evalkit.workflows.training import train_in_worker

    cfg = RunConfig(model="mlp", hidden=[8], epochs=2, monitor="val_loss")
    with FoldPool(1, initializer=time.sleep, initargs=(12.0,), stall_seconds=5.0) as pool:
        res = pool.submit(train_in_worker, _task(2, cfg)).result()  # sent at once: the worker still sleeps
    assert len(res.history) == 2


def test_no_thread_can_start_then_the_folds_train_here_with_a_warning(tmp_path, monkeypatch):
    """A pids limit that refuses new threads ("can't start new thread") degrades to training here,
    with one warning and the report of one process."""
    import threading

    import evalkit.workflows.fold_pool as fp

    _, one, _ = _run(tmp_path, "one", fold_processes=1)
    real = threading.Thread.start

    def refuse(self):
        if self.name == "evalkit-fold-worker":
            raise RuntimeError("can't start new thread")
        return real(self)

    monkeypatch.setattr(fp.threading.Thread, "start", refuse)
    _, two, events = _run(tmp_path, "two", fold_processes=2)
    assert one["summary"] == two["summary"]
    assert [e.data["text"] for e in events if e.kind == "warning" and "fold worker" in e.data["text"]] == [
        "no fold worker could be started: can't start new thread; the folds train one after another in this process"]


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


def test_a_worker_folds_training_warning_reaches_the_cli(tmp_path, cli, monkeypatch):
    """`evalkit run` prints the training warning of a fold that trained in a worker process: every fold
    is made to train in the one worker (each submit waits until the worker has taken its fold, so this
    process finds none left to take), and label ``rare`` has no positive in any training row."""
    import time

    from evalkit.workflows import training

    submitted = training.RemoteFold.__init__

    def submit_and_wait_for_the_worker(self, executor, task, log_metrics=None):
        submitted(self, executor, task, log_metrics)
        deadline = time.monotonic() + 300
        while not (self.future.running() or self.future.done()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.future.running() or self.future.done(), "the worker never took the fold"

    monkeypatch.setattr(training.RemoteFold, "__init__", submit_and_wait_for_the_worker)
    rng = np.random.default_rng(0)

    def table(name, n, rare):
        X = rng.normal(size=(n, 4))
        cols = {f"f{i}": X[:, i] for i in range(4)}
        cols |= {"y_a": (X[:, 0] > 0).astype(int), "y_b": (X[:, 1] > 0).astype(int), "y_rare": rare(n)}
        import pandas as pd

        pd.DataFrame(cols).to_csv(tmp_path / name, index=False)
        return str(tmp_path / name)

    train = table("train.csv", 80, lambda n: np.zeros(n, dtype=int))
    test = table("test.csv", 30, lambda n: (np.arange(n) % 3 == 0).astype(int))
    res = cli("run", "--dataset", train, "--test-dataset", test, "--label-prefix", "y_", "--model", "mlp",
              "--hidden", "8", "--epochs", "2", "--folds", "2", "--fold-processes", "2", "--no-track")
    assert res.exit_code == 0, res.output
    for k in (1, 2):  # CliRunner's output holds stdout and stderr
        assert f"warning: fold {k}: 1 label(s) have no positives in its 40 training rows: y_rare" in res.output
    assert "training it in this process instead" not in res.output
