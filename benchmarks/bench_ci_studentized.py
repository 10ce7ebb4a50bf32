"""What mAP's studentized interval adds to the cost of a report's intervals, where AP is resampled exactly.

Usage::

    python -P benchmarks/bench_ci_studentized.py              # 917 x 14 and 3,000 x 100, R = 1000
    python -P benchmarks/bench_ci_studentized.py --repeat 3

For each size, :func:`evalkit.stats.bootstrap.bootstrap_intervals` on simulated scores with the
studentized mAP interval (:mod:`evalkit.stats.studentized`) and without it (percentile for every
metric), alternately; prints the best wall and CPU seconds of each and their ratio. 3,000 x 100 at
R = 1000 is the largest size resampled exactly (``rowstats.EXACT_BUDGET``); larger test sets are
resampled to first order and keep the percentile interval, so they pay nothing.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def measure(N: int, C: int, repeat: int, resamples: int = 1000) -> dict[bool, tuple[float, float]]:
    """``{studentized: (best wall s, best CPU s)}`` of the intervals of an ``N x C`` report."""
    import evalkit.stats.bootstrap as bootstrap
    from evalkit.stats.rowstats import resampled_metrics, row_stats

    rng = np.random.default_rng(0)
    Y = (rng.random((N, C)) < 0.2).astype(np.uint8)
    P = np.clip(0.3 * Y + 0.7 * rng.random((N, C)), 0, 1)
    st = row_stats(Y, P, scores_kind="probabilities", thresholds=np.full(C, 0.5), beta=2.0)
    points = {k: float(v[0]) for k, v in resampled_metrics(st, np.ones((1, N)), "exact").items()}
    spec = bootstrap.BootstrapSpec(level=0.95, resamples=resamples, seed=0)
    original, best = bootstrap.studentizes, {False: (np.inf, np.inf), True: (np.inf, np.inf)}
    try:
        for _ in range(repeat):
            for on in (False, True):
                bootstrap.studentizes = original if on else (lambda spec, stats: False)
                t, c = time.perf_counter(), time.process_time()
                bootstrap.bootstrap_intervals(st, points, spec)
                wall, cpu = time.perf_counter() - t, time.process_time() - c
                best[on] = (min(best[on][0], wall), min(best[on][1], cpu))
    finally:
        bootstrap.studentizes = original
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    for N, C in ((917, 14), (3000, 100)):
        best = measure(N, C, a.repeat)
        (w0, c0), (w1, c1) = best[False], best[True]
        print(f"{N} x {C}, R=1000: percentile only {w0:.2f} s (CPU {c0:.2f} s); with mAP studentized {w1:.2f} s "
              f"(CPU {c1:.2f} s); ratio {w1 / w0:.2f}x wall, {c1 / c0:.2f}x CPU")


if __name__ == "__main__":
    main()
