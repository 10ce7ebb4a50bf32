"""run --register/--alias, then evaluate the registered model: same test metrics as the run."""

from __future__ import annotations

import json

import pytest


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[prefix + k] = v
    return out


def _assert_same_metrics(a: dict, b: dict) -> None:
    fa, fb = _flat(a["summary"]), _flat(b["summary"])
    assert fa.keys() == fb.keys()
    for k in fa:
        if fa[k] is None:
            assert fb[k] is None, k
        else:
            assert fb[k] == pytest.approx(fa[k], abs=1e-6), k
    for ra, rb in zip(a["per_class"], b["per_class"], strict=True):
        for k, v in ra.items():
            assert rb[k] == (pytest.approx(v, abs=1e-6) if isinstance(v, float) else v), (ra["label"], k)


def test_register_alias_then_evaluate_champion_matches_run(store, cli, tmp_path):
    import mlflow

    r = cli("run", "--epochs", "2", "--threshold", "per-class", "--register", "yeast-mlp", "--alias", "champion",
            "-o", "run.json")
    assert r.exit_code == 0, r.output
    assert "models:/yeast-mlp@champion" in r.output
    # evalkit's line says what was registered; MLflow's own lines stay off stderr
    assert "Successfully registered" not in r.stderr and "Created version" not in r.stderr, r.stderr
    run = json.loads((tmp_path / "run.json").read_text())

    r = cli("evaluate", "--model", "models:/yeast-mlp@champion", "--dataset", "yeast", "-o", "eval.json")
    assert r.exit_code == 0, r.output
    ev = json.loads((tmp_path / "eval.json").read_text())
    assert ev["dataset"]["n_samples"] == 917  # the standard yeast test split
    assert ev["threshold"]["values"] == run["threshold"]["values"]  # the thresholds the run chose
    assert ev["threshold"]["values"] != [0.5] * 14
    _assert_same_metrics(run, ev)

    # what the run logged next to the model
    client = mlflow.MlflowClient(store)
    run_id = client.get_model_version_by_alias("yeast-mlp", "champion").run_id
    assert ev["model"]["run_id"] == run_id
    paths = {a.path for a in client.list_artifacts(run_id)} | {a.path for a in client.list_artifacts(run_id, "dataset")}
    assert {"preprocess.json", "report.json", "dataset/summary.json", "dataset/cooccurrence.csv",
            "dataset/cooccurrence.png"} <= paths
    inputs = {i.tags[0].value: i.dataset for i in client.get_run(run_id).inputs.dataset_inputs}
    # cross-fitting trains on train + val (one training input); the test split is the evaluation
    # input, with the digest `evaluate --model` gives the same rows
    assert set(inputs) == {"training", "evaluation"}
    assert inputs["evaluation"].digest == ev["dataset"]["digest"]

    # the same model by run URI, with the thresholds overridden
    r = cli("evaluate", "--model", f"runs:/{run_id}/model", "--threshold", "0.5", "--no-track", "-o", "e2.json")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "e2.json").read_text())["threshold"]["values"] == [0.5] * 14

    # the run's cuts say where they came from: the run, or a --preprocess file that replaced its record
    assert ev["threshold"]["strategy"] == f"per-class (from run {run_id})"
    record = json.loads(client.download_artifacts(run_id, "preprocess.json", str(tmp_path)) and
                        (tmp_path / "preprocess.json").read_text())
    record["threshold"]["values"] = [0.3] * 14
    (tmp_path / "edited.json").write_text(json.dumps(record))
    r = cli("evaluate", "--model", f"runs:/{run_id}/model", "--preprocess", "edited.json", "--no-track", "-o", "e3.json")
    assert r.exit_code == 0, r.output
    e3 = json.loads((tmp_path / "e3.json").read_text())["threshold"]
    assert (e3["strategy"], e3["values"]) == ("per-class (from edited.json)", [0.3] * 14)


def test_registry_input_errors(store, cli):
    r = cli("run", "--epochs", "1", "--alias", "champion")
    assert r.exit_code == 2 and "needs --register" in r.stderr
    r = cli("evaluate", "--model", "models:/no-such-model@champion", "--dataset", "yeast", "--no-track")
    assert r.exit_code == 2, r.output
    assert "no-such-model" in r.stderr and "Traceback" not in r.stderr
    # the message says how to create it (the nightly spec on a fresh clone: issue 22)
    assert ("; create it by training and registering a model with: evalkit run --register no-such-model "
            "--alias champion (that trains on the default dataset, yeast") in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_registry_hint_names_the_command_for_each_models_uri():
    from evalkit.tracking.queries import registry_hint

    assert "with: evalkit run --register yeast-mlp --alias champion (" in registry_hint("models:/yeast-mlp@champion")
    assert "with: evalkit run --register yeast-mlp (" in registry_hint("models:/yeast-mlp/3")
    assert registry_hint("runs:/abc/model") == "" and registry_hint("models:/m-0123abc") == ""


@pytest.mark.parametrize("args,message", [
    (["--register", "yl", "--alias", "bad alias"], r"--alias 'bad alias': Invalid alias name: 'bad alias'\. Names may"),
    (["--register", "a/b"], r"--register 'a/b': Invalid model name 'a/b'\. Names cannot contain '/' or ':'\."),
    (["--register", "yl", "--alias", "v1"], r"--alias 'v1': Version alias name 'v1' is reserved\."),
    (["--register", "yl", "--alias", "champion", "--no-track"],
     r"--register yl: applies to a tracked run \(the registry is in the tracking store\); drop --no-track"),
])
def test_registry_names_and_no_track_are_refused_before_training(store, cli, tmp_path, monkeypatch, args, message):
    """An alias or name MLflow refuses was found only after training and reported as a store fault (exit 3,
    run FAILED, a spool entry, a version without its alias); --register with --no-track was ignored."""
    import sqlite3

    from evalkit.workflows import training

    monkeypatch.setattr(training, "train_task", lambda *a, **k: pytest.fail("trained before the check"))
    res = cli("run", "--model", "linear", "--epochs", "1", "--folds", "1", "--ci", "0", *args)
    assert res.exit_code == 2 and res.output.startswith("error: ") and "Traceback" not in res.output, res.output
    assert __import__("re").search(message, res.output), res.output
    con = sqlite3.connect(tmp_path / "mlruns" / "mlflow.db")
    try:
        assert con.execute("select count(*) from runs").fetchone() == (0,)
        assert con.execute("select count(*) from model_versions").fetchone() == (0,)
    finally:
        con.close()


def test_evaluate_model_alone_reads_its_training_table_with_the_recorded_reader_options(store, cli, tmp_path):
    """`evaluate --model models:/NAME/1` without --dataset evaluates the model's own training table; the
    CLI dropped the reader options its run recorded (--label-prefix) and asked which columns are labels."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(4)])
    for j in range(3):
        frame[f"y_{j}"] = (X[:, j] + rng.normal(0, 0.5, 200) > 0).astype(int)
    frame.to_csv(tmp_path / "y.csv", index=False)
    res = cli("run", "--dataset", "y.csv", "--label-prefix", "y_", "--model", "linear", "--epochs", "1", "--folds", "1",
              "--ci", "0", "--register", "yc", "-o", "run.json")
    assert res.exit_code == 0, res.output
    res = cli("evaluate", "--model", "models:/yc/1", "--no-track", "--ci", "0", "-o", "eval.json")
    assert res.exit_code == 0, res.output
    ran, evaluated = (json.loads((tmp_path / f).read_text())["summary"] for f in ("run.json", "eval.json"))
    assert evaluated["macro"]["f2"] == pytest.approx(ran["macro"]["f2"], abs=1e-12)
    assert evaluated["mean_average_precision"] == pytest.approx(ran["mean_average_precision"], abs=1e-12)
