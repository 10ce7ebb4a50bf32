"""Memory and time of a streaming evaluation (``evalkit evaluate --predictions``) with and without intervals.

Usage::

    python -P benchmarks/bench_ci_streaming.py                  # 1,000,000 rows x 20 labels, R = 1000
    python -P benchmarks/bench_ci_streaming.py --n 200000 --c 50
    python -P benchmarks/bench_ci_streaming.py --n 200000 --threshold-free exact   # mAP / AUROC intervals too

Writes a seeded predictions file (``.npz``: targets uint8, probabilities float32) to a temporary
folder, then runs ``evalkit evaluate --predictions FILE --no-track --threshold-free MODE`` (default
``streaming``: O(C x bins) memory; ``exact`` keeps a sort key per row and label and adds mAP / macro
AUROC intervals) in a
child process twice, ``--ci 0`` and the default (``--ci 0.95``, 1000 resamples), and prints each
one's wall time and peak resident memory (the child's own ``ru_maxrss``, ``os.wait4``) and the ratios.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _write(path: Path, n: int, c: int) -> None:
    rng = np.random.default_rng(0)
    Y = (rng.random((n, c), dtype=np.float32) < 0.1).astype(np.uint8)
    P = np.clip(0.35 * Y + 0.65 * rng.random((n, c), dtype=np.float32), 0, 1).astype(np.float32)
    np.savez(path, targets=Y, probabilities=P)


def _evaluate(path: Path, ci: str, folder: str, mode: str = "streaming") -> tuple[float, float]:
    """``(wall seconds, peak RSS MiB)`` of one ``evalkit evaluate`` child process (its own rusage)."""
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-P", "-m", "evalkit", "evaluate", "--predictions", str(path),
                             "--no-track", "--threshold-free", mode, "--ci", ci, "-o", f"r{ci}.json", "--force"],
                            cwd=folder, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"evalkit evaluate --ci {ci} failed with exit {proc.returncode}")
    return time.perf_counter() - t, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--c", type=int, default=20)
    ap.add_argument("--threshold-free", dest="mode", choices=("streaming", "exact"), default="streaming")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "predictions.npz"
        _write(path, a.n, a.c)
        off, off_mem = _evaluate(path, "0", d, a.mode)
        print(f"--ci 0:    {off:7.1f} s  peak {off_mem:7.0f} MiB")
        on, on_mem = _evaluate(path, "0.95", d, a.mode)
        print(f"--ci 0.95: {on:7.1f} s  peak {on_mem:7.0f} MiB  (R=1000)")
        print(f"ratio: {on / off:.2f}x time, {on_mem / off_mem:.2f}x peak memory (N={a.n}, C={a.c}, {a.mode}; "
              f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
