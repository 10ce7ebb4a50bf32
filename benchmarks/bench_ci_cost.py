"""Cost of bootstrap confidence intervals: the full report with intervals vs without (goal: <= 3x).

Usage::

    python -P benchmarks/bench_ci_cost.py                    # N=200,000, C=100, R=1000
    python -P benchmarks/bench_ci_cost.py --n 20000 --resamples 200

Both reports come from :func:`evalkit.evaluate_scores` on the same seeded data (float32
probabilities of a fixed noisy model, ~5% prevalence), in this one process: the report without
intervals first, then with them; each timed best of ``--repeat`` (wall clock). Peak memory is the
process high-water mark (VmHWM, reset before each timed task via ``/proc/self/clear_refs``), shown
above the RSS with the inputs loaded. Prints one line per task (wall and CPU seconds of all threads)
and the ratios, with the machine's load (on shared cores the wall ratio moves with the neighbours).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def _rss(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _timed(fn, repeat: int) -> tuple[float, float, float]:
    """``(best wall seconds, CPU seconds of that repeat (all threads), peak MiB above the start)``."""
    best, cpu, peak = float("inf"), 0.0, 0.0
    for _ in range(repeat):
        base = _rss("VmRSS")
        _reset_peak()
        t, c = time.perf_counter(), time.process_time()
        fn()
        if time.perf_counter() - t < best:
            best, cpu = time.perf_counter() - t, time.process_time() - c
        peak = max(peak, _rss("VmHWM") - base)
    return best, cpu, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--c", type=int, default=100)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args()

    from evalkit import evaluate_scores

    rng = np.random.default_rng(0)
    Y = (rng.random((a.n, a.c)) < 0.05).astype(np.uint8)
    P = np.clip(0.35 * Y + 0.65 * rng.random((a.n, a.c)), 0, 1).astype(np.float32)
    evaluate_scores(Y[:500], probabilities=P[:500], ci=0.95, ci_resamples=20)  # imports, pools
    plain, plain_cpu, plain_mem = _timed(lambda: evaluate_scores(Y, probabilities=P, ci=None), a.repeat)
    print(f"report without intervals: {plain:7.2f} s  (CPU {plain_cpu:6.2f} s)  peak +{plain_mem:6.0f} MiB")
    with_ci, ci_cpu, ci_mem = _timed(lambda: evaluate_scores(Y, probabilities=P, ci=0.95, ci_resamples=a.resamples),
                                     a.repeat)
    print(f"report with intervals:    {with_ci:7.2f} s  (CPU {ci_cpu:6.2f} s)  peak +{ci_mem:6.0f} MiB  (R={a.resamples})")
    print(f"ratio with / without: {with_ci / plain:.2f}x wall, {ci_cpu / plain_cpu:.2f}x CPU  (N={a.n}, C={a.c}; "
          f"goal <= 3x; os.getloadavg() {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
