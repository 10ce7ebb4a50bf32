"""Kept test scores (scores.parquet), paired comparison of two runs on the same rows
(``evalkit compare RUN_A RUN_B``), Holm's correction and ``significant`` relative gates."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from evalkit.compare_paired import check_same_rows, paired_compare, resampled_name
from evalkit.errors import InputError
from evalkit.gates import apply_gates, describe, parse_max_drop
from evalkit.scores_file import read_scores, write_scores
from evalkit.stats import holm
from evalkit.stats.bootstrap import BootstrapSpec
from evalkit.stats.paired import mcnemar_subset_accuracy
from evalkit.thresholds import Thresholds
from evalkit.workflows.evaluation import evaluate_scores
from test_gates import _runs, write_predictions

N, C = 300, 5


def _scores(tmp_path, name, *, quality, seed=0, digest="d" * 16, n=N, target_seed=0, cuts=0.5):
    rng = np.random.default_rng(target_seed)
    y = (rng.random((n, C)) < 0.4).astype(np.uint8)
    noise = np.random.default_rng(100 + seed).normal(0, 1.5, (n, C))
    p = 1 / (1 + np.exp(-(quality * (2.0 * y - 1) + noise)))
    t = Thresholds.fixed(cuts, C) if np.ndim(cuts) == 0 else Thresholds(Thresholds.fixed(0.5, C).strategy, tuple(cuts))
    path = write_scores(tmp_path / f"{name}.parquet", y, p, [f"L{j}" for j in range(C)], t, digest)
    return read_scores(path, name), y, p


# ----------------------------------------------------------------------------- library level

def test_holm_matches_the_step_down_formula_and_skips_missing_values():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, None, 0.6]) == [pytest.approx(1.0), None, pytest.approx(1.0)]
    assert holm([0.02]) == [0.02] and holm([]) == []


def test_scores_file_round_trips_and_is_a_predictions_file(tmp_path):
    s, y, p = _scores(tmp_path, "a", quality=2.0, cuts=[0.3, 0.4, 0.5, 0.6, 0.7])
    assert np.array_equal(s.targets, y) and np.array_equal(s.probabilities, p) and s.probabilities.dtype == np.float64
    assert s.row_ids.tolist() == list(range(N)) and s.labels == [f"L{j}" for j in range(C)]
    assert s.thresholds.tolist() == [0.3, 0.4, 0.5, 0.6, 0.7] and s.digest == "d" * 16
    from evalkit.workflows.evaluation import evaluate_predictions

    rep = evaluate_predictions(str(tmp_path / "a.parquet"))
    assert rep["summary"]["macro"]["f1"] == pytest.approx(evaluate_scores(y, probabilities=p)["summary"]["macro"]["f1"])
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError, match=r"^run x: scores.parquet is unreadable"):
        read_scores(tmp_path / "junk.parquet", "run x")


@pytest.mark.parametrize("key,name,beta", [("test/macro_f2", "macro.fbeta", 2.0), ("test/micro_f1", "micro.f1", 2.0),
                                           ("test/samples_f0.5", "samples.fbeta", 0.5),
                                           ("test/weighted_recall", "weighted.recall", 2.0),
                                           ("test/macro_map", "mean_average_precision", 2.0),
                                           ("test/hamming_loss", "hamming_loss", 2.0)])
def test_tracked_names_map_to_the_resampled_ones(key, name, beta):
    assert resampled_name(key) == (name, beta)


def test_metrics_without_row_statistics_are_refused():
    for key in ("test/class/L0/f2", "test/coverage_error", "macro_f2"):
        with pytest.raises(InputError, match=rf"^--metric {key}: cannot be compared row by row"):
            resampled_name(key)


def test_paired_compare_recomputes_both_runs_with_the_engine_and_gives_b_minus_a(tmp_path):
    a, y, pa = _scores(tmp_path, "a", quality=2.5, seed=1)
    b, _, pb = _scores(tmp_path, "b", quality=1.0, seed=2, cuts=[0.3, 0.4, 0.5, 0.6, 0.7])
    rows = {r["metric"]: r for r in paired_compare(a, b, ("test/macro_f2", "test/macro_map", "test/subset_accuracy",
                                                          "test/hamming_loss"), spec=BootstrapSpec(resamples=200))}
    ra = evaluate_scores(y, probabilities=pa)["summary"]
    rb = evaluate_scores(y, probabilities=pb, threshold=np.array([0.3, 0.4, 0.5, 0.6, 0.7]))["summary"]
    f2 = rows["test/macro_f2"]
    assert (f2["a"], f2["b"]) == (pytest.approx(ra["macro"]["f2"], abs=1e-12), pytest.approx(rb["macro"]["f2"], abs=1e-12))
    assert f2["difference"] == pytest.approx(rb["macro"]["f2"] - ra["macro"]["f2"], abs=1e-12)
    assert f2["difference"] < 0 and f2["ci"][1] < 0 and f2["p_value"] < 0.05  # B is clearly worse
    assert rows["test/macro_map"]["a"] == pytest.approx(ra["mean_average_precision"], abs=1e-12)
    assert rows["test/hamming_loss"]["difference"] > 0  # worse = more errors
    mc = rows["test/subset_accuracy"]["mcnemar"]
    expect = mcnemar_subset_accuracy(y, pa >= 0.5, pb >= np.array([0.3, 0.4, 0.5, 0.6, 0.7]))
    assert mc == expect and mc["a_only"] > mc["b_only"]
    same = paired_compare(a, a, ("test/macro_f2",), spec=BootstrapSpec(resamples=50))[0]
    assert (same["difference"], same["ci"], same["p_value"]) == (0.0, [0.0, 0.0], 1.0)


def test_lrap_compared_on_its_own_is_defined(tmp_path):
    """LRAP alone was NaN (no per-row ranking prepared unless mAP / AUROC was asked too), so a
    ``test/lrap=significant`` gate passed whatever the drop."""
    from sklearn.metrics import label_ranking_average_precision_score

    a, y, pa = _scores(tmp_path, "a", quality=2.5, seed=1)
    b, _, pb = _scores(tmp_path, "b", quality=1.0, seed=2)
    spec = BootstrapSpec(resamples=200)
    alone = paired_compare(a, b, ("test/lrap",), spec=spec)[0]
    both = {r["metric"]: r for r in paired_compare(a, b, ("test/lrap", "test/macro_map"), spec=spec)}["test/lrap"]
    expect = label_ranking_average_precision_score(y, pb) - label_ranking_average_precision_score(y, pa)
    assert alone["difference"] == pytest.approx(expect, abs=1e-12)
    assert (alone["difference"], alone["ci"], alone["p_value"]) == (both["difference"], both["ci"], both["p_value"])
    assert alone["ci"][1] < 0 and alone["p_value"] < 0.05  # B ranks clearly worse


def test_score_sets_of_different_rows_are_refused(tmp_path):
    a, _, _ = _scores(tmp_path, "a", quality=2.0)
    other, _, _ = _scores(tmp_path, "o", quality=2.0, digest="e" * 16)
    with pytest.raises(InputError, match=r"^RUN_B: evaluated on other test rows than RUN_A \(test-data digest dddddddd "
                                         r"vs eeeeeeee\); a paired comparison needs two runs on the same rows$"):
        check_same_rows(a, other, "RUN_A", "RUN_B")
    moved, _, _ = _scores(tmp_path, "m", quality=2.0, target_seed=5, digest=None)
    with pytest.raises(InputError, match=r"\(targets differ\)"):
        check_same_rows(a, moved, "RUN_A", "RUN_B")
    short, _, _ = _scores(tmp_path, "s", quality=2.0, n=200)
    with pytest.raises(InputError, match=r"\(test-data digest|\(300 vs 200 rows\)"):
        check_same_rows(a, short, "RUN_A", "RUN_B", ("x" * 16, "x" * 16))


# ----------------------------------------------------------------------------- significant gates

def test_parse_significant_max_drop():
    g = parse_max_drop("test/macro_f2=significant")
    assert (g.metric, g.relative, g.significant, g.text) == ("test/macro_f2", True, True,
                                                            "test/macro_f2 max-drop significant")
    with pytest.raises(InputError, match=r"^--max-drop test/class/c/f2: cannot be compared row by row"):
        parse_max_drop("test/class/c/f2=significant")
    with pytest.raises(InputError, match=r"^--max-drop: malformed value .*METRIC=significant"):
        parse_max_drop("test/macro_f2=sig")


@pytest.mark.parametrize("metric,diff,p,status", [
    ("test/macro_f2", -0.03, 0.004, "fail"),   # a significant drop
    ("test/macro_f2", -0.03, 0.2, "pass"),     # a drop within the noise
    ("test/macro_f2", +0.03, 0.004, "pass"),   # a significant improvement
    ("test/hamming_loss", +0.02, 0.01, "fail"),  # lower is better: an increase is the drop
    ("test/hamming_loss", -0.02, 0.01, "pass"),
])
def test_significant_gate_fails_only_on_a_significant_worsening(metric, diff, p, status):
    g = parse_max_drop(f"{metric}=significant")
    paired = {metric: {"metric": metric, "a": 0.5, "b": 0.5 + diff, "difference": diff, "ci": [diff - 0.01, diff + 0.01],
                       "p_value": p, "alpha": 0.05, "level": 0.95}}
    block = apply_gates([g], {metric: 0.5 + diff}, {"run_id": "r1", "source": "champion", "metrics": {}}, paired)
    row = block["results"][0]
    assert row["status"] == status and block["status"] == status
    assert (row["difference"], row["p_value"], row["baseline"], row["bound"]) == (diff, p, 0.5, None)
    line = describe(row)
    assert f"difference {diff:+.4f}, 95% CI [{diff - 0.01:+.4f}, {diff + 0.01:+.4f}]" in line
    assert line.endswith(("significant drop at alpha 0.05"))
    assert ("no significant drop" in line) == (status == "pass")


@pytest.mark.parametrize("diff,p", [(math.nan, None), (-0.01, None), (math.nan, 0.5)])
def test_significant_gate_with_an_undefined_difference_fails(diff, p):
    """Undefined in the paired bootstrap (e.g. a metric NaN in every resample) used to pass silently."""
    g = parse_max_drop("test/lrap=significant")
    paired = {"test/lrap": {"metric": "test/lrap", "a": 0.5, "b": 0.5, "difference": diff, "ci": None,
                            "p_value": p, "alpha": 0.05, "level": 0.95}}
    block = apply_gates([g], {"test/lrap": 0.5}, {"run_id": "r1", "source": "champion", "metrics": {}}, paired)
    row = block["results"][0]
    assert (row["status"], row["reason"], block["status"]) == ("fail", "paired difference undefined", "fail")
    assert describe(row).endswith(": paired difference undefined (fails, as an undefined value does) at alpha 0.05")


# ----------------------------------------------------------------------------- commands, with a store

def _evaluate(cli, pred, *args):
    return cli("evaluate", "--predictions", pred, "--no-per-class", *args)


def test_compare_two_runs_row_by_row_and_refuse_other_rows(store, cli, tmp_path):
    good = write_predictions(tmp_path / "good.npz", quality=3.0, n=200)
    bad = write_predictions(tmp_path / "bad.npz", quality=0.5, n=200)
    other = write_predictions(tmp_path / "other.npz", quality=3.0, n=200, seed=7)
    for p in (good, bad, other):
        assert _evaluate(cli, p).exit_code == 0
    a, b, o = (r.info.run_id for r in _runs(store))
    res = cli("compare", a, b, "--format", "json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    rows = {r["metric"]: r for r in out["results"]}
    ma, mb = (r.data.metrics for r in _runs(store)[:2])
    for key in ("test/macro_f2", "test/micro_f2", "test/macro_map", "test/subset_accuracy"):
        assert (rows[key]["a"], rows[key]["b"]) == (pytest.approx(ma[key], abs=1e-9), pytest.approx(mb[key], abs=1e-9))
    assert rows["test/macro_f2"]["difference"] < 0 and rows["test/macro_f2"]["p_value"] < 0.05
    assert out["n_rows"] == 200 and "mcnemar" in rows["test/subset_accuracy"]
    table = cli("compare", a, b, "--metric", "test/macro_f2")
    assert table.exit_code == 0 and "B - A" in table.output and "macro_f2" in table.output
    assert "Paired bootstrap over the same 200 test rows" in table.output
    refused = cli("compare", a, o)
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert refused.output.strip().count("\n") == 0
    assert refused.output.startswith(f"error: RUN_B {o[:8]}: evaluated on other test rows than RUN_A {a[:8]} "
                                     "(test-data digest")
    short = cli("compare", a[:8], b[:8], "--format", "json")  # the digits evalkit's messages print
    assert short.exit_code == 0, short.output
    assert json.loads(short.stdout)["results"] == out["results"]
    unknown = cli("compare", a, "0" * 8)
    assert unknown.exit_code == 2 and unknown.output.strip() == f"error: RUN_B {'0' * 8}: no run id starts with " \
        f"{'0' * 8} in {store}"
    one = cli("compare", a)
    assert one.exit_code == 2 and "RUN_A RUN_B: expected two run ids, got 1" in one.output
    assert cli("compare", a, b, "--parent", "x").exit_code == 2


def test_significant_gate_against_a_baseline_run(store, cli, tmp_path):
    good = write_predictions(tmp_path / "good.npz", quality=3.0, n=200)
    bad = write_predictions(tmp_path / "bad.npz", quality=1.0, n=200)
    assert _evaluate(cli, good).exit_code == 0
    base = _runs(store)[0].info.run_id
    gate = ("--max-drop", "test/macro_f2=significant", "--baseline", base)
    same = _evaluate(cli, good, *gate, "-o", tmp_path / "same.json")
    assert same.exit_code == 0, same.output
    row = json.loads((tmp_path / "same.json").read_text())["gates"]["results"][0]
    assert (row["status"], row["difference"], row["p_value"]) == ("pass", 0.0, 1.0)
    # the run id's first 8 digits (as evalkit prints it) and a gate alias name the same baseline and metric
    short = _evaluate(cli, good, "--max-drop", "macro_f2=significant", "--baseline", base[:8], "-o", tmp_path / "s.json")
    assert short.exit_code == 0, short.output
    assert json.loads((tmp_path / "s.json").read_text())["gates"]["results"][0] == row
    worse = _evaluate(cli, bad, *gate, "--gate-alpha", "0.01", "-o", tmp_path / "worse.json")
    assert worse.exit_code == 1, worse.output
    row = json.loads((tmp_path / "worse.json").read_text())["gates"]["results"][0]
    assert row["status"] == "fail" and row["difference"] < 0 and row["ci"][1] < 0 and row["p_value"] < 0.01
    assert "significant drop at alpha 0.01" in worse.output and "99% CI" in worse.output
    logged = _runs(store)[-1].data.metrics
    assert logged["gates/test/macro_f2/difference"] == pytest.approx(row["difference"])
    assert logged["gates/test/macro_f2/p_value"] == pytest.approx(row["p_value"])
    # a baseline that kept no scores is refused before anything runs
    assert _evaluate(cli, good, "--no-log-scores").exit_code == 0
    bare = _runs(store)[-1].info.run_id
    before = len(_runs(store))
    res = _evaluate(cli, good, "--max-drop", "test/macro_f2=significant", "--baseline", bare)
    assert res.exit_code == 2 and "kept no scores.parquet" in res.output and "Traceback" not in res.output
    assert len(_runs(store)) == before
    for alpha in ("0.1", "0.05"):  # the default value given explicitly is refused too: it would be ignored
        res = _evaluate(cli, good, "--gate-alpha", alpha)
        assert res.exit_code == 2 and "--gate-alpha: applies to METRIC=significant" in res.output


def test_training_run_keeps_scores_that_reproduce_its_metrics(store, cli, tmp_path):
    import mlflow

    res = cli("run", "--dataset", "yeast", "--epochs", "1", "--folds", "1", "--no-log-model", "--model", "linear")
    assert res.exit_code == 0, res.output
    run = _runs(store)[0]
    path = mlflow.MlflowClient(store).download_artifacts(run.info.run_id, "scores.parquet", str(tmp_path))
    s = read_scores(path, "run")
    assert s.targets.shape == (917, 14) and s.digest is not None
    rep = evaluate_scores(s.targets, probabilities=s.probabilities, threshold=s.thresholds, beta=2.0)
    assert rep["summary"]["macro"]["f2"] == pytest.approx(run.data.metrics["test/macro_f2"], abs=1e-12)
    assert rep["summary"]["mean_average_precision"] == pytest.approx(run.data.metrics["test/macro_map"], abs=1e-12)
    # the kept scores, evaluated again as a predictions file, are on the run's own rows: they compare with it
    # (the run's digest is of yeast's test split, not of a targets file: the file's declared digest is kept)
    thr = ",".join(f"{t:.17g}" for t in s.thresholds)
    again = cli("evaluate", "--predictions", path, "--threshold", thr, "--no-per-class", "-o", tmp_path / "again.json")
    assert again.exit_code == 0, again.output
    assert json.loads((tmp_path / "again.json").read_text())["dataset"]["digest"] == s.digest
    res = cli("compare", run.info.run_id[:8], _runs(store)[-1].info.run_id[:8], "--format", "json")
    assert res.exit_code == 0, res.output
    rows = {r["metric"]: r for r in json.loads(res.stdout)["results"]}
    assert rows["test/macro_f2"]["difference"] == pytest.approx(0.0, abs=1e-12)


def test_p_values_are_never_printed_on_the_other_side_of_alpha():
    """50/1001 = 0.04995 printed as '0.05' next to a '*' that says p < 0.05."""
    from evalkit.stats import p_text

    assert p_text(50 / 1001) == "0.04995" and p_text(52 / 1001) == "0.0519" and p_text(0.034) == "0.034"
    assert p_text(0.0099996, alpha=0.01) == "0.0099996" and p_text(0.0099996) == "0.01" and p_text(1.0) == "1"
    row = {"op": "max-drop", "status": "pass", "metric": "test/macro_f2", "value": 0.6, "baseline": 0.61,
           "difference": -0.01, "ci": [-0.02, 0.0], "p_value": 50 / 1001, "alpha": 0.04, "level": 0.96}
    assert "paired bootstrap p = 0.05: no significant drop at alpha 0.04" in describe(row)
    assert "paired bootstrap p = 0.04995: " in describe(row | {"alpha": 0.05, "status": "fail"})


def test_markdown_of_two_runs_has_the_marks_and_better_column_its_footer_explains():
    """``compare A B --format markdown`` printed the footer's "* = p < 0.05; better: ..." under a table
    with neither, and ``+nan`` for an undefined difference (the terminal table: ``—``)."""
    from evalkit.cli.paired_table import paired_markdown

    rows = [{"metric": "test/macro_f2", "a": 0.91, "b": 0.8173, "difference": -0.0927, "ci": [-0.1232, -0.0652],
             "p_value": 2 / 1001},
            {"metric": "test/hamming_loss", "a": 0.0735, "b": 0.1635, "difference": 0.09, "ci": [0.0707, 0.1107],
             "p_value": 2 / 1001},
            {"metric": "test/micro_f2", "a": 0.9, "b": 0.91, "difference": 0.01, "ci": [-0.01, 0.03], "p_value": 0.3},
            {"metric": "test/macro_auroc", "a": math.nan, "b": math.nan, "difference": math.nan, "ci": None,
             "p_value": None}]
    result = {"a": {"run_id": "a" * 32}, "b": {"run_id": "b" * 32}, "n_rows": 500, "digest": "d" * 16,
              "bootstrap": BootstrapSpec().to_dict(), "results": rows}
    lines = paired_markdown(result).splitlines()
    assert lines[:6] == ["| metric | A | B | B - A | 95% CI | p | better |", "|---|---|---|---|---|---|---|",
                         "| test/macro_f2 | 0.9100 | 0.8173 | -0.0927* | [-0.1232, -0.0652] | 0.002 | A |",
                         "| test/hamming_loss | 0.0735 | 0.1635 | +0.0900* | [+0.0707, +0.1107] | 0.002 | A |",
                         "| test/micro_f2 | 0.9000 | 0.9100 | +0.0100 | [-0.0100, +0.0300] | 0.3 | — |",
                         "| test/macro_auroc | — | — | — | — | — | — |"]
    assert "* = p < 0.05; better: the run a significant difference favours." in lines[-1]


def test_the_mcnemar_footer_counts_one_row_in_the_singular():
    from evalkit.cli.paired_table import footer

    result = {"n_rows": 917, "bootstrap": {"resamples": 1000, "seed": 0, "level": 0.95},
              "results": [{"mcnemar": {"p_value": 1.0, "a_only": 1, "b_only": 2}}]}
    assert footer(result).endswith("McNemar exact test: p = 1 (1 row only A matches exactly, 2 only B).")
    result["results"][0]["mcnemar"]["a_only"] = 3
    assert footer(result).endswith("(3 rows only A matches exactly, 2 only B).")
