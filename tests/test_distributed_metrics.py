"""MultilabelEngine across processes (gloo, CPU): the synced result equals the single-process one."""

from __future__ import annotations

import os
import pickle
import socket
import tempfile

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from evalkit.metrics import MultilabelEngine, shard_range, shard_rows
from evalkit.report import metrics_block

N, C = 103, 5


def _data():
    rng = np.random.default_rng(0)
    P = rng.random((N, C)).astype(np.float32)
    P[:20] = np.round(P[:20] * 4) / 4  # ties
    Y = (rng.random((N, C)) < 0.35).astype(np.uint8)
    Y[:, 0] = 0  # a label without positives
    return P, Y


# (name, threshold_free, rows per rank (None = shard_range), rank 1 calls update with zero rows?, float64 on rank 0?)
SCENARIOS = [
    ("shard_range exact", "exact", None, True, False),
    ("shard_range streaming", "streaming", None, True, False),
    ("shard_range none", "none", None, True, False),
    ("empty rank 1 never updates (exact)", "exact", (N, 0), False, False),
    ("empty rank 1 updates with 0 rows (exact)", "exact", (N, 0), True, False),
    ("empty rank 0 (exact)", "exact", (0, N), False, False),
    ("empty rank 1 (streaming)", "streaming", (N, 0), False, False),
    ("uneven 90/13, float64 on rank 0", "exact", (90, 13), True, True),
    ("weighted shard_range exact", "exact", None, True, False),
    ("weighted empty rank 1 (exact)", "exact", (N, 0), False, False),
    ("weighted shard_range none", "none", None, True, False),
]


def _weights(name, a, b):
    """Sample weights of rows a..b for the "weighted" scenarios (None otherwise)."""
    if not name.startswith("weighted"):
        return None
    return np.random.default_rng(1).random(N)[a:b] * 3


def _bounds(rows, rank):
    if rows is None:
        r = shard_range(N, 2, rank)
        return r.start, r.stop
    start = sum(rows[:rank])
    return start, start + rows[rank]


def _run(P, Y, mode, parts, f64_first=False, name=""):
    e = MultilabelEngine(C, scores="probabilities", threshold=0.4, threshold_free=mode)
    for i, (a, b) in enumerate(parts):
        p = torch.from_numpy(P[a:b])
        if f64_first and i == 0:
            p = p.double()
        e.update(p, torch.from_numpy(Y[a:b]), _weights(name, a, b))
    return metrics_block(e.compute())


def _worker(rank, world, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        P, Y = _data()
        results = {}
        for name, mode, rows, update_empty, f64 in SCENARIOS:
            a, b = _bounds(rows, rank)
            e = MultilabelEngine(C, scores="probabilities", threshold=0.4, threshold_free=mode)
            if b > a or update_empty:
                p = torch.from_numpy(P[a:b])
                if f64 and rank == 0:
                    p = p.double()
                e.update(p, torch.from_numpy(Y[a:b]), _weights(name, a, b))
            results[name] = metrics_block(e.compute())
        # shard_rows uses the initialised process group
        results["shard_rows"] = [len(x) for x in shard_rows(P, Y)]
        with open(os.path.join(out_dir, f"rank{rank}.pkl"), "wb") as f:
            pickle.dump(results, f)
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not available")
def test_synced_result_equals_single_process():
    P, Y = _data()
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_worker, args=(2, os.path.join(tmp, "init"), tmp), nprocs=2, join=True)
        got = [pickle.load(open(os.path.join(tmp, f"rank{r}.pkl"), "rb")) for r in range(2)]
    for name, mode, rows, _, f64 in SCENARIOS:
        parts = [_bounds(rows, r) for r in range(2)]
        want = _run(P, Y, mode, parts, f64_first=f64, name=name)
        assert got[0][name] == want, name  # exactly equal, every float
        assert got[1][name] == want, name
    assert got[0]["shard_rows"] == [52, 52] and got[1]["shard_rows"] == [51, 51]
    # and the single-process result itself is right: 103 rows, label 0 never true
    ref = _run(P, Y, "exact", [(0, N)])
    assert ref["per_class"][0]["support"] == 0 and ref["per_class"][0]["auroc"] is None
    assert sum(c["tp"] + c["fn"] for c in ref["per_class"]) == int(Y.sum())


def test_shard_range_covers_rows_without_padding():
    for n in (0, 1, 2, 5, 10, 103):
        for world in (1, 2, 3, 4, 7):
            ranges = [shard_range(n, world, r) for r in range(world)]
            assert [i for r in ranges for i in r] == list(range(n))  # disjoint, ordered, complete
            sizes = [len(r) for r in ranges]
            assert max(sizes) - min(sizes) <= 1
    assert [len(shard_range(1, 3, r)) for r in range(3)] == [1, 0, 0]  # ranks may get nothing
    with pytest.raises(ValueError, match="0 <= rank < world_size"):
        shard_range(10, 2, 2)
    a = np.arange(10)
    assert shard_rows(a, world_size=3, rank=2).tolist() == [7, 8, 9]
    x, y = shard_rows(a, a * 2, world_size=3, rank=0)
    assert x.tolist() == [0, 1, 2, 3] and y.tolist() == [0, 2, 4, 6]
