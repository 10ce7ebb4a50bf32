"""The metrics beyond precision / recall / F: Jaccard, specificity, NPV, MCC, one-error, P@k, nDCG@k,
weighted / samples AP and AUROC, F-beta for beta 0 and inf, zero_division - against scikit-learn
and torchmetrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchmetrics.classification as tmc
from sklearn import metrics as skm
from torchmetrics.functional.retrieval import retrieval_precision

from evalkit.metrics import compute_metrics
from evalkit.report import metrics_block

N, C = 257, 7


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    Y = (rng.random((N, C)) < np.linspace(0.05, 0.5, C)).astype(np.int64)
    Y[np.arange(N), rng.integers(0, C, N)] = 1
    Y[np.arange(N), np.arange(N) % C] = 0
    Y[np.arange(N), (np.arange(N) + 1) % C] |= Y.sum(axis=1) == 0
    P = np.clip(0.3 * Y + 0.7 * rng.random((N, C)), 0, 1)
    return Y, P, (P >= 0.5).astype(np.int64)


@pytest.fixture(scope="module")
def values(data):
    Y, P, _ = data
    return compute_metrics(Y, P, scores_kind="probabilities", batch_size=100)


@pytest.mark.parametrize("average", ["micro", "macro", "weighted", "samples"])
def test_jaccard_matches_sklearn(data, values, average):
    Y, _, pred = data
    assert values.extra["averages"]["jaccard"][average] == pytest.approx(
        skm.jaccard_score(Y, pred, average=average, zero_division=0), abs=1e-12)


@pytest.mark.parametrize("average", ["micro", "macro", "weighted"])
def test_specificity_and_npv_match_torchmetrics(data, values, average):
    Y, P, _ = data
    p, t = torch.from_numpy(P).float(), torch.from_numpy(Y)
    spec = tmc.MultilabelSpecificity(C, average=average)(p, t).item()
    assert values.extra["averages"]["specificity"][average] == pytest.approx(spec, abs=1e-6)
    npv = tmc.MultilabelNegativePredictiveValue(C, average=average)(p, t).item()
    assert values.extra["averages"]["npv"][average] == pytest.approx(npv, abs=1e-6)


def test_mcc_per_label_and_micro_match_sklearn(data, values):
    Y, _, pred = data
    np.testing.assert_allclose(values.extra["per_label"]["mcc"],
                               [skm.matthews_corrcoef(Y[:, j], pred[:, j]) for j in range(C)], atol=1e-12)
    assert values.extra["averages"]["mcc"]["micro"] == pytest.approx(
        skm.matthews_corrcoef(Y.ravel(), pred.ravel()), abs=1e-12)


def test_mcc_of_a_constant_prediction_is_zero_as_sklearn():
    Y = np.array([[1, 0], [0, 1], [1, 1]])
    v = compute_metrics(Y, np.full((3, 2), 0.9), scores_kind="probabilities")
    assert list(v.extra["per_label"]["mcc"]) == [skm.matthews_corrcoef(Y[:, j], np.ones(3)) for j in range(2)] == [0, 0]


@pytest.mark.parametrize("average", ["weighted", "samples"])
def test_weighted_and_samples_ap_auroc_match_sklearn(data, values, average):
    Y, P, _ = data
    sc = values.extra["scalars"]
    assert sc[f"average_precision_{average}"] == pytest.approx(skm.average_precision_score(Y, P, average=average),
                                                                abs=1e-12)
    assert sc[f"auroc_{average}"] == pytest.approx(skm.roc_auc_score(Y, P, average=average), abs=1e-12)


def test_ndcg_at_k_matches_sklearn_and_precision_at_k_matches_torchmetrics(data, values):
    Y, P, _ = data
    sc = values.extra["scalars"]
    for k in (1, 3, 5):
        assert sc[f"ndcg_at_{k}"] == pytest.approx(skm.ndcg_score(Y, P, k=k), abs=1e-12)
        ref = np.mean([retrieval_precision(torch.from_numpy(P[i]), torch.from_numpy(Y[i]), top_k=k).item()
                       for i in range(N)])
        assert sc[f"precision_at_{k}"] == pytest.approx(ref, abs=1e-6)


def test_precision_at_k_with_k_beyond_the_labels_counts_missing_ranks_as_misses():
    Y = np.array([[1, 1, 0]])
    v = compute_metrics(Y, np.array([[0.9, 0.1, 0.5]]), scores_kind="probabilities", ks=(1, 2, 10))
    sc = v.extra["scalars"]
    assert (sc["precision_at_1"], sc["precision_at_2"], sc["precision_at_10"]) == (1.0, 0.5, 0.2)
    assert sc["ndcg_at_2"] == pytest.approx(skm.ndcg_score(Y, [[0.9, 0.1, 0.5]], k=2), abs=1e-12)


def test_one_error_counts_samples_whose_top_label_is_irrelevant():
    Y = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0], [0, 1, 1]])
    P = np.array([[0.9, 0.1, 0.2], [0.9, 0.1, 0.2], [0.3, 0.2, 0.1], [0.1, 0.2, 0.8]])
    assert compute_metrics(Y, P, scores_kind="probabilities").extra["scalars"]["one_error"] == 0.5


def test_top_k_metrics_rank_logits_like_probabilities(data):
    Y, P, _ = data
    logits = np.log(P + 1e-9) - np.log1p(-P + 1e-9)
    a = compute_metrics(Y, logits, scores_kind="logits").extra["scalars"]
    b = compute_metrics(Y, P, scores_kind="probabilities").extra["scalars"]
    for k in ("one_error", "precision_at_3", "ndcg_at_5"):
        assert a[k] == b[k]


@pytest.mark.parametrize("beta, same_as", [(float("inf"), "recall"), (0.0, "precision")])
def test_fbeta_with_beta_inf_is_recall_and_beta_zero_is_precision(data, beta, same_as):
    Y, P, pred = data
    v = compute_metrics(Y, P, scores_kind="probabilities", beta=beta)
    for avg in ("micro", "macro", "weighted", "samples"):
        a = getattr(v, avg)
        assert a.fbeta == getattr(a, same_as)
        assert a.fbeta == pytest.approx(skm.fbeta_score(Y, pred, beta=beta, average=avg, zero_division=0), abs=1e-12)
    assert ("finf" if beta else "f0") in metrics_block(v)["summary"]["micro"]


def test_zero_division_one_applies_to_jaccard_and_specificity_like_sklearn():
    Y = np.array([[0, 1], [0, 1]])
    v = compute_metrics(Y, np.array([[0.1, 0.9], [0.2, 0.8]]), scores_kind="probabilities", zero_division=1)
    assert v.extra["per_label"]["jaccard"][0] == skm.jaccard_score(Y[:, 0], [0, 0], zero_division=1) == 1.0
    assert v.extra["per_label"]["specificity"][1] == 1.0  # no negatives: 0/0


def test_report_summary_gains_the_new_metrics_without_ranking(data):
    Y, P, _ = data
    r = metrics_block(compute_metrics(Y, P, scores_kind="probabilities", threshold_free="none"))
    s = r["summary"]
    assert s["average_precision_samples"] is None and s["auroc_weighted"] is None
    assert s["precision_at_1"] is not None and s["ndcg_at_5"] is not None
    assert s["samples"]["jaccard"] == pytest.approx(skm.jaccard_score(Y, (P >= 0.5), average="samples"), abs=1e-12)
    assert r["per_class"][0]["mcc"] == pytest.approx(skm.matthews_corrcoef(Y[:, 0], P[:, 0] >= 0.5), abs=1e-12)
