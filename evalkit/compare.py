"""``evalkit compare``: the runs of an experiment side by side, or grouped (e.g. by loss) with
mean ± std over seeds, a ranking, and a paired significance test of the best group's lead.

Which runs: ``--parent RUN_ID`` takes that grid's child runs; without it, when the experiment holds
grid runs (``evalkit run SPEC.toml``), the children of the latest grid parent; otherwise every run.
Runs of different datasets are never averaged together: groups are then ``dataset / value``.
"""

from __future__ import annotations

import math

from evalkit.errors import InputError
from evalkit.direction import lower_is_better  # noqa: F401  (re-exported: compare.lower_is_better)
from evalkit.tracking import search_runs

HEADLINE = ("test/micro_f2", "test/macro_f2", "test/macro_map", "test/macro_auroc", "test/subset_accuracy",
            "test/hamming_loss")
#: the metrics of the grouped view (mean ± std); the first one ranks the groups unless --rank-by
GROUP_HEADLINE = ("test/macro_f2", "test/micro_f2", "test/macro_f1", "test/micro_f1", "test/macro_map")
PARAM_COLUMNS = ("dataset.name", "loss", "seed", "threshold", "model")
DATASET = "dataset.name"
GRID_TAG = "evalkit.grid"  # "parent" on the parent run of a spec grid


def runs_frame(tracking_uri: str, experiment: str, metrics=HEADLINE, params=PARAM_COLUMNS, filter_string: str = "",
               asked: dict[str, str] | None = None):
    """One row per run: run id, name, status, parent run id, grid role, the given params and metrics.

    Raises:
        InputError: a metric of ``asked`` (``{metric: flag}``, what the user named) that no run has.
    """
    import pandas as pd

    df = search_runs(tracking_uri, experiment, filter_string=filter_string)
    params = tuple(dict.fromkeys(params))
    if len(df) and asked:
        check_known(asked, [c.removeprefix("metrics.") for c in df.columns if c.startswith("metrics.")])
    if len(df) == 0:
        return pd.DataFrame(columns=["run_id", "run_name", "status", "start_time", "parent_run_id", "grid",
                                     *params, *metrics])

    def col(name, default=None):
        return df[name] if name in df.columns else pd.Series([default] * len(df), index=df.index)

    cols: dict = {
        "run_id": df["run_id"],
        "run_name": col("tags.mlflow.runName", ""),
        "status": df["status"],
        "start_time": df["start_time"],
        "parent_run_id": col("tags.mlflow.parentRunId"),
        "grid": col(f"tags.{GRID_TAG}"),
    }
    for p in params:
        cols[p] = col(f"params.{p}")
    for m in metrics:
        cols[m] = col(f"metrics.{m}", float("nan")).astype(float)
    for m in metrics:  # bootstrap interval bounds (test/<metric>_ci_low / _ci_high), where runs logged them
        for end in ("_ci_low", "_ci_high"):
            if f"metrics.{m}{end}" in df.columns:
                cols[m + end] = df[f"metrics.{m}{end}"].astype(float)
    return pd.DataFrame(cols).reset_index(drop=True)


def check_known(asked: dict[str, str], known: list[str]) -> None:
    """Raise InputError (one line naming the flag, with the closest known keys) for the first metric of
    ``asked`` (``{metric: flag}``) not in ``known``."""
    import difflib

    for metric, flag in asked.items():
        if metric not in known:
            close = difflib.get_close_matches(metric, known, n=3, cutoff=0.5) or sorted(known)[:3]
            raise InputError(f"{flag} {metric}: no run of the experiment has this metric; "
                             f"closest: {', '.join(close) or '(no metrics logged)'}")


def select_runs(df, parent: str | None = None):
    """The runs to compare: ``parent``'s children, else the latest grid's children, else all runs
    (grid parents themselves are never rows).

    Raises:
        InputError: ``parent`` is not a run of the experiment or has no children.
    """
    if parent:
        match = df[df["run_id"].astype(str).str.startswith(parent)]
        ids = match["run_id"].unique()
        if len(ids) != 1:
            raise InputError(f"--parent: {parent!r} matches {len(ids)} runs of this experiment; expected one run id")
        kids = df[df["parent_run_id"] == ids[0]]
        if kids.empty:
            raise InputError(f"--parent: run {ids[0]} has no child runs (expected the parent of a spec grid)")
        return kids.reset_index(drop=True)
    parents = df[df["grid"] == "parent"]
    if not parents.empty:
        latest = parents.sort_values("start_time").iloc[-1]["run_id"]
        kids = df[df["parent_run_id"] == latest]
        if not kids.empty:
            return kids.reset_index(drop=True)
    return df[df["grid"] != "parent"].reset_index(drop=True)


def best_index(series) -> int | None:
    """Row index of the best value of a metric column (min for losses / errors, else max)."""
    s = series.dropna()
    if s.empty:
        return None
    return int(s.idxmin() if lower_is_better(series.name) else s.idxmax())


def group_stats(df, group_by: str, metrics=GROUP_HEADLINE, *, rank_by: str | None = None, pair_by: str = "seed",
                alpha: float | None = None, within: str | None = None) -> dict:
    """Mean ± std per group, groups ranked by ``rank_by`` (default: the first metric), and for each
    metric a paired test of the best group against every other group, pairing runs by ``pair_by``.

    ``within`` (e.g. the dataset, :func:`by_dataset`): a column that splits the groups into blocks
    (each group lies in one); the best group, the tests and the ranks are then per block (a group is
    never tested against a group of another dataset), rows ordered by block, then rank.

    Returns:
        ``{"group_by", "rank_by", "test", "alpha", "correction", "within", "groups": [{"group",
        "block", "rank", "n", "metrics": {m: {"mean", "std", "n", "best", "p_value", "p_raw",
        "significant"}}}]}`` (groups in rank order). ``p_raw`` compares the best group (by that
        metric, in its block) with this group; ``p_value`` is it Holm-adjusted over all the
        comparisons of that metric (:func:`evalkit.stats.holm`); ``significant``: the best group's
        lead over this group is significant at ``alpha`` after the adjustment.
    Raises:
        InputError: ``group_by`` or ``rank_by`` is not a column of the runs.
    """
    from evalkit.stats import ALPHA, HOLM, PAIRED_TEST

    alpha = ALPHA if alpha is None else alpha
    if group_by not in df.columns:
        raise InputError(f"--group-by: the runs have no param {group_by!r}")
    rank_by = rank_by or metrics[0]
    if rank_by not in metrics:
        metrics = (rank_by, *metrics)
    missing = [m for m in metrics if m not in df.columns]
    if missing:
        raise InputError(f"--metric: unknown column {missing[0]!r}")
    data = df[df[group_by].notna()]
    groups = sorted(data[group_by].astype(str).unique())
    if not groups:
        raise InputError(f"--group-by {group_by}: no run has this param; --group-by none lists every run")
    block = {g: "" for g in groups}
    if within is not None and within in data.columns:
        block = {str(g): str(b) for g, b in zip(data[group_by].astype(str), data[within].fillna("?").astype(str))}
    rows: dict[str, dict] = {g: {"group": g, "block": block[g], "metrics": {}} for g in groups}
    paired = pair_by in data.columns and data[pair_by].notna().all()
    for m in metrics:
        _metric_stats(data, group_by, m, groups, block, rows, pair_by if paired else None, alpha)
    sign = 1 if lower_is_better(rank_by) else -1

    def score(g):
        mu = rows[g]["metrics"][rank_by]["mean"]
        return math.inf if mu != mu else sign * mu

    out = []
    for b in sorted(set(block.values())):
        for rank, g in enumerate(sorted((g for g in groups if block[g] == b), key=score), 1):
            r = rows[g]
            r["rank"] = rank
            r["n"] = max(c["n"] for c in r["metrics"].values())
            out.append(r)
    return {"group_by": group_by, "rank_by": rank_by, "paired_by": pair_by if paired else None,
            "test": PAIRED_TEST if paired else PAIRED_TEST.replace("over seeds", "over run order"),
            "alpha": alpha, "correction": HOLM, "within": within if len(set(block.values())) > 1 else None,
            "metrics": list(metrics), "groups": out}


def _metric_stats(data, group_by: str, m: str, groups: list[str], block: dict, rows: dict, pair_by: str | None,
                  alpha: float) -> None:
    """One metric of :func:`group_stats`: each group's mean / std / interval into ``rows``, and the
    paired test of each block's best group against the other groups of its block (Holm over all)."""
    from evalkit.stats import holm, paired_pvalue

    means, values = {}, {}
    for g in groups:
        sub = data[data[group_by].astype(str) == g]
        v = sub[m].astype(float)
        key = sub[pair_by].astype(str) if pair_by else sub.reset_index().index.astype(str)
        values[g] = dict(zip(key, v))
        finite = v.dropna()
        means[g] = float(finite.mean()) if len(finite) else math.nan
        rows[g]["metrics"][m] = {"mean": means[g], "std": float(finite.std(ddof=1)) if len(finite) > 1 else None,
                                 "n": int(len(finite)), "ci": mean_interval(sub, m)}
    raw = {}
    for b in sorted(set(block.values())):
        valid = {g: mu for g, mu in means.items() if mu == mu and block[g] == b}
        best = (min if lower_is_better(m) else max)(valid, key=valid.get) if valid else None
        for g in (g for g in groups if block[g] == b):
            cell = rows[g]["metrics"][m]
            cell["best"] = g == best
            cell["p_value"] = cell["p_raw"] = cell["significant"] = None
            if best is not None and g != best:
                common = sorted(set(values[best]) & set(values[g]))
                raw[g] = paired_pvalue([values[best][k] for k in common], [values[g][k] for k in common])
    for g, p in zip(raw, holm(list(raw.values()))):  # several groups against the best: Holm
        rows[g]["metrics"][m].update(p_raw=raw[g], p_value=p, significant=None if p is None else bool(p < alpha))


def mean_interval(sub, metric: str) -> list[float] | None:
    """``[low, high]``: the mean over ``sub``'s runs of their bootstrap interval bounds of ``metric``
    (``<metric>_ci_low`` / ``_ci_high`` columns of :func:`runs_frame`), or None when no run has both."""
    lo, hi = f"{metric}_ci_low", f"{metric}_ci_high"
    if lo not in sub.columns or hi not in sub.columns:
        return None
    both = sub[[lo, hi]].astype(float).dropna()
    return [float(both[lo].mean()), float(both[hi].mean())] if len(both) else None


def groups_frame(stats: dict):
    """Flat table of :func:`group_stats` (one row per group; mean, std, p-value per metric)."""
    import pandas as pd

    rows = []
    for r in stats["groups"]:
        row = {"rank": r["rank"], stats["group_by"]: r["group"], "runs": r["n"]}
        for m, c in r["metrics"].items():
            row[f"{m}_mean"] = c["mean"]
            row[f"{m}_std"] = c["std"]
            row[f"{m}_p_vs_best"] = c["p_value"]  # Holm-adjusted
            row[f"{m}_p_vs_best_raw"] = c.get("p_raw")
            row[f"{m}_significant"] = c["significant"]
        rows.append(row)
    return pd.DataFrame(rows)


def compare_runs(tracking_uri: str, experiment: str, *, group_by: str | None = "loss", metrics=None,
                 parent: str | None = None, rank_by: str | None = None, or_each: bool = False):
    """The data behind ``evalkit compare``: ``(runs frame, group stats or None)``.

    ``group_by=None`` (``--group-by none``) gives the plain per-run table; so does ``or_each`` (the
    grouping was not asked for, only defaulted) when no finished run has the ``group_by`` param (an
    experiment of ``evaluate`` runs has no loss), instead of an error.
    """
    grouped = group_by is not None
    search = tune_parent(tracking_uri, experiment, parent)
    if search is not None:
        return rank_trials(tracking_uri, experiment, search, metrics=metrics, rank_by=rank_by)
    asked_metrics, given_metrics = bool(metrics), metrics
    metrics = tuple(metrics) if metrics else (GROUP_HEADLINE if grouped else HEADLINE)
    if rank_by and rank_by not in metrics:
        metrics = (rank_by, *metrics)
    params = PARAM_COLUMNS + ((group_by,) if grouped else ()) + ("cells",)
    asked = {m: "--metric" for m in (metrics if asked_metrics else ())} | ({rank_by: "--rank-by"} if rank_by else {})
    full = runs_frame(tracking_uri, experiment, metrics, params, asked=asked)
    df = select_runs(full, parent)
    if df.empty:
        raise InputError(f"--experiment {experiment}: no runs to compare")
    if not grouped:
        return df, None
    finished = df[df["status"] == FINISHED]
    if finished.empty:
        raise InputError(f"--experiment {experiment}: no finished runs to compare ({unfinished_note(df)})")
    if or_each and not rank_by and (group_by not in finished.columns or finished[group_by].isna().all()):
        return compare_runs(tracking_uri, experiment, group_by=None, metrics=given_metrics, parent=parent)
    runs, key = by_dataset(finished.reset_index(drop=True), group_by)
    stats = group_stats(runs, key, metrics, rank_by=rank_by, within=DATASET if key != group_by else None)
    left_out = df[df["status"] != FINISHED]["status"].value_counts().to_dict()
    stats["left_out"] = {str(k): int(v) for k, v in sorted(left_out.items())}
    grid = grid_state(full, df)
    if grid is not None:
        stats["grid"] = grid
    return df, stats


FINISHED = "FINISHED"


def unfinished_note(df) -> str:
    """``2 unfinished runs: 1 RUNNING, 1 FAILED`` (empty when every run is FINISHED)."""
    counts = df[df["status"] != FINISHED]["status"].value_counts()
    if counts.empty:
        return ""
    return f"{int(counts.sum())} unfinished run(s): " + ", ".join(f"{int(n)} {s}" for s, n in sorted(counts.items()))


def grid_state(full, selected) -> dict | None:
    """When ``selected`` are the children of one grid parent: ``{"run_id", "status", "cells",
    "children", "finished", "complete"}``: a grid is complete when its parent is FINISHED and every
    one of its ``cells`` has a FINISHED child run. None for runs that are not one grid's children."""
    ids = selected["parent_run_id"].dropna().unique()
    if len(ids) != 1 or selected["parent_run_id"].isna().any():
        return None
    row = full[full["run_id"] == ids[0]]
    status = str(row["status"].iloc[0]) if len(row) else "UNKNOWN"
    cells = None
    if len(row) and "cells" in row.columns and row["cells"].iloc[0] is not None:
        try:
            cells = int(row["cells"].iloc[0])
        except (TypeError, ValueError):
            cells = None
    n_finished = int((selected["status"] == FINISHED).sum())
    complete = status == FINISHED and n_finished == len(selected) and (cells is None or n_finished >= cells)
    return {"run_id": str(ids[0]), "status": status, "cells": cells, "children": int(len(selected)),
            "finished": n_finished, "complete": bool(complete)}


def status_notes(stats: dict) -> list[str]:
    """One-line notes for the grouped view: runs left out of the statistics, an incomplete grid."""
    notes = []
    left = stats.get("left_out") or {}
    if left:
        what = ", ".join(f"{n} {s}" for s, n in left.items())
        notes.append(f"{sum(left.values())} unfinished run(s) left out of the statistics ({what}); "
                     "`evalkit runs reap` ends runs whose process died")
    grid = stats.get("grid")
    if grid and not grid["complete"]:
        of = f" of {grid['cells']}" if grid["cells"] is not None else ""
        notes.append(f"INCOMPLETE grid {grid['run_id'][:8]} (parent {grid['status']}): {grid['finished']}{of} "
                     f"cells finished")
    return notes


def by_dataset(df, group_by: str, dataset: str = DATASET):
    """``(runs, group column)``: when the runs cover several datasets (column ``dataset``), groups are
    ``dataset / value``, so runs of different datasets never share a row (their means would mean
    nothing); pass ``within=dataset`` to :func:`group_stats` then, so none is tested against another."""
    if group_by == dataset or dataset not in df.columns or df[dataset].dropna().nunique() <= 1:
        return df, group_by
    if group_by not in df.columns:
        raise InputError(f"--group-by: the runs have no param {group_by!r}")
    key = f"dataset / {group_by}"
    keep = df[group_by].notna()
    out = df[keep].copy()
    out[key] = out[dataset].fillna("?").astype(str) + " / " + out[group_by].astype(str)
    return out, key


#: what the trials of ``evalkit tune`` are ranked on (validation / out-of-fold metrics; no test split)
TRIAL_METRICS = ("validation/map", "validation/mean_f2", "validation/micro_f2", "validation/macro_f2")


def tune_parent(tracking_uri: str, experiment: str, parent: str | None) -> dict | None:
    """The ``evalkit tune`` parent run compared (``parent``, else the latest grid parent when it is
    a search): ``{"run_id", "metric", "fields"}`` (the objective and the searched RunConfig fields),
    or None when the runs compared are not the trials of a search."""
    import json

    df = search_runs(tracking_uri, experiment, filter_string=f"tags.`{GRID_TAG}` = 'parent'")
    if len(df) == 0:
        return None
    if parent:
        df = df[df["run_id"].astype(str).str.startswith(parent)]
        if len(df) != 1:
            return None
    row = df.sort_values("start_time").iloc[-1]
    if row.get("tags.evalkit.tune") != "parent":
        return None
    try:
        fields = list(json.loads(row.get("params.search.space") or "{}"))
    except ValueError:
        fields = []
    return {"run_id": row["run_id"], "metric": row.get("tags.evalkit.search.metric") or TRIAL_METRICS[0],
            "fields": fields}


def rank_trials(tracking_uri: str, experiment: str, search: dict, *, metrics=None, rank_by: str | None = None):
    """The trials of an ``evalkit tune`` parent ranked by the objective (or ``rank_by``): ``(runs
    frame, group stats)`` with one group per trial, named by its searched values (``lr=0.001 loss=asl``).

    Raises:
        InputError: the parent has no trial runs.
    """
    metric = search["metric"]
    asked_metrics = bool(metrics)
    metrics = tuple(metrics) if metrics else (metric, *(m for m in TRIAL_METRICS if m != metric))
    fields = tuple(search["fields"])
    asked = {m: "--metric" for m in (metrics if asked_metrics else ())} | ({rank_by: "--rank-by"} if rank_by else {})
    df = select_runs(runs_frame(tracking_uri, experiment, metrics, PARAM_COLUMNS + fields, asked=asked),
                     search["run_id"])
    df = df.copy()
    df["trial"] = [" ".join(f"{f}={_short(row[f])}" for f in fields) or str(row["run_id"])[:8]
                   for _, row in df.iterrows()]
    return df, group_stats(df, "trial", metrics, rank_by=rank_by or metric)


def _short(v) -> str:
    try:
        return f"{float(v):.4g}" if "." in str(v) or "e" in str(v) else str(v)
    except (TypeError, ValueError):
        return str(v)
