"""The Ray executor and `evalkit tune` on a local Ray instance (2 CPUs, bound to 127.0.0.1):
equal to the sequential grid, failing cells, SIGTERM, a 4-trial search, the cluster-store refusal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[1]
TINY = """
experiment = "{experiment}"
dataset = "yeast"
hidden = [8]
epochs = {epochs}
patience = {epochs}
folds = 1
log_model = false
"""


def _spec(tmp_path, name: str, body: str, *, epochs: int = 2) -> Path:
    p = tmp_path / f"{name}.toml"
    head = TINY.format(experiment=name, epochs=epochs)
    if "dataset = [" in body:
        head = head.replace('dataset = "yeast"\n', "")
    p.write_text(head + textwrap.dedent(body))
    return p


def _client(store):
    import mlflow

    return mlflow.MlflowClient(store)


def _children(store, parent_id):
    c = _client(store)
    exp = c.get_run(parent_id).info.experiment_id
    return c.search_runs([exp], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")


@pytest.mark.slow
def test_ray_grid_equals_sequential_run_for_run(store, tmp_path):
    from evalkit.workflows.grid import run_spec

    spec = _spec(tmp_path, "eq", """
        [grid]
        loss = ["bce", "asl"]
        seed = [0, 1]
    """)
    seq = run_spec(str(spec))
    par = run_spec(str(spec), executor={"kind": "ray", "max_concurrent": 2})
    assert par.failed == [] and len(par.results) == 4
    for a, b in zip(seq.results, par.results):
        ma, mb = a.report.metrics("test"), b.report.metrics("test")
        assert ma.keys() == mb.keys()
        for k in ma:
            assert ma[k] == pytest.approx(mb[k], abs=1e-6, nan_ok=True), k
        assert a.validation == pytest.approx(b.validation, abs=1e-6, nan_ok=True)
    kids = _children(store, par.parent_run_id)
    assert len(kids) == 4 and {r.info.status for r in kids} == {"FINISHED"}
    assert {r.data.tags["evalkit.cell"] for r in kids} == {f"loss={l} seed={s}" for l in ("bce", "asl") for s in (0, 1)}
    assert all("test/micro_f2" in r.data.metrics and "validation/map" in r.data.metrics for r in kids)
    [node] = {r.data.tags["evalkit.ray_node_id"] for r in kids}  # one local node ran every cell
    assert len(node) == 56 and int(node, 16) >= 0
    assert not any("evalkit.ray_node_id" in r.data.tags for r in _children(store, seq.parent_run_id))
    parent = _client(store).get_run(par.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.params["executor"] == "ray"
    assert parent.data.tags["evalkit.cells_succeeded"] == "4" and parent.data.tags["evalkit.cells_failed"] == "0"


@pytest.mark.slow
def test_a_failing_cell_is_retried_then_failed_and_the_others_finish(store, tmp_path, cli):
    # a file that exists (a missing one is refused before any cell runs) but fails when a cell reads it
    (tmp_path / "broken.csv").write_text("f1,label_a,label_b\n1,0,1\n2,1,0,7,8\n")
    spec = _spec(tmp_path, "fail", """
        [executor]
        kind = "ray"
        max_retries = 1
        [grid]
        dataset = ["yeast", "broken.csv"]
        seed = [0, 1]
    """)
    r = cli("run", str(spec))
    assert r.exit_code == 0, r.output
    assert "2 of 4 cells FAILED after 1 retry" in r.output and "broken.csv" in r.output
    runs = _client(store).search_runs([_client(store).get_experiment_by_name("fail").experiment_id])
    parent = [x for x in runs if x.data.tags.get("evalkit.grid") == "parent"][0]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["evalkit.cells_succeeded"] == "2" and parent.data.tags["evalkit.cells_failed"] == "2"
    kids = _children(store, parent.info.run_id)
    assert len(kids) == 2 and {k.info.status for k in kids} == {"FINISHED"}
    assert "RUNNING" not in {x.info.status for x in runs}


@pytest.mark.slow
def test_sigterm_mid_grid_leaves_no_running_run(store, tmp_path):
    spec = _spec(tmp_path, "term", """
        [executor]
        kind = "ray"
        max_concurrent = 2
        [grid]
        loss = ["bce", "asl"]
        seed = [0, 1]
    """, epochs=5000)
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen([sys.executable, "-m", "evalkit", "run", str(spec)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client = _client(store)
    deadline = time.monotonic() + 300  # a bound on waiting, not a timing assertion
    try:
        while time.monotonic() < deadline:
            exp = client.get_experiment_by_name("term")
            running = client.search_runs([exp.experiment_id], filter_string="attributes.status = 'RUNNING'") if exp else []
            if sum(1 for x in running if x.data.tags.get("evalkit.grid") == "child") >= 1:
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(1)
        else:
            pytest.fail("no cell started")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "interrupted (SIGTERM); MLflow run ended as KILLED" in err
    runs = client.search_runs([client.get_experiment_by_name("term").experiment_id])
    assert runs and "RUNNING" not in {x.info.status for x in runs}
    parent = [x for x in runs if x.data.tags.get("evalkit.grid") == "parent"][0]
    assert parent.info.status == "KILLED"
    assert "KILLED" in {x.info.status for x in runs if x.data.tags.get("evalkit.grid") == "child"}


@pytest.mark.slow
def test_tune_logs_4_trials_and_evaluates_the_best_once_on_test(store, tmp_path, cli, monkeypatch):
    import evalkit.workflows.experiment as experiment

    spec = _spec(tmp_path, "search", """
        [executor]
        max_concurrent = 2
        [search]
        num_samples = 4
        metric = "validation/map"
        lr = { loguniform = [1e-4, 1e-2] }
        loss = { choice = ["bce", "asl"] }
    """)
    calls = []
    real = experiment.run_experiment

    def spy(config, *args, **kwargs):  # the driver's calls (trials run in Ray workers)
        calls.append(kwargs.get("evaluate_test", True))
        return real(config, *args, **kwargs)

    monkeypatch.setattr(experiment, "run_experiment", spy)
    from evalkit.workflows.tune import run_tune

    res = run_tune(str(spec))
    assert calls == [True]  # the test split is scored once, for the best configuration
    assert len(res.trials) == 4 and all(t["status"] == "ok" for t in res.trials)
    objectives = [t["objective"] for t in res.trials]
    assert objectives == sorted(objectives, reverse=True) and res.best["objective"] == objectives[0]
    kids = _children(store, res.parent_run_id)
    assert len(kids) == 4 and {k.info.status for k in kids} == {"FINISHED"}
    for k in kids:  # trials: validation metrics only, never a test number
        assert "validation/map" in k.data.metrics and len(k.data.tags["evalkit.ray_node_id"]) == 56
        assert not any(m.startswith(("test/", "test_at")) for m in k.data.metrics)
    parent = _client(store).get_run(res.parent_run_id)
    assert parent.data.tags["evalkit.test_evaluations"] == "1"
    assert parent.data.metrics["test/macro_f2"] == pytest.approx(res.final.report.metrics("test")["test/macro_f2"])
    assert parent.data.metrics["search/best_objective"] == pytest.approx(res.best["objective"])
    # the final run repeats the best trial (same config and seed): same validation objective
    assert res.final.validation["map"] == pytest.approx(res.best["objective"], abs=1e-6)
    r = cli("compare", "--experiment", "search", "--parent", res.parent_run_id, "--format", "json")
    assert r.exit_code == 0, r.output
    import json

    stats = json.loads(r.output)
    assert stats["group_by"] == "trial" and stats["rank_by"] == "validation/map" and stats["runs"] == 4
    assert [g["rank"] for g in stats["groups"]] == [1, 2, 3, 4]
    means = [g["metrics"]["validation/map"]["mean"] for g in stats["groups"]]
    assert means == sorted(means, reverse=True)
    r = cli("compare", "--experiment", "search", "--parent", res.parent_run_id)  # the table names the search
    assert r.exit_code == 0, r.output
    assert f"children of search run {res.parent_run_id[:8]}" in " ".join(r.output.split())


@pytest.mark.slow
def test_tune_with_asha_records_the_objective_of_trials_that_train_to_the_end(store, tmp_path):
    """ASHA stops every trial that reaches ``max_t``: with ``max_t = epochs`` each trial was stopped
    at its last epoch, before reporting the objective ("no trial reported validation/map")."""
    from evalkit.workflows.tune import run_tune

    spec = _spec(tmp_path, "asha", """
        [executor]
        max_concurrent = 2
        [search]
        num_samples = 4
        scheduler = "asha"
        grace_period = 1
        reduction_factor = 2
        lr = { loguniform = [1e-4, 1e-2] }
    """, epochs=3)
    res = run_tune(str(spec))
    ok = [t for t in res.trials if t["status"] == "ok"]
    assert ok and all(t["objective"] == t["objective"] for t in ok)
    assert {t["status"] for t in res.trials} <= {"ok", "stopped"}
    kids = _children(store, res.parent_run_id)
    assert len(kids) == 4 and "RUNNING" not in {k.info.status for k in kids}  # stopped trials end KILLED
    assert {k.info.run_id for k in kids if k.info.status == "FINISHED"} == {t["run_id"] for t in ok}


def test_asha_horizon_covers_the_largest_epochs_of_the_space():
    from evalkit.config import RunConfig
    from evalkit.workflows.tune import asha_max_t

    assert asha_max_t(RunConfig(epochs=30), {}) == 31
    assert asha_max_t(RunConfig(epochs=30), {"epochs": ("randint", [50, 200])}) == 201
    assert asha_max_t(RunConfig(epochs=30), {"epochs": ("choice", [10, 20])}) == 31


def test_cluster_address_with_a_local_store_is_refused(store, tmp_path, cli):
    spec = _spec(tmp_path, "cluster", """
        [grid]
        seed = [0, 1]
    """)
    r = cli("run", str(spec), "--executor", "ray", "--ray-address", "ray://10.0.0.7:10001")
    assert r.exit_code == 2
    line = r.output.strip()
    assert "\n" not in line and "MLflow server" in line and "SQLite" not in line.upper().replace("SQLITE:", "")
    assert "--ray-address ray://10.0.0.7:10001" in line and "cannot write" in line
    assert not ray.is_initialized()
    spec.write_text(spec.read_text().replace("[grid]", '[executor]\nkind = "ray"\naddress = "auto"\n[grid]'))
    r = cli("run", str(spec), "--tracking-uri", f"sqlite:///{tmp_path}/other.db")
    assert r.exit_code == 2 and "use an MLflow server" in r.output
    r = cli("tune", str(_spec(tmp_path, "t2", '[search]\nlr = { uniform = [0.001, 0.01] }\n')),
            "--ray-address", "auto")
    assert r.exit_code == 2 and "use an MLflow server" in r.output


def test_executor_table_and_options_are_checked(store, tmp_path, cli, monkeypatch):
    bad = _spec(tmp_path, "bad", '[executor]\nkind = "dask"\n[grid]\nseed = [0, 1]\n')
    r = cli("run", str(bad))
    assert r.exit_code == 2 and f"{bad}:10: executor.kind" in r.output, r.output
    ok = _spec(tmp_path, "ok", "[grid]\nseed = [0, 1]\n")
    r = cli("run", str(ok), "--executor", "ray", "--max-concurrent", "0")
    assert r.exit_code == 2 and "--max-concurrent" in r.output
    r = cli("run", "--executor", "ray")
    assert r.exit_code == 2 and "give a spec file" in r.output
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    r = cli("run", str(ok), "--executor", "ray")
    assert r.exit_code == 2 and "pip install 'evalkit[ray]'" in r.output


def test_search_table_is_checked(tmp_path):
    from evalkit.errors import InputError
    from evalkit.spec import load_spec

    for body, msg in [('lr = { normal = [0, 1] }', "search.lr: expected one of"),
                      ('lr = { loguniform = [0, 1] }', "0 < low"),
                      ('epochs = { randint = [5.5, 9] }', "integers"),
                      ('metric = "test/macro_f2"\nlr = { uniform = [0.001, 0.01] }', "search.metric"),
                      ('colour = { choice = [1] }', "search.colour: unknown field")]:
        p = _spec(tmp_path, "s", "[search]\n" + body + "\n")
        with pytest.raises(InputError, match=msg.replace("[", r"\[")):
            load_spec(p).search_space()


def test_cli_import_stays_light():
    code = "import sys, evalkit.cli; print(any(m in sys.modules for m in ('ray', 'torch', 'mlflow')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.slow
def test_start_warms_one_worker_per_concurrent_cell_and_close_stops_ray(store, tmp_path):
    """``start`` readies the workers the cells will run on (imports, dataset, store) before the grid's
    parent run exists; ``close`` shuts down the instance it started."""
    from evalkit.config import ExecutorConfig, RunConfig
    from evalkit.workflows.executors import RayExecutor

    ex = RayExecutor(ExecutorConfig(kind="ray", max_concurrent=2))
    try:
        ex.start(RunConfig(dataset="yeast", folds=1, tracking_uri=store), store)
        pids = ray.get(ex._warming, timeout=120)
        assert len(pids) == 2 and len(set(pids)) == 2 and os.getpid() not in pids

        @ray.remote(num_cpus=1)
        def loaded():
            return {"torch", "mlflow", "evalkit.workflows.experiment"} <= set(sys.modules)

        assert ray.get([loaded.remote() for _ in range(2)], timeout=60) == [True, True]  # warm worker processes
    finally:
        ex.close()
    assert not ray.is_initialized()
    ex.close()  # idempotent


@pytest.mark.parametrize("location, local", [
    ("mlflow-artifacts:/1", False),  # an MLflow server with --serve-artifacts: what a cluster should use
    ("s3://bucket/mlflow/1", False), ("gs://b/1", False), ("dbfs:/databricks/mlflow/1", False),
    ("/home/me/mlruns/1", True), ("./mlruns/1", True), ("file:///home/me/mlruns/1", True), ("C:\\mlruns\\1", True),
])
def test_cluster_artifact_locations_local_or_not(location, local):
    from evalkit.workflows.ray_session import _is_local_path

    assert _is_local_path(location) is local


@pytest.mark.parametrize("exception, kind, code", [
    (None, "InfraError", 3),  # a crashed worker, an exception in a cell: one line, exit 3
    ("input", "InputError", 2),  # every cell had bad input: stays exit 2
])
def test_every_cell_failed_is_one_line_with_an_exit_code(exception, kind, code):
    from evalkit.config import RunConfig
    from evalkit.errors import EvalkitError, InputError
    from evalkit.workflows.executors import Cell, CellOutcome
    from evalkit.workflows.grid import _all_failed

    cause = InputError("no/such/data.csv: file not found") if exception else RuntimeError("worker died")
    cells = [Cell(i, 2, f"loss=bce seed={i}", {"seed": i}, RunConfig()) for i in (1, 2)]
    outcomes = [CellOutcome(c, None, f"{type(cause).__name__}: {cause}", 1.0, cause) for c in cells]
    with pytest.raises(EvalkitError) as e:
        _all_failed(outcomes)
    assert type(e.value).__name__ == kind and e.value.exit_code == code
    assert str(e.value) == f"every grid cell failed; cell loss=bce seed=1: {type(cause).__name__}: {cause}"


def test_cpus_per_cell_above_the_machines_cpus_is_refused_before_any_work(store, tmp_path, cli):
    spec = _spec(tmp_path, "big", '[executor]\nkind = "ray"\ncpus_per_cell = 1000\n[grid]\nseed = [0, 1]\n')
    r = cli("run", str(spec))
    assert r.exit_code == 2, r.output
    line = r.output.strip()
    assert "\n" not in line and "[executor] cpus_per_cell" in line and "= 1000" in line
    assert f"the {os.cpu_count()} CPU(s) of this machine" in line
    assert not ray.is_initialized()
    exp = _client(store).get_experiment_by_name("big")
    assert exp is None or not _client(store).search_runs([exp.experiment_id])  # no run, so none left RUNNING
    r = cli("tune", str(_spec(tmp_path, "bigtune", '[search]\nlr = { uniform = [0.001, 0.01] }\n')),
            "--cpus-per-trial", "1000", "--no-track")
    assert r.exit_code == 2 and "[executor] cpus_per_cell" in r.output and "CPU(s) of this machine" in r.output


@pytest.mark.slow
def test_sigterm_during_tune_says_sigterm_and_exits_143(store, tmp_path):
    spec = _spec(tmp_path, "tuneterm", """
        [executor]
        max_concurrent = 2
        [search]
        num_samples = 2
        lr = { uniform = [0.001, 0.01] }
    """, epochs=5000)
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen([sys.executable, "-P", "-m", "evalkit", "tune", str(spec)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client = _client(store)
    deadline = time.monotonic() + 300  # a bound on waiting, not a timing assertion
    try:
        while time.monotonic() < deadline:
            exp = client.get_experiment_by_name("tuneterm")
            runs = client.search_runs([exp.experiment_id]) if exp else []
            if any(x.data.tags.get("evalkit.grid") == "child" for x in runs):
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(1)
        else:
            pytest.fail("no trial started")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err[-2000:]
    assert "interrupted (SIGTERM)" in err and "Ctrl-C" not in err
    runs = client.search_runs([client.get_experiment_by_name("tuneterm").experiment_id])
    assert runs and "RUNNING" not in {x.info.status for x in runs}
