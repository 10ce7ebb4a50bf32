"""Bootstrap confidence intervals (evalkit.stats.bootstrap), paired comparisons and McNemar's test."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from evalkit import evaluate_scores
from evalkit.errors import InputError
from evalkit.stats.bootstrap import BootstrapSpec, bootstrap_intervals, summary_points
from evalkit.stats.paired import mcnemar_subset_accuracy, paired_bootstrap
from evalkit.stats.rowstats import headline_names, resampled_metrics, row_stats

N, C = 400, 8


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    Y = (rng.random((N, C)) < np.linspace(0.08, 0.5, C)).astype(np.uint8)
    Y[:, 7] = 0
    Y[:5, 7] = 1  # a label with 5 positives: unstable
    P = np.clip(0.3 * Y + 0.7 * rng.random((N, C)), 0, 1)
    return Y, P


@pytest.fixture(scope="module")
def report(data):
    Y, P = data
    return evaluate_scores(Y, probabilities=P, ci=0.95, ci_resamples=300, seed=7, label_names=list("abcdefgh"))


def _intervals(summary):
    return {(blk, k): v for blk, d in summary.items() if isinstance(d, dict) for k, v in d.items() if k.endswith("_ci")} | {
        ("", k): v for k, v in summary.items() if k.endswith("_ci")}


def test_every_headline_metric_has_an_interval_containing_its_value(report):
    s = report["summary"]
    ints = _intervals(s)
    assert len(ints) == len(headline_names("f2")) == 4 * 4 + 5
    for (blk, key), (lo, hi) in ints.items():
        point = (s[blk] if blk else s)[key[:-3]]
        assert lo <= point <= hi, (blk, key, lo, point, hi)
        assert hi - lo > 0.001  # a real spread at N = 400
    assert report["confidence_interval"] == {"level": 0.95, "resamples": 300, "method": "percentile", "seed": 7,
                                             "scheme": "poisson", "ranking": "auto",
                                             "studentized": ["mean_average_precision"]}


def test_labels_with_fewer_than_ten_positives_are_flagged(report):
    assert report["summary"]["ci_unstable_labels"] == ["h"]  # 5 positives; "a" has 8% of 400 rows


def test_same_seed_same_intervals_other_seed_other_intervals(data, report):
    Y, P = data
    again = evaluate_scores(Y, probabilities=P, ci=0.95, ci_resamples=300, seed=7, label_names=list("abcdefgh"))
    other = evaluate_scores(Y, probabilities=P, ci=0.95, ci_resamples=300, seed=8, label_names=list("abcdefgh"))
    assert _intervals(again["summary"]) == _intervals(report["summary"])
    assert _intervals(other["summary"]) != _intervals(report["summary"])


def test_intervals_are_off_by_default_and_existing_keys_are_unchanged(data, report):
    Y, P = data
    plain = evaluate_scores(Y, probabilities=P, label_names=list("abcdefgh"))
    assert "confidence_interval" not in plain and not _intervals(plain["summary"])
    for k, v in plain["summary"].items():
        assert report["summary"][k] == v if not isinstance(v, dict) else all(
            report["summary"][k][m] == x for m, x in v.items())


@pytest.mark.parametrize("weights, kind", [(False, "probabilities"), (True, "probabilities"), (False, "logits")])
def test_unit_resample_reproduces_the_engine_values(data, weights, kind):
    Y, P = data
    w = np.random.default_rng(1).random(N) * 2 if weights else None
    S = (np.log(P + 1e-3) - np.log1p(1e-3 - P)).astype(np.float32) if kind == "logits" else P
    r = evaluate_scores(Y, **{kind: S}, sample_weight=w)
    st = row_stats(Y, S, scores_kind=kind, thresholds=np.full(C, 0.5), beta=2.0, sample_weight=w)
    pts = summary_points(r["summary"], "f2")
    for mode in ("exact", "linear"):
        got = resampled_metrics(st, np.ones((1, N)), mode)
        for k, v in pts.items():
            assert got[k][0] == pytest.approx(v, abs=1e-9), (mode, k)


def test_linear_and_exact_ranking_resampling_agree_on_stable_labels(data):
    Y, P = data
    Y, P = Y[:, :7], P[:, :7]  # without the 5-positive label, whose AP is far from linear in the weights
    st = row_stats(Y, P, scores_kind="probabilities", thresholds=np.full(7, 0.5), beta=2.0)
    pts = {k: float(v[0]) for k, v in resampled_metrics(st, np.ones((1, N)), "exact").items()}
    ex = bootstrap_intervals(st, pts, BootstrapSpec(resamples=400, ranking="exact"))
    li = bootstrap_intervals(st, pts, BootstrapSpec(resamples=400, ranking="linear"))
    for k in ("mean_average_precision", "macro_auroc"):
        assert ex[k] == pytest.approx(li[k], abs=0.01)
        assert ex[k][1] - ex[k][0] > 0.02


@pytest.mark.parametrize("weighted", [False, True])
def test_a_resamples_copies_of_a_row_rank_apart_unless_its_score_ties(weighted):
    """Resampled AP / AUROC = scikit-learn's on the resample written out row by row, where the k copies
    of a row of unique score get k adjacent distinct scores and a tied row's copies keep its score."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(5)
    n = 60
    Y = (rng.random((n, 3)) < 0.4).astype(np.uint8)
    P = rng.random((n, 3))
    P[:10, 1] = np.round(P[:10, 1], 1)  # a few ties in label 1
    P[10:20, 2] = 0.5  # one large tie group in label 2
    sw = rng.random(n) * 2 if weighted else np.ones(n)
    st = row_stats(Y, P, scores_kind="probabilities", thresholds=np.full(3, 0.5), beta=1.0,
                   sample_weight=sw if weighted else None)
    W = rng.poisson(1.0, size=(4, n)).astype(np.float32)
    assert W.max() >= 3
    got = resampled_metrics(st, W, "exact")
    for r in range(4):
        rows = np.repeat(np.arange(n), W[r].astype(int))
        copy = np.concatenate([np.arange(k) for k in W[r].astype(int)])
        aps, aucs = [], []
        for j in range(3):
            unique = (P[:, j][:, None] == P[:, j][None, :]).sum(1) == 1
            scores = P[rows, j] - np.where(unique[rows], copy * 1e-9, 0.0)
            aps.append(average_precision_score(Y[rows, j], scores, sample_weight=sw[rows]))
            aucs.append(roc_auc_score(Y[rows, j], scores, sample_weight=sw[rows]))
        assert got["mean_average_precision"][r] == pytest.approx(np.mean(aps), abs=1e-7)  # float32 sums
        assert got["macro_auroc"][r] == pytest.approx(np.mean(aucs), abs=1e-7)
    tied = []  # scikit-learn's own rule for a weight of k (the copies tied) gives a higher AP
    for j in range(3):
        tied.append(average_precision_score(Y[:, j], P[:, j], sample_weight=W[0] * sw))
    assert np.mean(tied) > got["mean_average_precision"][0] + 1e-4


def test_bca_and_poisson_intervals_contain_the_value(data):
    Y, P = data
    st = row_stats(Y, P, scores_kind="probabilities", thresholds=np.full(C, 0.5), beta=2.0)
    pts = {k: float(v[0]) for k, v in resampled_metrics(st, np.ones((1, N)), "exact").items()}
    for spec in (BootstrapSpec(resamples=300, method="bca"), BootstrapSpec(resamples=300, scheme="poisson")):
        ci = bootstrap_intervals(st, pts, spec)
        for k, (lo, hi) in ci.items():
            assert lo <= pts[k] <= hi, (spec, k)
    a = bootstrap_intervals(st, pts, BootstrapSpec(resamples=300, method="bca"))
    b = bootstrap_intervals(st, pts, BootstrapSpec(resamples=300))
    assert a != b


def test_a_single_row_gives_zero_width_intervals_at_the_value():
    Y = np.array([[1, 0, 1]])
    r = evaluate_scores(Y, probabilities=np.array([[0.9, 0.2, 0.4]]), ci=0.95, ci_resamples=50)
    s = r["summary"]
    assert s["micro"]["f1_ci"] == [s["micro"]["f1"]] * 2 == [pytest.approx(2 / 3)] * 2
    assert s["subset_accuracy_ci"] == [0.0, 0.0]
    assert s["mean_average_precision_ci"] == [1.0, 1.0]
    assert s["macro_auroc_ci"] is None  # no label has both classes: undefined, as the value
    assert s["ci_unstable_labels"] == ["label_0", "label_1", "label_2"]


def test_an_all_zero_label_is_left_out_of_map_intervals_like_the_value(data):
    Y, P = data
    Y = Y.copy()
    Y[:, 7] = 0
    r = evaluate_scores(Y, probabilities=P, ci=0.95, ci_resamples=200)
    s = r["summary"]
    lo, hi = s["mean_average_precision_ci"]
    assert lo <= s["mean_average_precision"] <= hi
    assert "label_7" in s["ci_unstable_labels"]


@pytest.mark.parametrize("kw, match", [
    ({"ci": 1.5}, r"^ci: expected a confidence level in \(0, 1\) such as 0.95, got 1.5$"),
    ({"ci": 0.9, "ci_resamples": 5}, r"^ci_resamples: expected an integer >= 10, got 5$"),
    ({"ci": 0.9, "ci_method": "normal"}, r"^ci_method: expected 'percentile' or 'bca', got 'normal'$"),
    ({"ci": 0.9, "seed": -1}, r"^seed: expected an integer >= 0, got -1$"),
])
def test_bad_interval_settings_are_refused_with_their_name(data, kw, match):
    Y, P = data
    with pytest.raises(InputError, match=match):
        evaluate_scores(Y, probabilities=P, **kw)


def test_paired_bootstrap_of_a_system_with_itself_is_exactly_zero(data):
    Y, P = data
    r = paired_bootstrap(Y, P, P, metric="macro.f1", spec=BootstrapSpec(resamples=100))
    assert r.difference == 0.0 and r.ci == [0.0, 0.0] and r.p_value == 1.0


def test_paired_bootstrap_detects_a_better_system_and_is_narrower_than_unpaired(data):
    Y, P = data
    rng = np.random.default_rng(9)
    worse = np.clip(P + rng.normal(0, 0.15, P.shape), 0, 1)
    spec = BootstrapSpec(resamples=400, seed=1)
    r = paired_bootstrap(Y, P, worse, metric="mean_average_precision", spec=spec)
    assert r.difference > 0 and r.ci[0] > 0 and r.p_value < 0.01
    assert r.a == pytest.approx(evaluate_scores(Y, probabilities=P)["summary"]["mean_average_precision"], abs=1e-12)
    st = row_stats(Y, worse, scores_kind="probabilities", thresholds=np.full(C, 0.5), beta=2.0)
    pts = {k: float(v[0]) for k, v in resampled_metrics(st, np.ones((1, N)), "exact").items()}
    lo, hi = bootstrap_intervals(st, pts, spec)["mean_average_precision"]
    assert r.ci[1] - r.ci[0] < hi - lo  # pairing removes the shared row-to-row variance


def test_paired_bootstrap_refuses_an_unknown_metric(data):
    Y, P = data
    with pytest.raises(InputError, match=r"^metric: expected one of micro.precision, .*, got 'f7'$"):
        paired_bootstrap(Y, P, P, metric="f7")


def test_mcnemar_counts_discordant_rows_and_matches_the_exact_binomial():
    Y = np.zeros((10, 2), dtype=int)
    A = Y.copy()
    B = Y.copy()
    B[:7, 0] = 1  # B wrong on 7 rows where A is right
    A[9, 1] = 1  # A wrong on 1 row where B is right
    out = mcnemar_subset_accuracy(Y, A, B)
    assert (out["a_only"], out["b_only"]) == (7, 1)
    assert out["p_value"] == pytest.approx(2 * (1 + 8) / 2**8, abs=1e-12)  # 2 P(X <= 1), X ~ Bin(8, 1/2)
    assert mcnemar_subset_accuracy(Y, A, A)["p_value"] == 1.0
    with pytest.raises(InputError, match=r"^predictions: expected two \(N, C\) arrays shaped like targets"):
        mcnemar_subset_accuracy(Y, A[:3], B)


@pytest.mark.slow
def test_95_percent_intervals_cover_the_population_value_about_95_percent_of_the_time():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_ci_coverage.py"
    spec = importlib.util.spec_from_file_location("bench_ci_coverage", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ideal, adjusted = {}, {}
    cov = mod.coverage(pop_n=100_000, n=200, reps=100, resamples=200, reference=300, ideal=ideal, adjusted=adjusted)
    for k, v in cov.items():
        assert 0.90 <= v <= 0.99, (k, v)
        # the control-variate estimate: coverage - the ideal interval's on the same test sets + its expected
        # coverage over the fresh reference sets (a fraction of 300), with a standard error below the raw one's
        adj, se = adjusted[k]
        expected = adj - v + ideal[k]
        assert abs(expected * 300 - round(expected * 300)) < 1e-6 and 0.85 <= expected <= 1.0, (k, expected)
        assert 0.88 <= adj <= 1.0 and 0 < se < (v * (1 - v) / 100) ** 0.5 + 0.01, (k, adj, se)


@pytest.mark.parametrize("kw, match", [
    ({"ci_resamples": 200}, r"^ci_resamples: applies to confidence intervals \(ci=0\.95\), not to ci=None; drop it$"),
    ({"ci": 0, "ci_method": "bca"}, r"^ci_method: applies to confidence intervals \(ci=0\.95\), not to ci=0; drop it$"),
])
def test_interval_settings_without_intervals_are_refused_not_ignored(data, kw, match):
    """``evaluate_scores(..., ci_resamples=200)`` returned a report without intervals (``ci`` is off by default)."""
    Y, P = data
    with pytest.raises(InputError, match=match):
        evaluate_scores(Y, probabilities=P, **kw)
