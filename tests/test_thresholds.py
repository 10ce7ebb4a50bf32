import numpy as np
import pytest

from evalkit.errors import InputError
from evalkit.thresholds import (
    check_strategy,
    decision_thresholds,
    fbeta_curve,
    fit_thresholds,
    objective_curve,
    parse_objective,
    parse_strategy,
)


def test_parse_strategies_and_errors():
    assert parse_strategy("fixed:0.3").value == 0.3
    assert parse_strategy("0.3").label == "fixed:0.3"
    assert parse_strategy("per-class").name == "per-class"
    assert parse_strategy("global").label == "global"
    assert parse_strategy("pcut").label == "pcut"
    assert parse_strategy("top-k:2").label == "top-k:2"
    assert parse_strategy("top-k:2").per_sample
    with pytest.raises(InputError, match=r"--threshold: a fixed threshold must lie in \(0, 1\), got 1.5"):
        parse_strategy("fixed:1.5")
    with pytest.raises(InputError, match="--threshold: unknown strategy 'magic'"):
        parse_strategy("magic")
    for bad in ("top-k", "top-k:0", "top-k:x", "top-k:1.5"):
        with pytest.raises(InputError, match="--threshold: expected top-k:K"):
            parse_strategy(bad)
    assert parse_objective("micro_fbeta") == "micro-fbeta"
    with pytest.raises(InputError, match="--objective: unknown objective 'f1'"):
        parse_objective("f1")


def test_top_k_larger_than_labels_is_bad_input():
    with pytest.raises(InputError, match=r"top-k:4 asks for more labels than the data has \(3\); expected K in 1..3"):
        check_strategy(parse_strategy("top-k:4"), 3)
    with pytest.raises(InputError, match="top-k:4"):
        fit_thresholds(parse_strategy("top-k:4"), np.zeros((2, 3)), np.zeros((2, 3)))


def test_fbeta_curve_groups_ties():
    p = np.array([0.9, 0.8, 0.8, 0.1])
    t = np.array([1, 0, 1, 0])
    cuts, f = fbeta_curve(p, t, beta=1.0)
    np.testing.assert_allclose(cuts, [0.9, 0.8, 0.1])
    # cut 0.9: tp1 fp0 fn1 -> 2/3 ; cut 0.8: tp2 fp1 fn0 -> 0.8 ; cut 0.1: tp2 fp2 -> 4/6
    np.testing.assert_allclose(f, [2 / 3, 0.8, 2 / 3])


def test_fixed():
    thr = fit_thresholds(parse_strategy("fixed:0.3"), np.zeros((2, 3)), np.zeros((2, 3)))
    np.testing.assert_array_equal(thr, [0.3, 0.3, 0.3])


def test_per_class_finds_known_optimal_cut():
    # label 0: positives at 0.6, 0.7 ; negatives at 0.2, 0.65 -> F2 best when all >= 0.6 predicted
    P = np.array([[0.6, 0.9], [0.7, 0.1], [0.2, 0.8], [0.65, 0.3]])
    Y = np.array([[1, 1], [1, 0], [0, 1], [0, 0]])
    thr = fit_thresholds(parse_strategy("per-class"), P, Y, beta=2.0, min_positives=1)
    # label 0: cut between 0.6 and 0.2 -> 0.4 ; label 1: positives 0.9, 0.8 -> cut between 0.8 and 0.3
    np.testing.assert_allclose(thr, [0.4, 0.55])
    assert ((P >= thr) == np.array([[1, 1], [1, 0], [0, 1], [1, 0]])).all()


def test_per_class_rare_labels_fall_back_to_global_cut():
    # label 0 has one positive: below min_positives=2 -> the global cut; label 1 is tuned on its own
    P = np.array([[0.2, 0.9], [0.3, 0.8], [0.1, 0.4], [0.05, 0.6]])
    Y = np.array([[1, 1], [0, 1], [0, 0], [0, 1]])
    s = parse_strategy("per-class")
    thr = fit_thresholds(s, P, Y, beta=1.0, min_positives=2, objective="micro-fbeta")
    glob = fit_thresholds(parse_strategy("global"), P, Y, beta=1.0, objective="micro-fbeta")
    assert thr[0] == glob[0]
    np.testing.assert_allclose(thr[1], 0.5)  # between 0.6 (lowest positive) and 0.4
    no_pos = fit_thresholds(s, P, np.array([[0, 1], [0, 1], [0, 0], [0, 1]]), beta=1.0)
    assert 0 < no_pos[0] < 1


def test_global_micro_and_macro_known_cuts():
    # label 0 frequent, label 1 rare and scored low: micro prefers a high cut, macro a low one
    P = np.array([[0.9, 0.30], [0.8, 0.10], [0.7, 0.20], [0.35, 0.05], [0.3, 0.02], [0.2, 0.01]])
    Y = np.array([[1, 1], [1, 0], [1, 0], [0, 0], [0, 0], [0, 0]])
    micro = fit_thresholds(parse_strategy("global"), P, Y, beta=1.0, objective="micro-fbeta")
    macro = fit_thresholds(parse_strategy("global"), P, Y, beta=1.0, objective="macro-fbeta")
    # micro: cut in (0.35, 0.7] predicts 3/3 of label 0 and misses label 1: tp3 fp0 fn1 -> 6/7;
    # that is the first (highest) maximum, the cut is the midpoint of 0.7 and the next score 0.35
    np.testing.assert_allclose(micro, [0.525, 0.525])
    # macro: the curve matches a brute-force macro-F1 at every candidate cut, and the chosen cut is optimal
    cuts, values = objective_curve(P, Y, beta=1.0, objective="macro-fbeta")

    def macro_f1(t):
        f = []
        for c in range(2):
            pred = P[:, c] >= t
            tp = (pred & (Y[:, c] == 1)).sum()
            fp = (pred & (Y[:, c] == 0)).sum()
            fn = (~pred & (Y[:, c] == 1)).sum()
            f.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
        return np.mean(f)

    np.testing.assert_allclose(values, [macro_f1(c) for c in cuts])
    assert macro_f1(macro[0]) == pytest.approx(values.max())
    assert macro[0] < micro[0]


def test_pcut_reproduces_train_cardinality():
    P = np.array([[0.9, 0.8, 0.1], [0.7, 0.3, 0.2], [0.6, 0.5, 0.4], [0.95, 0.05, 0.01]])
    Y = np.zeros_like(P)
    # cardinality 1.5 -> 6 positives among 4 rows: the 6 highest scores are >= 0.5 -> cut (0.5+0.4)/2
    thr = fit_thresholds(parse_strategy("pcut"), P, Y, train_cardinality=1.5)
    np.testing.assert_allclose(thr, [0.45] * 3)
    assert (P >= thr).sum() / 4 == 1.5


def test_top_k_is_a_per_sample_cut():
    P = np.array([[0.9, 0.8, 0.1], [0.2, 0.3, 0.25], [0.5, 0.5, 0.1]])
    s = parse_strategy("top-k:2")
    fitted = fit_thresholds(s, P, np.zeros_like(P))
    assert np.isnan(fitted).all()  # no per-label thresholds
    cut = decision_thresholds(s, P, fitted)
    assert cut.shape == (3, 1)
    np.testing.assert_array_equal(P >= cut, [[1, 1, 0], [0, 1, 1], [1, 1, 0]])
    # label-wise strategies pass their thresholds through unchanged
    np.testing.assert_array_equal(decision_thresholds(parse_strategy("global"), P, np.array([0.1, 0.2, 0.3])),
                                  [0.1, 0.2, 0.3])


def test_top_k_evaluation_uses_decisions_and_real_scores():
    from evalkit.thresholds import evaluate

    P = np.array([[0.9, 0.8, 0.1], [0.2, 0.3, 0.25], [0.6, 0.1, 0.2], [0.3, 0.7, 0.9]])
    Y = np.array([[1, 0, 0], [0, 1, 1], [1, 0, 0], [0, 1, 1]])
    s = parse_strategy("top-k:1")
    m = evaluate(s, Y, P, fit_thresholds(s, P, Y), beta=1.0, label_names=["a", "b", "c"])
    # predictions: a, b, a, c -> tp 4 of 4 predicted, 6 true
    assert m["summary"]["micro"]["precision"] == 1.0
    assert m["summary"]["micro"]["recall"] == pytest.approx(4 / 6)
    from sklearn.metrics import average_precision_score

    assert m["summary"]["mean_average_precision"] == pytest.approx(average_precision_score(Y, P, average="macro"))
    assert all(r["threshold"] is None for r in m["per_class"])


def test_joint_improves_on_the_global_cut_and_finds_a_known_optimum():
    from itertools import product

    from evalkit.thresholds import _objective

    def value(P, Y, thr, objective, beta):
        pred = P >= thr
        tp = (pred & (Y == 1)).sum(0)[:, None].astype(float)
        fp = (pred & (Y == 0)).sum(0)[:, None].astype(float)
        fn = (~pred & (Y == 1)).sum(0)[:, None].astype(float)
        return float(_objective(tp, fp, fn, beta, objective)[0])

    # label 0 separated between 0.7 and 0.4; label 1 needs a low cut
    P = np.array([[0.9, 0.2], [0.8, 0.15], [0.7, 0.1], [0.4, 0.05], [0.3, 0.3], [0.2, 0.02]])
    Y = np.array([[1, 1], [1, 1], [1, 0], [0, 0], [0, 0], [0, 0]])
    for objective in ("micro-fbeta", "macro-fbeta", "mean-fbeta"):
        joint = fit_thresholds(parse_strategy("joint"), P, Y, beta=1.0, objective=objective)
        glob = fit_thresholds(parse_strategy("global"), P, Y, beta=1.0, objective=objective)
        assert value(P, Y, joint, objective, 1.0) >= value(P, Y, glob, objective, 1.0)
        brute = max(value(P, Y, np.array([a, b]), objective, 1.0)
                    for a, b in product(np.r_[P[:, 0], 1.0], np.r_[P[:, 1], 1.0]))
        assert value(P, Y, joint, objective, 1.0) == pytest.approx(brute)
    joint = fit_thresholds(parse_strategy("joint"), P, Y, beta=1.0, objective="macro-fbeta")
    # label 1: the negative at 0.3 outranks both positives, so the best cut takes all three (F1 0.8)
    np.testing.assert_array_equal(P >= joint, [[1, 1], [1, 1], [1, 0], [0, 0], [0, 1], [0, 0]])


def test_cli_top_k_larger_than_labels_fails_before_any_run(store, cli):
    r = cli("run", "--threshold", "top-k:20", "--epochs", "1")
    assert r.exit_code == 2
    assert "top-k:20 asks for more labels than the data has (14)" in r.output
    import mlflow

    assert mlflow.MlflowClient(store).search_experiments(filter_string="name = 'evalkit'") == []


def test_run_config_parses_its_threshold_once_and_keeps_the_text():
    from pydantic import ValidationError

    from evalkit.config import RunConfig
    from evalkit.thresholds import ThresholdStrategy

    c = RunConfig(threshold="top-k:3")
    assert c.threshold_strategy == ThresholdStrategy("top-k", 3.0) and c.threshold_strategy.per_sample
    assert c.threshold == "top-k:3" and c.params()["threshold"] == "top-k:3"  # params / specs / MLflow: the text
    assert RunConfig(threshold="0.25").threshold_strategy == ThresholdStrategy("fixed", 0.25)
    with pytest.raises(ValidationError, match="expected top-k:K with a whole number K >= 1"):
        RunConfig(threshold="top-k:0")


def test_a_run_uses_the_strategy_its_config_parsed_without_parsing_again(monkeypatch):
    import evalkit.thresholds as th
    import evalkit.thresholds.value as tv
    from evalkit.config import RunConfig
    from evalkit.workflows.experiment import run_experiment

    config = RunConfig(threshold="fixed:0.3", model="mlp", hidden=[8], epochs=2, folds=1, budget="off",
                       log_model=False)

    def reparsed(text):
        raise AssertionError(f"--threshold {text!r} parsed again downstream")

    monkeypatch.setattr(th, "parse_strategy", reparsed)
    monkeypatch.setattr(tv, "parse_strategy", reparsed)
    result = run_experiment(config, track=False)
    block = result.report["threshold"]
    assert block["strategy"] == "fixed:0.3" and set(block["values"]) == {0.3}


def test_loss_options_the_loss_does_not_take_are_refused_before_any_data_is_read(monkeypatch):
    from evalkit.config import RunConfig
    from evalkit.workflows import experiment

    def no_data(*a, **k):
        raise AssertionError("data read before the options were checked")

    monkeypatch.setattr(experiment, "prepare_data", no_data)
    config = RunConfig(loss="bce", loss_options={"gamma": 2.0})
    with pytest.raises(InputError, match="--loss-option"):
        experiment.run_experiment(config, track=False)
    assert RunConfig(loss="focal", loss_options={"gamma": 1.0}).loss_settings == {"alpha": 0.25, "gamma": 1.0}


@pytest.mark.parametrize("name", ["global", "per-class", "joint", "pcut"])
def test_fitted_cuts_stay_in_the_open_interval_when_validation_scores_are_exactly_0(name):
    """Scores of exactly 0 (hard 0/1 models, a float32 sigmoid underflowed) gave a cut of 0.0, outside
    (0, 1): the fitted thresholds could not be read back (Thresholds.from_dict). A cut of 0 would
    predict the rows scoring 0, which no threshold in (0, 1) does, so it is never a candidate."""
    from evalkit.thresholds import Thresholds
    from evalkit.thresholds.fit import fit_thresholds
    from evalkit.thresholds.value import ThresholdStrategy

    P = np.zeros((10, 3))
    Y = np.zeros((10, 3), dtype=int)
    P[:, 0], Y[:, 0] = [0] * 5 + [.5, .6, .7, .8, .9], [1] * 5 + [0] * 5  # the positives all score 0
    P[:, 1], Y[:, 1] = np.linspace(.05, .95, 10), [0, 1] * 5
    Y[::3, 2] = 1  # label 2: every score 0
    cuts = fit_thresholds(ThresholdStrategy(name), P, Y, beta=2.0, min_positives=1, train_cardinality=2.0)
    assert np.all((cuts > 0) & (cuts < 1)), cuts
    block = {"strategy": name, "values": cuts.tolist()}
    assert Thresholds.from_dict(block, 3, where="t.json").array().tolist() == cuts.tolist()
    if name == "per-class":  # label 1: the best cut among the valid ones (brute force over every score)
        from sklearn.metrics import fbeta_score

        best = max(fbeta_score(Y[:, 1], P[:, 1] >= t, beta=2.0) for t in P[:, 1])
        assert fbeta_score(Y[:, 1], P[:, 1] >= cuts[1], beta=2.0) == pytest.approx(best)


def test_threshold_files_evalkit_wrote_are_read_by_label_name(tmp_path):
    """A report given as --threshold was applied by position (a file of reversed labels put each cut on
    another label); a run's own thresholds.json artifact was refused ("unknown labels ['strategy', ...]");
    a CSV with a BOM was refused as lacking its columns."""
    import json

    from evalkit.thresholds import read_thresholds

    labels = ["cat", "dog", "bird"]
    report = {"threshold": {"strategy": "joint", "values": [0.9, 0.2, 0.1]},
              "per_class": [{"label": "bird"}, {"label": "dog"}, {"label": "cat"}]}
    (tmp_path / "rep.json").write_text(json.dumps(report))
    assert read_thresholds(str(tmp_path / "rep.json"), labels).array().tolist() == [0.1, 0.2, 0.9]
    artifact = {"strategy": "joint", "values": [0.3, 0.4, 0.5], "fitted_on": "validation", "objective": "mean",
                "beta": 2.0, "labels": ["dog", "cat", "bird"]}
    (tmp_path / "thresholds.json").write_text(json.dumps(artifact))
    assert read_thresholds(str(tmp_path / "thresholds.json"), labels).array().tolist() == [0.4, 0.3, 0.5]
    report["per_class"][0]["label"] = "car"
    (tmp_path / "other.json").write_text(json.dumps(report))
    with pytest.raises(InputError, match=r"other\.json: unknown labels \['car'\]; expected labels of the data$"):
        read_thresholds(str(tmp_path / "other.json"), labels)
    (tmp_path / "bom.csv").write_bytes("\ufefflabel,threshold\ncat,0.1\ndog,0.2\nbird,0.3\n".encode("utf-8"))
    assert read_thresholds(str(tmp_path / "bom.csv"), labels).array().tolist() == [0.1, 0.2, 0.3]
