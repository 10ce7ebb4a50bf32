"""Datasets in the CLI: `evalkit datasets`, --label-* reader options, --test-size, MULAN files as typed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

MULAN = Path(__file__).resolve().parents[2] / "shared/datasets/mulan"
needs_mulan = pytest.mark.skipif(not MULAN.is_dir(), reason="../shared/datasets/mulan not present")


def test_datasets_lists_builtins_and_formats(cli):
    r = cli("datasets")
    assert r.exit_code == 0
    for word in ("yeast", ".arff", ".csv", ".parquet", ".npz", "--label-columns"):
        assert word in r.output


@needs_mulan
@pytest.mark.parametrize("name, n_test, n_labels", [("emotions", 202, 6), ("scene", 1196, 6), ("medical", 645, 45)])
def test_mulan_files_as_a_newcomer_types_them(name, n_test, n_labels):
    """Label XML found next to <name>-train.arff automatically; train + test files form the splits."""
    from evalkit import prepare_data
    from evalkit.config import RunConfig

    d = MULAN / name
    splits = prepare_data(RunConfig(dataset=str(d / f"{name}-train.arff"), test_dataset=str(d / f"{name}-test.arff")))
    assert splits.name == name
    assert splits.test.n_samples == n_test and splits.test.n_labels == n_labels


@needs_mulan
def test_emotions_end_to_end(store, cli, tmp_path):
    import mlflow

    d = MULAN / "emotions"
    r = cli("run", "--dataset", d / "emotions-train.arff", "--test-dataset", d / "emotions-test.arff",
            "--epochs", "2", "-o", "r.json")
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["dataset"]["name"] == "emotions" and rep["dataset"]["n_samples"] == 202
    run_id = mlflow.search_runs(experiment_names=["evalkit"]).run_id[0]
    summary = mlflow.artifacts.load_dict(f"runs:/{run_id}/dataset/summary.json")
    assert summary["splits"]["test"]["samples"] == 202
    assert {"label_cardinality", "label_density", "labels_without_positives"} <= set(summary["splits"]["train"])
    co = mlflow.artifacts.load_text(f"runs:/{run_id}/dataset/cooccurrence.csv").splitlines()
    assert len(co) == 1 + 6  # header + one row per label


def test_csv_label_columns_and_test_size(store, cli, tmp_path):
    rng = np.random.default_rng(0)
    n = 80
    X = rng.normal(size=(n, 4))
    Y = (rng.random((n, 3)) < 0.4).astype(int)
    Y[:3] = np.eye(3, dtype=int)
    lines = ["f1,f2,f3,f4,a,b,c"] + [",".join([*(f"{v:.4f}" for v in x), *map(str, y)]) for x, y in zip(X, Y)]
    (tmp_path / "data.csv").write_text("\n".join(lines) + "\n")
    r = cli("run", "--dataset", "data.csv", "--label-columns", "a,b,c", "--test-size", "0.25", "--epochs", "1",
            "--no-log-model", "-o", "r.json")
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["dataset"]["n_labels"] == 3 and rep["dataset"]["n_samples"] == 20
    r = cli("run", "--dataset", "data.csv", "--epochs", "1")
    assert r.exit_code == 2 and "pass --label-columns, --label-prefix or --label-list-column" in r.stderr


def test_empty_labels_are_warned(tmp_path):
    from rich.console import Console

    from evalkit import run_experiment
    from evalkit.cli.ui import ConsoleRenderer
    from evalkit.config import RunConfig

    rng = np.random.default_rng(1)
    Y = (rng.random((40, 3)) < 0.5).astype(np.uint8)
    Y[:, 2] = 0
    np.savez(tmp_path / "d.npz", X=rng.normal(size=(40, 4)).astype(np.float32), Y=Y)
    console = Console(record=True, width=200)
    run_experiment(RunConfig(dataset=str(tmp_path / "d.npz"), epochs=1), track=False, on_event=ConsoleRenderer(console))
    text = console.export_text()
    assert "warning: 1 label(s) have no positives in the train split: label_2" in text
