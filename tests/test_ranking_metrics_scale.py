"""Threshold-free metrics rank the scores as given: scaling logits (even far past float32 sigmoid
saturation) changes no ranking metric, and every value equals scikit-learn's on the logits."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    average_precision_score,
    coverage_error,
    label_ranking_average_precision_score,
    label_ranking_loss,
    roc_auc_score,
)

from evalkit.metrics import compute_metrics

TOL = 1e-12


def _ranking(m) -> dict[str, float]:
    return {"map": m.mean_average_precision, "auroc": m.macro_auroc, "lrap": m.label_ranking_average_precision,
            "coverage": m.coverage_error, "rloss": m.label_ranking_loss}


def _sklearn(Y: np.ndarray, S: np.ndarray) -> dict[str, float]:
    S = S.astype(np.float64)
    pos = Y.sum(axis=0) > 0
    both = pos & (Y.sum(axis=0) < Y.shape[0])
    return {"map": float(np.mean([average_precision_score(Y[:, j], S[:, j]) for j in np.flatnonzero(pos)])),
            "auroc": float(np.mean([roc_auc_score(Y[:, j], S[:, j]) for j in np.flatnonzero(both)])),
            "lrap": label_ranking_average_precision_score(Y, S), "coverage": coverage_error(Y, S),
            "rloss": label_ranking_loss(Y, S)}


def _data(seed: int, n: int, c: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, c)) < 0.35).astype(np.int64)
    Y[0, :] = 1  # every label has a positive ...
    Y[1, :] = 0  # ... and a negative
    logits = rng.standard_normal((n, c)) * 3 + 2 * Y
    return Y, logits.astype(dtype)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(4, 60), c=st.integers(2, 7),
       scale=st.floats(1e-3, 1e3, allow_nan=False, allow_infinity=False),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_ranking_metrics_of_scaled_logits_equal_sklearn_on_the_logits(seed, n, c, scale, dtype):
    Y, logits = _data(seed, n, c, dtype)
    scaled = (logits * dtype(scale)).astype(dtype)
    base = _ranking(compute_metrics(Y, logits, scores_kind="logits"))
    got = _ranking(compute_metrics(Y, scaled, scores_kind="logits"))
    want = _sklearn(Y, scaled)
    for k in want:
        assert got[k] == pytest.approx(want[k], abs=TOL), k
        if dtype is np.float64 or np.array_equal(np.argsort(logits, axis=None, kind="stable"),
                                                  np.argsort(scaled, axis=None, kind="stable")):
            assert got[k] == pytest.approx(base[k], abs=TOL), k  # same order of the scores: same value


def test_logits_beyond_float32_sigmoid_saturation_keep_their_order():
    Y, logits = _data(7, 400, 5, np.float32)
    saturating = logits * np.float32(20)  # most |logits| > 17: float32 sigmoid gives exactly 0 or 1
    assert (np.abs(saturating) > 17).mean() > 0.5
    base = _ranking(compute_metrics(Y, logits, scores_kind="logits"))
    got = _ranking(compute_metrics(Y, saturating, scores_kind="logits"))
    assert got == pytest.approx(base, abs=TOL)
    assert got == pytest.approx(_sklearn(Y, saturating), abs=TOL)
    m = compute_metrics(Y, saturating, scores_kind="logits")
    for j in range(5):  # per-label AP / AUROC and the micro averages too
        assert m.average_precision[j] == pytest.approx(average_precision_score(Y[:, j], saturating[:, j]), abs=TOL)
        assert m.auroc[j] == pytest.approx(roc_auc_score(Y[:, j], saturating[:, j]), abs=TOL)
    assert m.micro_average_precision == pytest.approx(average_precision_score(Y.ravel(), saturating.ravel()), abs=TOL)
    assert m.micro_auroc == pytest.approx(roc_auc_score(Y.ravel(), saturating.ravel()), abs=TOL)


def test_tiny_and_signed_zero_logits_rank_like_sklearn():
    Y = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]])
    S = np.array([[1e-30, 0.0, -0.0], [-1e-30, 1e-45, 0.0], [5e-70, -5e-70, 1e-70], [0.0, -0.0, 1e3]])
    got = _ranking(compute_metrics(Y, S, scores_kind="logits"))
    assert got == pytest.approx(_sklearn(Y, S), abs=TOL)


def test_logits_batched_and_whole_give_identical_ranking_metrics():
    Y, logits = _data(3, 200, 4, np.float32)
    whole = compute_metrics(Y, logits * 50, scores_kind="logits")
    batched = compute_metrics(Y, logits * 50, scores_kind="logits", batch_size=37)
    assert _ranking(batched) == _ranking(whole)
    assert np.array_equal(batched.average_precision, whole.average_precision)


def test_evaluate_scores_with_logits_times_20_reports_the_same_map():
    from evalkit import evaluate_scores

    Y, logits = _data(11, 300, 6, np.float32)
    one = evaluate_scores(Y, logits=logits)["summary"]
    twenty = evaluate_scores(Y, logits=logits * np.float32(20))["summary"]
    want = _sklearn(Y, logits)["map"]
    assert one["mean_average_precision"] == pytest.approx(want, abs=TOL)
    assert twenty["mean_average_precision"] == pytest.approx(want, abs=TOL)
    assert twenty["label_ranking_average_precision"] == pytest.approx(one["label_ranking_average_precision"], abs=TOL)


def test_cli_evaluate_predictions_with_logits_times_20_reports_the_same_map(tmp_path, cli):
    Y, logits = _data(5, 300, 6, np.float32)
    maps = []
    for k in (1, 20):
        path = tmp_path / f"pred{k}.npz"
        np.savez(path, targets=Y.astype(np.uint8), logits=logits * np.float32(k))
        out = tmp_path / f"report{k}.json"
        result = cli("evaluate", "--predictions", path, "--output", out, "--no-track")
        assert result.exit_code == 0, result.output
        maps.append(json.loads(out.read_text())["summary"]["mean_average_precision"])
    assert maps[0] == pytest.approx(_sklearn(Y, logits)["map"], abs=TOL)
    assert maps[1] == pytest.approx(maps[0], abs=TOL)


@pytest.mark.parametrize("kind", ["logits", "probabilities"])
def test_a_label_without_positives_gives_no_runtime_warning(kind):
    Y = np.zeros((30, 3), dtype=np.int64)
    Y[::3, 0] = 1
    S = np.random.default_rng(0).random((30, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = compute_metrics(Y, S, scores_kind=kind)
    assert m.average_precision[1] == 0.0 and np.isnan(m.auroc[1])
    assert m.labels_without_positives == 2
