"""Quality gates of scheduled evaluation jobs: parsing, verdicts, baselines, exit codes, tags, history."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evalkit.errors import InputError
from evalkit.gates import apply_gates, describe, parse_gate, parse_max_drop
from evalkit.spec import load_evaluate_spec


# ----------------------------------------------------------------------------- pure functions

@pytest.mark.parametrize("text,metric,op,bound", [
    ("test/macro_f2>=0.55", "test/macro_f2", ">=", 0.55),
    (" test/subset_accuracy > .15 ", "test/subset_accuracy", ">", 0.15),
    ("test/hamming_loss<=0.2", "test/hamming_loss", "<=", 0.2),
    ("test/class/Class1/f2<1e-1", "test/class/Class1/f2", "<", 0.1),
])
def test_parse_gate(text, metric, op, bound):
    g = parse_gate(text)
    assert (g.metric, g.op, g.bound, g.relative) == (metric, op, bound, False)


@pytest.mark.parametrize("text", ["test/macro_f2", "test/macro_f2=0.5", "test/macro_f2>=", ">=0.5",
                                  "test/macro_f2 >= abc", "test/macro_f2=>0.5", "test/macro_f2>=0.5>=0.1", ""])
def test_malformed_gate_is_bad_input(text):
    with pytest.raises(InputError, match=r"--gate: malformed gate .*expected METRIC OP NUMBER"):
        parse_gate(text)


def test_a_gate_bound_that_overflows_to_inf_is_refused():
    """``>=1e400`` was read as ``bound >= inf``: a gate that can never pass (or never fail, with ``<``)."""
    with pytest.raises(InputError, match=r"^--gate: the bound of 'test/macro_f2>=1e400' is not a finite number; "):
        parse_gate("test/macro_f2>=1e400")
    assert parse_gate("test/macro_f2>=1e-400").bound == 0.0  # underflow is a number (0)


def test_gate_on_a_non_test_metric_is_unknown():
    with pytest.raises(InputError, match=r"--gate: unknown metric 'val/macro_f2'"):
        parse_gate("val/macro_f2>=0.5")


def test_parse_max_drop():
    g = parse_max_drop("test/macro_f2=0.01")
    assert (g.metric, g.op, g.bound, g.relative) == ("test/macro_f2", "max-drop", 0.01, True)
    for bad in ("test/macro_f2", "test/macro_f2>=0.01", "test/macro_f2=x"):
        with pytest.raises(InputError, match="--max-drop: malformed"):
            parse_max_drop(bad)
    with pytest.raises(InputError, match="must be a number >= 0"):
        parse_max_drop("test/macro_f2=-0.1")


def test_apply_gates_absolute_and_relative():
    gates = [parse_gate("test/macro_f2>=0.55"), parse_gate("test/subset_accuracy>=0.15"),
             parse_max_drop("test/macro_f2=0.01"), parse_max_drop("test/hamming_loss=0.005")]
    values = {"test/macro_f2": 0.56, "test/subset_accuracy": 0.10, "test/hamming_loss": 0.204}
    base = {"run_id": "abc", "source": "last",
            "metrics": {"test/macro_f2": 0.575, "test/hamming_loss": 0.2}}
    block = apply_gates(gates, values, base)
    st = [r["status"] for r in block["results"]]
    assert st == ["pass", "fail", "fail", "pass"]
    assert block["status"] == "fail" and block["failed"] == 2
    drop = block["results"][2]
    assert drop["baseline"] == 0.575 and drop["limit"] == pytest.approx(0.565)
    assert block["results"][3]["limit"] == pytest.approx(0.205)  # lower is better: an increase is a drop
    assert "test/macro_f2 = 0.5600, bound >= 0.5650 (baseline 0.5750, max drop 0.01)" == describe(drop)
    assert "test/subset_accuracy = 0.1000, bound >= 0.15" == describe(block["results"][1])
    assert block["baseline"]["run_id"] == "abc"


def test_apply_gates_without_baseline_skips_relative_and_undefined_value_fails():
    gates = [parse_max_drop("test/macro_f2=0.01"), parse_gate("test/macro_auroc>=0.5")]
    block = apply_gates(gates, {"test/macro_f2": 0.5}, {"run_id": None, "source": "last", "metrics": {},
                                                          "reason": "no earlier finished run"})
    assert [r["status"] for r in block["results"]] == ["skipped", "fail"]
    assert block["results"][0]["reason"] == "no earlier finished run"
    assert block["results"][1]["reason"] == "value undefined"
    assert apply_gates([], {})["status"] == "none"
    down = {"run_id": None, "source": "last", "metrics": {}, "unavailable": True, "reason": "store unreachable"}
    block = apply_gates([parse_max_drop("test/macro_f2=0.01"), parse_gate("test/macro_f2>=0.1")],
                        {"test/macro_f2": 0.5}, down)
    assert block["status"] == "unknown" and block["results"][0]["status"] == "unknown"  # never "pass"


def test_unreachable_store_with_a_baseline_never_reports_pass(store, cli, tmp_path):
    pred = write_predictions(tmp_path / "p.npz")
    out = tmp_path / "r.json"
    res = cli("evaluate", "--predictions", pred, "--tracking-uri", "http://127.0.0.1:9", "--baseline", "last",
              "--max-drop", "test/macro_f2=0.01", "--job", "j", "--no-per-class", "-o", out)
    assert res.exit_code == 3, res.output
    assert "UNKNOWN" in res.output
    gates = json.loads(out.read_text())["gates"]
    assert gates["status"] == "unknown" and gates["results"][0]["reason"].startswith("tracking store unreachable")


# ----------------------------------------------------------------------------- end to end (evaluate)

def write_predictions(path, *, n=120, c=4, seed=0, quality=2.0):
    """A small predictions file: targets, probabilities and label names (.npz)."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < 0.35).astype(np.uint8)
    y[0], y[1] = 1, 0  # every label has positives and negatives
    logits = quality * (2 * y - 1) + rng.normal(0, 1.5, (n, c))
    p = 1 / (1 + np.exp(-logits))
    np.savez(path, targets=y, probabilities=p, labels=np.array([f"L{i}" for i in range(c)]))
    return path


def _runs(uri, experiment="evalkit"):
    import mlflow

    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])


def test_evaluate_gates_pass_fail_exit_codes_report_and_tags(store, cli, tmp_path):
    pred = write_predictions(tmp_path / "pred.npz")
    out = tmp_path / "report.json"
    res = cli("evaluate", "--predictions", pred, "--gate", "test/macro_f2>=0.3", "--gate", "test/subset_accuracy>=0.0",
              "--trigger", "scheduled", "--job", "nightly", "-o", out, "--no-per-class")
    assert res.exit_code == 0, res.output
    assert "Gates: PASS" in res.output
    rep = json.loads(out.read_text())
    assert rep["gates"]["status"] == "pass" and len(rep["gates"]["results"]) == 2
    f2 = rep["summary"]["macro"]["f2"]
    # a failing gate: exit 1, printed with value and bound
    res = cli("evaluate", "--predictions", pred, "--gate", "test/macro_f2>=0.999", "--trigger", "scheduled",
              "--job", "nightly", "-o", out, "--force", "--no-per-class")
    assert res.exit_code == 1, res.output
    assert "FAIL" in res.output and f"test/macro_f2 = {f2:.4f}, bound >= 0.999" in res.output
    rep = json.loads(out.read_text())
    assert rep["gates"]["status"] == "fail" and rep["gates"]["results"][0]["value"] == pytest.approx(f2)
    runs = _runs(store)
    assert len(runs) == 2
    assert [r.data.tags["evalkit.gate"] for r in runs] == ["pass", "fail"]
    assert {r.data.tags["evalkit.trigger"] for r in runs} == {"scheduled"}
    assert {r.data.tags["evalkit.job"] for r in runs} == {"nightly"}
    assert all(r.info.status == "FINISHED" for r in runs)
    assert runs[0].data.metrics["test/macro_f2"] == pytest.approx(f2)  # same names as `run`
    assert rep["run_id"] == runs[1].info.run_id


def test_evaluate_relative_gate_against_last_run_of_the_job(store, cli, tmp_path):
    good = write_predictions(tmp_path / "good.npz", quality=3.0)
    bad = write_predictions(tmp_path / "bad.npz", quality=0.5)
    args = ("--max-drop", "test/macro_f2=0.01", "--baseline", "last", "--job", "nightly", "--no-per-class")
    first = cli("evaluate", "--predictions", good, *args)
    assert first.exit_code == 0, first.output
    assert "SKIP" in first.output and "no earlier finished run" in first.output
    again = cli("evaluate", "--predictions", good, *args)
    assert again.exit_code == 0, again.output
    worse = cli("evaluate", "--predictions", bad, *args, "-o", tmp_path / "r.json")
    assert worse.exit_code == 1, worse.output
    rep = json.loads((tmp_path / "r.json").read_text())
    row = rep["gates"]["results"][0]
    runs = _runs(store)
    assert row["status"] == "fail" and rep["gates"]["baseline"]["run_id"] == runs[1].info.run_id
    assert row["baseline"] == pytest.approx(runs[1].data.metrics["test/macro_f2"])
    assert "baseline" in worse.output and "max drop 0.01" in worse.output
    # an explicit run id as the baseline; another job's runs are not "last"
    res = cli("evaluate", "--predictions", bad, "--max-drop", "test/macro_f2=0.01", "--baseline", runs[0].info.run_id,
              "--job", "other", "--no-per-class", "-o", tmp_path / "r2.json")
    assert res.exit_code == 1, res.output
    rep = json.loads((tmp_path / "r2.json").read_text())
    assert rep["gates"]["baseline"]["run_id"] == runs[0].info.run_id and rep["gates"]["results"][0]["status"] == "fail"
    res = cli("evaluate", "--predictions", bad, "--max-drop", "test/macro_f2=0.01", "--baseline", "last",
              "--job", "other2", "--no-per-class")
    assert res.exit_code == 0 and "SKIP" in res.output


def test_compare_history_table_and_plot(store, cli, tmp_path):
    pred = write_predictions(tmp_path / "p.npz")
    for trig in ("scheduled", "scheduled", "manual"):
        assert cli("evaluate", "--predictions", pred, "--trigger", trig, "--job", "nightly", "--no-per-class",
                   "--gate", "test/macro_f2>=0.1").exit_code == 0
    png = tmp_path / "trend.png"
    res = cli("compare", "--trigger", "scheduled", "--metric", "test/macro_f2", "--plot", png)
    assert res.exit_code == 0, res.output
    assert "2 runs" in res.output and "pass" in res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = cli("compare", "--trigger", "scheduled", "--metric", "test/macro_f2", "--format", "json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert len(rows) == 2 and rows[0]["start_time"] <= rows[1]["start_time"] and rows[0]["gate"] == "pass"


def test_spec_file_sets_evaluate_options(store, cli, tmp_path):
    pred = write_predictions(tmp_path / "p.npz")
    spec = tmp_path / "job.toml"
    spec.write_text(f'[evaluate]\npredictions = "{pred}"\ngates = ["test/macro_f2>=0.999"]\n'
                    f'trigger = "scheduled"\njob = "from-spec"\noutput = "{tmp_path / "r.json"}"\n')
    res = cli("evaluate", "--spec", spec, "--no-per-class")
    assert res.exit_code == 1, res.output
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["job"] == {"name": "from-spec", "trigger": "scheduled", "experiment": "evalkit"}
    # --gate adds to the spec's gates (its failing gate still counts); --replace-gates drops them
    res = cli("evaluate", "--spec", spec, "--gate", "test/macro_f2>=0.0", "--no-per-class")
    assert res.exit_code == 2 and "r.json already exists; add --force" in res.output  # the spec's output is kept
    res = cli("evaluate", "--spec", spec, "--gate", "test/macro_f2>=0.0", "--no-per-class", "--force")
    assert res.exit_code == 1, res.output
    assert [g["gate"] for g in json.loads((tmp_path / "r.json").read_text())["gates"]["results"]] == [
        "test/macro_f2>=0.999", "test/macro_f2>=0.0"]
    res = cli("evaluate", "--spec", spec, "--gate", "test/macro_f2>=0.0", "--replace-gates", "--no-per-class", "--force")
    assert res.exit_code == 0, res.output


def test_nightly_spec_in_repo_is_valid():
    from pathlib import Path

    spec = Path(__file__).resolve().parents[1] / "experiments" / "nightly_yeast.toml"
    config = load_evaluate_spec(str(spec))
    assert config.trigger == "scheduled" and config.gates and config.baseline


# ----------------------------------------------------------------------------- unusable baselines

def _baseline_refused(cli, store, pred, baseline, *extra):
    """Evaluate ``pred`` against ``baseline``: exit 2 with one line, no new run, none left RUNNING."""
    before = len(_runs(store))
    res = cli("evaluate", "--predictions", pred, "--max-drop", "test/macro_f2=0.01", "--baseline", baseline,
              "--no-per-class", *extra)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and "PASS" not in res.output
    runs = _runs(store)
    assert len(runs) == before and not [r for r in runs if r.info.status == "RUNNING"]
    return res.output


def test_killed_baseline_run_is_refused(store, cli, tmp_path):
    import mlflow

    pred = write_predictions(tmp_path / "p.npz")
    assert cli("evaluate", "--predictions", pred, "--no-per-class").exit_code == 0
    run_id = _runs(store)[0].info.run_id
    mlflow.MlflowClient(store).set_terminated(run_id, "KILLED")
    out = _baseline_refused(cli, store, pred, run_id)
    assert f"--baseline {run_id}: run {run_id} is KILLED, not FINISHED" in out


def test_baseline_without_the_gated_metric_is_refused(store, cli, tmp_path):
    import mlflow

    client = mlflow.MlflowClient(store)
    exp = client.create_experiment("evalkit")
    run = client.create_run(exp)
    client.log_metric(run.info.run_id, "test/micro_f2", 0.5)
    client.set_terminated(run.info.run_id)
    out = _baseline_refused(cli, store, write_predictions(tmp_path / "p.npz"), run.info.run_id)
    assert f"run {run.info.run_id} has no metric test/macro_f2" in out


def test_baseline_evaluated_on_other_rows_is_refused_showing_both_digests(store, cli, tmp_path):
    other = write_predictions(tmp_path / "other.npz", n=90, c=5, seed=3)
    pred = write_predictions(tmp_path / "p.npz")
    assert cli("evaluate", "--predictions", other, "--no-per-class", "-o", tmp_path / "o.json").exit_code == 0
    theirs = json.loads((tmp_path / "o.json").read_text())["dataset"]["digest"]
    run_id = _runs(store)[0].info.run_id
    assert cli("evaluate", "--predictions", pred, "--no-per-class", "--no-track", "-o", tmp_path / "p.json").exit_code == 0
    ours = json.loads((tmp_path / "p.json").read_text())["dataset"]["digest"]
    assert theirs != ours
    out = _baseline_refused(cli, store, pred, run_id)
    assert f"run {run_id} was evaluated on other rows (test-data digest {theirs[:8]}, here {ours[:8]})" in out
    # --baseline last picks the job's last finished run: refused the same way
    out = _baseline_refused(cli, store, pred, "last", "--job", "other.npz")
    assert "was evaluated on other rows" in out


def test_baseline_without_a_test_data_digest_is_refused(store, cli, tmp_path):
    import mlflow

    client = mlflow.MlflowClient(store)
    run = client.create_run(client.create_experiment("evalkit"))
    client.log_metric(run.info.run_id, "test/macro_f2", 0.5)
    client.set_terminated(run.info.run_id)
    out = _baseline_refused(cli, store, write_predictions(tmp_path / "p.npz"), run.info.run_id)
    assert f"run {run.info.run_id} records no test-data digest (it predates digest tagging)" in out


def test_a_gate_in_the_spec_and_on_the_command_line_spelt_differently_counts_once(store, cli, tmp_path):
    """The spec's ``test/macro_f2>=0.999`` and the command line's ``macro_f2 >= 0.9990`` are one gate:
    it was checked, printed and counted (``failed: 2``) twice, as were repeated ``--max-drop``."""
    pred = write_predictions(tmp_path / "p.npz")
    spec = tmp_path / "job.toml"
    spec.write_text(f'[evaluate]\npredictions = "{pred}"\ngates = ["test/macro_f2>=0.999"]\n'
                    'max_drop = ["test/hamming_loss=0.01"]\nbaseline = "last"\njob = "dup"\n'
                    f'output = "{tmp_path / "r.json"}"\n')
    res = cli("evaluate", "--spec", spec, "--gate", "macro_f2 >= 0.9990", "--gate", "Macro_F2>=0.999",
              "--max-drop", "hamming=0.010", "--no-per-class")
    assert res.exit_code == 1, res.output
    gates = json.loads((tmp_path / "r.json").read_text())["gates"]
    assert [r["gate"] for r in gates["results"]] == ["test/macro_f2>=0.999", "test/hamming_loss max-drop 0.01"]
    assert gates["failed"] == 1
    assert res.output.count("FAIL test/macro_f2") == 1
    assert _runs(store)[0].data.params["gates"] == "test/macro_f2>=0.999; test/hamming_loss max-drop 0.01"
    # the interval settings, as a training run logs them (an evaluate run logged none)
    assert {k: _runs(store)[0].data.params[k] for k in ("ci", "ci_resamples", "ci_method")} == {
        "ci": "0.95", "ci_resamples": "1000", "ci_method": "percentile"}


def test_max_drop_on_a_metric_the_baseline_did_not_log_reads_its_report(store, cli, tmp_path):
    """A run logs its headline metrics (and those its own gates name); a max-drop gate on another metric
    (test/macro_accuracy, test/weighted_jaccard) was refused for every baseline ("has no metric ...")."""
    good = write_predictions(tmp_path / "good.npz", quality=3.0)
    bad = write_predictions(tmp_path / "bad.npz", quality=0.5)
    assert cli("evaluate", "--predictions", good, "--no-per-class", "-o", tmp_path / "base.json").exit_code == 0
    base = _runs(store)[0]
    assert "test/macro_accuracy" not in base.data.metrics and "test/weighted_jaccard" not in base.data.metrics
    expected = json.loads((tmp_path / "base.json").read_text())["summary"]
    res = cli("evaluate", "--predictions", bad, "--baseline", base.info.run_id, "--no-per-class",
              "--max-drop", "test/macro_accuracy=0.01", "--max-drop", "test/weighted_jaccard=0.5", "-o", tmp_path / "r.json")
    assert res.exit_code == 1, res.output
    rows = json.loads((tmp_path / "r.json").read_text())["gates"]["results"]
    assert [r["baseline"] for r in rows] == [expected["macro"]["accuracy"], expected["weighted"]["jaccard"]]
    assert [r["status"] for r in rows] == ["fail", "pass"]


def test_baseline_last_of_a_job_named_after_a_file_with_a_quote(store, cli, tmp_path):
    """Without --job the job is named after the predictions file; ``bob's.npz`` broke the store search
    of ``--baseline last`` ("no such run ... Invalid clause(s) in filter string", exit 2)."""
    pred = write_predictions(tmp_path / "bob's.npz")
    args = ("--predictions", pred, "--max-drop", "test/macro_f2=0.01", "--baseline", "last", "--no-per-class")
    first = cli("evaluate", *args)
    text = " ".join(first.output.split())  # the terminal's width wraps lines anywhere
    assert first.exit_code == 0 and "no earlier finished run of job \"bob's.npz\"" in text, first.output
    res = cli("evaluate", *args, "-o", tmp_path / "r.json")
    assert res.exit_code == 0, res.output
    gates = json.loads((tmp_path / "r.json").read_text())["gates"]
    assert gates["baseline"]["run_id"] == _runs(store)[0].info.run_id
    assert gates["results"][0]["status"] == "pass"
    assert _runs(store)[1].data.tags["evalkit.job"] == "bob's.npz"
    # the job's history: `compare --job` refused the quote ("quotes are not allowed")
    res = cli("compare", "--job", "bob's.npz", "--metric", "test/macro_f2", "--format", "json")
    assert res.exit_code == 0, res.output
    assert [r["job"] for r in json.loads(res.stdout)] == ["bob's.npz", "bob's.npz"]
    res = cli("compare", "--job", "bob's \"x\".npz", "--metric", "test/macro_f2")
    assert res.exit_code == 2 and res.output.strip() == (
        "error: --job 'bob\\'s \"x\".npz' holds both ' and \", which a store search cannot match"), res.output


def test_deleted_baseline_run_is_refused_by_its_full_id_as_by_its_prefix(store, cli, tmp_path):
    """A deleted run (in the trash) was taken as the baseline by its full id, though its first 8
    digits or ``last`` never find it; ``compare`` took it too."""
    import mlflow

    pred = write_predictions(tmp_path / "p.npz")
    for _ in range(2):
        assert cli("evaluate", "--predictions", pred, "--no-per-class").exit_code == 0
    deleted, kept = (r.info.run_id for r in _runs(store))
    mlflow.MlflowClient(store).delete_run(deleted)
    hint = f"is deleted (in the store's trash); restore it with `mlflow runs restore --run-id {deleted}`"
    out = _baseline_refused(cli, store, pred, deleted)
    assert f"--baseline {deleted}: run {deleted} {hint}, or pick another --baseline" in out
    out = _baseline_refused(cli, store, pred, deleted, "--max-drop", "test/macro_f2=significant")
    assert hint in out
    assert f"no run id starts with {deleted[:8]}" in _baseline_refused(cli, store, pred, deleted[:8])
    res = cli("compare", kept, deleted)
    assert res.exit_code == 2 and f"RUN_B {deleted} {hint}, or name another run" in res.output, res.output


def test_significant_gate_line_names_the_level_of_its_interval_exactly():
    """``--gate-alpha 0.025`` computes the 97.5% interval (the report's ``level`` 0.975); the line said
    "98% CI"."""
    row = {"gate": "test/macro_f2 max-drop significant", "metric": "test/macro_f2", "op": "max-drop", "bound": None,
           "value": 0.6, "baseline": 0.61, "status": "pass", "reason": "", "difference": -0.01,
           "ci": [-0.02, 0.001], "p_value": 0.06, "alpha": 0.025, "level": 0.975}
    assert describe(row) == ("test/macro_f2 = 0.6000 (baseline 0.6100): difference -0.0100, 97.5% CI [-0.0200, "
                             "+0.0010], paired bootstrap p = 0.06: no significant drop at alpha 0.025")
    assert "90% CI" in describe(row | {"alpha": 0.1, "level": 1 - 0.1})
    assert "95% CI" in describe(row | {"alpha": 0.05, "level": 1 - 0.05})


def test_relative_gate_whose_baseline_could_not_be_read_is_not_called_skipped():
    """A gate that could not be checked (store down: status ``unknown``, exit 3) was described as
    "skipped", the word of a job's first run, whose gates are skipped and pass."""
    gate = parse_max_drop("test/macro_f2=0.01")
    down = {"run_id": None, "source": "last", "metrics": {}, "unavailable": True,
            "reason": "tracking store unreachable: baseline unavailable"}
    [row] = apply_gates([gate], {"test/macro_f2": 0.61}, down)["results"]
    assert row["status"] == "unknown"
    assert describe(row) == ("test/macro_f2 max-drop 0.01: not checked, outcome unknown (tracking store unreachable: "
                             "baseline unavailable); value 0.6100")
    first = {"run_id": None, "source": "last", "metrics": {}, "reason": "no earlier finished run of job 'j'"}
    [row] = apply_gates([gate], {"test/macro_f2": 0.61}, first)["results"]
    assert describe(row) == "test/macro_f2 max-drop 0.01: skipped (no earlier finished run of job 'j'); value 0.6100"


@pytest.mark.parametrize("row, line", [
    # 4 decimals put 0.636154 above the bound it fails ("FAIL test/macro_f2 = 0.6362, bound >= 0.63616")
    ({"op": ">=", "bound": 0.63616, "value": 0.636154, "status": "fail"}, "test/macro_f2 = 0.63615, bound >= 0.63616"),
    ({"op": ">=", "bound": 0.6362, "value": 0.636154, "status": "fail"}, "test/macro_f2 = 0.63615, bound >= 0.6362"),
    ({"op": "<", "bound": 0.6362, "value": 0.6361996, "status": "pass"}, "test/macro_f2 = 0.63619960, bound < 0.6362"),
    ({"op": ">=", "bound": 0.5, "value": 0.636154, "status": "pass"}, "test/macro_f2 = 0.6362, bound >= 0.5"),
    # the bound as written, not to 6 digits ("0.636155, bound >= 0.636155" for a FAIL)
    ({"op": ">=", "bound": 0.6361555, "value": 0.6361553, "status": "fail"},
     "test/macro_f2 = 0.636155, bound >= 0.6361555"),
    ({"op": "max-drop", "bound": 0.01, "value": 0.62614, "limit": 0.626145, "baseline": 0.636145, "status": "fail"},
     "test/macro_f2 = 0.626140, bound >= 0.626145 (baseline 0.6361, max drop 0.01)"),
    ({"op": "max-drop", "bound": 0.01, "value": 0.5, "limit": 0.62625, "baseline": 0.63625, "status": "fail"},
     "test/macro_f2 = 0.5000, bound >= 0.6262 (baseline 0.6362, max drop 0.01)"),
    # a drop of exactly the allowed amount passes (within 1e-12: 0.6362 - 0.01 is 0.6262000000000001)
    ({"op": "max-drop", "bound": 0.01, "value": 0.6262, "limit": 0.6362 - 0.01, "baseline": 0.6362, "status": "pass"},
     "test/macro_f2 = 0.6262, bound >= 0.6262 (baseline 0.6362, max drop 0.01)"),
])
def test_a_gate_line_never_shows_its_value_across_its_bound(row, line):
    assert describe({"metric": "test/macro_f2", "gate": "g", **row}) == line


def test_plain_compare_of_evaluate_runs_lists_them(store, cli, tmp_path):
    """``evalkit compare`` groups by loss by default; an experiment of evaluate runs (no loss param) was
    refused: "--group-by loss: no run has this param", though no --group-by was typed."""
    pred = write_predictions(tmp_path / "p.npz")
    for _ in range(2):
        assert cli("evaluate", "--predictions", pred, "--no-per-class").exit_code == 0
    res = cli("compare", "--format", "json")
    assert res.exit_code == 0, res.output
    assert sorted(r["run_id"] for r in json.loads(res.stdout)) == sorted(r.info.run_id for r in _runs(store))
    res = cli("compare")
    assert res.exit_code == 0 and "2 runs (none has a loss param: one row per run)" in res.output, res.output
    res = cli("compare", "--group-by", "loss")  # asked for: still refused, with the way out
    assert res.exit_code == 2 and res.output.strip() == ("error: --group-by loss: no run has this param; "
                                                         "--group-by none lists every run"), res.output


def test_gate_lines_are_not_wrapped_and_a_full_run_id_baseline_is_named_once():
    """A piped job log had its gate lines wrapped at 80 columns ("...at alpha" / "0.05": not greppable),
    and ``--baseline <full id>`` printed the id twice (``baseline <id>: run <id>``)."""
    from rich.console import Console

    from evalkit.cli.ui import render_gates

    rid = "04ab565d8fe7418fb670cd6ff05bf79e"
    row = {"gate": "g", "metric": "test/macro_f2", "op": "max-drop", "bound": float("nan"), "value": 0.6032,
           "baseline": 0.6272, "difference": -0.024, "ci": [-0.0384, -0.0088], "p_value": 0.002, "alpha": 0.05,
           "level": 0.95, "status": "fail", "reason": "significant drop"}
    out = Console(record=True, width=60, color_system=None)
    render_gates({"status": "fail", "results": [row], "baseline": {"source": rid, "run_id": rid}}, out)
    assert out.export_text().splitlines() == [
        f"Gates: FAIL (baseline run {rid})",
        "  FAIL test/macro_f2 = 0.6032 (baseline 0.6272): difference -0.0240, 95% CI [-0.0384, -0.0088], paired "
        "bootstrap p = 0.002: significant drop at alpha 0.05"]


@pytest.mark.parametrize("artifact, found", [
    (None, {}), ({}, {}), ({"summary": 3}, {}), ({"summary": {"macro": {"accuracy": 0.5}}}, {"test/macro_accuracy": 0.5}),
    ({"summary": {"macro": {"accuracy": 0.5}}, "per_class": "odd"}, {"test/macro_accuracy": 0.5}),
])
def test_a_baseline_report_of_another_shape_leaves_the_metric_missing_not_a_crash(monkeypatch, artifact, found):
    import evalkit.tracking
    from evalkit.workflows.job import _from_report

    monkeypatch.setattr(evalkit.tracking, "load_run_json", lambda *a: artifact)
    baseline = {"run_id": "r", "metrics": {"test/macro_f2": 0.6}}
    _from_report(baseline, ["test/macro_accuracy", "test/macro_f2"], "sqlite:///x.db")
    assert baseline["metrics"] == {"test/macro_f2": 0.6} | found
