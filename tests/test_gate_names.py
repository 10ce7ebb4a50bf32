"""Gate metric names: common aliases resolve, unknown names get the closest keys (difflib), and
--gate / --max-drop add to a job spec's gates unless --replace-gates (issue 22)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evalkit.errors import InputError
from evalkit.gates import check_metrics, known_metrics, parse_gate, parse_max_drop, resolve_metric
from evalkit.spec import load_evaluate_spec


@pytest.mark.parametrize("name,key", [
    ("test/ranking_loss", "test/label_ranking_loss"),
    ("ranking_loss", "test/label_ranking_loss"),
    ("lrap", "test/lrap"),
    ("label_ranking_average_precision", "test/lrap"),
    ("map", "test/macro_map"),
    ("mAP", "test/macro_map"),
    ("exact_match", "test/subset_accuracy"),
    ("subset_accuracy", "test/subset_accuracy"),
    ("hamming", "test/hamming_loss"),
    ("auroc", "test/macro_auroc"),
    ("coverage", "test/coverage_error"),
    ("Macro_F2", "test/macro_f2"),
    ("test/macro_f2", "test/macro_f2"),
    ("test/class/Class1/f2", "test/class/Class1/f2"),  # a label keeps its case
    # the metrics issue 21 added: refused as unknown names before ("did you mean test/weighted_accuracy")
    ("weighted_jaccard", "test/weighted_jaccard"),
    ("Macro_MCC", "test/macro_mcc"),
    ("samples_auroc", "test/samples_auroc"),
    ("weighted_map", "test/weighted_map"),
    ("one_error", "test/one_error"),
    ("ndcg_at_3", "test/ndcg_at_3"),
    ("test/precision_at_10", "test/precision_at_10"),
    ("macro_f1e06", "test/macro_f1e06"),
])
def test_aliases_resolve_to_tracked_keys(name, key):
    assert resolve_metric(name) == key
    gate = parse_gate(f"{name}<0.5")
    assert (gate.metric, gate.text) == (key, f"{key}<0.5")
    assert parse_max_drop(f"{name}=0.01").metric == key


@pytest.mark.parametrize("name,key", [("macro_f2", "test/macro_f2"), ("Micro_F1", "test/micro_f1"),
                                      ("map", "test/macro_map"), ("exact_match", "test/subset_accuracy"),
                                      ("auroc", "test/macro_auroc"), ("lrap", "test/lrap")])
def test_significant_max_drop_takes_the_same_names(name, key):
    gate = parse_max_drop(f"{name}=significant")
    assert (gate.metric, gate.text, gate.significant) == (key, f"{key} max-drop significant", True)


def test_significant_max_drop_of_a_metric_without_row_statistics_is_refused():
    with pytest.raises(InputError, match=r"^--max-drop test/coverage_error: cannot be compared row by row"):
        parse_max_drop("coverage=significant")


@pytest.mark.parametrize("text,message", [
    ("test/rankingloss<0.1", "--gate: unknown metric 'test/rankingloss'; did you mean test/label_ranking_loss"),
    ("test/label_ranking<0.1", "--gate: unknown metric 'test/label_ranking'; did you mean test/label_ranking_loss?"),
    ("test/lrp>0.1", "--gate: unknown metric 'test/lrp'; did you mean test/lrap or"),
    ("val/macro_f2>0.1", "--gate: unknown metric 'val/macro_f2'; did you mean test/macro_f2 or"),
    ("throughput>1", "--gate: unknown metric 'throughput' (tracked test metrics are e.g. test/macro_f2"),
    # specificity / NPV / MCC have no samples average: refused before the evaluation, not after it
    ("samples_mcc>=0.1", "--gate: unknown metric 'samples_mcc'; did you mean test/samples_map or"),
])
def test_unknown_names_suggest_the_closest_keys(text, message):
    with pytest.raises(InputError) as e:
        parse_gate(text)
    assert str(e.value).startswith(message)
    assert "\n" not in str(e.value)


def test_unknown_name_against_the_report_suggests_its_keys():
    from evalkit.workflows.evaluation import evaluate_scores

    rng = np.random.default_rng(0)
    report = evaluate_scores(rng.integers(0, 2, (30, 3)), probabilities=rng.random((30, 3)),
                             label_names=["a", "b", "c"])
    assert "test/label_ranking_loss" in known_metrics(report)
    with pytest.raises(InputError, match=r"^gates: unknown metric 'test/macro_f3'; did you mean test/macro_f2"):
        check_metrics([parse_gate("test/macro_f3>0.1")], report)
    with pytest.raises(InputError, match=r"^gates: unknown metric 'test/class/d/f2'; did you mean test/class/"):
        check_metrics([parse_gate("test/class/d/f2>0.1")], report)
    with pytest.raises(InputError, match=r"^max_drop: unknown metric 'test/class/d/f2'"):
        check_metrics([parse_max_drop("test/class/d/f2=0.1")], report)


# ----------------------------------------------------------------------------- spec + command line

SPEC = """[evaluate]
predictions = "p.npz"
gates = ["test/macro_f2>=0.1", "test/micro_f2>=0.1"]
baseline = "last"
max_drop = ["test/macro_f2=0.05"]
"""


@pytest.fixture
def job(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(3)
    np.savez(tmp_path / "p.npz", targets=rng.integers(0, 2, (40, 3)), probabilities=rng.random((40, 3)))
    (tmp_path / "job.toml").write_text(SPEC)
    return tmp_path / "job.toml"


def test_command_line_gates_add_to_the_specs(job):
    cfg = load_evaluate_spec(job, {"gates": ["lrap>=0.2", "test/macro_f2>=0.1"]})
    assert cfg.gates == ["test/macro_f2>=0.1", "test/micro_f2>=0.1", "lrap>=0.2"]  # the repeat counts once
    assert cfg.max_drop == ["test/macro_f2=0.05"] and cfg.baseline == "last"
    cfg = load_evaluate_spec(job, {"max_drop": ["test/micro_f2=0.02"]})
    assert cfg.max_drop == ["test/macro_f2=0.05", "test/micro_f2=0.02"]


def test_replace_gates_keeps_only_the_command_lines(job):
    cfg = load_evaluate_spec(job, {"gates": ["lrap>=0.2"]}, replace_gates=True)
    assert (cfg.gates, cfg.max_drop, cfg.baseline) == (["lrap>=0.2"], [], None)  # no max_drop left: no baseline
    cfg = load_evaluate_spec(job, {"max_drop": ["test/micro_f2=0.02"]}, replace_gates=True)
    assert (cfg.gates, cfg.max_drop, cfg.baseline) == ([], ["test/micro_f2=0.02"], "last")
    assert load_evaluate_spec(job, {}, replace_gates=True).gates == []


def test_a_bad_gate_in_the_spec_names_its_file_line_and_key(job):
    job.write_text(SPEC.replace('"test/micro_f2>=0.1"', '"test/rankingloss<0.1"'))
    with pytest.raises(InputError) as e:
        load_evaluate_spec(job)
    assert str(e.value).startswith(f"{job}:3: evaluate.gates: unknown metric 'test/rankingloss'; did you mean "
                                   "test/label_ranking_loss")
    job.write_text(SPEC.replace('"test/macro_f2=0.05"', '"test/macro_f2>0.05"'))
    with pytest.raises(InputError, match=r":5: evaluate\.max_drop: malformed value 'test/macro_f2>0\.05'"):
        load_evaluate_spec(job)


def test_a_per_class_gate_of_an_unknown_label_in_the_spec_names_the_specs_key(cli, job):
    """Label names are known only once the scores are read: the error still names where the gate was written."""
    job.write_text(SPEC.replace('"test/micro_f2>=0.1"', '"test/class/nope/f2>=0.1"'))
    r = cli("evaluate", "--spec", job, "--no-track")
    assert r.exit_code == 2
    assert r.output.startswith("error: evaluate.gates: unknown metric 'test/class/nope/f2'; did you mean "), r.output
    r = cli("evaluate", "--predictions", "p.npz", "--gate", "test/class/nope/f2>=0.1", "--no-track")
    assert r.output.startswith("error: --gate: unknown metric 'test/class/nope/f2'"), r.output


def test_cli_gate_adds_and_replace_gates(cli, job, tmp_path):
    spec = SPEC.replace('baseline = "last"\nmax_drop = ["test/macro_f2=0.05"]\n', "")
    job.write_text(spec)
    r = cli("evaluate", "--spec", job, "--gate", "ranking_loss<0.9", "--no-track", "--no-per-class", "-o", "a.json")
    assert r.exit_code == 0, r.output
    gates = json.loads((tmp_path / "a.json").read_text())["gates"]["results"]
    assert [g["gate"] for g in gates] == ["test/macro_f2>=0.1", "test/micro_f2>=0.1", "test/label_ranking_loss<0.9"]
    r = cli("evaluate", "--spec", job, "--gate", "lrap>=0", "--replace-gates", "--no-track", "--no-per-class",
            "-o", "b.json")
    assert r.exit_code == 0, r.output
    assert [g["gate"] for g in json.loads((tmp_path / "b.json").read_text())["gates"]["results"]] == ["test/lrap>=0"]
    r = cli("evaluate", "--predictions", "p.npz", "--replace-gates", "--no-track")
    assert r.exit_code == 2
    assert "--replace-gates: applies to evaluate --spec FILE" in r.stderr and "Traceback" not in r.output


def test_the_new_scalars_are_gated_against_the_report_and_one_error_is_lower_is_better():
    from evalkit import evaluate_scores
    from evalkit.direction import lower_is_better
    from evalkit.gates import apply_gates
    from evalkit.report import metric_keys

    rng = np.random.default_rng(0)
    Y, P = rng.integers(0, 2, (60, 4)), rng.random((60, 4))
    report = evaluate_scores(Y, probabilities=P, ks=(1, 3))
    values = metric_keys(report)
    s = report["summary"]
    assert (values["test/one_error"], values["test/ndcg_at_3"], values["test/weighted_map"],
            values["test/samples_auroc"]) == (s["one_error"], s["ndcg_at_3"], s["average_precision_weighted"],
                                              s["auroc_samples"])
    gates = [parse_gate("ndcg_at_3>=0.99"), parse_max_drop("one_error=0.0"), parse_gate("weighted_mcc<=1")]
    check_metrics(gates, report)  # known to the report
    block = apply_gates(gates, values, baseline={"run_id": "x", "source": "x",
                                                "metrics": {"test/one_error": values["test/one_error"] - 0.01}})
    assert [r["status"] for r in block["results"]] == ["fail", "fail", "pass"]  # one-error rose by 0.01: a drop
    assert lower_is_better("test/one_error") and not lower_is_better("test/ndcg_at_3")
    with pytest.raises(InputError, match="unknown metric 'test/ndcg_at_7'"):
        check_metrics([parse_gate("ndcg_at_7>=0.5")], report)  # not one of this report's cut-offs


def test_gate_alpha_of_a_spec_is_named_by_its_key_and_replace_gates_drops_it(cli, job, tmp_path):
    """The spec's ``gate_alpha`` was named ``--gate-alpha`` (a flag nobody typed), and ``--replace-gates``
    kept it after dropping the significant gate it belongs to, then refused it."""
    job.write_text(SPEC.replace('max_drop = ["test/macro_f2=0.05"]', 'max_drop = ["test/macro_f2=significant"]\n'
                                'gate_alpha = 0.01'))
    r = cli("evaluate", "--spec", job, "--replace-gates", "--gate", "macro_f2>=0.1", "--no-track", "--no-per-class")
    assert r.exit_code == 0, r.output
    job.write_text('[evaluate]\npredictions = "p.npz"\ngate_alpha = 0.01\ngates = ["test/macro_f2>=0.1"]\n')
    r = cli("evaluate", "--spec", job, "--no-track")
    assert r.exit_code == 2 and r.output.startswith("error: evaluate.gate_alpha: applies to METRIC=significant "
                                                    "--max-drop gates; give one or drop evaluate.gate_alpha"), r.output


@pytest.mark.parametrize("args, message", [
    (("--gate", "map>=0.1"), "error: --gate test/macro_map>=0.1: --threshold-free none computes no threshold-free "
                             "metric; expected --threshold-free exact or streaming, or no gate on it"),
    (("--gate", "test/class/label_1/auroc>0.5"), "error: --gate test/class/label_1/auroc>0.5: --threshold-free none"),
    (("--max-drop", "lrap=significant", "--baseline", "last"), "error: --max-drop test/lrap max-drop significant: "),
])
def test_a_gate_on_a_metric_threshold_free_none_does_not_compute_is_refused(cli, job, args, message):
    """It failed the job (exit 1, "FAIL test/macro_map = undefined"): a usage conflict, not a regression."""
    r = cli("evaluate", "--predictions", "p.npz", "--threshold-free", "none", *args, "--no-track")
    assert r.exit_code == 2 and r.output.startswith(message), r.output


def test_replace_gates_keeps_gate_alpha_only_for_a_significant_command_line_gate(job):
    """``--replace-gates --max-drop M=0.02`` kept the spec's ``gate_alpha`` (for its dropped significant
    gate) and was then refused; a significant gate on the command line keeps it."""
    job.write_text(SPEC.replace('max_drop = ["test/macro_f2=0.05"]', 'max_drop = ["test/macro_f2=significant"]\n'
                                'gate_alpha = 0.01'))
    cfg = load_evaluate_spec(job, {"max_drop": ["macro_f2=0.02"]}, replace_gates=True)
    assert (cfg.max_drop, cfg.baseline, "gate_alpha" in cfg.model_fields_set) == (["macro_f2=0.02"], "last", False)
    cfg = load_evaluate_spec(job, {"max_drop": ["micro_f2 = significant"]}, replace_gates=True)
    assert (cfg.gate_alpha, cfg.baseline) == (0.01, "last")
