"""The studentized (bootstrap-t) interval of mAP (evalkit.stats.studentized)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from evalkit.stats.bootstrap import BootstrapSpec, bootstrap_distribution, bootstrap_intervals, interval
from evalkit.stats.rowstats import resampled_metrics, row_stats
from evalkit.stats.studentized import map_se, resampled_map_se, studentized_interval


def _data(n=120, C=4, seed=1, ties=False):
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, C)) < np.linspace(0.15, 0.5, C)).astype(np.uint8)
    P = np.clip(0.35 * Y + 0.65 * rng.random((n, C)), 0, 1)
    if ties:
        P[:, 1] = np.round(P[:, 1], 1)  # tie groups
    return Y, P


def _stats(Y, P, sw=None):
    return row_stats(Y, P, scores_kind="probabilities", thresholds=np.full(Y.shape[1], 0.5), beta=2.0, sample_weight=sw)


def _tied_map(Y, P, W):
    """mAP with every row weighted by its copy count (scikit-learn's weighted AP: copies tied)."""
    return np.mean([average_precision_score(Y[:, j], P[:, j], sample_weight=W) for j in range(Y.shape[1])])


@pytest.mark.parametrize("ties, weighted", [(False, False), (True, False), (True, True)])
def test_the_observed_standard_error_is_the_influence_of_each_row_on_map(ties, weighted):
    Y, P = _data(ties=ties)
    sw = np.random.default_rng(2).random(len(Y)) + 0.5 if weighted else None
    st = _stats(Y, P, sw)
    w = np.ones(len(Y)) if sw is None else sw
    # the engine's influence is per unit of sample weight; a copy of row i carries w_i of it
    assert map_se(st, np.ones((1, len(Y))))[0] == pytest.approx(np.sqrt(np.sum((w * st.ranking["ap_inf"]) ** 2)),
                                                                rel=1e-5)  # float32 sums


@pytest.mark.parametrize("ties", [False, True])
def test_a_resamples_standard_error_uses_that_resamples_own_derivatives(ties):
    """se*^2 = sum_i W_i G_i^2 with G_i = d mAP / d W_i at the resample W, checked by finite differences
    of scikit-learn's weighted AP (copies as weights) row by row."""
    Y, P = _data(n=60, ties=ties)
    st = _stats(Y, P)
    W = np.random.default_rng(4).poisson(1.0, size=len(Y)).astype(np.float64)
    eps = 1e-6
    base = _tied_map(Y, P, W)
    G = np.array([(_tied_map(Y, P, W + eps * (np.arange(len(Y)) == i)) - base) / eps for i in range(len(Y))])
    assert map_se(st, W[None, :])[0] == pytest.approx(np.sqrt(np.sum(W * G**2)), rel=1e-4)


def test_the_interval_maps_the_t_quantiles_back_with_the_observed_standard_error():
    rng = np.random.default_rng(0)
    values, se_star = 0.8 + 0.02 * rng.standard_normal(1000), 0.02 * (1 + 0.2 * rng.random(1000))
    t = (values - 0.8) / se_star
    lo, hi = studentized_interval(values, 0.8, se_star, 0.025, 0.9)
    assert lo == pytest.approx(0.8 - np.quantile(t, 0.95) * 0.025, abs=1e-15)
    assert hi == pytest.approx(0.8 - np.quantile(t, 0.05) * 0.025, abs=1e-15)
    assert studentized_interval(values, 0.999, se_star, 0.5, 0.95)[1] == 1.0  # clipped to [0, 1]
    assert studentized_interval(values, 0.8, se_star, 0.0, 0.95) is None  # no spread: the caller keeps percentile
    assert studentized_interval(values[:5], 0.8, se_star[:5], 0.02, 0.95) is None


def test_report_intervals_use_it_for_map_only_and_only_for_percentile_with_exact_ranking():
    Y, P = _data(n=300, C=5)
    st = _stats(Y, P)
    points = {k: float(v[0]) for k, v in resampled_metrics(st, np.ones((1, len(Y))), "exact").items()}
    spec = BootstrapSpec(level=0.95, resamples=200, seed=3)
    got = bootstrap_intervals(st, points, spec)
    dist = bootstrap_distribution(st, spec)
    from evalkit.stats.bootstrap import CHUNK, resample_weights
    from evalkit.stats.blocked import poisson_weights

    pw = poisson_weights(3, 200, len(Y), np.uint8)
    se_star, se = resampled_map_se(st, -(-200 // CHUNK), lambda c: resample_weights(len(Y), spec, c, pw))
    m = "mean_average_precision"
    assert got[m] == studentized_interval(dist[m], points[m], se_star, se, 0.95)
    assert got[m] != interval(dist[m], points[m], spec)  # not the percentile interval
    for k in ("macro_auroc", "micro.f1", "macro.fbeta"):
        assert got[k] == interval(dist[k], points[k], spec)
    linear = bootstrap_intervals(st, points, BootstrapSpec(level=0.95, resamples=200, seed=3, ranking="linear"))
    lin_dist = bootstrap_distribution(st, BootstrapSpec(level=0.95, resamples=200, seed=3, ranking="linear"))
    assert linear[m] == interval(lin_dist[m], points[m], spec)
    # the bootstrap's spread and the observed standard error agree (the delta method)
    assert np.nanstd(dist[m]) == pytest.approx(se, rel=0.15)
