"""The fast bootstrap paths: Poisson weights from the 16-bit table, row-block sums, linearised labels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evalkit.stats import linearized
from evalkit.stats.blocked import BLOCK, BlockSums, block_weights
from evalkit.stats.bootstrap import BootstrapSpec, bootstrap_intervals, poisson_table, resample_weights
from evalkit.stats.rowstats import resampled_metrics, row_stats


def test_the_poisson_table_gives_poisson_1_probabilities_within_2_to_the_minus_16():
    counts = np.bincount(poisson_table().astype(int))
    for k, c in enumerate(counts):
        assert abs(c / 65536 - math.exp(-1) / math.factorial(k)) <= 2**-16, k
    W = resample_weights(20_000, BootstrapSpec(resamples=50), 0)
    assert W.dtype == np.float32 and W.shape == (50, 20_000)
    assert W.mean() == pytest.approx(1.0, abs=0.005) and W.var() == pytest.approx(1.0, abs=0.01)


def test_block_weights_follow_the_row_index_not_the_batching():
    full = block_weights(7, 3, 40)
    assert full.shape == (40, BLOCK)
    assert np.array_equal(block_weights(7, 3, 40, 100), full[:, :100])
    assert not np.array_equal(block_weights(8, 3, 40), full) and not np.array_equal(block_weights(7, 4, 40), full)
    F = np.random.default_rng(0).random((2 * BLOCK + 123, 3)).astype(np.float32)
    whole, pieces = BlockSums(40, 7), BlockSums(40, 7)
    whole.add(F, 0)
    for lo in range(0, len(F), 5000):
        pieces.add(F[lo:lo + 5000], lo)
    assert pieces.sums == pytest.approx(whole.sums, rel=1e-6)


@pytest.fixture(scope="module")
def large():
    rng = np.random.default_rng(0)
    n, c = 20_000, 8
    Y = (rng.random((n, c)) < np.linspace(0.01, 0.3, c)).astype(np.uint8)
    P = np.clip(0.35 * Y + 0.65 * rng.random((n, c)), 0, 1).astype(np.float32)
    return Y, P, rng.random(n) * 2


@pytest.mark.parametrize("weighted", [False, True])
def test_linearised_labels_give_the_intervals_of_exact_counts(large, weighted, monkeypatch):
    Y, P, w = large
    st = row_stats(Y, P, scores_kind="probabilities", thresholds=np.full(Y.shape[1], 0.5), beta=2.0,
                   exact_order=False, sample_weight=w if weighted else None)
    pts = {k: float(v[0]) for k, v in resampled_metrics(st, np.ones((1, len(Y))), "linear").items()}
    spec = BootstrapSpec(resamples=300, ranking="linear")
    exact = bootstrap_intervals(st, pts, spec)
    monkeypatch.setattr(linearized, "EXACT_COUNTS_BUDGET", 0)
    monkeypatch.setattr(linearized, "LINEAR_MIN", 300)
    tp = (Y & (P >= 0.5)).sum(0)
    assert 0 < (tp >= 300).sum() < Y.shape[1]  # some labels linearised, the rarest kept exact
    lin = bootstrap_intervals(st, pts, spec)
    for k, (lo, hi) in exact.items():
        assert lin[k] == pytest.approx([lo, hi], abs=0.02 * (hi - lo) + 1e-4), k
        assert lo <= pts[k] <= hi, k
    assert lin["macro.fbeta"] != exact["macro.fbeta"]  # the linear path did run


def test_a_resample_without_any_row_is_left_out():
    st = row_stats(np.array([[1, 0]]), np.array([[0.9, 0.2]]), scores_kind="probabilities",
                   thresholds=np.full(2, 0.5), beta=2.0)
    ci = bootstrap_intervals(st, {"micro.f1": 1.0}, BootstrapSpec(resamples=200, scheme="poisson"))
    assert ci["micro.f1"] == [1.0, 1.0]  # ~37% of the resamples draw no row: they define nothing


def test_fbeta_gradients_of_a_huge_beta_are_recall_s_not_nan():
    """beta**2 * (1 + beta**2) overflowed to inf from beta ~1e77 (gradients NaN, intervals lost); above
    1e50 F-beta is recall to the last bit and takes recall's gradients, as beta = inf does."""
    observed = np.array([5.0, 3.0, 4.0, 6.0, 2.0, 7.0])  # tp | predicted | true of 2 labels
    linear = np.array([True, True])
    recall = linearized.gradients(observed, math.inf, linear)
    for beta in (1e60, 1e99, 1e200):
        np.testing.assert_array_equal(linearized.gradients(observed, beta, linear), recall)
    assert np.isfinite(linearized.gradients(observed, 1e40, linear)).all()
