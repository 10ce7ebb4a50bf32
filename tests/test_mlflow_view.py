"""What the MLflow UI shows of evalkit runs: the experiment's view tags, run names, fold metric names,
dataset inputs (contexts, real row counts, one digest per content) and evaluate runs' model links;
`evalkit ui` starts the UI on the store and prints the runs-table link, without MLflow's INFO lines."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs

import numpy as np
import pytest

from conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
FAST = ("--epochs", "1", "--hidden", "16")


def _client(uri):
    import mlflow

    return mlflow.MlflowClient(uri)


def _runs(uri, experiment="evalkit"):
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    return [client.get_run(r.info.run_id) for r in runs]  # with model inputs (search_runs leaves them out)


def _inputs(run) -> dict[str, object]:
    """context -> the run's dataset input of that context."""
    out = {}
    for di in run.inputs.dataset_inputs:
        ctx = {t.key: t.value for t in di.tags}.get("mlflow.data.context")
        assert ctx not in out, f"two inputs with context {ctx}"
        out[ctx] = di.dataset
    return out


def test_view_state_and_links_are_what_the_ui_reads():
    from evalkit.tracking.view import SHARE_KEY, experiment_tags, run_url, runs_view_url, view_state

    tags = experiment_tags()
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    state = json.loads(tags[f"mlflow.sharedViewState.{SHARE_KEY}"])
    assert state == view_state()
    assert state["orderByKey"] == "metrics.`test/macro_f2`" and state["orderByAsc"] is False
    cols = state["selectedColumns"]
    for c in ("params.`loss`", "params.`seed`", "attributes.`Dataset`", "attributes.`Models`",
              "metrics.`test/macro_f2`", "metrics.`test/micro_f2`"):
        assert c in cols
    assert len(tags[f"mlflow.sharedViewState.{SHARE_KEY}"]) < 5000  # MLflow's tag value limit
    url = runs_view_url("http://127.0.0.1:5000/", "7")
    path, query = url.split("#", 1)[1].split("?", 1)
    assert url.startswith("http://127.0.0.1:5000/#/") and path == "/experiments/7/runs"
    q = parse_qs(query)
    assert q == {"workflowType": ["machine_learning"], "viewStateShareKey": [SHARE_KEY]}
    # a search facet in the URL would make the UI ignore the shared view
    assert not {"searchFilter", "orderByKey", "orderByAsc", "datasetsFilter"} & set(q)
    assert run_url("http://h:1", "7", "abc").endswith("/#/experiments/7/runs/abc?workflowType=machine_learning")


def test_run_name_is_unique():
    from evalkit.config import RunConfig
    from evalkit.workflows.experiment import run_name

    names = {run_name("yeast", RunConfig()) for _ in range(20)}
    assert len(names) == 20 and all(n.startswith("yeast-bce-s0-") for n in names)


def test_register_then_evaluate_model_links_model_and_same_test_digest(store, cli, tmp_path):
    """folds 1: training + validation + evaluation inputs; the evaluate run of the registered model
    links the logged model and its evaluation input has the training run's test-input digest."""
    r = cli("run", *FAST, "--folds", "1", "--register", "yeast-mlp", "--alias", "champion", "-o", "run.json")
    assert r.exit_code == 0, r.output
    client = _client(store)
    exp = client.get_experiment_by_name("evalkit")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    assert "mlflow.sharedViewState.evalkit-runs" in exp.tags
    (train_run,) = _runs(store)
    inputs = _inputs(train_run)
    assert set(inputs) == {"training", "validation", "evaluation"}
    assert json.loads(inputs["training"].profile)["features_shape"] == [1193, 103]
    assert json.loads(inputs["validation"].profile)["features_shape"] == [307, 103]
    assert json.loads(inputs["evaluation"].profile)["features_shape"] == [917, 103]
    # with one model the run's own curve keeps the plain names
    assert [m.step for m in client.get_metric_history(train_run.info.run_id, "train/loss")] == [1]

    r = cli("evaluate", "--model", "models:/yeast-mlp@champion", "--dataset", "yeast", "--job", "nightly",
            "-o", "eval.json")
    assert r.exit_code == 0, r.output
    ev = _runs(store)[-1]
    assert ev.data.tags["evalkit.command"] == "evaluate"
    ev_inputs = _inputs(ev)
    assert set(ev_inputs) == {"evaluation"}
    # one digest definition: the same 917 rows, the same digest in both runs and in the report
    assert ev_inputs["evaluation"].digest == inputs["evaluation"].digest
    assert json.loads((tmp_path / "eval.json").read_text())["dataset"]["digest"] == inputs["evaluation"].digest
    # same name and digest: MLflow stores it once per experiment, both runs show the same dataset
    assert ev_inputs["evaluation"].name == inputs["evaluation"].name == "yeast-test"
    profile = json.loads(ev_inputs["evaluation"].profile)
    assert profile.get("num_rows", (profile.get("features_shape") or [0])[0]) == 917
    # the model link (MLflow 3 logged-model input: the runs table's Models column)
    (logged,) = client.search_logged_models([exp.experiment_id],
                                            filter_string=f"source_run_id = '{train_run.info.run_id}'")
    model_id = logged.model_id
    assert client.get_model_version_by_alias("yeast-mlp", "champion").source == f"models:/{model_id}"
    assert [m.model_id for m in ev.inputs.model_inputs] == [model_id]
    assert ev.data.tags["evalkit.model_id"] == model_id

    # runs:/ID/model links the same logged model
    r = cli("evaluate", "--model", f"runs:/{train_run.info.run_id}/model", "--dataset", "yeast")
    assert r.exit_code == 0, r.output
    ev2 = _runs(store)[-1]
    assert [m.model_id for m in ev2.inputs.model_inputs] == [model_id]
    assert _inputs(ev2)["evaluation"].digest == inputs["evaluation"].digest


def test_cross_fit_logs_what_it_used_and_folds_under_their_prefix(store, cli):
    for _ in range(2):
        r = cli("run", *FAST, "--folds", "2", "--no-log-model")
        assert r.exit_code == 0, r.output
    a, b = _runs(store)
    assert a.info.run_name != b.info.run_name  # every run gets its own name
    inputs = _inputs(a)
    assert set(inputs) == {"training", "evaluation"}  # no separate validation: it was trained on
    assert json.loads(inputs["training"].profile)["features_shape"] == [1500, 103]  # train + val, all used
    assert json.loads(inputs["evaluation"].profile)["features_shape"] == [917, 103]
    assert inputs["training"].digest == _inputs(b)["training"].digest  # same content, same digest
    keys = set(a.data.metrics)
    assert {"fold1/train/loss", "fold1/val/loss", "fold2/train/loss", "fold2/val/loss"} <= keys
    assert not any(k.startswith(("train/", "val/")) for k in keys)  # no fold without its prefix
    client = _client(store)
    assert [m.step for m in client.get_metric_history(a.info.run_id, "fold1/train/loss")] == [1]


def test_evaluate_predictions_logs_the_file_as_evaluation_input(store, cli, tmp_path):
    rng = np.random.default_rng(0)
    y = (rng.random((120, 4)) < 0.35).astype(np.uint8)
    y[0], y[1] = 1, 0
    pred = tmp_path / "pred.npz"
    np.savez(pred, targets=y, probabilities=rng.random((120, 4)), labels=np.array([f"L{i}" for i in range(4)]))
    for out in ("a.json", "b.json"):
        r = cli("evaluate", "--predictions", pred, "-o", out)
        assert r.exit_code == 0, r.output
    a, b = _runs(store)
    ia, ib = _inputs(a)["evaluation"], _inputs(b)["evaluation"]
    report = json.loads((tmp_path / "a.json").read_text())
    assert ia.digest == ib.digest == report["dataset"]["digest"]
    assert ia.name == "pred" and json.loads(ia.source)["uri"] == str(pred.resolve())
    assert json.loads(ia.profile) == {"num_rows": 120, "targets_shape": [120, 4]}
    assert not a.inputs.model_inputs  # scores given: no model to link


def test_evalkit_ui_serves_the_store_and_prints_the_runs_link(tmp_path):
    """On a new store: no MLflow INFO lines (schema creation), the link opens the runs view."""
    import urllib.request

    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_LOGGING_LEVEL", None)
    code = "import sys; from evalkit.cli import main; sys.argv = ['evalkit'] + sys.argv[1:]; main()"
    proc = subprocess.Popen([sys.executable, "-c", code, "ui", "--port", str(port), "--experiment", "evalkit"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C" in line:
                break
        text = "".join(lines)
        assert f"http://127.0.0.1:{port}/#/experiments?workflowType=machine_learning" in text, text
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as resp:
            assert resp.status == 200
        assert (tmp_path / "mlruns" / "mlflow.db").is_file()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "Creating initial MLflow database tables" not in err, err
    assert "INFO mlflow" not in err and "INFO alembic" not in err, err


def test_ui_refuses_a_busy_port(store, cli):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = cli("ui", "--port", str(port))
    assert r.exit_code == 2 and "not free" in r.output


@pytest.mark.parametrize("verbose", [False, True])
def test_quiet_logging_unless_verbose(monkeypatch, verbose):
    import logging

    from evalkit.cli.commands import quiet_logging

    monkeypatch.delenv("MLFLOW_LOGGING_LEVEL", raising=False)
    for name in ("mlflow", "alembic", "sqlalchemy"):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
    quiet_logging(verbose)
    levels = {logging.getLogger(n).level for n in ("mlflow", "alembic", "sqlalchemy")}
    assert levels == ({logging.NOTSET} if verbose else {logging.WARNING})
    assert (os.environ.get("MLFLOW_LOGGING_LEVEL") is None) is verbose
