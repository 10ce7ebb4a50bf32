"""Private kernels of the metric engine: sort-key statistics against scikit-learn and each other."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from evalkit.metrics import _kernels as K


def _keys(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    it = np.int32 if p.dtype == np.float32 else np.int64
    return (p.view(it) << 1) | t.astype(it)


def _data(rng, n, dtype, tied):
    if tied:
        p = (rng.integers(0, rng.integers(1, 40), size=n) / 40).astype(dtype)
    else:
        p = rng.random(n).astype(dtype)
    return p, (rng.random(n) < rng.uniform(0.05, 0.95)).astype(np.int64)


def test_ranked_1d_matches_sklearn_ap_and_auroc():
    rng = np.random.default_rng(0)
    for trial in range(60):
        n = int(rng.integers(1, 400))
        p, t = _data(rng, n, (np.float32, np.float64)[trial % 2], tied=trial % 3 == 0)
        P, ap_sum, gt, lt, _ = K.ranked_1d(np.sort(_keys(p, t)), chunk=int(rng.integers(1, 50)))
        ap, auc = K.finish_ap_auroc(np.array([P]), np.array([n - P]), np.array([ap_sum]), np.array([gt]),
                                    np.array([lt]))
        assert P == t.sum()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if P:
                assert abs(ap[0] - average_precision_score(t, p)) < 1e-12
            if 0 < P < n:
                assert abs(auc[0] - roc_auc_score(t, p)) < 1e-12
            else:
                assert np.isnan(auc[0])


def test_long_tie_groups_fall_back_to_binary_search():
    p = np.repeat(np.array([0.1, 0.5, 0.9], dtype=np.float32), 50)  # groups of 50 > the walk limit
    t = np.tile([1, 0], 75)
    P, ap_sum, gt, lt, min_a = K.ranked_1d(np.sort(_keys(p, t)))
    ap, auc = K.finish_ap_auroc(np.array([P]), np.array([150 - P]), np.array([ap_sum]), np.array([gt]),
                                np.array([lt]))
    assert abs(ap[0] - average_precision_score(t, p)) < 1e-12
    assert abs(auc[0] - roc_auc_score(t, p)) < 1e-12
    assert min_a == 0


def test_bucketed_micro_equals_one_sorted_copy():
    rng = np.random.default_rng(1)
    for trial in range(30):
        n = int(rng.integers(1, 5000))
        p, t = _data(rng, n, (np.float32, np.float64)[trial % 2], tied=trial % 3 != 0)
        k = _keys(p, t)
        ref = K.ranked_1d(np.sort(k))
        pieces = [k[: n // 3].reshape(-1, 1), k[n // 3:]]
        L, P, ap, gt, lt = K.ranked_pieces(pieces, int(t.sum()), bucket=int(rng.integers(1, 600)))
        assert (L, P, gt, lt) == (n, ref[0], ref[2], ref[3])
        assert abs(ap - ref[1]) <= 1e-9 * max(1.0, ref[1])


def test_ranked_groups_single_valued_bins_are_exact_ties():
    rng = np.random.default_rng(2)
    levels = np.linspace(0.05, 0.95, 12)
    idx = rng.integers(0, 12, size=3000)
    t = (rng.random(3000) < 0.1 + 0.06 * idx).astype(np.int64)
    pos = np.bincount(idx, weights=t, minlength=12).astype(np.int64)[None]
    neg = np.bincount(idx, weights=1 - t, minlength=12).astype(np.int64)[None]
    ap, auc = K.finish_ap_auroc(*K.ranked_groups(pos, neg, single=np.ones((1, 12), dtype=bool)))
    assert abs(ap[0] - average_precision_score(t, levels[idx])) < 1e-12
    assert abs(auc[0] - roc_auc_score(t, levels[idx])) < 1e-12


def test_fixed_point_sums_are_order_independent():
    rng = np.random.default_rng(3)
    v = rng.random(10001)
    hi, lo = K.to_fixed(v)
    parts = [K.to_fixed(x) for x in np.array_split(rng.permutation(v), 7)]
    assert (sum(h for h, _ in parts), sum(low for _, low in parts)) == (hi, lo)
    assert abs(K.from_fixed(hi, lo) - v.sum()) < 1e-9


def test_ranked_rows_float64_equals_per_row_scan():
    rng = np.random.default_rng(4)
    for tied in (False, True):
        p, t = _data(rng, 300 * 7, np.float64, tied)
        keys = _keys(p, t).reshape(300, 7)
        P, ap, gt, min_a, lt = K.ranked_rows(keys, chunk_elems=100)
        for i in range(300):
            ref = K.ranked_1d(np.sort(keys[i]))
            assert (P[i], gt[i], lt[i], min_a[i]) == (ref[0], ref[2], ref[3], ref[4])
            assert abs(ap[i] - ref[1]) < 1e-12
