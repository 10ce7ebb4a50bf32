"""Coverage of evalkit's bootstrap intervals: do the 95% intervals cover the population value 95% of the time?

Usage::

    python -P benchmarks/bench_ci_coverage.py                 # 10^6-row population, 400 x 500 rows, R=1000
    python -P benchmarks/bench_ci_coverage.py --reps 100 --resamples 200 --population 100000

A fixed model's scores and targets are simulated for a population (C labels, prevalences 10..40%,
per-label separation of the logits); its micro-F1, macro-F2 and mAP are the true values. Each
repetition draws a test set of ``--n`` rows from the population, computes the intervals
(:mod:`evalkit.stats.bootstrap`) and checks whether they contain the true value. Prints the
coverage per metric (goal: 93-97% for 400 repetitions; binomial s.e. ~1.1 points).
``tests/test_bootstrap_intervals.py`` runs a small version of :func:`coverage`.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

METRICS = ("micro.f1", "macro.fbeta", "mean_average_precision")


def population(n: int, C: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(targets uint8 (n, C), probabilities float32 (n, C))`` of a fixed noisy model."""
    rng = np.random.default_rng(seed)
    prev = np.linspace(0.1, 0.4, C)
    sep = np.linspace(0.8, 2.0, C)
    Y = (rng.random((n, C)) < prev).astype(np.uint8)
    logits = sep * (2.0 * Y - 1) + rng.standard_normal((n, C)) - 0.5
    return Y, (1 / (1 + np.exp(-logits))).astype(np.float32)


def coverage(pop_n: int = 1_000_000, n: int = 500, reps: int = 400, resamples: int = 1000, C: int = 10,
             level: float = 0.95, seed: int = 0, method: str = "percentile") -> dict[str, float]:
    """Fraction of ``reps`` test sets of ``n`` rows whose interval covers the population value, per metric."""
    from evalkit.metrics import compute_metrics
    from evalkit.stats.bootstrap import BootstrapSpec, bootstrap_intervals
    from evalkit.stats.rowstats import resampled_metrics, row_stats

    Y, P = population(pop_n, C, seed)
    pop = compute_metrics(Y, P, scores_kind="probabilities", beta=2.0, threshold_free="exact")
    truth = {"micro.f1": pop.micro.f1, "macro.fbeta": pop.macro.fbeta, "mean_average_precision": pop.mean_average_precision}
    rng = np.random.default_rng(seed + 1)
    base = seed * reps
    hits = dict.fromkeys(METRICS, 0)
    for r in range(reps):
        idx = rng.choice(pop_n, size=n, replace=False)
        st = row_stats(Y[idx], P[idx], scores_kind="probabilities", thresholds=np.full(C, 0.5), beta=2.0)
        points = {k: float(v[0]) for k, v in resampled_metrics(st, np.ones((1, n)), "exact").items()}
        ci = bootstrap_intervals(st, points, BootstrapSpec(level=level, resamples=resamples, seed=base + r,
                                                               method=method))
        for k in METRICS:
            hits[k] += ci[k] is not None and ci[k][0] <= truth[k] <= ci[k][1]
    return {k: hits[k] / reps for k in METRICS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--population", type=int, default=1_000_000)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--method", choices=("percentile", "bca"), default="percentile")
    ap.add_argument("--seed", type=int, default=0, help="population and test-set draws")
    a = ap.parse_args()
    t = time.perf_counter()
    cov = coverage(a.population, a.n, a.reps, a.resamples, seed=a.seed, method=a.method)
    for k, v in cov.items():
        print(f"{k:24s} coverage {100 * v:5.1f}%  (goal 93-97%)")
    print(f"{a.method}, seed {a.seed}: {a.reps} repetitions x {a.resamples} resamples of {a.n} rows "
          f"in {time.perf_counter() - t:.0f} s")


if __name__ == "__main__":
    main()
