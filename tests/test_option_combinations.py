"""Options that do not apply to the chosen mode are refused (exit 2, one line naming the flag and the
mode), never silently ignored; --label-map with --predictions is applied, not ignored."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evalkit.config import EvaluateJobConfig, ExecutorConfig, RunConfig
from evalkit.errors import InputError
from test_gates import _runs, write_predictions
from test_labelmap import HAND, LABELS, MAP, P, Y


@pytest.mark.parametrize("flags, message", [
    (("--dataset", "yeast"), "--dataset: applies to --model evaluation, not to --predictions"),
    (("--test-dataset", "t.csv"), "--test-dataset: applies to --model evaluation, not to --predictions"),
    (("--label-columns", "a,b"), "--label-columns: applies to --model evaluation, not to --predictions"),
    (("--device", "cpu"), "--device: applies to --model evaluation, not to --predictions"),
    (("--scores", "probabilities"), "--scores: applies to --model evaluation, not to --predictions"),
    (("--preprocess", "pre.json"), "--preprocess: applies to --model evaluation, not to --predictions"),
    (("--trust-pickle",), "--trust-pickle: applies to --model evaluation, not to --predictions"),
    (("--map-reduce", "sum"), "--map-reduce: applies to --label-map, not to an evaluation without a label map"),
    (("--trigger", "scheduled", "--no-track"), "--trigger: applies to a tracked run, not to --no-track"),
])
def test_evaluate_option_that_does_not_apply_to_predictions_is_refused(store, cli, tmp_path, flags, message):
    pred = write_predictions(tmp_path / "p.npz")
    res = cli("evaluate", "--predictions", pred, *flags, "-o", tmp_path / "r.json")
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "r.json").exists() and _runs(store) == []


def test_evaluate_model_options_that_do_not_apply_are_refused_in_the_python_api_too():
    # the Python API names the fields it was given (the command line names their flags, above)
    with pytest.raises(InputError, match=r"^dataset: applies to model without test_dataset, not to test_dataset"):
        EvaluateJobConfig(model="m.pt", dataset="yeast", test_dataset="t.csv")
    with pytest.raises(InputError, match=r"^hidden: applies to a state_dict model file, not to an MLflow model"):
        EvaluateJobConfig(model="models:/m@champion", hidden=[64])
    EvaluateJobConfig(model="m.pt", arch="mlp", hidden=[64], test_dataset="t.csv")  # a file: --arch may apply
    EvaluateJobConfig(model="m.pt", test_dataset="t.csv")  # either alone is fine
    EvaluateJobConfig(predictions="p.npz", device="auto")  # a default value given explicitly is not an option set


def test_label_map_with_predictions_evaluates_the_mapped_labels(store, cli, tmp_path):
    pred, lm, out = tmp_path / "fine.npz", tmp_path / "map.json", tmp_path / "r.json"
    np.savez(pred, targets=Y, probabilities=P, labels=np.array(LABELS))
    lm.write_text(json.dumps(MAP))
    res = cli("evaluate", "--predictions", pred, "--label-map", lm, "-o", out, "--no-track")
    assert res.exit_code == 0, res.output
    assert "tree" in res.output  # the note naming the unmapped label
    rep = json.loads(out.read_text())
    assert [c["label"] for c in rep["per_class"]] == ["animal", "vehicle"]
    for c in rep["per_class"]:
        assert {k: c[k] for k in ("tp", "fp", "fn", "tn")} == {k: HAND[c["label"]][k] for k in ("tp", "fp", "fn", "tn")}
    assert rep["summary"]["macro"]["f2"] == pytest.approx(HAND["macro_f2"])
    assert rep["summary"]["subset_accuracy"] == pytest.approx(HAND["subset_accuracy"])
    assert rep["label_map"]["targets"] == ["animal", "vehicle"] and rep["label_map"]["unmapped"] == ["tree"]


def test_label_map_with_predictions_of_logits_maps_probabilities(tmp_path):
    from evalkit.workflows.evaluation import evaluate_predictions

    np.savez(tmp_path / "l.npz", targets=Y, logits=np.log(P / (1 - P)), labels=np.array(LABELS))
    (tmp_path / "m.json").write_text(json.dumps(MAP))
    rep = evaluate_predictions(str(tmp_path / "l.npz"), label_map=str(tmp_path / "m.json"), batch_size=2)  # 3 batches
    assert rep["summary"]["macro"]["f2"] == pytest.approx(HAND["macro_f2"])
    assert rep["scores"] == "probabilities"


RUN_IGNORED = [  # (RunConfig fields, the Python API's message, the command line's message)
    (dict(monitor="none", patience=3), "patience: applies to early stopping (monitor val_loss, val_map, ...), not to monitor none",
     "--patience: applies to early stopping (--monitor val_loss, val_map, ...), not to --monitor none"),
    (dict(threshold="fixed:0.3", objective="micro-fbeta"),
     "objective: applies to tuned thresholds (threshold joint, global or per-class), not to threshold fixed:0.3",
     "--objective: applies to tuned thresholds (--threshold joint, global or per-class), not to --threshold fixed:0.3"),
    (dict(threshold="top-k:2", objective="macro-fbeta"), "objective: applies to tuned thresholds",
     "--objective: applies to tuned thresholds"),
    (dict(folds=1, fold_processes=2), "fold_processes: applies to cross-fitting (folds 2 or more), not to folds 1",
     "--fold-processes: applies to cross-fitting (--folds 2 or more), not to --folds 1"),
]


@pytest.mark.parametrize("kw, message, flag_message", RUN_IGNORED)
def test_run_option_that_the_run_would_ignore_is_refused(kw, message, flag_message):
    with pytest.raises(InputError) as e:
        RunConfig(**kw)
    assert str(e.value).startswith(message)


@pytest.mark.parametrize("kw, message, flag_message", RUN_IGNORED)
def test_run_option_that_the_run_would_ignore_is_refused_naming_flags_or_spec_keys(kw, message, flag_message, cli,
                                                                                 tmp_path):
    flags = [x for k, v in kw.items() for x in ("--" + k.replace("_", "-"), str(v))]
    res = cli("run", *flags, "--no-track")
    assert res.exit_code == 2 and res.output.startswith("error: " + flag_message), res.output
    spec = tmp_path / "s.toml"
    spec.write_text("".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in kw.items()))
    res = cli("run", spec, "--no-track")
    assert res.exit_code == 2 and res.output.startswith("error: " + message), res.output  # spec keys: the field names


def test_run_option_combination_refused_on_the_command_line_before_any_run(store, cli):
    res = cli("run", "--monitor", "none", "--patience", "3", "--epochs", "1")
    assert res.exit_code == 2, res.output
    assert "--patience: applies to early stopping" in res.output and "Traceback" not in res.output
    assert _runs(store) == []


def test_ray_only_executor_options_with_the_sequential_executor_are_refused(tmp_path, cli):
    with pytest.raises(InputError, match=r"^address: applies to kind ray, not to the sequential executor"):
        ExecutorConfig(address="auto").check_applies()
    ExecutorConfig(kind="ray", max_concurrent=2, cpus_per_cell=2).check_applies()
    spec = tmp_path / "s.toml"
    spec.write_text('dataset = "yeast"\nepochs = 1\n[grid]\nseed = [0, 1]\n')
    res = cli("run", str(spec), "--no-track", "--max-concurrent", "2")
    assert res.exit_code == 2, res.output
    assert "--max-concurrent: applies to --executor ray, not to the sequential executor" in res.output
