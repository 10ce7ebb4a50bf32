"""Integration with a real MLflow tracking server (started here, polled until healthy, stopped after):
`run` logs and registers a champion; the nightly `evaluate --model models:/NAME@champion` gates
against the champion's run; a server that stops mid-job fails the job fast (exit 3) without losing
the result."""

from __future__ import annotations

import json
import os
import shutil
import signal

import pytest

from conftest import start_mlflow_server, stop_process_group
from test_gates import write_predictions

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory, _migrated_store):
    d = tmp_path_factory.mktemp("mlflow-server")
    shutil.copy(_migrated_store, d / "backend.db")  # already migrated: the server starts faster
    uri, proc = start_mlflow_server(d, f"sqlite:///{d / 'backend.db'}", wait=90)
    state = {"uri": uri, "proc": proc, "dir": d}
    yield state
    stop_process_group(proc)


def _stop(state) -> None:
    os.killpg(state["proc"].pid, signal.SIGTERM)
    state["proc"].wait(timeout=20)


def test_run_then_scheduled_evaluate_of_the_champion_against_the_server(server, cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = server["uri"]
    res = cli("run", "--epochs", "2", "--hidden", "16", "--tracking-uri", uri, "--experiment", "yeast",
              "--register", "yeast-mlp", "--alias", "champion", "-o", tmp_path / "run.json")
    assert res.exit_code == 0, res.output
    import mlflow

    client = mlflow.MlflowClient(uri)
    run_id = client.get_model_version_by_alias("yeast-mlp", "champion").run_id
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and "test/macro_f2" in run.data.metrics
    assert [m.step for m in client.get_metric_history(run_id, "fold1/train/loss")] == [1, 2]

    out = tmp_path / "nightly.json"
    res = cli("evaluate", "--model", "models:/yeast-mlp@champion", "--dataset", "yeast", "--tracking-uri", uri,
              "--experiment", "nightly", "--trigger", "scheduled", "--job", "nightly-yeast",
              "--gate", "test/macro_f2>=0.0", "--baseline", "champion", "--max-drop", "test/macro_f2=0.01",
              "--no-per-class", "-o", out)
    assert res.exit_code == 0, res.output
    rep = json.loads(out.read_text())
    assert rep["gates"]["status"] == "pass"
    assert rep["gates"]["baseline"]["run_id"] == run_id  # the run that produced the champion
    assert rep["gates"]["results"][1]["baseline"] == pytest.approx(run.data.metrics["test/macro_f2"])
    ev = client.get_run(rep["run_id"])
    assert ev.data.tags["evalkit.trigger"] == "scheduled" and ev.data.tags["evalkit.gate"] == "pass"
    assert ev.data.tags["evalkit.job"] == "nightly-yeast" and ev.info.status == "FINISHED"
    assert "report.json" in {a.path for a in client.list_artifacts(rep["run_id"])}
    # a gate the champion cannot meet: exit 1, the run is still recorded, tagged fail
    res = cli("evaluate", "--model", "models:/yeast-mlp@champion", "--dataset", "yeast", "--tracking-uri", uri,
              "--experiment", "nightly", "--trigger", "scheduled", "--job", "nightly-yeast",
              "--gate", "test/subset_accuracy>=0.99", "--no-per-class", "-o", out)
    assert res.exit_code == 1, res.output
    assert json.loads(out.read_text())["gates"]["results"][0]["status"] == "fail"
    # the history of the job
    res = cli("compare", "--tracking-uri", uri, "--experiment", "nightly", "--trigger", "scheduled",
              "--metric", "test/macro_f2", "--format", "json")
    assert [r["gate"] for r in json.loads(res.stdout)] == ["pass", "fail"]


def test_evaluate_predictions_against_the_server_then_server_stops(server, cli, tmp_path, monkeypatch):
    """Runs last in this module: it stops the server."""
    monkeypatch.chdir(tmp_path)
    uri = server["uri"]
    pred = write_predictions(tmp_path / "p.npz")
    res = cli("evaluate", "--predictions", pred, "--tracking-uri", uri, "--experiment", "preds", "--no-per-class")
    assert res.exit_code == 0, res.output
    _stop(server)  # the server goes away
    res = cli("evaluate", "--predictions", pred, "--tracking-uri", uri, "--experiment", "preds", "--no-per-class",
              "-o", tmp_path / "r.json")
    assert res.exit_code == 3, res.output
    assert "unreachable" in res.output and "connection refused" in res.output, res.output
    assert json.loads((tmp_path / "r.json").read_text())["summary"]
    [entry] = list((tmp_path / "mlruns" / "spool").iterdir())
    assert json.loads((entry / "run.json").read_text())["experiment"] == "preds"
