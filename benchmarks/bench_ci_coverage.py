"""Coverage of evalkit's bootstrap intervals: do the 95% intervals cover the population value 95% of the time?

Usage::

    python -P benchmarks/bench_ci_coverage.py                 # 10^6-row population, 400 x 500 rows, R=1000
    python -P benchmarks/bench_ci_coverage.py --seeds 0-5                 # 6 x 400 test sets, per seed and pooled
    python -P benchmarks/bench_ci_coverage.py --reps 100 --resamples 200 --population 100000
    python -P benchmarks/bench_ci_coverage.py --method bca --reference 0  # BCa, without the ideal interval

A fixed model's scores and targets are simulated for a population (C labels, prevalences 10..40%,
per-label separation of the logits); its micro-F1, macro-F2 and mAP are the true values. Each
repetition draws a test set of ``--n`` rows from the population, computes the intervals
(:mod:`evalkit.stats.bootstrap`) and checks whether they contain the true value. Prints the
coverage per metric (goal: 93-97% for 400 repetitions; binomial s.e. ~1.1 points) and how often the
population value lay below / above the interval. Next to it, the coverage an ideal interval would have
on the very same test sets: estimate +- z times the true standard deviation of the estimate (measured
over ``--reference`` fresh test sets), so a low figure can be told apart into unlucky test sets (the ideal
one is low too) and a method that is off. With several ``--seeds`` (each its own population and test
sets) it also prints the pooled coverage with its binomial standard error.

The ideal interval also serves as a *control variate* (a standard Monte Carlo variance reduction; Owen,
*Monte Carlo theory, methods and examples*, 2013, ch. 8.9): the method's interval and the ideal one
miss on nearly the same test sets, so ``coverage - ideal coverage on the same 400 test sets + ideal
coverage over the ``--reference`` fresh test sets`` estimates the method's coverage probability with a
standard error of about 0.4 points instead of 1.1. The raw figure (the count over the 400 test sets) is
printed first and is the one the goal names; the adjusted one tells how much of a miss is the draw.
``tests/test_bootstrap_intervals.py`` runs a small version of :func:`coverage`.
"""

from __future__ import annotations

import argparse
import math
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
             level: float = 0.95, seed: int = 0, method: str = "percentile", misses: dict | None = None,
             reference: int = 0, ideal: dict | None = None, adjusted: dict | None = None) -> dict[str, float]:
    """Fraction of ``reps`` test sets of ``n`` rows whose interval covers the population value, per metric.

    ``misses`` (optional) gets ``{metric: [population value below the interval, above it]}`` counts;
    with ``reference`` > 0, ``ideal`` (optional) gets ``{metric: fraction}`` for the ideal interval on the
    same test sets (estimate +- z x the estimate's standard deviation over ``reference`` fresh test sets),
    and ``adjusted`` (optional) gets ``{metric: (coverage, standard error)}``: the control-variate estimate
    ``coverage - ideal on these test sets + ideal over the reference test sets`` (see the module text).
    """
    from scipy.stats import norm

    from evalkit.metrics import compute_metrics
    from evalkit.stats.bootstrap import BootstrapSpec, bootstrap_intervals

    Y, P = population(pop_n, C, seed)
    pop = compute_metrics(Y, P, scores_kind="probabilities", beta=2.0, threshold_free="exact")
    truth = {"micro.f1": pop.micro.f1, "macro.fbeta": pop.macro.fbeta, "mean_average_precision": pop.mean_average_precision}
    rng = np.random.default_rng([seed, 1])  # not seed + 1: that is the next seed's population stream
    base = seed * reps
    hits, near = dict.fromkeys(METRICS, 0), dict.fromkeys(METRICS, 0)
    differ = {k: [] for k in METRICS}  # per test set: covered by the method's interval - by the ideal one
    misses = {k: [0, 0] for k in METRICS} if misses is None else misses
    for k in METRICS:
        misses.setdefault(k, [0, 0])
    z = float(norm.ppf(0.5 + level / 2))
    sd, expected = _true_sd(Y, P, n, reference, seed, truth, z) if reference else ({}, {})
    for r in range(reps):
        st, points = _estimate(Y, P, rng.choice(pop_n, size=n, replace=False))
        ci = bootstrap_intervals(st, points, BootstrapSpec(level=level, resamples=resamples, seed=base + r,
                                                               method=method))
        for k in METRICS:
            covered = ci[k] is not None and ci[k][0] <= truth[k] <= ci[k][1]
            ideal_covered = bool(sd) and abs(points[k] - truth[k]) <= z * sd[k]
            hits[k] += covered
            near[k] += ideal_covered
            differ[k].append(int(covered) - int(ideal_covered))
            if ci[k] is not None:
                misses[k][0] += truth[k] < ci[k][0]
                misses[k][1] += truth[k] > ci[k][1]
    if ideal is not None and sd:
        ideal.update({k: near[k] / reps for k in METRICS})
    if adjusted is not None and sd:
        for k in METRICS:
            d = np.asarray(differ[k], dtype=float)
            se = math.sqrt(d.var(ddof=1) / reps + expected[k] * (1 - expected[k]) / reference)
            adjusted[k] = (float(d.mean() + expected[k]), se)
    return {k: hits[k] / reps for k in METRICS}


def _estimate(Y: np.ndarray, P: np.ndarray, idx: np.ndarray):
    """``(row statistics, {metric: estimate})`` of the test set ``idx``."""
    from evalkit.stats.rowstats import resampled_metrics, row_stats

    st = row_stats(Y[idx], P[idx], scores_kind="probabilities", thresholds=np.full(Y.shape[1], 0.5), beta=2.0)
    return st, {k: float(v[0]) for k, v in resampled_metrics(st, np.ones((1, idx.size)), "exact").items()}


def _true_sd(Y: np.ndarray, P: np.ndarray, n: int, reference: int, seed: int, truth: dict[str, float],
             z: float) -> tuple[dict[str, float], dict[str, float]]:
    """Over ``reference`` fresh test sets of ``n`` rows: each metric's standard deviation of the estimate,
    and the fraction of those test sets the ideal interval (estimate +- ``z`` x that s.d.) covers."""
    rng = np.random.default_rng([seed, 10_000])
    values = [_estimate(Y, P, rng.choice(len(Y), size=n, replace=False))[1] for _ in range(reference)]
    est = {k: np.array([v[k] for v in values]) for k in METRICS}
    sd = {k: float(np.std(est[k], ddof=1)) for k in METRICS}
    return sd, {k: float(np.mean(np.abs(est[k] - truth[k]) <= z * sd[k])) for k in METRICS}


def _seeds(text: str) -> list[int]:
    """``"0"``, ``"0,3"`` or ``"0-5"`` -> the seeds."""
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--population", type=int, default=1_000_000)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--method", choices=("percentile", "bca"), default="percentile")
    ap.add_argument("--seeds", "--seed", default="0", help="population and test-set draws: 0, 0,3 or 0-5")
    ap.add_argument("--reference", type=int, default=4000,
                    help="fresh test sets that measure each estimate's true s.d. for the ideal interval (0: skip)")
    a = ap.parse_args()
    seeds = _seeds(a.seeds)
    pooled, pooled_ideal = dict.fromkeys(METRICS, 0.0), dict.fromkeys(METRICS, 0.0)
    pooled_adj = {k: [0.0, 0.0] for k in METRICS}  # mean of the seeds' adjusted figures, its variance
    for seed in seeds:
        t = time.perf_counter()
        misses: dict = {}
        ideal: dict = {}
        adjusted: dict = {}
        cov = coverage(a.population, a.n, a.reps, a.resamples, seed=seed, method=a.method, misses=misses,
                       reference=a.reference, ideal=ideal, adjusted=adjusted)
        for k, v in cov.items():
            pooled[k] += v / len(seeds)
            pooled_ideal[k] += ideal.get(k, math.nan) / len(seeds)
            below, above = (100 * m / a.reps for m in misses[k])
            best = f"; ideal interval {100 * ideal[k]:5.1f}%" if ideal else ""
            print(f"{k:24s} coverage {100 * v:5.1f}%  (goal 93-97%; population value below {below:4.1f}%, "
                  f"above {above:4.1f}%{best})")
        for k, (adj, se) in adjusted.items():
            pooled_adj[k][0] += adj / len(seeds)
            pooled_adj[k][1] += (se / len(seeds)) ** 2
            print(f"{k:24s} adjusted {100 * adj:5.1f}% +- {100 * se:.1f} (s.e.; control variate: coverage "
                  f"{100 * cov[k]:.1f} - ideal here {100 * ideal[k]:.1f} + ideal over {a.reference} fresh test sets "
                  f"{100 * (adj - cov[k] + ideal[k]):.1f})")
        print(f"{a.method}, seed {seed}: {a.reps} repetitions x {a.resamples} resamples of {a.n} rows "
              f"in {time.perf_counter() - t:.0f} s")
    if len(seeds) > 1:
        total = a.reps * len(seeds)
        for k, v in pooled.items():
            se = 100 * math.sqrt(v * (1 - v) / total)
            best = f"; ideal interval {100 * pooled_ideal[k]:5.1f}%" if a.reference else ""
            adj = (f"; adjusted {100 * pooled_adj[k][0]:5.1f}% +- {100 * math.sqrt(pooled_adj[k][1]):.1f}"
                   if a.reference else "")
            print(f"{k:24s} pooled   {100 * v:5.1f}% +- {se:.1f} (s.e.) over {total} test sets, seeds {a.seeds}"
                  f"{best}{adj}")

if __name__ == "__main__":
    main()
