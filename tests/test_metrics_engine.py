"""The metric engine against scikit-learn: every number of the report, on random and edge-case data."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    coverage_error,
    fbeta_score,
    hamming_loss,
    label_ranking_average_precision_score,
    label_ranking_loss,
    precision_recall_fscore_support,
    recall_score,
    roc_auc_score,
)

from evalkit.errors import InputError
from evalkit.metrics import MultilabelEngine, binarize, compute_metrics
from evalkit.metrics.names import fbeta_key
from evalkit.report import metrics_block

AVERAGES = ("micro", "macro", "weighted", "samples")
TOL = 1e-9


def fkey(beta: float) -> str:
    return f"f{beta:g}"


def sklearn_reference(Y: np.ndarray, P: np.ndarray, thr, beta: float, zd: float) -> dict:
    """Every number of the report computed with scikit-learn (plus hand definitions for accuracy
    and for C = 1, where scikit-learn treats the data as binary)."""
    N, C = Y.shape
    thr = np.broadcast_to(np.asarray(thr, dtype=np.float64), (C,))
    pred = (P.astype(np.float64) >= thr).astype(int)
    Y = Y.astype(int)
    out: dict = {"summary": {}, "per_class": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pc = precision_recall_fscore_support(Y, pred, average=None, zero_division=zd, labels=list(range(C))) \
            if C > 1 else None
        for avg in AVERAGES:
            if C == 1 and avg == "samples":
                tp = (pred[:, 0] & Y[:, 0]).astype(float)
                pr = np.where(pred[:, 0] > 0, tp / np.maximum(pred[:, 0], 1), zd)
                rc = np.where(Y[:, 0] > 0, tp / np.maximum(Y[:, 0], 1), zd)
                d1 = Y[:, 0] + pred[:, 0]
                f1 = np.where(d1 > 0, 2 * tp / np.maximum(d1, 1), zd)
                db = beta**2 * Y[:, 0] + pred[:, 0]
                fb = np.where(db > 0, (1 + beta**2) * tp / np.where(db > 0, db, 1), zd)
                d = {"precision": pr.mean(), "recall": rc.mean(), "f1": f1.mean(), fkey(beta): fb.mean()}
            elif C == 1:
                p, r, f, _ = precision_recall_fscore_support(Y[:, 0], pred[:, 0], average="binary",
                                                             zero_division=zd, beta=1.0)
                fb = fbeta_score(Y[:, 0], pred[:, 0], beta=beta, average="binary", zero_division=zd)
                d = {"precision": p, "recall": r, "f1": f, fkey(beta): fb}
            else:
                p, r, f, _ = precision_recall_fscore_support(Y, pred, average=avg, zero_division=zd)
                fb = fbeta_score(Y, pred, beta=beta, average=avg, zero_division=zd)
                d = {"precision": p, "recall": r, "f1": f, fkey(beta): fb}
            out["summary"][avg] = d
        acc = ((pred == Y).sum(0)) / N
        sup = Y.sum(0)
        out["summary"]["micro"]["accuracy"] = float((pred == Y).mean())
        out["summary"]["macro"]["accuracy"] = float(acc.mean())
        out["summary"]["weighted"]["accuracy"] = float(np.average(acc, weights=sup) if sup.sum() else acc.mean())
        out["summary"]["samples"]["accuracy"] = float(((pred == Y).sum(1) / C).mean())
        if C > 1:
            out["summary"]["subset_accuracy"] = accuracy_score(Y, pred)
            out["summary"]["hamming_loss"] = hamming_loss(Y, pred)
        else:
            out["summary"]["subset_accuracy"] = float((pred == Y).mean())
            out["summary"]["hamming_loss"] = float((pred != Y).mean())
        aps, aucs = [], []
        for j in range(C):
            aps.append(average_precision_score(Y[:, j], P[:, j]) if Y[:, j].any() else 0.0)
            aucs.append(roc_auc_score(Y[:, j], P[:, j]) if 0 < Y[:, j].sum() < N else None)
        with_positives = [a for j, a in enumerate(aps) if Y[:, j].any()]
        out["summary"]["mean_average_precision"] = float(np.mean(with_positives)) if with_positives else None
        out["summary"]["mean_average_precision_all_labels"] = average_precision_score(Y, P, average="macro") \
            if Y.any(axis=0).all() else float(np.mean(aps))  # sklearn warns on labels without positives
        out["summary"]["labels_without_positives"] = int(C - len(with_positives))
        valid = [a for a in aucs if a is not None]
        out["summary"]["macro_auroc"] = float(np.mean(valid)) if valid else None
        y, s = Y.ravel(), P.ravel()
        out["summary"]["micro_average_precision"] = average_precision_score(y, s) if y.any() else 0.0
        out["summary"]["micro_auroc"] = roc_auc_score(y, s) if 0 < y.sum() < y.size else None
        if C > 1:
            out["summary"]["label_ranking_average_precision"] = label_ranking_average_precision_score(Y, P)
            out["summary"]["coverage_error"] = coverage_error(Y, P)
            out["summary"]["label_ranking_loss"] = label_ranking_loss(Y, P)
        else:  # one label: every ranking is trivially perfect
            out["summary"]["label_ranking_average_precision"] = 1.0
            out["summary"]["coverage_error"] = float(Y[:, 0].mean())
            out["summary"]["label_ranking_loss"] = 0.0
        for j in range(C):
            tp = int(((pred[:, j] == 1) & (Y[:, j] == 1)).sum())
            fp = int(((pred[:, j] == 1) & (Y[:, j] == 0)).sum())
            fn = int(((pred[:, j] == 0) & (Y[:, j] == 1)).sum())
            tn = int(((pred[:, j] == 0) & (Y[:, j] == 0)).sum())
            if C > 1:
                p_, r_, f_ = pc[0][j], pc[1][j], pc[2][j]
                fb_ = fbeta_score(Y, pred, beta=beta, average=None, zero_division=zd)[j]
            else:
                p_, r_, f_ = (out["summary"]["micro"][k] for k in ("precision", "recall", "f1"))
                fb_ = out["summary"]["micro"][fkey(beta)]
            out["per_class"].append({"support": int(sup[j]), "tp": tp, "fp": fp, "fn": fn, "tn": tn,
                                     "accuracy": float(acc[j]), "precision": p_, "recall": r_, "f1": f_,
                                     fkey(beta): fb_, "average_precision": aps[j], "auroc": aucs[j],
                                     "threshold": float(thr[j])})
    return out


def assert_close(got, want, tol=TOL, path="result"):
    if isinstance(want, dict):
        for k, v in want.items():
            assert k in got, f"{path}: missing key {k!r}"
            assert_close(got[k], v, tol, f"{path}.{k}")
    elif isinstance(want, list):
        assert len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want)):
            assert_close(g, w, tol, f"{path}[{i}]")
    elif want is None:
        assert got is None, f"{path}: expected None, got {got!r}"
    elif isinstance(want, (int, np.integer)) and not isinstance(want, bool):
        assert got == want, f"{path}: {got!r} != {want!r}"
    else:
        assert got is not None and abs(got - float(want)) <= tol, f"{path}: {got!r} != {float(want)!r}"


# ---------------------------------------------------------------------------------------------
# data generators


def _case(rng: np.random.Generator, kind: str, N: int, C: int):
    """(targets uint8, probabilities float32, thresholds) for one edge-case family."""
    P = rng.random((N, C)).astype(np.float32)
    Y = (rng.random((N, C)) < rng.uniform(0.1, 0.7)).astype(np.uint8)
    thr: object = 0.5
    if kind == "ties":  # few distinct scores: ties inside and across labels
        P = (rng.integers(0, 5, size=(N, C)) / 4).astype(np.float32)
        thr = 0.5
    elif kind == "all_zero_targets":
        Y[:] = 0
    elif kind == "all_one_targets":
        Y[:] = 1
    elif kind == "all_predicted":
        thr = 0.0
    elif kind == "none_predicted":
        P = np.minimum(P, np.float32(0.99))
        thr = 1.0
    elif kind == "label_never_true":
        Y[:, 0] = 0
        Y[:, -1] = 1 if C > 1 else Y[:, -1]
    elif kind == "label_never_predicted":
        P[:, 0] = np.minimum(P[:, 0], 0.2)
        thr = np.linspace(0.3, 0.7, C)
    elif kind == "per_label_thresholds":
        thr = rng.random(C)
    elif kind == "scores_equal_threshold":  # p == threshold exactly must count as positive
        P[rng.random((N, C)) < 0.3] = np.float32(0.25)
        thr = np.float32(0.25).item()
    elif kind == "extremes":
        P[rng.random((N, C)) < 0.3] = 0.0
        P[rng.random((N, C)) < 0.3] = 1.0
    return Y, P, thr


KINDS = ["random", "ties", "all_zero_targets", "all_one_targets", "all_predicted", "none_predicted",
         "label_never_true", "label_never_predicted", "per_label_thresholds", "scores_equal_threshold", "extremes"]


# ---------------------------------------------------------------------------------------------
# every number against scikit-learn


@pytest.mark.parametrize("kind", KINDS)
def test_matches_sklearn_on_edge_cases(kind):
    rng = np.random.default_rng(abs(hash(kind)) % 2**32)
    shapes = [(1, 1), (1, 4), (2, 3), (7, 1), (13, 5), (60, 6), (150, 3)]
    for i, (N, C) in enumerate(shapes):
        for zd in (0.0, 1.0):
            beta = (2.0, 0.5, 1.0, 3.0)[(i + int(zd)) % 4]
            Y, P, thr = _case(rng, kind, N, C)
            got = metrics_block(compute_metrics(Y, P, scores_kind="probabilities", threshold=thr, beta=beta,
                                                zero_division=zd, batch_size=int(rng.integers(1, N + 1))))
            want = sklearn_reference(Y, P, thr, beta, zd)
            assert_close(got, want, path=f"{kind} N={N} C={C} zd={zd} beta={beta}")
            json.dumps(got)


def test_matches_sklearn_random_loop():
    """Seeded property loop over random shapes, prevalences, thresholds, betas and zero_division."""
    rng = np.random.default_rng(12345)
    for trial in range(40):
        N = int(rng.integers(1, 120))
        C = int(rng.integers(1, 9))
        Y, P, thr = _case(rng, KINDS[trial % len(KINDS)], N, C)
        if trial % 5 == 0:
            P = P.astype(np.float64) * 0.999 + 0.0005  # float64 scores: int64 sort keys
        beta = float(rng.choice([0.5, 1.0, 2.0, 1.5]))
        zd = float(rng.integers(0, 2))
        got = metrics_block(compute_metrics(Y, P, scores_kind="probabilities", threshold=thr, beta=beta,
                                            zero_division=zd))
        assert_close(got, sklearn_reference(Y, P, thr, beta, zd), path=f"trial {trial}")


def test_known_values_by_hand():
    """A 3x2 example checked by hand (independent of scikit-learn)."""
    Y = np.array([[1, 0], [1, 1], [0, 1]])
    P = np.array([[0.9, 0.2], [0.4, 0.8], [0.6, 0.7]], dtype=np.float32)
    r = metrics_block(compute_metrics(Y, P, scores_kind="probabilities", threshold=0.5))
    # predictions [[1,0],[0,1],[1,1]]: label0 tp=1 fp=1 fn=1 tn=0; label1 tp=2 fp=0 fn=0 tn=1
    pc = r["per_class"]
    assert (pc[0]["tp"], pc[0]["fp"], pc[0]["fn"], pc[0]["tn"]) == (1, 1, 1, 0)
    assert (pc[1]["tp"], pc[1]["fp"], pc[1]["fn"], pc[1]["tn"]) == (2, 0, 0, 1)
    s = r["summary"]
    assert s["micro"]["precision"] == pytest.approx(3 / 4)
    assert s["micro"]["recall"] == pytest.approx(3 / 4)
    assert s["micro"]["f2"] == pytest.approx(5 * 3 / (5 * 3 + 4 * 1 + 1))
    assert s["macro"]["accuracy"] == pytest.approx((1 / 3 + 3 / 3) / 2)
    assert s["subset_accuracy"] == pytest.approx(1 / 3)
    assert s["hamming_loss"] == pytest.approx(2 / 6)
    assert pc[1]["auroc"] == pytest.approx(1.0)
    assert pc[0]["auroc"] == pytest.approx(0.5)  # positive scores 0.9, 0.4 vs negative 0.6
    assert pc[0]["average_precision"] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert pc[0]["label"] == "label_0" and pc[0]["threshold"] == 0.5


# ---------------------------------------------------------------------------------------------
# invariances


def _engine(C, **kw):
    kw.setdefault("scores", "probabilities")
    return MultilabelEngine(C, **kw)


@pytest.mark.parametrize("mode", ["exact", "streaming", "none"])
def test_batched_update_equals_single_update(mode):
    rng = np.random.default_rng(7)
    Y, P, _ = _case(rng, "ties", 300, 7)
    P[:150] = rng.random((150, 7)).astype(np.float32)
    one = _engine(7, threshold_free=mode, threshold=0.4)
    one.update(torch.from_numpy(P), torch.from_numpy(Y))
    want = metrics_block(one.compute())
    for sizes in ([1] * 5 + [295], [0, 100, 0, 200], [17] * 17 + [11], [299, 1]):
        e = _engine(7, threshold_free=mode, threshold=0.4)
        i = 0
        order = rng.permutation(300) if sizes[0] == 299 else np.arange(300)  # row order is irrelevant too
        for b in sizes:
            idx = order[i:i + b]
            e.update(torch.from_numpy(P[idx]), torch.from_numpy(Y[idx]))
            i += b
        assert metrics_block(e.compute()) == want  # exactly equal, not approximately


def test_logits_path_equals_probabilities_path():
    rng = np.random.default_rng(3)
    logits = torch.from_numpy((rng.standard_normal((500, 6)) * 4).astype(np.float32))
    logits[0, 0] = 40.0  # saturates to 1.0
    logits[1, 1] = -200.0  # underflows to 0.0
    Y = torch.from_numpy((rng.random((500, 6)) < 0.3).astype(np.int64))
    for mode in ("exact", "streaming"):
        a = _engine(6, scores="logits", threshold_free=mode, threshold=0.3)
        a.update(logits, Y)
        b = _engine(6, threshold_free=mode, threshold=0.3)
        b.update(torch.sigmoid(logits), Y)
        ma, mb = metrics_block(a.compute()), metrics_block(b.compute())
        if mode == "streaming":
            assert ma == mb
        else:  # exact ranks the logits themselves: the float32 sigmoid ties 7.95339 / 7.9534664 (label 0)
            assert ma["summary"]["macro_auroc"] != mb["summary"]["macro_auroc"]
            for block in (ma, mb):  # every value that ranks label 0's scores (averages of AUROC / AP too)
                for k in [k for k in block["summary"] if "auroc" in k or "average_precision" in k]:
                    block["summary"].pop(k)
                block["per_class"][0].pop("auroc")
            assert ma == mb
    # threshold-free values from the exact (float64) sigmoid, which keeps those two logits apart
    want = sklearn_reference(Y.numpy(), torch.sigmoid(logits.double()).numpy(), 0.3, 2.0, 0.0)
    assert_close(metrics_block(compute_metrics(Y, logits, scores_kind="logits", threshold=0.3)), want)


def test_target_dtypes_are_equivalent():
    rng = np.random.default_rng(5)
    Y = rng.random((80, 4)) < 0.4
    P = rng.random((80, 4)).astype(np.float32)
    ref = metrics_block(compute_metrics(Y, P, scores_kind="probabilities"))
    for dt in (np.uint8, np.int64, np.float32, np.float64, np.int8):
        assert metrics_block(compute_metrics(Y.astype(dt), P, scores_kind="probabilities")) == ref
    assert metrics_block(compute_metrics(torch.from_numpy(Y), torch.from_numpy(P),
                                         scores_kind="probabilities")) == ref


def test_half_precision_scores_are_upcast():
    rng = np.random.default_rng(9)
    P = torch.from_numpy(rng.random((64, 3))).to(torch.float16)
    Y = torch.from_numpy((rng.random((64, 3)) < 0.5).astype(np.uint8))
    got = metrics_block(compute_metrics(Y, P, scores_kind="probabilities"))
    assert got == metrics_block(compute_metrics(Y, P.float(), scores_kind="probabilities"))


def test_mixed_precision_batches_rank_at_float64():
    rng = np.random.default_rng(11)
    P = rng.random((200, 5))
    Y = (rng.random((200, 5)) < 0.3).astype(np.uint8)
    P32 = P.astype(np.float32)
    e = _engine(5)
    e.update(torch.from_numpy(P32[:100]), torch.from_numpy(Y[:100]))
    e.update(torch.from_numpy(P[100:]), torch.from_numpy(Y[100:]))
    mixed = np.concatenate([P32[:100].astype(np.float64), P[100:]])
    assert_close(metrics_block(e.compute()), sklearn_reference(Y, mixed, 0.5, 2.0, 0.0))


def test_negative_zero_probability():
    Y = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.uint8)
    P = np.array([[-0.0, 0.5], [0.0, 0.25], [0.75, -0.0]], dtype=np.float32)
    assert_close(metrics_block(compute_metrics(Y, P, scores_kind="probabilities")),
                 sklearn_reference(Y, np.abs(P), 0.5, 2.0, 0.0))


# ---------------------------------------------------------------------------------------------
# keys and options


def test_fbeta_keys():
    Y = np.array([[1, 0], [0, 1]])
    P = np.array([[0.9, 0.1], [0.2, 0.7]], dtype=np.float32)
    r = metrics_block(compute_metrics(Y, P, scores_kind="probabilities", beta=0.5))
    confusion = {"jaccard", "specificity", "npv", "mcc"}
    for avg in AVERAGES:
        assert set(r["summary"][avg]) == {"accuracy", "precision", "recall", "f1", "f0.5"} | (
            {"jaccard"} if avg == "samples" else confusion)
    assert set(r["per_class"][0]) == {"label", "support", "tp", "fp", "fn", "tn", "accuracy", "precision", "recall",
                                      "f1", "f0.5", "average_precision", "auroc", "threshold"} | confusion
    r1 = metrics_block(compute_metrics(Y, P, scores_kind="probabilities", beta=1.0))
    assert set(r1["summary"]["micro"]) == {"accuracy", "precision", "recall", "f1"} | confusion
    r2 = metrics_block(compute_metrics(Y, P, scores_kind="probabilities"))
    assert "f2" in r2["summary"]["macro"] and "f2" in r2["per_class"][1]
    # a large beta's key has no "+" (``f1e+06`` is no MLflow metric name: a tracked run failed with exit 3)
    assert [fbeta_key(b) for b in (1e6, 1e-5, 123456.0, math.inf, 0.0)] == ["f1e06", "f1e-05", "f123456", "finf", "f0"]


def test_fbeta_of_a_huge_beta_is_recall_not_an_overflow():
    """beta**2 overflowed (OverflowError) from beta ~1.34e154; F-beta is recall there (as for inf)."""
    rng = np.random.default_rng(3)
    Y, P = rng.integers(0, 2, (200, 3)), rng.random((200, 3))
    rec = recall_score(Y, P >= 0.5, average=None)
    for beta in (1e10, 1e40, 1e90, 1e155, 1e300, math.inf):
        per = [row[fbeta_key(beta)] for row in metrics_block(compute_metrics(Y, P, scores_kind="probabilities",
                                                                             beta=beta))["per_class"]]
        ref = rec if beta > 1e150 else fbeta_score(Y, P >= 0.5, beta=beta, average=None)  # sklearn: beta**2
        np.testing.assert_allclose(per, ref, rtol=1e-12)


def test_threshold_free_none_gives_none():
    rng = np.random.default_rng(1)
    Y, P, _ = _case(rng, "random", 30, 3)
    r = metrics_block(compute_metrics(Y, P, scores_kind="probabilities", threshold_free="none",
                                      label_names=["a", "b", "c"]))
    for k in ("mean_average_precision", "macro_auroc", "micro_average_precision", "micro_auroc",
              "label_ranking_average_precision", "coverage_error", "label_ranking_loss",
              "mean_average_precision_all_labels", "labels_without_positives"):
        assert r["summary"][k] is None
    assert [c["label"] for c in r["per_class"]] == ["a", "b", "c"]
    assert all(c["average_precision"] is None and c["auroc"] is None for c in r["per_class"])
    exact = metrics_block(compute_metrics(Y, P, scores_kind="probabilities", label_names=["a", "b", "c"]))
    assert r["summary"]["micro"] == exact["summary"]["micro"]
    assert r["summary"]["samples"] == exact["summary"]["samples"]


def test_auroc_undefined_labels_are_none_and_excluded():
    Y = np.array([[1, 0, 1], [1, 1, 1], [1, 0, 1]], dtype=np.uint8)  # labels 0 and 2: one class only
    P = np.array([[0.2, 0.3, 0.9], [0.6, 0.8, 0.1], [0.4, 0.1, 0.5]], dtype=np.float32)
    r = metrics_block(compute_metrics(Y, P, scores_kind="probabilities"))
    assert [c["auroc"] for c in r["per_class"]] == [None, 1.0, None]
    assert r["summary"]["macro_auroc"] == 1.0
    Y0 = np.zeros((3, 2), dtype=np.uint8)
    r0 = metrics_block(compute_metrics(Y0, P[:, :2], scores_kind="probabilities"))
    assert r0["summary"]["macro_auroc"] is None and r0["summary"]["micro_auroc"] is None
    assert r0["summary"]["mean_average_precision"] is None  # no label has a positive: mAP is undefined
    assert r0["summary"]["mean_average_precision_all_labels"] == 0.0  # scikit-learn scores each such label 0
    assert r0["summary"]["labels_without_positives"] == 2
    assert r0["summary"]["coverage_error"] == 0.0 and r0["summary"]["label_ranking_average_precision"] == 1.0


def test_one_label_is_supported():
    Y = np.array([[1], [0], [1], [0]])
    P = np.array([[0.8], [0.3], [0.4], [0.6]], dtype=np.float32)
    r = metrics_block(compute_metrics(Y, P, scores_kind="probabilities"))
    assert r["summary"]["label_ranking_average_precision"] == 1.0
    assert r["summary"]["label_ranking_loss"] == 0.0
    assert r["summary"]["coverage_error"] == 0.5
    assert r["per_class"][0]["auroc"] == 0.75
    assert_close(r, sklearn_reference(Y, P, 0.5, 2.0, 0.0))


# ---------------------------------------------------------------------------------------------
# binarize: THE threshold rule


def test_binarize_rule():
    p = torch.tensor([[0.2, 0.5, 0.7], [0.5, 0.49, 1.0]])
    assert binarize(p, 0.5).tolist() == [[False, True, True], [True, False, True]]
    assert binarize(p, torch.tensor([0.2, 0.5, 1.0])).tolist() == [[True, True, False], [True, False, True]]
    assert binarize(p, [0.1, 0.9, 0.0]).tolist() == [[True, False, True], [True, False, True]]
    # exact comparison in real numbers: float32(0.3) = 0.30000001 >= 0.3, the float32 just below is not
    x = torch.tensor([0.3], dtype=torch.float32)
    below = torch.nextafter(x, torch.tensor([0.0]))
    assert binarize(x, 0.3).item() is True
    assert binarize(below, 0.3).item() is False
    assert binarize(x, float(x.item())).item() is True  # p == threshold is positive
    with pytest.raises(InputError, match=r"threshold: expected a scalar or 3 values"):
        binarize(p, [0.5, 0.5])


def test_engine_uses_binarize_rule():
    rng = np.random.default_rng(2)
    P = rng.random((50, 4)).astype(np.float32)
    Y = (rng.random((50, 4)) < 0.5).astype(np.uint8)
    thr = [0.3, 0.5, float(P[3, 2]), 0.9]
    pred = binarize(torch.from_numpy(P), thr).numpy()
    r = metrics_block(compute_metrics(Y, P, scores_kind="probabilities", threshold=thr, threshold_free="none"))
    for j, c in enumerate(r["per_class"]):
        assert c["tp"] == int((pred[:, j] & (Y[:, j] == 1)).sum())
        assert c["fp"] == int((pred[:, j] & (Y[:, j] == 0)).sum())


# ---------------------------------------------------------------------------------------------
# errors


def _err(fn, match):
    with pytest.raises(InputError, match=match) as ei:
        fn()
    assert "\n" not in str(ei.value)
    return str(ei.value)


def test_constructor_errors():
    _err(lambda: MultilabelEngine(0, scores="logits"), r"^num_labels: expected an integer >= 1, got 0$")
    _err(lambda: MultilabelEngine(3, scores="auto"), r"^scores: expected 'logits' or 'probabilities', got 'auto'$")
    _err(lambda: MultilabelEngine(3, scores="logits", threshold=[0.5, 0.5]),
         r"^threshold: expected a scalar or 3 values \(one per label\), got 2$")
    _err(lambda: MultilabelEngine(3, scores="logits", threshold=float("nan")), r"^threshold: expected numbers, got NaN$")
    _err(lambda: MultilabelEngine(3, scores="logits", zero_division=0.5), r"^zero_division: expected 0.0, 1.0 or float\('nan'\), got 0.5$")
    _err(lambda: MultilabelEngine(3, scores="logits", zero_division="nan"),
         r"^zero_division: expected 0.0, 1.0 or float\('nan'\), got 'nan'$")  # the text: the message said "or nan"
    _err(lambda: MultilabelEngine(3, scores="logits", beta=-1),
         r"^beta: expected a number >= 0 \(inf = recall, 0 = precision\), got -1.0$")
    _err(lambda: MultilabelEngine(3, scores="logits", beta=float("nan")), r"^beta: expected a number >= 0")
    _err(lambda: MultilabelEngine(3, scores="logits", threshold_free="fast"),
         r"^threshold_free: expected 'exact', 'streaming' or 'none', got 'fast'$")
    _err(lambda: MultilabelEngine(3, scores="logits", bins=4), r"^bins: expected an integer >= 16, got 4$")
    _err(lambda: MultilabelEngine(2, scores="logits", label_names=["a"]), r"^label_names: expected 2 names, got 1$")


def test_update_errors_and_state_untouched():
    e = MultilabelEngine(3, scores="probabilities")
    good_p = torch.full((4, 3), 0.5)
    good_t = torch.zeros((4, 3), dtype=torch.uint8)
    e.update(good_p, good_t)
    before = metrics_block(e.compute())
    bad_p = good_p.clone()
    bad_p[3, 2] = 1.5
    _err(lambda: e.update(bad_p, good_t),
         r"^scores: expected probabilities in \[0, 1\], got values in \[0.5, 1.5\] \(declare scores='logits'")
    nan_p = good_p.clone()
    nan_p[0, 0] = float("nan")
    _err(lambda: e.update(nan_p, good_t), r"^scores: expected finite probabilities in \[0, 1\], found NaN or inf$")
    bad_t = good_t.clone()
    bad_t[2, 1] = 2
    _err(lambda: e.update(good_p, bad_t), r"^targets: expected values in \{0, 1\}, found 2$")
    _err(lambda: e.update(good_p, torch.full((4, 3), 0.5)), r"^targets: expected values in \{0, 1\}, found 0.5$")
    _err(lambda: e.update(good_p, torch.full((4, 3), -1)), r"^targets: expected values in \{0, 1\}, found -1$")
    _err(lambda: e.update(good_p[:, :2], good_t[:, :2]), r"^scores: expected shape \(B, 3\), got \(4, 2\)$")
    _err(lambda: e.update(good_p, good_t[:3]), r"^targets: expected shape \(4, 3\) \(same as scores\), got \(3, 3\)$")
    _err(lambda: e.update(good_p.numpy(), good_t), r"^scores: expected a torch.Tensor of shape \(B, 3\), got ndarray$")
    _err(lambda: e.update(torch.ones((4, 3), dtype=torch.int64), good_t),
         r"^scores: expected a floating dtype \(probabilities\), got torch.int64$")
    lg = MultilabelEngine(3, scores="logits")
    inf_p = torch.zeros((4, 3))
    inf_p[1, 1] = float("inf")
    _err(lambda: lg.update(inf_p, good_t), r"^scores: expected finite logits, found NaN or inf$")
    assert metrics_block(e.compute()) == before  # failed updates left no trace


def test_compute_errors():
    _err(lambda: MultilabelEngine(2, scores="logits").compute(),
         r"^metrics: no samples were given \(update\(\) was never called with data\)$")
    _err(lambda: compute_metrics(np.zeros((0, 3)), np.zeros((0, 3)), scores_kind="logits"),
         r"^targets: expected at least one sample \(N >= 1\), got N = 0$")
    _err(lambda: compute_metrics(np.zeros(3), np.zeros(3), scores_kind="logits"),
         r"^targets: expected shape \(N, C\), got \(3,\)$")
    _err(lambda: compute_metrics(np.zeros((2, 3)), np.zeros((2, 4)), scores_kind="logits"),
         r"^scores: expected shape \(2, 3\) \(same as targets\), got \(2, 4\)$")
    _err(lambda: compute_metrics(np.zeros((2, 3)), np.zeros((2, 3)), scores_kind="logits", batch_size=0),
         r"^batch_size: expected a positive integer, got 0$")
    _err(lambda: compute_metrics(np.zeros((2, 3)), np.full((2, 3), 2.0), scores_kind="probabilities"),
         r"^scores: expected probabilities in \[0, 1\], got values in \[2, 2\]")


# ---------------------------------------------------------------------------------------------
# streaming threshold-free


def _realistic(rng, N, C, sep=1.5):
    prev = rng.uniform(0.02, 0.4, size=C)
    Y = (rng.random((N, C)) < prev).astype(np.uint8)
    logits = rng.standard_normal((N, C)) * 1.5 + np.where(Y == 1, sep, -sep)
    return Y, torch.sigmoid(torch.from_numpy(logits)).numpy().astype(np.float32)


def test_streaming_error_within_1e3_of_exact():
    rng = np.random.default_rng(21)
    for N, C, sep in ((20000, 8, 1.5), (5000, 5, 4.0), (3000, 4, 0.3)):
        Y, P = _realistic(rng, N, C, sep)
        ex = metrics_block(compute_metrics(Y, P, scores_kind="probabilities", threshold_free="exact"))
        st = metrics_block(compute_metrics(Y, P, scores_kind="probabilities", threshold_free="streaming",
                                           batch_size=977))
        worst = 0.0
        for k in ("mean_average_precision", "macro_auroc", "micro_average_precision", "micro_auroc"):
            worst = max(worst, abs(st["summary"][k] - ex["summary"][k]))
        for a, b in zip(st["per_class"], ex["per_class"]):
            worst = max(worst, abs(a["average_precision"] - b["average_precision"]), abs(a["auroc"] - b["auroc"]))
        assert 0 < worst <= 1e-3, worst  # binned (not identical) but within the documented bound
        for k in ("label_ranking_average_precision", "coverage_error", "label_ranking_loss"):
            assert st["summary"][k] == ex["summary"][k]  # ranking metrics stay exact when streaming
        assert st["summary"]["micro"] == ex["summary"]["micro"]


def test_streaming_is_exact_when_distinct_scores_fall_in_distinct_bins():
    rng = np.random.default_rng(4)
    levels = torch.sigmoid(torch.linspace(-6, 6, 9)).numpy().astype(np.float32)
    P = levels[rng.integers(0, 9, size=(400, 5))]
    Y = (rng.random((400, 5)) < 0.4).astype(np.uint8)
    st = metrics_block(compute_metrics(Y, P, scores_kind="probabilities", threshold_free="streaming"))
    assert_close(st, sklearn_reference(Y, P, 0.5, 2.0, 0.0), tol=1e-12)


def test_streaming_memory_is_independent_of_n():
    e = MultilabelEngine(4, scores="probabilities", threshold_free="streaming", bins=64)
    for _ in range(3):
        e.update(torch.rand(1000, 4), (torch.rand(1000, 4) < 0.5).int())
    sizes = [v.numel() for v in e.metric_state.values() if isinstance(v, torch.Tensor)]
    # histograms (2, C, bins) + per-bin min / max (C, bins) + tp/fp/fn/tn + 3 counters + sample sums
    # + weighted tp/fp/fn/tn (4, C), weighted per-sample fixed-point sums (2, 4 limbs, 20 values for ks 1,3,5), 1 counter
    assert sum(sizes) == 2 * 4 * 64 + 2 * 4 * 64 + 4 * 4 + 3 + 2 * 6 + 4 * 4 + 2 * 4 * 20 + 1
    assert not any(isinstance(v, list) for v in e.metric_state.values())


def test_exact_state_is_one_int32_key_per_value():
    e = MultilabelEngine(3, scores="probabilities")
    e.update(torch.rand(10, 3), (torch.rand(10, 3) < 0.5).int())
    e.update(torch.rand(5, 3, dtype=torch.float64), (torch.rand(5, 3) < 0.5).int())
    assert [(k.dtype, tuple(k.shape)) for k in e.keys] == [(torch.int32, (10, 3)), (torch.int64, (5, 3))]


def test_compute_is_cached_but_returns_independent_copies():
    e = MultilabelEngine(2, scores="probabilities")
    e.update(torch.tensor([[0.9, 0.1], [0.2, 0.8]]), torch.tensor([[1, 0], [0, 1]]))
    a = metrics_block(e.compute())
    a["summary"]["micro"]["f1"] = -1.0
    a["per_class"].clear()
    b = metrics_block(e.compute())
    assert b["summary"]["micro"]["f1"] == 1.0 and len(b["per_class"]) == 2
    e.update(torch.tensor([[0.9, 0.9]]), torch.tensor([[0, 0]]))  # a new update invalidates the cache
    assert metrics_block(e.compute())["summary"]["micro"]["precision"] == pytest.approx(0.5)
    e.reset()
    with pytest.raises(InputError, match="no samples"):
        e.compute()


def test_numpy_inputs_memmap_and_byte_order(tmp_path):
    rng = np.random.default_rng(8)
    Y = (rng.random((40, 3)) < 0.5).astype(np.uint8)
    P = rng.random((40, 3)).astype(np.float32)
    ref = metrics_block(compute_metrics(Y, P, scores_kind="probabilities"))
    np.save(tmp_path / "p.npy", P)
    mm = np.load(tmp_path / "p.npy", mmap_mode="r")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert metrics_block(compute_metrics(Y, mm, scores_kind="probabilities")) == ref
    assert metrics_block(compute_metrics(Y.astype(">i4"), P.astype(">f4"), scores_kind="probabilities")) == ref
    with pytest.raises(InputError, match=r"^scores: expected a numeric array, got dtype <U1$"):
        compute_metrics(Y, np.full((40, 3), "x"), scores_kind="probabilities")


def test_read_only_threshold_array_is_accepted_silently():
    Y = np.array([[1, 0], [0, 1]])
    P = np.array([[0.6, 0.4], [0.2, 0.3]], dtype=np.float32)
    thr = np.broadcast_to(np.float64(0.35), (2,))  # read-only view, as produced by np.broadcast_to
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = metrics_block(compute_metrics(Y, P, scores_kind="probabilities", threshold=thr))
    assert [c["tp"] for c in r["per_class"]] == [1, 0] and [c["fp"] for c in r["per_class"]] == [0, 1]
    assert [c["threshold"] for c in r["per_class"]] == [0.35, 0.35]


def test_scores_requiring_grad_are_accepted():
    logits = torch.randn(50, 3, requires_grad=True)
    Y = (torch.rand(50, 3) < 0.5).int()
    for mode in ("exact", "streaming"):
        e = MultilabelEngine(3, scores="logits", threshold_free=mode)
        e.update(logits * 2, Y)
        ref = MultilabelEngine(3, scores="logits", threshold_free=mode)
        ref.update((logits * 2).detach(), Y)
        assert metrics_block(e.compute()) == metrics_block(ref.compute())


# ---------------------------------------------------------------------------------------------
# hypothesis: shrinks a failure to a minimal example

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@st.composite
def _problems(draw):
    N = draw(st.integers(1, 12))
    C = draw(st.integers(1, 4))
    levels = draw(st.sampled_from([2, 3, 5, 1000]))  # few levels => many ties
    P = np.array(draw(st.lists(st.integers(0, levels), min_size=N * C, max_size=N * C)), dtype=np.float32)
    P = (P / levels).reshape(N, C).astype(np.float32)
    Y = np.array(draw(st.lists(st.integers(0, 1), min_size=N * C, max_size=N * C)), dtype=np.uint8).reshape(N, C)
    thr = draw(st.sampled_from([0.0, 0.5, 1.0, 1 / 3]))
    beta = draw(st.sampled_from([0.5, 1.0, 2.0]))
    zd = draw(st.sampled_from([0.0, 1.0]))
    batch = draw(st.integers(1, N))
    return Y, P, thr, beta, zd, batch


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_problems())
def test_hypothesis_matches_sklearn(problem):
    Y, P, thr, beta, zd, batch = problem
    got = metrics_block(compute_metrics(Y, P, scores_kind="probabilities", threshold=thr, beta=beta, zero_division=zd,
                                        batch_size=batch))
    assert_close(got, sklearn_reference(Y, P, thr, beta, zd))


def test_micro_in_value_buckets_equals_single_copy(monkeypatch):
    import evalkit.metrics.threshold_free as eng

    rng = np.random.default_rng(31)
    Y, P, _ = _case(rng, "ties", 500, 6)
    P[:250] = rng.random((250, 6)).astype(np.float32)
    want = metrics_block(compute_metrics(Y, P, scores_kind="probabilities"))
    monkeypatch.setattr(eng, "_MICRO_COPY", 100)  # force the bucketed path (N*C = 3000 keys)
    monkeypatch.setattr(eng, "_SORT_ELEMS", 1000)  # and several column blocks
    got = metrics_block(compute_metrics(Y, P, scores_kind="probabilities", batch_size=123))
    assert [c.pop("label") for c in got["per_class"]] == [c.pop("label") for c in want["per_class"]]
    assert_close(got, want, tol=1e-12)
    assert got["summary"]["micro_auroc"] == want["summary"]["micro_auroc"]


@pytest.mark.parametrize("mode", ["exact", "streaming"])
def test_column_major_batches_give_the_same_metrics_as_row_major(mode):
    rng = np.random.default_rng(9)
    P = rng.random((120, 5))
    Y = (rng.random((120, 5)) < 0.3).astype(np.int64)
    want = metrics_block(compute_metrics(Y, P, scores_kind="probabilities", threshold_free=mode))
    e = _engine(5, threshold_free=mode)
    e.update(torch.from_numpy(np.asfortranarray(P)), torch.from_numpy(np.asfortranarray(Y)))  # as the CSV reader yields
    assert metrics_block(e.compute()) == want
