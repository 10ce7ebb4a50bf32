"""Labels whose decisions do not depend on the row: the threshold fit does not cut a label below all its
validation scores for an F-beta gain the validation set cannot resolve, and labels predicted for every
(or no) test row are named in the terminal, the report (summary.degenerate_labels) and the MLflow run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import fbeta_score

from evalkit.thresholds import parse_strategy
from evalkit.thresholds.fit import fit_thresholds


def _frequent_label(lowest_tied: int, n=40, positives=34, seed=0):
    """One label of a flags-like split (``(n, 1)`` scores and targets): 34 positives in 40 validation
    rows, the 6 negatives among the 20 highest scores (a label the model barely ranks), and the
    ``lowest_tied`` lowest rows positive and tied at one score (a cut above it leaves them all out)."""
    rng = np.random.default_rng(seed)
    p = np.sort(rng.uniform(0.05, 0.95, n))[::-1]
    p[n - lowest_tied:] = p[n - lowest_tied]
    top = rng.permutation(np.r_[np.zeros(n - positives), np.ones(20 - (n - positives))])
    y = np.r_[top, np.ones(n - 20)].astype(np.uint8)
    return p[:, None], y[:, None]


def _f2(y, decided):
    return fbeta_score(y[:, 0], decided[:, 0], beta=2.0, zero_division=0)


@pytest.mark.parametrize("strategy", ["per-class", "joint"])
def test_all_positive_cut_that_gains_less_than_one_positive_is_not_taken(strategy):
    P, Y = _frequent_label(lowest_tied=1)
    everyone = _f2(Y, np.ones_like(Y))
    cut = fit_thresholds(parse_strategy(strategy), P, Y, beta=2.0)[0]
    decided = (P >= cut).astype(np.uint8)
    got = _f2(Y, decided)
    assert decided.sum() == len(Y) - 1  # one validation row left out: the lowest score
    assert everyone > got and everyone - got < 1 / Y.sum()  # the gain it gave up: below one positive's worth
    assert everyone == pytest.approx(5 * 34 / (5 * 34 + 6)) and got == pytest.approx(165 / 175)


@pytest.mark.parametrize("strategy", ["per-class", "joint"])
def test_all_positive_cut_that_gains_more_than_one_positive_is_kept(strategy):
    P, Y = _frequent_label(lowest_tied=3)
    everyone = _f2(Y, np.ones_like(Y))
    cut = fit_thresholds(parse_strategy(strategy), P, Y, beta=2.0)[0]
    decided = (P >= cut).astype(np.uint8)
    assert decided.all()  # every row: the F-beta gain is real at this validation size
    best_partial = max(_f2(Y, (P >= c).astype(np.uint8)) for c in np.unique(P)[1:])
    assert everyone - best_partial >= 1 / Y.sum()


def test_report_names_labels_predicted_for_every_and_no_row():
    from evalkit.metrics.degenerate import degenerate_labels, degenerate_note

    rows = [{"label": "all", "tp": 5, "fp": 3, "fn": 0, "tn": 0}, {"label": "none", "tp": 0, "fp": 0, "fn": 2, "tn": 6},
            {"label": "fine", "tp": 2, "fp": 1, "fn": 1, "tn": 4},
            {"label": "one-left", "tp": 150, "fp": 48, "fn": 0, "tn": 2},  # 2 of 200 rows left out: 1%
            {"label": "three-left", "tp": 150, "fp": 47, "fn": 0, "tn": 3},  # 1.5%: a real decision
            {"label": "one-in", "tp": 1, "fp": 0, "fn": 49, "tn": 150}]
    found = degenerate_labels(rows)
    assert found == {"all": ["all"], "none": ["none"], "nearly_all": ["one-left"], "nearly_none": ["one-in"]}
    kind, text = degenerate_note({"summary": {"degenerate_labels": found}})
    assert kind == "warning"
    assert "1 label(s) predicted for every test row: all" in text and "1 label(s) predicted for no test row: none" in text
    assert "1 label(s) predicted for all but at most 1% of the test rows: one-left" in text
    assert "1 label(s) predicted for at most 1% of the test rows: one-in" in text
    assert degenerate_note({"summary": {"degenerate_labels": {"all": [], "none": []}}}) is None  # nothing to say


def test_evaluate_names_degenerate_labels_in_terminal_report_and_run(store, cli, tmp_path):
    import mlflow

    rng = np.random.default_rng(3)
    y = (rng.random((80, 3)) < 0.5).astype(np.uint8)
    y[0], y[1] = 1, 0
    p = rng.random((80, 3))
    p[:, 0] = rng.uniform(0.6, 1.0, 80)  # L0 >= 0.5 on every row
    p[:, 1] = rng.uniform(0.0, 0.4, 80)  # L1 on none
    np.savez(tmp_path / "pred.npz", targets=y, probabilities=p, labels=np.array(["L0", "L1", "L2"]))
    res = cli("evaluate", "--predictions", tmp_path / "pred.npz", "--no-per-class", "-o", "r.json")
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "1 label(s) predicted for every test row: L0" in text and "1 label(s) predicted for no test row: L1" in text
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["summary"]["degenerate_labels"] == {"all": ["L0"], "none": ["L1"], "nearly_all": [], "nearly_none": []}
    row = {r["label"]: r for r in report["per_class"]}
    assert row["L0"]["tp"] + row["L0"]["fp"] == 80 and row["L1"]["tp"] + row["L1"]["fp"] == 0
    assert row["L0"]["f2"] == pytest.approx(fbeta_score(y[:, 0], np.ones(80), beta=2.0))
    run = mlflow.MlflowClient(store).get_run(report["run_id"])
    assert run.data.tags["evalkit.degenerate_labels.all"] == "L0"
    assert run.data.tags["evalkit.degenerate_labels.none"] == "L1"


@pytest.mark.parametrize("scale", [0.001, 1.0, 1000.0])
def test_degenerate_labels_do_not_depend_on_the_scale_of_sample_weights(scale):
    """Weighted counts are sums of weights, but the 'at least one row' slack was 1.0 in those units:
    with weights of 0.001 every label of a healthy model was named 'nearly_all'."""
    from evalkit import evaluate_scores

    rng = np.random.default_rng(0)
    y = (rng.random((200, 3)) < 0.4).astype(np.uint8)
    p = rng.random((200, 3))
    p[:199, 0] = rng.uniform(0.6, 1.0, 199)  # L0: predicted for all but one row (0.5% <= 1%)
    found = evaluate_scores(y, probabilities=p, sample_weight=np.full(200, scale),
                            label_names=["L0", "L1", "L2"])["summary"]["degenerate_labels"]
    assert found == {"all": [], "none": [], "nearly_all": ["L0"], "nearly_none": []}
