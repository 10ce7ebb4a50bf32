"""Sharding rows across processes without padding or duplicating samples.

``torch.utils.data.DistributedSampler`` pads the last shard by repeating samples (or drops them),
which biases metrics. Here each rank gets one contiguous range; sizes differ by at most one row
and a rank may get zero rows. :class:`~evalkit.metrics.MultilabelEngine` handles empty ranks, and
its synced ``compute()`` equals the single-process result exactly.
"""

from __future__ import annotations


def shard_range(n: int, world_size: int, rank: int) -> range:
    """Contiguous row range of ``rank`` among ``world_size`` ranks for ``n`` rows.

    The first ``n % world_size`` ranks get ``n // world_size + 1`` rows, the others
    ``n // world_size`` (possibly 0). The ranges are disjoint and cover ``0 .. n - 1`` in order.

    Raises:
        ValueError: ``n < 0``, ``world_size < 1`` or ``rank`` outside ``0 .. world_size - 1``.
    """
    if n < 0 or world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"shard_range: need n >= 0, world_size >= 1, 0 <= rank < world_size; "
                         f"got n={n}, world_size={world_size}, rank={rank}")
    q, r = divmod(n, world_size)
    start = rank * q + min(rank, r)
    return range(start, start + q + (1 if rank < r else 0))


def shard_rows(*arrays, world_size: int | None = None, rank: int | None = None):
    """Slice ``arrays`` (same first dimension N) to this rank's contiguous shard.

    ``world_size`` / ``rank`` default to ``torch.distributed``'s when it is initialised, else 1 / 0.
    Returns one slice (a view, no copy) per array; a tuple when several arrays are given.
    """
    if world_size is None or rank is None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            world_size, rank = dist.get_world_size(), dist.get_rank()
        else:
            world_size, rank = 1, 0
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError("shard_rows: arrays must have the same number of rows")
    r = shard_range(n, world_size, rank)
    out = tuple(a[r.start:r.stop] for a in arrays)
    return out[0] if len(out) == 1 else out
