"""Sample weights through the metric engine, checked against scikit-learn's ``sample_weight``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from evalkit.errors import InputError
from evalkit.metrics import MultilabelEngine, compute_metrics

N, C, BETA = 301, 6, 2.0


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    prev = np.linspace(0.1, 0.6, C)
    Y = (rng.random((N, C)) < prev).astype(np.int64)
    Y[np.arange(N), rng.integers(0, C, N)] = 1  # every row has a positive ...
    Y[np.arange(N), (np.arange(N) % C)] = 0  # ... and a negative (samples AUROC is defined)
    Y[np.arange(N), (np.arange(N) + 1) % C] |= Y.sum(axis=1) == 0
    P = np.clip(0.35 * Y + rng.random((N, C)) * 0.65, 0, 1)
    P[:40, 0] = 0.5  # ties
    w = rng.random(N) * 3
    w[::17] = 0.0
    return Y, P, w


@pytest.fixture(scope="module")
def weighted(data):
    Y, P, w = data
    return compute_metrics(Y, P, scores_kind="probabilities", beta=BETA, sample_weight=w, batch_size=64)


@pytest.mark.parametrize("average", ["micro", "macro", "weighted", "samples"])
def test_weighted_precision_recall_f_match_sklearn(data, weighted, average):
    Y, P, w = data
    pred = (P >= 0.5).astype(int)
    p, r, f, _ = skm.precision_recall_fscore_support(Y, pred, average=average, sample_weight=w, zero_division=0)
    f1 = skm.f1_score(Y, pred, average=average, sample_weight=w, zero_division=0)
    a = getattr(weighted, average)
    assert a.precision == pytest.approx(p, abs=1e-12)
    assert a.recall == pytest.approx(r, abs=1e-12)
    assert a.f1 == pytest.approx(f1, abs=1e-12)
    fb = skm.fbeta_score(Y, pred, beta=BETA, average=average, sample_weight=w, zero_division=0)
    assert a.fbeta == pytest.approx(fb, abs=1e-12)
    jac = skm.jaccard_score(Y, pred, average=average, sample_weight=w, zero_division=0)
    assert weighted.extra["averages"]["jaccard"][average] == pytest.approx(jac, abs=1e-12)


def test_weighted_per_label_counts_and_confusion_metrics_match_sklearn(data, weighted):
    Y, P, w = data
    pred = (P >= 0.5).astype(int)
    p, r, _, s = skm.precision_recall_fscore_support(Y, pred, average=None, sample_weight=w, zero_division=0)
    np.testing.assert_allclose(weighted.precision, p, atol=1e-12)
    np.testing.assert_allclose(weighted.recall, r, atol=1e-12)
    np.testing.assert_allclose(weighted.support, (Y * w[:, None]).sum(axis=0), atol=1e-9)
    per = weighted.extra["per_label"]
    np.testing.assert_allclose(per["mcc"], [skm.matthews_corrcoef(Y[:, j], pred[:, j], sample_weight=w)
                                            for j in range(C)], atol=1e-12)
    np.testing.assert_allclose(per["jaccard"], skm.jaccard_score(Y, pred, average=None, sample_weight=w), atol=1e-12)
    cm = skm.multilabel_confusion_matrix(Y, pred, sample_weight=w)  # (C, 2, 2): [[tn, fp], [fn, tp]]
    np.testing.assert_allclose(per["specificity"], cm[:, 0, 0] / (cm[:, 0, 0] + cm[:, 0, 1]), atol=1e-12)
    np.testing.assert_allclose(per["npv"], cm[:, 0, 0] / (cm[:, 0, 0] + cm[:, 1, 0]), atol=1e-12)
    np.testing.assert_allclose(weighted.tn, cm[:, 0, 0], atol=1e-9)


def test_weighted_subset_accuracy_and_hamming_match_sklearn(data, weighted):
    Y, P, w = data
    pred = (P >= 0.5).astype(int)
    assert weighted.subset_accuracy == pytest.approx(skm.accuracy_score(Y, pred, sample_weight=w), abs=1e-12)
    assert weighted.hamming_loss == pytest.approx(skm.hamming_loss(Y, pred, sample_weight=w), abs=1e-12)


def test_weighted_threshold_free_metrics_match_sklearn(data, weighted):
    Y, P, w = data
    ap = [skm.average_precision_score(Y[:, j], P[:, j], sample_weight=w) for j in range(C)]
    np.testing.assert_allclose(weighted.average_precision, ap, atol=1e-12)
    auc = [skm.roc_auc_score(Y[:, j], P[:, j], sample_weight=w) for j in range(C)]
    np.testing.assert_allclose(weighted.auroc, auc, atol=1e-12)
    sc = weighted.extra["scalars"]
    for avg in ("weighted", "samples"):
        assert sc[f"average_precision_{avg}"] == pytest.approx(
            skm.average_precision_score(Y, P, average=avg, sample_weight=w), abs=1e-12)
        assert sc[f"auroc_{avg}"] == pytest.approx(skm.roc_auc_score(Y, P, average=avg, sample_weight=w), abs=1e-12)
    assert weighted.micro_average_precision == pytest.approx(
        skm.average_precision_score(Y, P, average="micro", sample_weight=w), abs=1e-12)
    assert weighted.micro_auroc == pytest.approx(skm.roc_auc_score(Y, P, average="micro", sample_weight=w), abs=1e-12)
    assert weighted.label_ranking_average_precision == pytest.approx(
        skm.label_ranking_average_precision_score(Y, P, sample_weight=w), abs=1e-12)
    assert weighted.coverage_error == pytest.approx(skm.coverage_error(Y, P, sample_weight=w), abs=1e-12)
    assert weighted.label_ranking_loss == pytest.approx(skm.label_ranking_loss(Y, P, sample_weight=w), abs=1e-12)
    for k in (1, 3, 5):
        assert sc[f"ndcg_at_{k}"] == pytest.approx(skm.ndcg_score(Y, P, k=k, sample_weight=w), abs=1e-12)


def test_unit_weights_give_the_unweighted_values(data):
    Y, P, _ = data
    plain = compute_metrics(Y, P, scores_kind="probabilities", beta=BETA)
    ones = compute_metrics(Y, P, scores_kind="probabilities", beta=BETA, sample_weight=np.ones(N), batch_size=50)
    for name in ("precision", "recall", "f1", "fbeta", "average_precision", "auroc", "tp", "tn"):
        np.testing.assert_allclose(getattr(ones, name), getattr(plain, name), atol=1e-12)
    for name in ("subset_accuracy", "hamming_loss", "mean_average_precision", "macro_auroc", "micro_auroc",
                 "label_ranking_average_precision", "coverage_error", "label_ranking_loss"):
        assert getattr(ones, name) == pytest.approx(getattr(plain, name), abs=1e-12)
    for avg in ("micro", "macro", "weighted", "samples"):
        np.testing.assert_allclose(getattr(ones, avg), getattr(plain, avg), atol=1e-12)


def test_integer_weights_equal_repeated_rows(data):
    Y, P, _ = data
    reps = np.arange(N) % 3
    rep = compute_metrics(np.repeat(Y, reps, axis=0), np.repeat(P, reps, axis=0), scores_kind="probabilities")
    wtd = compute_metrics(Y, P, scores_kind="probabilities", sample_weight=reps.astype(float), batch_size=100)
    for avg in ("micro", "macro", "weighted", "samples"):
        np.testing.assert_allclose(getattr(wtd, avg), getattr(rep, avg), atol=1e-12)
    assert wtd.mean_average_precision == pytest.approx(rep.mean_average_precision, abs=1e-12)
    assert wtd.extra["scalars"]["ndcg_at_3"] == pytest.approx(rep.extra["scalars"]["ndcg_at_3"], abs=1e-12)


def test_weighted_engine_result_does_not_depend_on_batching_or_merged_states(data):
    Y, P, w = data
    whole = compute_metrics(Y, P, scores_kind="probabilities", sample_weight=w)
    # two "ranks": each feeds half, then states are merged as torchmetrics' sum / cat reductions do
    a, b = (MultilabelEngine(C, scores="probabilities") for _ in range(2))
    a.update(torch.from_numpy(P[:150]), torch.from_numpy(Y[:150]), w[:150])
    b.update(torch.from_numpy(P[150:]), torch.from_numpy(Y[150:]), torch.from_numpy(w[150:]))
    a.merge_state(b)
    merged = a.compute()
    for avg in ("micro", "macro", "weighted", "samples"):
        np.testing.assert_allclose(getattr(merged, avg), getattr(whole, avg), atol=1e-12)
    np.testing.assert_allclose(merged.average_precision, whole.average_precision, atol=1e-12)
    assert merged.label_ranking_loss == pytest.approx(whole.label_ranking_loss, abs=1e-12)


def test_logits_with_weights_match_probabilities(data):
    Y, P, w = data
    logits = np.log(np.clip(P, 1e-6, 1 - 1e-6) / (1 - np.clip(P, 1e-6, 1 - 1e-6)))
    a = compute_metrics(Y, logits, scores_kind="logits", sample_weight=w)
    pred = (1 / (1 + np.exp(-logits)) >= 0.5).astype(int)
    assert a.micro.f1 == pytest.approx(skm.f1_score(Y, pred, average="micro", sample_weight=w), abs=1e-12)


@pytest.mark.parametrize("bad, match", [
    (np.ones(5), r"^sample_weight: expected shape \(301,\) \(one weight per sample\), got \(5,\)$"),
    (np.full(N, -1.0), r"^sample_weight: expected finite non-negative weights, found -1.0$"),
    (np.full(N, np.nan), r"^sample_weight: expected finite non-negative weights, found nan$"),
    ("heavy", r"^sample_weight: expected 301 non-negative numbers, got str$"),
    (np.zeros(N), r"^sample_weight: all 301 weights are 0; expected at least one positive weight$"),
    (np.full(N, 2e30), r"^sample_weight: expected weights up to 1e30, found 2e\+30 \(divide them by a common factor"),
])
def test_bad_sample_weight_is_refused_with_its_name(data, bad, match):
    Y, P, _ = data
    with pytest.raises(InputError, match=match):
        compute_metrics(Y, P, scores_kind="probabilities", sample_weight=bad)


def test_weights_with_streaming_bins_are_refused_and_state_untouched(data):
    Y, P, w = data
    e = MultilabelEngine(C, scores="probabilities", threshold_free="streaming")
    with pytest.raises(InputError, match=r"^sample_weight: not supported with threshold_free='streaming'"):
        e.update(torch.from_numpy(P), torch.from_numpy(Y), w)
    assert int(e.n_samples) == 0


def test_zero_division_nan_leaves_undefined_ratios_out_like_sklearn():
    Y = np.array([[1, 0, 0], [0, 0, 0], [1, 0, 1], [0, 0, 1]])
    pred = np.array([[1, 0, 0], [0, 0, 0], [0, 0, 1], [1, 0, 0]])
    v = compute_metrics(Y, pred.astype(float), scores_kind="probabilities", zero_division=float("nan"))
    assert np.isnan(v.precision[1]) and np.isnan(v.recall[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for avg in ("micro", "macro", "weighted", "samples"):
            p, r, f, _ = skm.precision_recall_fscore_support(Y, pred, average=avg, zero_division=np.nan)
            a = getattr(v, avg)
            assert (a.precision, a.recall, a.f1) == pytest.approx((p, r, f), abs=1e-12, nan_ok=True)


def test_a_label_positive_or_predicted_in_every_row_has_no_true_negatives_whatever_the_weights():
    """tn is summed from its own cells: as a difference of weighted sums it rounded to +-1e-16, and
    specificity / NPV / MCC came out as 1 (eps / eps) instead of zero_division / 0."""
    y = np.ones((7, 2), dtype=int)
    y[[1, 3], 1] = 0  # label 1: predicted in every row, two negatives
    p = np.array([[.6, .9], [.4, .9], [.9, .9], [.9, .9], [1., .9], [.4, .9], [.4, .9]])
    w = np.array([2.2, 2.9, 2.1, 2.7, 2.6, 1.9, 1.6])
    pred = (p >= 0.3).astype(int)
    from evalkit.report import metrics_block

    for j in range(2):
        tn = skm.confusion_matrix(y[:, j], pred[:, j], sample_weight=w, labels=[0, 1])[0, 0]
        assert tn == 0.0 and skm.matthews_corrcoef(y[:, j], pred[:, j], sample_weight=w) == 0.0
    for zd in (0.0, 1.0, np.nan):
        v = compute_metrics(y, p, scores_kind="probabilities", threshold=0.3, sample_weight=w, zero_division=zd)
        rows = metrics_block(v)["per_class"]
        assert [r["tn"] for r in rows] == [0, 0]
        expected = None if np.isnan(zd) else zd  # 0/0 takes zero_division (NaN is the report's None)
        assert [r["specificity"] for r in rows] == [expected, 0.0]  # label 1: tn 0, fp 4.8
        assert [r["npv"] for r in rows] == [expected, expected]
        assert [r["mcc"] for r in rows] == [0.0, 0.0]


@pytest.mark.parametrize("scale", [1e-18, 1e-9, 1.0, 1e9, 3e9, 1e20])
def test_per_sample_means_do_not_depend_on_the_weights_scale(data, scale):
    """The per-sample means (samples averages, subset accuracy, LRAP, coverage error, ranking loss,
    P@k, nDCG@k) are fixed-point sums: weights of 1e9 used to overflow them (coverage error -1.29 for
    2 rows) and weights of 1e-18 to round them away."""
    Y, P, w = data
    v = compute_metrics(Y, P, scores_kind="probabilities", sample_weight=w * scale, batch_size=64)
    ws = w * scale
    assert v.samples.f1 == pytest.approx(skm.f1_score(Y, P >= 0.5, average="samples", sample_weight=ws), abs=1e-12)
    assert v.subset_accuracy == pytest.approx(skm.accuracy_score(Y, P >= 0.5, sample_weight=ws), abs=1e-12)
    assert v.coverage_error == pytest.approx(skm.coverage_error(Y, P, sample_weight=ws), abs=1e-9)
    assert v.label_ranking_average_precision == pytest.approx(
        skm.label_ranking_average_precision_score(Y, P, sample_weight=ws), abs=1e-12)
    assert v.label_ranking_loss == pytest.approx(skm.label_ranking_loss(Y, P, sample_weight=ws), abs=1e-12)


def test_engine_fed_by_batches_keeps_per_sample_means_for_large_weights(data):
    """MultilabelEngine.update (no rescaling: every rank alike) sums value x weight in base-2^31 limbs:
    exact up to 2^62 per row; weights of 1e9 x coverage ~4 over 301 rows used to wrap an int64 limb."""
    from evalkit.metrics.extra import fixed_row_means, weighted_row_sums

    Y, P, w = data
    e = MultilabelEngine(C, scores="probabilities")
    for i in range(0, N, 100):
        e.update(torch.from_numpy(P[i:i + 100]), torch.from_numpy(Y[i:i + 100]), w[i:i + 100] * 1e9)
    v = e.compute()
    assert v.coverage_error == pytest.approx(skm.coverage_error(Y, P, sample_weight=w), abs=1e-9)
    assert v.samples.f1 == pytest.approx(skm.f1_score(Y, P >= 0.5, average="samples", sample_weight=w), abs=1e-12)
    x = np.array([[0.3, 7.25, 1e-12, 2.0**40 + 0.5]])
    wt = np.array([3.0, 1e9, 2.5e6, 4.0])
    np.testing.assert_allclose(fixed_row_means(weighted_row_sums(x.T.reshape(1, -1), wt)),
                               [np.average(x[0], weights=wt)], rtol=1e-15)
    with pytest.raises(InputError, match=r"^sample_weight: a weight of 1e\+18 makes a weighted sum of 5e\+18 per row; "
                                         r"expected below 2\^62"):
        weighted_row_sums(np.array([[5.0]]), np.array([1e18]))
