"""End to end: `evalkit run` on yeast trains, evaluates, writes the report and logs to MLflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

FAST = ("--epochs", "2", "--hidden", "32", "--no-log-model")


def _runs(uri):
    import mlflow

    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs(experiment_names=["evalkit"], order_by=["attributes.start_time ASC"])


def test_run_default_store_logs_params_metrics_and_report(store, cli, tmp_path):
    out = tmp_path / "report.json"
    res = cli("run", *FAST, "--output", out)
    assert res.exit_code == 0, res.output
    assert "subset accuracy" in res.output and "Hamming loss" in res.output
    assert "1 − Hamming loss" in res.output  # the accuracy note
    report = json.loads(out.read_text())
    assert report["dataset"]["name"] == "yeast" and report["dataset"]["n_samples"] == 917
    assert report["dataset"]["n_labels"] == 14 and report["scores"] == "logits"
    assert len(report["threshold"]["values"]) == 14 and len(report["per_class"]) == 14
    for avg in ("micro", "macro", "weighted", "samples"):
        assert set(report["summary"][avg]) >= {"accuracy", "precision", "recall", "f1", "f2"}
    # label-wise accuracy is 1 - Hamming loss for micro and macro
    s = report["summary"]
    assert s["micro"]["accuracy"] == pytest.approx(1 - s["hamming_loss"], abs=1e-12)
    assert s["macro"]["accuracy"] == pytest.approx(1 - s["hamming_loss"], abs=1e-12)

    # the default store: sqlite:///mlruns/mlflow.db in cwd
    runs = _runs(store)
    assert len(runs) == 1
    r = runs.iloc[0]
    assert r["status"] == "FINISHED"
    assert r["params.loss"] == "bce" and r["params.seed"] == "0" and r["params.dataset.name"] == "yeast"
    assert r["params.dataset.digest"] == report["dataset"]["digest"]
    assert r["metrics.test/macro_f2"] == pytest.approx(s["macro"]["f2"])
    assert r["metrics.test/subset_accuracy"] == pytest.approx(s["subset_accuracy"])
    assert r["metrics.test/macro_map"] == pytest.approx(s["mean_average_precision"])
    assert not any("/class/" in k for k in r.index)  # per-class numbers: the per_class table, not metric keys
    import mlflow

    client = mlflow.MlflowClient(store)
    hist = client.get_metric_history(r["run_id"], "train/loss")  # 5 folds: the chosen model's first fold
    assert [m.step for m in hist] == [1, 2]
    arts = {a.path for a in client.list_artifacts(r["run_id"])}
    assert {"report.json", "per_class.csv", "per_class.json", "curves.csv"} <= arts


def test_run_is_reproducible_for_a_seed(store, cli, tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert cli("run", *FAST, "--seed", "3", "-o", a).exit_code == 0
    assert cli("run", *FAST, "--seed", "3", "-o", b).exit_code == 0
    ra, rb = json.loads(a.read_text()), json.loads(b.read_text())
    assert ra["summary"] == rb["summary"] and ra["per_class"] == rb["per_class"]


def test_run_per_class_thresholds_and_compare(store, cli, tmp_path):
    res = cli("run", *FAST, "--threshold", "per-class", "--loss", "asl", "--seed", "1", "-o", tmp_path / "r.json")
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["threshold"]["strategy"] == "per-class"
    assert len(set(rep["threshold"]["values"])) > 1
    assert "reference_at_0.5" in rep
    assert cli("run", *FAST).exit_code == 0
    res = cli("compare", "--format", "json", "--group-by", "none")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert sorted(r["loss"] for r in rows) == ["asl", "bce"]
    assert all(r["test/macro_f2"] is not None for r in rows)


def test_run_logs_model_with_input_example(store, cli):
    res = cli("run", "--epochs", "1", "--hidden", "16")
    assert res.exit_code == 0, res.output
    import mlflow

    run = _runs(store).iloc[0]
    model = mlflow.pytorch.load_model(f"runs:/{run['run_id']}/model")
    x = np.zeros((3, 103), np.float32)
    import torch

    assert tuple(model(torch.from_numpy(x)).shape) == (3, 14)


def test_tracked_cross_fitted_run_on_sparse_data_logs_its_inputs(store, tmp_path):
    """CSR features stay sparse through cross-fitting, and the run's train + validation dataset input
    row-stacks them (``np.concatenate`` on CSR used to crash every tracked sparse run with folds > 1)."""
    import mlflow
    import scipy.sparse as sp

    from evalkit import RunConfig, run_experiment

    rng = np.random.default_rng(0)
    X = sp.random(240, 60, density=0.05, format="csr", random_state=1, dtype=np.float32)
    Y = (rng.random((240, 3)) < 0.3).astype(np.int8)
    Y[:, 0] = (np.asarray(X[:, :20].sum(axis=1)).ravel() > 0).astype(np.int8)
    np.savez(tmp_path / "bow.npz", X_data=X.data, X_indices=X.indices, X_indptr=X.indptr, X_shape=np.array(X.shape),
             Y=Y)
    res = run_experiment(RunConfig(dataset=str(tmp_path / "bow.npz"), folds=2, epochs=2, hidden=[8], log_model=False,
                                   tracking_uri=store))
    run = mlflow.MlflowClient(store).get_run(res.run_id)
    assert run.info.status == "FINISHED"
    contexts = sorted(t.value for d in run.inputs.dataset_inputs for t in d.tags if t.key == "mlflow.data.context")
    assert contexts == ["evaluation", "training"]
    assert 0.0 <= run.data.metrics["test/micro_f2"] <= 1.0


def test_result_logging_imports_the_model_exporter_only_when_the_model_is_logged():
    """``log_model = false`` (every cell of ``yeast_losses.toml``) skips ``torch.export``'s tracer
    and ``mlflow.pytorch`` (≈ 0.7 s per process); a run that logs its model loads them ahead."""
    code = ("import sys\nfrom evalkit.workflows.warmups import result_logging as p\n"
            "names = ('torch.export._trace', 'mlflow.pytorch', 'matplotlib.pyplot')\n"
            "p(False); print([n in sys.modules for n in names])\n"
            "p(True); print([n in sys.modules for n in names])")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                         env=dict(os.environ, PYTHONPATH=str(root)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["[False, False, True]", "[True, True, True]"]
