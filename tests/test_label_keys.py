"""Per-class results are never overwritten or refused: label keys are injective and valid for MLflow,
with --log-class-metrics at most TRACKED_CLASSES_MAX labels become metrics, and every label's numbers are in per_class.csv."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from evalkit.metrics.names import LABEL_KEY_MAX, TRACKED_CLASSES_MAX, label_key

HOSTILE = ["a/b", "a_b", "猫", "犬", "50%", "50_", "..", ".", "", " ", "a:2Fb", "x" * 300, "x" * 299 + "y",
           "Class1", "with space", "tab\there", "semi;colon", "-lead", "trail.", "é", "e\u0301"]


def test_label_keys_are_injective_and_valid_for_mlflow():
    from mlflow.utils.validation import _validate_metric_name

    keys = [label_key(n) for n in HOSTILE]
    assert len(set(keys)) == len(HOSTILE)  # injective on the hostile set
    for k in keys:
        name = f"test/class/{k}/average_precision"
        _validate_metric_name(name)  # raises MlflowException when MLflow would refuse it
        assert len(name) <= 250 and len(k) <= LABEL_KEY_MAX
    assert label_key("Class1") == "Class1" and label_key("with space") == "with space"  # plain names unchanged
    assert label_key("a/b") == "a:2Fb" and label_key("a:2Fb") == "a:3A2Fb" and label_key("") == ":"
    assert label_key("..") == ":2E." and label_key("猫") == ":E7:8C:AB"


def _predictions(path, names):
    rng = np.random.default_rng(0)
    n, c = 12, len(names)
    y = (rng.random((n, c)) < 0.4).astype(np.uint8)
    y[0] = 1  # every label has a positive
    np.savez(path, targets=y, probabilities=rng.random((n, c)), labels=np.array(names))
    return path


def test_hostile_label_names_all_reach_the_run(store, cli, tmp_path):
    import mlflow

    names = HOSTILE[:13]
    pred = _predictions(tmp_path / "p.npz", names)
    res = cli("evaluate", "--predictions", pred, "--no-per-class", "--log-class-metrics", "-o", tmp_path / "r.json")
    assert res.exit_code == 0, res.output
    run_id = json.loads((tmp_path / "r.json").read_text())["run_id"]
    client = mlflow.MlflowClient(store)
    metrics = client.get_run(run_id).data.metrics
    report = json.loads((tmp_path / "r.json").read_text())
    for row in report["per_class"]:  # each label's own numbers, none overwritten
        assert metrics[f"test/class/{label_key(row['label'])}/f2"] == pytest.approx(row["f2"])
        assert metrics[f"test/class/{label_key(row['label'])}/support"] == row["support"]
    table = client.download_artifacts(run_id, "per_class.csv", str(tmp_path))
    with open(table, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["key"] for r in rows] == [label_key(n) for n in names]


def test_many_labels_track_a_bounded_number_of_metrics(store, cli, tmp_path):
    import mlflow

    names = [f"L{i}" for i in range(TRACKED_CLASSES_MAX + 50)]
    pred = _predictions(tmp_path / "p.npz", names)
    res = cli("evaluate", "--predictions", pred, "--log-class-metrics", "-o", tmp_path / "r.json")
    assert res.exit_code == 0, res.output
    assert "more labels are not shown: --per-class all prints every label" in res.output
    run_id = json.loads((tmp_path / "r.json").read_text())["run_id"]
    client = mlflow.MlflowClient(store)
    metrics = client.get_run(run_id).data.metrics
    tracked = {k.split("/")[2] for k in metrics if k.startswith("test/class/")}
    assert len(tracked) == TRACKED_CLASSES_MAX
    table = client.download_artifacts(run_id, "per_class.csv", str(tmp_path))
    with open(table, newline="", encoding="utf-8") as f:
        assert len(list(csv.DictReader(f))) == len(names)  # every label recoverable from the run
