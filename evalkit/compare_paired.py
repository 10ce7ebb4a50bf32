"""Two runs on the same test rows, compared row by row: ``evalkit compare RUN_A RUN_B`` and the
``significant`` relative gates of ``evalkit evaluate`` (:mod:`evalkit.gates`).

Each run's kept scores (``scores.parquet``, :mod:`evalkit.scores_file`) are read back; the two
must cover the same rows (same digest, row ids, labels and targets), else the comparison is refused
(:class:`~evalkit.errors.InputError`, exit 2). Every metric comes from the one metric engine's
per-row statistics (:mod:`evalkit.stats.rowstats`); the difference ``B - A``, its percentile
interval and the two-sided bootstrap p-value from the paired bootstrap
(:func:`evalkit.stats.paired.paired_bootstraps`: both runs resampled on the same rows, each run
with its own thresholds); subset accuracy also gets McNemar's exact test
(:func:`evalkit.stats.paired.mcnemar_subset_accuracy`).
"""

from __future__ import annotations

import re

import numpy as np

from evalkit.errors import InputError

#: what ``compare RUN_A RUN_B`` shows without --metric (the grouped view's headline)
DEFAULT_METRICS = ("test/micro_f2", "test/macro_f2", "test/macro_map", "test/macro_auroc", "test/subset_accuracy",
                   "test/hamming_loss")
_SCALARS = {"subset_accuracy": "subset_accuracy", "hamming_loss": "hamming_loss", "macro_map": "mean_average_precision",
            "macro_auroc": "macro_auroc", "lrap": "label_ranking_average_precision"}
_AVERAGED = re.compile(r"^test/(micro|macro|weighted|samples)_(precision|recall|f1|f(\d+(?:\.\d+)?))$")
_RANKING = ("mean_average_precision", "macro_auroc", "label_ranking_average_precision")
TEST = "paired bootstrap over the test rows (percentile interval, two-sided p)"


def resampled_name(key: str, flag: str = "--metric") -> tuple[str, float]:
    """Tracked metric name -> ``(resampled name, beta)``: ``test/macro_f2 -> ("macro.fbeta", 2.0)``,
    ``test/macro_f1 -> ("macro.f1", 2.0)``, ``test/macro_map -> ("mean_average_precision", 2.0)``.

    Raises:
        InputError: a metric without per-row statistics (per-class keys, coverage error, ...).
    """
    m = _AVERAGED.match(key)
    if m and m[3]:
        beta = float(m[3])
        return (f"{m[1]}.f1", beta) if beta == 1 else (f"{m[1]}.fbeta", beta)
    if m:
        return f"{m[1]}.{m[2]}", 2.0
    if key.startswith("test/") and key[5:] in _SCALARS:
        return _SCALARS[key[5:]], 2.0
    raise InputError(f"{flag} {key}: cannot be compared row by row; expected test/<micro|macro|weighted|samples>_"
                     f"<precision|recall|f1|fBETA>, or one of {', '.join('test/' + k for k in _SCALARS)}")


def check_same_rows(a, b, name_a: str, name_b: str, digests=(None, None)) -> None:
    """Refuse two score sets (:class:`~evalkit.scores_file.ScoreSet`) of different test rows
    (``digests``: the runs' own test-data digests, checked too when both are known).

    Raises:
        InputError: one line naming both runs and what differs (digest, row count, row ids,
            labels, targets).
    """
    differ = [(da, db) for da, db in ((a.digest, b.digest), tuple(digests)) if da and db and da != db]
    what = None
    if differ:
        what = f"test-data digest {differ[0][0][:8]} vs {differ[0][1][:8]}"
    elif a.n_rows != b.n_rows:
        what = f"{a.n_rows} vs {b.n_rows} rows"
    elif a.labels != b.labels:
        what = f"labels {a.labels[:4]}... vs {b.labels[:4]}..."
    elif not np.array_equal(a.row_ids, b.row_ids):
        what = "row ids differ"
    elif not np.array_equal(a.targets, b.targets):
        what = "targets differ"
    if what:
        raise InputError(f"{name_b}: evaluated on other test rows than {name_a} ({what}); a paired comparison "
                         "needs two runs on the same rows")


def _decisions(s, where: str) -> np.ndarray:
    if s.thresholds is None:
        raise InputError(f"{where}: its thresholds are {s.threshold} (no per-label cut), so threshold-dependent "
                         "metrics cannot be recomputed; compare ranking metrics (test/macro_map, test/macro_auroc)")
    return s.thresholds


def paired_compare(a, b, metrics=DEFAULT_METRICS, *, spec=None, names=("RUN_A", "RUN_B"), flag: str = "--metric") -> list[dict]:
    """The paired comparison of score sets ``a`` and ``b`` (:class:`~evalkit.scores_file.ScoreSet`,
    same rows: :func:`check_same_rows` first) on tracked ``metrics``.

    Args:
        spec: :class:`~evalkit.stats.bootstrap.BootstrapSpec` (default 0.95, 1000 resamples, seed 0).
    Returns:
        One dict per metric: ``metric``, ``a``, ``b`` (observed values), ``difference`` (B - A),
        ``ci`` ``[low, high]`` of the difference (or None), ``p_value`` (two-sided, in (0, 1]),
        and for subset accuracy ``mcnemar`` (``a_only``, ``b_only``, ``p_value``, ``test``).
    Raises:
        InputError: a metric that cannot be recomputed (:func:`resampled_name`; threshold metrics
            of a top-k run).
    """
    from evalkit.stats.bootstrap import BootstrapSpec
    from evalkit.stats.paired import mcnemar_subset_accuracy, paired_bootstraps

    spec = spec or BootstrapSpec()
    wanted = {key: resampled_name(key, flag) for key in dict.fromkeys(metrics)}
    threshold_free = all(n in _RANKING for n, _ in wanted.values())
    ta, tb = (0.5, 0.5) if threshold_free else (_decisions(a, names[0]), _decisions(b, names[1]))
    out = {}
    for beta in sorted({beta for _, beta in wanted.values()}):
        keys = [k for k, (_, bt) in wanted.items() if bt == beta]
        res = paired_bootstraps(a.targets, b.probabilities, a.probabilities, [wanted[k][0] for k in keys],
                                threshold=tb, threshold_b=ta, beta=beta, spec=spec)  # B first: B - A
        for k in keys:
            r = res[wanted[k][0]]
            out[k] = {"metric": k, "a": r.b, "b": r.a, "difference": r.difference, "ci": r.ci, "p_value": r.p_value}
    if "test/subset_accuracy" in out:
        pa, pb = (np.asarray(s.probabilities, dtype=np.float64) >= t for s, t in ((a, ta), (b, tb)))
        out["test/subset_accuracy"]["mcnemar"] = mcnemar_subset_accuracy(a.targets, pa, pb)
    return [out[k] for k in wanted]


def compare_two_runs(tracking_uri: str, run_a: str, run_b: str, metrics=None, *, spec=None) -> dict:
    """The data behind ``evalkit compare RUN_A RUN_B``: both runs' kept scores, checked to be on the
    same rows, compared by :func:`paired_compare`.

    Returns:
        ``{"a": run info, "b": run info, "n_rows", "digest", "difference": "B - A", "test",
        "bootstrap": BootstrapSpec fields, "results": [...]}`` (run info: ``run_id``, ``run_name``,
        ``status``, ``digest``, ``params``).
    Raises:
        InputError: no such run, a run without ``scores.parquet``, runs on different rows, a metric
            that cannot be recomputed. InfraError: the store is unreachable.
    """
    import tempfile

    from evalkit.scores_file import read_scores
    from evalkit.stats.bootstrap import BootstrapSpec
    from evalkit.tracking.queries import run_scores

    spec = spec or BootstrapSpec()
    metrics = tuple(metrics or DEFAULT_METRICS)
    for key in metrics:  # before any download
        resampled_name(key)
    with tempfile.TemporaryDirectory() as tmp:
        runs = []
        for flag, ref in (("RUN_A", run_a), ("RUN_B", run_b)):
            info, path = run_scores(tracking_uri, ref, f"{tmp}/{flag}", flag=flag)
            runs.append((info, read_scores(path, f"{flag} {ref}")))
    (ia, a), (ib, b) = runs
    na, nb = f"RUN_A {ia['run_id'][:8]}", f"RUN_B {ib['run_id'][:8]}"
    check_same_rows(a, b, na, nb, (ia["digest"], ib["digest"]))
    results = paired_compare(a, b, metrics, spec=spec, names=(na, nb))
    return {"a": ia, "b": ib, "n_rows": a.n_rows, "digest": a.digest or ia["digest"], "difference": "B - A",
            "test": TEST, "bootstrap": spec.to_dict(), "results": results}
