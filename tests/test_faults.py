"""Faults never lose a result: store unreachable (fail fast, exit 3, report + spool, sync-spool),
store failing mid-run, SIGTERM (run ends KILLED, exit 143), 4 concurrent jobs on a fresh SQLite store,
credentials never logged."""

from __future__ import annotations

import json
import time
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from test_gates import _runs, write_predictions

EVALKIT = [sys.executable, "-m", "evalkit"]
DEAD = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


def test_unreachable_store_fails_fast_writes_report_and_spools_then_sync_uploads(store, cli, tmp_path):
    pred = write_predictions(tmp_path / "p.npz")
    out = tmp_path / "r.json"
    res = cli("evaluate", "--predictions", pred, "--tracking-uri", DEAD, "-o", out, "--no-per-class",
              "--gate", "test/macro_f2>=0.1", "--trigger", "scheduled", "--job", "nightly")
    assert res.exit_code == 3, res.output  # how long this takes: benchmarks/bench_cli.py
    assert "http://127.0.0.1:9 unreachable: connection refused" in res.output and "sync-spool" in res.output
    rep = json.loads(out.read_text())  # the report is written all the same
    assert rep["gates"]["status"] == "pass"
    entries = list((tmp_path / "mlruns" / "spool").iterdir())
    assert len(entries) == 1
    e = entries[0]
    run = json.loads((e / "run.json").read_text())
    assert run["experiment"] == "evalkit" and run["run_id"] is None and run["status"] == "FINISHED"
    assert json.loads((e / "tags.json").read_text())["evalkit.trigger"] == "scheduled"
    assert json.loads((e / "params.json").read_text())["predictions"] == str(pred)
    metrics = {m["key"]: m["value"] for m in json.loads((e / "metrics.json").read_text())}
    assert metrics["test/macro_f2"] == pytest.approx(rep["summary"]["macro"]["f2"])
    assert json.loads((e / "artifacts" / "report.json").read_text())["gates"]["status"] == "pass"

    # later, the store is back: upload the spool (to the default local store here) and remove it
    res = cli("sync-spool", "--tracking-uri", store)
    assert res.exit_code == 0, res.output
    assert "1 spooled run(s) uploaded" in res.output and "sqlite" in res.output
    assert not any((tmp_path / "mlruns" / "spool").iterdir())
    [r] = _runs(store)
    assert r.info.status == "FINISHED"
    assert r.data.tags["evalkit.trigger"] == "scheduled" and r.data.tags["evalkit.gate"] == "pass"
    assert r.data.metrics["test/macro_f2"] == pytest.approx(rep["summary"]["macro"]["f2"])
    import mlflow

    assert "report.json" in {a.path for a in mlflow.MlflowClient(store).list_artifacts(r.info.run_id)}


def test_server_that_accepts_but_never_answers_fails_within_the_timeout(store, cli, tmp_path):
    import socket

    with socket.socket() as srv:  # connections are accepted by the kernel, nothing ever answers
        srv.bind(("127.0.0.1", 0))
        srv.listen(16)
        uri = f"http://127.0.0.1:{srv.getsockname()[1]}"
        pred = write_predictions(tmp_path / "p.npz")
        res = cli("evaluate", "--predictions", pred, "--tracking-uri", uri, "--tracking-timeout", "4",
                  "--no-per-class", "-o", tmp_path / "r.json")
        srv.setblocking(False)
        connections = 0
        while True:  # how often evalkit knocked: one probe, no retry storm (timings: benchmarks/bench_cli.py)
            try:
                srv.accept()[0].close()
                connections += 1
            except BlockingIOError:
                break
    assert res.exit_code == 3, res.output
    assert "timed out" in res.output, res.output
    assert connections == 1
    assert (tmp_path / "r.json").exists() and len(list((tmp_path / "mlruns" / "spool").iterdir())) == 1


def test_sync_spool_with_store_still_down_keeps_entries(store, cli, tmp_path):
    pred = write_predictions(tmp_path / "p.npz")
    res = cli("evaluate", "--predictions", pred, "--tracking-uri", DEAD, "--no-per-class")
    assert res.exit_code == 3 and "http://127.0.0.1:9 unreachable" in res.output, res.output
    res = cli("sync-spool")  # default target: the store the run was meant for, still down
    assert res.exit_code == 3 and "http://127.0.0.1:9 unreachable" in res.output
    assert len(list((tmp_path / "mlruns" / "spool").iterdir())) == 1


def test_run_fails_fast_before_training_when_store_unreachable(store, cli, tmp_path):
    res = cli("run", "--epochs", "50", "--hidden", "16", "--no-log-model", "--tracking-uri", DEAD)
    assert res.exit_code == 3, res.output
    assert "http://127.0.0.1:9 unreachable: connection refused" in res.output and "nothing was run" in res.output
    assert "best epoch" not in res.output  # no training happened


def test_store_failing_mid_run_spools_the_rest_and_sync_resumes_the_run(store, tmp_path, monkeypatch):
    import mlflow

    from evalkit.errors import InfraError
    from evalkit.tracking import RunLogger, sync_spool

    def down(*a, **k):
        raise ConnectionError("Connection refused")

    logger = RunLogger(store, "mid", run_name="r", tags={"evalkit.trigger": "scheduled"})
    with pytest.raises(InfraError, match="connection refused; nothing lost: results spooled to"):
        with logger as run, monkeypatch.context() as m:
            run.log_params({"a": 1})
            run.log_metrics({"train/loss": 0.9}, step=1)
            m.setattr(mlflow, "log_metrics", down)  # the store goes down mid-run
            m.setattr(mlflow, "log_dict", down)
            run.log_metrics({"train/loss": 0.5}, step=2)
            run.log_metrics({"test/macro_f2": 0.61})
            run.log_dict({"k": 1}, "report.json")
    client = mlflow.MlflowClient(store)
    assert client.get_run(logger.run_id).info.status == "FAILED"  # never left RUNNING
    assert [o.status for o in sync_spool(store)] == ["uploaded"]
    r = client.get_run(logger.run_id)  # the same run, completed
    assert r.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(r.info.run_id, "train/loss")] == [1, 2]
    assert r.data.metrics["test/macro_f2"] == 0.61 and r.data.params == {"a": "1"}
    assert "report.json" in {a.path for a in client.list_artifacts(r.info.run_id)}


def test_credentials_never_reach_params_tags_reports_or_output(store, cli, tmp_path, monkeypatch):
    from evalkit.tracking import RunLogger, redact_text

    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "hunter2-secret")
    assert redact_text("https://alice:hunter2-secret@mlflow.example/x") == "https://***@mlflow.example/x"
    assert redact_text("token hunter2-secret") == "token ***"
    with RunLogger(store, "sec") as run:
        run.log_params({"uri": "https://alice:pw123@host/x", "pw": "hunter2-secret"})
        run.set_tags({"t": "postgresql://bob:pw456@db/mlflow"})
    r = _runs(store, "sec")[0]
    text = json.dumps([r.data.params, r.data.tags])
    assert "pw123" not in text and "pw456" not in text and "hunter2" not in text
    # an unreachable store with credentials in the URI: not in the output, the report or the spool
    pred = write_predictions(tmp_path / "p.npz")
    res = cli("evaluate", "--predictions", pred, "--tracking-uri", "http://carol:s3cr3tpw@127.0.0.1:9",
              "-o", tmp_path / "r.json", "--no-per-class")
    assert res.exit_code == 3
    spooled = "".join(p.read_text() for p in (tmp_path / "mlruns" / "spool").rglob("*.json"))
    for text in (res.output, (tmp_path / "r.json").read_text(), spooled):
        assert "s3cr3tpw" not in text and "carol" not in text and "hunter2" not in text
    assert "http://***@127.0.0.1:9" in res.output


def _db_rows(db: Path, sql: str, args=()):
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return []


@pytest.mark.slow
def test_sigterm_during_training_ends_run_killed_with_metrics_so_far(store, tmp_path):
    db = tmp_path / "mlruns" / "mlflow.db"
    proc = subprocess.Popen(
        [*EVALKIT, "run", "--model", "mlp", "--epochs", "3000", "--hidden", "16", "--batch-size", "16", "--monitor", "none",
         "--no-log-model", "--experiment", "sigterm"],
        cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        run_id = None
        while time.monotonic() < deadline and proc.poll() is None:
            rows = _db_rows(db, "select r.run_uuid, count(m.step) from runs r join metrics m on m.run_uuid = r.run_uuid "
                                "where r.status = 'RUNNING' and m.key = 'train/loss' group by r.run_uuid")
            if rows and rows[0][1] >= 2:  # the first batch of the buffered curve (after FLUSH_SECONDS)
                run_id, seen = rows[0]
                break
            time.sleep(0.3)
        assert run_id, f"no RUNNING run with train/loss steps seen; output:\n{proc.stdout.read() if proc.poll() is not None else ''}"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, out
    assert "SIGTERM" in out and "Traceback" not in out
    [(status,)] = _db_rows(db, "select status from runs where run_uuid = ?", (run_id,))
    assert status == "KILLED"
    steps = _db_rows(db, "select step from metrics where run_uuid = ? and key = 'train/loss'", (run_id,))
    assert seen <= len(steps) < 3000  # what was still buffered at SIGTERM was sent as the run ended


@pytest.mark.slow
def test_four_concurrent_jobs_on_a_fresh_sqlite_store_all_record_their_runs(tmp_path):
    pred = write_predictions(tmp_path / "p.npz")
    assert not (tmp_path / "mlruns").exists()  # a fresh store: schema creation races
    procs = [subprocess.Popen([*EVALKIT, "evaluate", "--predictions", str(pred), "--no-per-class", "--job", f"job{i}",
                               "--trigger", "scheduled", "--gate", "test/macro_f2>=0.1", "-o", f"r{i}.json"],
                              cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(4)]
    outs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], "\n\n".join(outs)
    runs = _runs(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    assert sorted(r.data.tags["evalkit.job"] for r in runs) == ["job0", "job1", "job2", "job3"]
    assert all(r.info.status == "FINISHED" and "test/macro_f2" in r.data.metrics for r in runs)
    assert not (tmp_path / "mlruns" / "spool").exists()  # nothing had to be spooled
    assert all(json.loads((tmp_path / f"r{i}.json").read_text())["run_id"] for i in range(4))


def test_jobs_logging_the_same_dataset_at_once_all_record_it(store):
    """MLflow inserts a run input's dataset check-then-insert: 8 jobs logging the same evaluation
    data to one experiment at once lose that race (UNIQUE constraint failed: datasets...), which
    used to send all but one job offline (spooled, exit 3). The retry finds the committed row."""
    import threading

    import mlflow
    from mlflow.entities import Dataset, DatasetInput

    from evalkit.tracking.store import retry_busy

    client = mlflow.MlflowClient(store)
    exp = client.create_experiment("race")
    runs = [client.create_run(exp).info.run_id for _ in range(8)]
    barrier = threading.Barrier(len(runs))
    errors: list[str] = []

    def log(run_id: str) -> None:
        ds = DatasetInput(Dataset(name="yeast-test", digest="abc123", source_type="local", source="p.npz"), [])
        barrier.wait()
        try:
            retry_busy(lambda: client.log_inputs(run_id, [ds]))
        except Exception as e:  # noqa: BLE001 - the assertion shows it
            errors.append(str(e).splitlines()[0])

    threads = [threading.Thread(target=log, args=(r,)) for r in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    digests = {tuple(d.dataset.digest for d in client.get_run(r).inputs.dataset_inputs) for r in runs}
    assert digests == {("abc123",)}


@pytest.mark.parametrize("message", [
    "(sqlite3.IntegrityError) UNIQUE constraint failed: datasets.experiment_id, datasets.name, datasets.digest",
    '(psycopg2.errors.UniqueViolation) duplicate key value violates unique constraint "uq_datasets"',
    "API request to http://h/api/2.0/mlflow/runs/log-inputs failed with exception HTTPConnectionPool(host='h', "
    "port=5000): Max retries exceeded with url: /api/2.0/mlflow/runs/log-inputs (Caused by "
    "ResponseError('too many 500 error responses'))",
    "(sqlite3.OperationalError) database is locked",
])
def test_retry_busy_retries_transient_store_errors_and_nothing_else(message, monkeypatch):
    from evalkit.tracking import store as store_mod

    monkeypatch.setattr(store_mod.time, "sleep", lambda s: None)
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError(message)
        return "ok"

    assert store_mod.retry_busy(flaky) == "ok" and len(calls) == 3
    calls.clear()

    def refused():
        calls.append(1)
        raise RuntimeError("Connection refused")

    with pytest.raises(RuntimeError, match="Connection refused"):
        store_mod.retry_busy(refused)
    assert len(calls) == 1


def test_training_curves_are_sent_in_batches_with_their_steps_and_times(store, monkeypatch):
    """One request per epoch cost ~11 ms each (370 requests, 4 s of a yeast run): per-step metrics
    are buffered and sent together; nothing is lost or reordered."""
    import mlflow

    from evalkit.tracking import RunLogger
    from evalkit.tracking import run as run_mod

    sent = []
    real = run_mod.RunLogger._send
    monkeypatch.setattr(run_mod.RunLogger, "_send", lambda self, items: (sent.append(len(items)), real(self, items)))
    monkeypatch.setattr(run_mod, "FLUSH_SECONDS", 1e9)  # no time-based flush: a loaded machine cannot change the count
    with RunLogger(store, "curves") as run:
        for epoch in range(1, 301):
            run.log_metrics({"train/loss": 1.0 / epoch, "val/loss": 2.0 / epoch}, step=epoch)
        assert sent == []  # 600 values buffered
        run.log_metrics({"test/micro_f2": 0.75})  # no step: sent at once, with what is buffered
        assert sent == [601]  # one request
    client = mlflow.MlflowClient(store)
    history = client.get_metric_history(run.run_id, "train/loss")
    assert sorted((m.step, m.value) for m in history) == [(e, 1.0 / e) for e in range(1, 301)]
    times = [m.timestamp for m in sorted(history, key=lambda m: m.step)]
    assert times == sorted(times)
    assert client.get_run(run.run_id).data.metrics["test/micro_f2"] == 0.75


@pytest.mark.parametrize("during", ["start_run", "end_run"])
def test_sigterm_inside_start_run_or_end_run_never_leaves_the_run_running(store, monkeypatch, during):
    """A SIGTERM that lands inside mlflow's start_run / end_run used to abort the call: the run stayed
    RUNNING. It is deferred now: a run that just started ends KILLED, one that just ended keeps its
    status; either way Terminated (exit 143) follows, and the previous handler is back."""
    import mlflow

    from evalkit.tracking import RunLogger, Terminated

    real = getattr(mlflow, during)

    def signalled(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives as the store call begins
        return real(*args, **kwargs)

    def cli_handler(signum, frame):  # what the CLI installs before a run starts
        raise Terminated("terminated by SIGTERM")

    monkeypatch.setattr(mlflow, during, signalled)
    before = signal.signal(signal.SIGTERM, cli_handler)
    try:
        with pytest.raises(Terminated):
            with RunLogger(store, "term", run_name="r") as run:
                run.log_metrics({"m": 1.0})
        assert signal.getsignal(signal.SIGTERM) is cli_handler
    finally:
        signal.signal(signal.SIGTERM, before)
    client = mlflow.MlflowClient(store)
    (r,) = client.search_runs([client.get_experiment_by_name("term").experiment_id])
    assert r.info.status == ("KILLED" if during == "start_run" else "FINISHED")
    if during == "end_run":
        assert r.data.metrics == {"m": 1.0}


@pytest.mark.parametrize("during", ["start_run", "end_run"])
def test_ctrl_c_inside_start_run_or_end_run_never_leaves_the_run_running(store, monkeypatch, during):
    """Ctrl-C (SIGINT) is deferred like SIGTERM while the run starts or ends: KeyboardInterrupt follows
    (exit 130), a run that just started ends KILLED, one that just ended keeps its status."""
    import mlflow

    from evalkit.tracking import RunLogger

    real = getattr(mlflow, during)

    def signalled(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # arrives as the store call begins
        return real(*args, **kwargs)

    monkeypatch.setattr(mlflow, during, signalled)
    # Python's own Ctrl-C handler (a CI script started in the background inherits SIGINT ignored)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with RunLogger(store, "int", run_name="r") as run:
                run.log_metrics({"m": 1.0})
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)
    client = mlflow.MlflowClient(store)
    (r,) = client.search_runs([client.get_experiment_by_name("int").experiment_id])
    assert r.info.status == ("KILLED" if during == "start_run" else "FINISHED")


def test_second_ctrl_c_while_an_interrupted_run_ends_is_dropped(store, monkeypatch):
    """The first Ctrl-C ends the run KILLED; a second one that lands while the run is being ended
    (flush, end_run) used to abort end_run (run left RUNNING, a traceback): it is dropped now."""
    import mlflow

    from evalkit.tracking import RunLogger

    real = mlflow.end_run

    def signalled(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # the impatient second Ctrl-C
        return real(*args, **kwargs)

    monkeypatch.setattr(mlflow, "end_run", signalled)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (see above)
    try:
        with pytest.raises(KeyboardInterrupt) as info:
            with RunLogger(store, "int2", run_name="r") as run:
                run.log_metrics({"m": 1.0})
                raise KeyboardInterrupt  # the first Ctrl-C, mid-training
    finally:
        signal.signal(signal.SIGINT, before)
    assert info.value.run_killed
    client = mlflow.MlflowClient(store)
    (r,) = client.search_runs([client.get_experiment_by_name("int2").experiment_id])
    assert r.info.status == "KILLED"
