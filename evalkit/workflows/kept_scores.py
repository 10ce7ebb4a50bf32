"""The scores an ``evalkit evaluate`` job keeps: its own ``scores.parquet`` (logged with the run
unless ``--no-log-scores``) and, for ``METRIC=significant`` relative gates, the baseline run's, read
back to compare the two row by row (:mod:`evalkit.compare_paired`)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from evalkit.config import EvaluateJobConfig


#: paired resamples of a ``significant`` gate; its p-value is at least 2 / (R + 1) (two-sided, the
#: observed data counted: :func:`evalkit.stats.paired.paired_bootstraps`)
GATE_RESAMPLES = 1000
MIN_GATE_P = 2 / (GATE_RESAMPLES + 1)


class KeptScores:
    """A temporary folder holding the job's scores and the baseline's (``close()`` removes it).

    Attributes:
        writer: the :class:`~evalkit.scores_file.ScoresWriter` the evaluation feeds, or ``None``
            when nothing needs the scores (not tracked or ``--no-log-scores``, and no significant gate).
        path: the job's ``scores.parquet`` once :meth:`finish` ran (``None`` before, or without rows).
    """

    def __init__(self, cfg: EvaluateJobConfig, gates: list):
        from evalkit.scores_file import SCORES_FILE, ScoresWriter

        self.significant = [g for g in gates if g.significant]
        self.log = cfg.track and cfg.log_scores
        self.tmp = Path(tempfile.mkdtemp(prefix="evalkit-scores-"))
        self.writer = ScoresWriter(self.tmp / SCORES_FILE) if (self.log or self.significant) else None
        self.path = self.baseline_path = None
        self.alpha = cfg.gate_alpha

    def fetch_baseline(self, store_uri: str, baseline: dict | None) -> None:
        """Download the baseline run's ``scores.parquet`` (only with significant gates and a baseline run).

        Raises:
            InputError: the baseline run kept no scores (before anything is evaluated).
        """
        if not self.significant or not baseline or baseline.get("run_id") is None:
            return
        from evalkit.tracking.queries import run_scores

        _, self.baseline_path = run_scores(store_uri, baseline["run_id"], str(self.tmp / "baseline"),
                                           flag=f"--baseline {baseline.get('source')}: run")

    def finish(self, report) -> None:
        """Close the job's scores file with the report's digest (the evaluated rows') and thresholds."""
        if self.writer is not None:
            self.path = self.writer.close(report["dataset"]["digest"], report["threshold"])

    def paired(self, baseline: dict | None) -> dict[str, dict]:
        """``{metric: paired row}`` of the significant gates (this run minus the baseline run), with
        ``alpha`` and ``level`` (1 - alpha: the interval shown); ``{}`` without a baseline's scores.

        Raises:
            InputError: the baseline's scores cover other rows.
        """
        if not self.significant or self.baseline_path is None or self.path is None:
            return {}
        from evalkit.compare_paired import check_same_rows, paired_compare
        from evalkit.scores_file import read_scores
        from evalkit.stats.bootstrap import BootstrapSpec

        where = f"--baseline {baseline.get('source')}: run {baseline['run_id']}"
        base, here = read_scores(self.baseline_path, where), read_scores(self.path, "this evaluation")
        check_same_rows(base, here, where, "this evaluation")
        spec = BootstrapSpec(level=1 - self.alpha, resamples=GATE_RESAMPLES)
        rows = paired_compare(base, here, [g.metric for g in self.significant], spec=spec,
                              names=(where, "this evaluation"), flag="--max-drop")
        return {r["metric"]: r | {"alpha": self.alpha, "level": spec.level} for r in rows}

    def close(self) -> None:
        if self.writer is not None and self.path is None:
            self.writer.close(None)
        shutil.rmtree(self.tmp, ignore_errors=True)


def gate_difference_metrics(block: dict) -> dict[str, float]:
    """The tracked numbers of significant gates: ``gates/<metric>/difference``, ``.../ci_low``,
    ``.../ci_high``, ``.../p_value`` (e.g. ``gates/test/macro_f2/p_value``)."""
    out = {}
    for r in block["results"]:
        if "p_value" not in r:
            continue
        ci = r.get("ci") or [None, None]
        for name, v in (("difference", r["difference"]), ("ci_low", ci[0]), ("ci_high", ci[1]), ("p_value", r["p_value"])):
            if v is not None:
                out[f"gates/{r['metric']}/{name}"] = float(v)
    return out
