"""A small private thread pool for the engine's numpy kernels (sorts and binary searches release the GIL).

Only numpy work runs here: torch ops stay in the calling thread with torch's own intra-op
threads, and nothing here changes process-wide torch settings.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

THREADS = max(1, min(2, os.cpu_count() or 1))
"""Worker threads of the pool (at most 2: the kernels are memory-bound beyond that)."""

_POOL: ThreadPoolExecutor | None = None


class _Done:
    """An already computed result with the ``Future.result()`` interface."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def result(self) -> Any:
        return self.value


def submit(fn: Callable, *args: Any) -> Future | _Done:
    """Run ``fn(*args)`` on the shared pool; inline (an already completed result) on a single CPU.

    Returns an object with ``result()`` (re-raising ``fn``'s exception).
    """
    global _POOL
    if THREADS <= 1:
        return _Done(fn(*args))
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="evalkit-metrics")
    return _POOL.submit(fn, *args)


def _forget_pool() -> None:  # a forked child does not inherit the pool's threads
    global _POOL
    _POOL = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)
