"""What the MLflow UI shows of evalkit runs: the experiment's view tags (with the gate column), run
names, at most 60 metric keys per run (headline metrics, the chosen model's curves; per-class results
as a table), dataset inputs (contexts, real row counts, one digest per content) and evaluate runs' model links;
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


def test_cross_fit_logs_what_it_used_and_the_first_folds_curves(store, cli):
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
    assert {"train/loss", "val/loss"} <= keys  # the chosen model's first fold (fold 2: in curves.csv)
    assert not any(k.startswith("fold") for k in keys)
    client = _client(store)
    assert [m.step for m in client.get_metric_history(a.info.run_id, "train/loss")] == [1]


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

    from evalkit.cli.app import quiet_logging

    monkeypatch.delenv("MLFLOW_LOGGING_LEVEL", raising=False)
    for name in ("mlflow", "alembic", "sqlalchemy"):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
    quiet_logging(verbose)
    levels = {logging.getLogger(n).level for n in ("mlflow", "alembic", "sqlalchemy")}
    assert levels == ({logging.NOTSET} if verbose else {logging.WARNING})
    assert (os.environ.get("MLFLOW_LOGGING_LEVEL") is None) is verbose


# -- the run page: a bounded set of metric keys; per-class results as a table; every curve kept


def _metric_keys(run) -> set[str]:
    return set(run.data.metrics)


def _artifact(client, run_id, path, tmp_path):
    return Path(client.download_artifacts(run_id, path, str(tmp_path / run_id[:8])))


def _check_headline_run(run, report, max_keys=60):
    keys = _metric_keys(run)
    assert len(keys) <= max_keys, sorted(keys)
    assert not any("/class/" in k for k in keys)  # per-class numbers are in the table, not metric keys
    s = report["summary"]
    for avg in ("micro", "macro", "weighted", "samples"):
        for m in ("precision", "recall", "f1", "f2"):
            assert run.data.metrics[f"test/{avg}_{m}"] == pytest.approx(s[avg][m])
    assert run.data.metrics["test/macro_map"] == pytest.approx(s["mean_average_precision"])
    assert run.data.metrics["test/lrap"] == pytest.approx(s["label_ranking_average_precision"])
    assert run.data.metrics["test/hamming_loss"] == pytest.approx(s["hamming_loss"])
    if report.get("confidence_interval"):  # on by default: the bounds of 4 headline metrics
        for key, ci in (("micro_f2", s["micro"]["f2_ci"]), ("macro_f2", s["macro"]["f2_ci"]),
                        ("macro_map", s["mean_average_precision_ci"]), ("macro_auroc", s["macro_auroc_ci"])):
            assert [run.data.metrics[f"test/{key}_ci_low"], run.data.metrics[f"test/{key}_ci_high"]] == pytest.approx(ci)
            assert ci[0] < ci[1]
    ref = report["reference_at_0.5"]["summary"]
    assert run.data.metrics["test_at_0.5/micro_f2"] == pytest.approx(ref["micro"]["f2"])
    return keys


def _check_per_class_artifacts(client, run, report, tmp_path):
    import pandas as pd

    run_id = run.info.run_id
    csv_path = _artifact(client, run_id, "per_class.csv", tmp_path)
    frame = pd.read_csv(csv_path, keep_default_na=False, dtype={"label": str})
    assert list(frame.columns[:8]) == ["label", "support", "precision", "recall", "f2", "average_precision", "auroc",
                                       "threshold"]
    assert list(frame["label"]) == [r["label"] for r in report["per_class"]]
    table = json.loads(_artifact(client, run_id, "per_class.json", tmp_path).read_text())
    assert table["columns"] == list(frame.columns)  # mlflow.log_table's format: columns + data rows
    assert len(table["data"]) == len(report["per_class"])
    f2 = table["columns"].index("f2")
    assert [row[f2] for row in table["data"]] == pytest.approx([r["f2"] for r in report["per_class"]])
    # the UI renders a JSON artifact as a table when the run's loggedArtifacts tag names it as one
    logged = json.loads(run.data.tags["mlflow.loggedArtifacts"])
    assert {"path": "per_class.json", "type": "table"} in logged


def test_default_yeast_run_logs_at_most_60_metric_keys_and_every_curve_in_curves_csv(store, cli, tmp_path):
    """Default folds (5) and --model auto (linear and mlp on fold 1): headline metrics and the chosen
    model's first-fold curves as metrics; every fold's and candidate's curve in curves.csv."""
    import pandas as pd

    r = cli("run", "--epochs", "2", "--hidden", "16", "--no-log-model", "-o", "r.json")
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "r.json").read_text())
    (run,) = _runs(store)
    keys = _check_headline_run(run, report)
    assert {"train/loss", "val/loss"} <= keys and not any(k.startswith(("fold", "auto/")) for k in keys)
    assert {f"validation/{k}" for k in ("map", "micro_f2", "macro_f2", "mean_f2")} <= keys
    client = _client(store)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [1, 2]
    _check_per_class_artifacts(client, run, report, tmp_path)
    curves = pd.read_csv(_artifact(client, run.info.run_id, "curves.csv", tmp_path), keep_default_na=False)
    assert list(curves.columns) == ["fold", "candidate", "metric", "step", "value"]
    assert sorted(set(curves["fold"])) == [1, 2, 3, 4, 5]
    assert set(curves.loc[curves["fold"] == 1, "candidate"]) == {"", "linear", "mlp"}
    assert set(curves.loc[curves["fold"] > 1, "candidate"]) == {""}
    chosen = curves[(curves["fold"] == 1) & (curves["candidate"] == "") & (curves["metric"] == "train/loss")]
    logged = client.get_metric_history(run.info.run_id, "train/loss")
    assert list(chosen["value"]) == pytest.approx([m.value for m in logged])  # the logged curve is fold 1's


def _many_label_csv(path: Path, n_rows=240, n_features=12, n_labels=983, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, n_features))
    Y = (rng.random((n_rows, n_labels)) < 0.05).astype(int)
    Y[:3] = 1  # a few rows with every label: each label has positives somewhere
    cols = [f"f{i}" for i in range(n_features)] + [f"label_tag{j}" for j in range(n_labels)]
    import pandas as pd

    pd.DataFrame(np.hstack([X, Y]), columns=cols).to_csv(path, index=False)
    return path


def test_983_label_run_logs_at_most_60_metric_keys_and_every_label_in_the_table(store, cli, tmp_path):
    data = _many_label_csv(tmp_path / "many.csv")
    r = cli("run", "--dataset", data, "--label-prefix", "label_", "--folds", "1", "--epochs", "1", "--hidden", "8",
            "--model", "mlp", "--no-log-model", "-o", "r.json")
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["dataset"]["n_labels"] == 983
    (run,) = _runs(store)
    _check_headline_run(run, report)
    _check_per_class_artifacts(_client(store), run, report, tmp_path)


def test_log_class_metrics_adds_per_class_keys(store, cli, tmp_path):
    pred = tmp_path / "pred.npz"
    rng = np.random.default_rng(1)
    y = (rng.random((60, 3)) < 0.4).astype(np.uint8)
    y[0], y[1] = 1, 0
    np.savez(pred, targets=y, probabilities=rng.random((60, 3)), labels=np.array(["a", "b", "c"]))
    for i, extra in enumerate(((), ("--log-class-metrics",))):
        r = cli("evaluate", "--predictions", pred, "--no-per-class", "-o", f"r{i}.json", *extra)
        assert r.exit_code == 0, r.output
    plain, with_classes = _runs(store)
    report = json.loads((tmp_path / "r1.json").read_text())
    assert not any("/class/" in k for k in plain.data.metrics)
    for row in report["per_class"]:
        assert with_classes.data.metrics[f"test/class/{row['label']}/f1"] == pytest.approx(row["f1"])


def test_gated_job_logs_gate_outcome_and_only_the_class_keys_its_gates_name(store, cli, tmp_path):
    from test_gates import write_predictions

    pred = write_predictions(tmp_path / "pred.npz")
    for bound in ("0.0", "0.999"):
        r = cli("evaluate", "--predictions", pred, "--gate", f"test/class/L1/f2>={bound}", "--gate",
                "test/micro_accuracy>=0", "--max-drop", "test/class/L2/recall=0.5", "--baseline", "last",
                "--job", "nightly", "--no-per-class", "-o", f"r{bound}.json")
        assert r.exit_code == (0 if bound == "0.0" else 1), r.output
    ok, failed = _runs(store)
    report = json.loads((tmp_path / "r0.999.json").read_text())
    assert [run.data.tags["evalkit.gates"] for run in (ok, failed)] == ["pass", "fail"]
    assert [run.data.metrics["gates/passed"] for run in (ok, failed)] == [1.0, 0.0]
    l1 = next(row for row in report["per_class"] if row["label"] == "L1")
    assert failed.data.metrics["test/class/L1/f2"] == pytest.approx(l1["f2"])
    assert failed.data.metrics["test/micro_accuracy"] == pytest.approx(report["summary"]["micro"]["accuracy"])
    assert {k for k in failed.data.metrics if "/class/" in k} == {"test/class/L1/f2", "test/class/L2/recall"}
    drop = next(g for g in report["gates"]["results"] if g["metric"] == "test/class/L2/recall")
    assert drop["status"] == "pass" and drop["baseline"] == pytest.approx(ok.data.metrics["test/class/L2/recall"])
    # a job without gates logs neither
    assert cli("evaluate", "--predictions", pred, "--no-per-class").exit_code == 0
    plain = _runs(store)[-1]
    assert "gates/passed" not in plain.data.metrics and "evalkit.gates" not in plain.data.tags


def test_shared_runs_view_shows_the_gate_column():
    from evalkit.tracking.view import experiment_tags

    state = json.loads(experiment_tags()["mlflow.sharedViewState.evalkit-runs"])
    assert "tags.`evalkit.gates`" in state["selectedColumns"]
    assert state["columnOrder"].index("tags.`evalkit.gates`") < 5  # visible in a 1600 px window


def test_headline_metrics_log_interval_bounds_when_the_report_has_them():
    from evalkit.metrics.names import MAX_RUN_METRICS
    from evalkit.report import headline_metrics, tracked_metrics

    avg = {"accuracy": 0.5, "precision": 0.4, "recall": 0.8, "f1": 0.53, "f2": 0.66, "f2_ci": [0.6, 0.7],
           "f1_ci": [0.5, 0.56], "jaccard": 0.3}
    summary = {a: dict(avg) for a in ("micro", "macro", "weighted", "samples")}
    summary |= {"subset_accuracy": 0.1, "hamming_loss": 0.2, "mean_average_precision": 0.45,
                "mean_average_precision_ci": [0.4, 0.5], "one_error": 0.3, "degenerate_labels": {"all": [], "none": []}}
    report = {"beta": 2.0, "summary": summary, "per_class": [{"label": "x", "support": 3, "f2": 0.5}]}
    got = headline_metrics(report)
    assert got["test/macro_f2_ci_low"] == 0.6 and got["test/macro_f2_ci_high"] == 0.7
    assert got["test/micro_f2_ci_low"] == 0.6 and got["test/macro_map_ci_high"] == 0.5
    assert "test/samples_f2_ci_low" not in got and "test/macro_jaccard" not in got  # not headline
    assert got["test/macro_map"] == 0.45 and "test/micro_accuracy" not in got
    assert len(got) + 18 + 4 + 3 <= MAX_RUN_METRICS  # + test_at_0.5, validation/*, the chosen model's curves
    named = tracked_metrics(report, keys=["test/class/x/f2", "test/macro_jaccard", "test/nope"])
    assert named["test/class/x/f2"] == 0.5 and named["test/macro_jaccard"] == 0.3 and "test/nope" not in named
