"""``evalkit compare``: the runs of an experiment side by side, or grouped (e.g. by loss) with
mean ± std over seeds, a ranking, and a paired significance test of the best group's lead.

Which runs: ``--parent RUN_ID`` takes that grid's child runs; without it, when the experiment holds
grid runs (``evalkit run SPEC.toml``), the children of the latest grid parent; otherwise every run.
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
PARAM_COLUMNS = ("loss", "seed", "threshold", "model")
GRID_TAG = "evalkit.grid"  # "parent" on the parent run of a spec grid


def runs_frame(tracking_uri: str, experiment: str, metrics=HEADLINE, params=PARAM_COLUMNS, filter_string: str = ""):
    """One row per run: run id, name, status, parent run id, grid role, the given params and metrics."""
    import pandas as pd

    df = search_runs(tracking_uri, experiment, filter_string=filter_string)
    params = tuple(dict.fromkeys(params))
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
    return pd.DataFrame(cols).reset_index(drop=True)


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
                alpha: float | None = None) -> dict:
    """Mean ± std per group, groups ranked by ``rank_by`` (default: the first metric), and for each
    metric a paired test of the best group against every other group, pairing runs by ``pair_by``.

    Returns:
        ``{"group_by", "rank_by", "test", "alpha", "groups": [{"group", "rank", "n", "metrics":
        {m: {"mean", "std", "n", "best", "p_value", "significant"}}}]}`` (groups in rank order).
        ``p_value`` compares the best group (by that metric) with this group; ``significant`` says
        whether the best group's lead over this group is significant at ``alpha``.
    Raises:
        InputError: ``group_by`` or ``rank_by`` is not a column of the runs.
    """
    from evalkit.stats import ALPHA, PAIRED_TEST, paired_pvalue

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
        raise InputError(f"--group-by {group_by}: no run has this param")
    rows: dict[str, dict] = {g: {"group": g, "metrics": {}} for g in groups}
    paired = pair_by in data.columns and data[pair_by].notna().all()
    for m in metrics:
        means = {}
        values = {}
        for g in groups:
            sub = data[data[group_by].astype(str) == g]
            v = sub[m].astype(float)
            key = sub[pair_by].astype(str) if paired else sub.reset_index().index.astype(str)
            values[g] = dict(zip(key, v))
            finite = v.dropna()
            means[g] = float(finite.mean()) if len(finite) else math.nan
            rows[g]["metrics"][m] = {"mean": means[g], "std": float(finite.std(ddof=1)) if len(finite) > 1 else None,
                                     "n": int(len(finite))}
        valid = {g: mu for g, mu in means.items() if mu == mu}
        best = (min if lower_is_better(m) else max)(valid, key=valid.get) if valid else None
        for g in groups:
            cell = rows[g]["metrics"][m]
            cell["best"] = g == best
            cell["p_value"] = cell["significant"] = None
            if best is None or g == best:
                continue
            common = sorted(set(values[best]) & set(values[g]))
            p = paired_pvalue([values[best][k] for k in common], [values[g][k] for k in common])
            cell["p_value"] = p
            cell["significant"] = None if p is None else bool(p < alpha)
    sign = 1 if lower_is_better(rank_by) else -1
    order = sorted(groups, key=lambda g: (math.inf if rows[g]["metrics"][rank_by]["mean"] != rows[g]["metrics"][rank_by]["mean"]
                                          else sign * rows[g]["metrics"][rank_by]["mean"]))
    out = []
    for rank, g in enumerate(order, 1):
        r = rows[g]
        r["rank"] = rank
        r["n"] = max(c["n"] for c in r["metrics"].values())
        out.append(r)
    return {"group_by": group_by, "rank_by": rank_by, "paired_by": pair_by if paired else None,
            "test": PAIRED_TEST if paired else PAIRED_TEST.replace("over seeds", "over run order"),
            "alpha": alpha, "metrics": list(metrics), "groups": out}


def _cell_text(c: dict, plain: bool = False, digits: int = 3) -> str:
    if c["mean"] != c["mean"]:
        return "—"
    text = f"{c['mean']:.{digits}f}" + (f"±{c['std']:.{digits}f}" if c["std"] is not None else "")
    if c["best"]:
        mark = "▲"
    elif c["significant"]:
        mark = "*"
    else:
        mark = ""
    return text + mark


def _legend(stats: dict) -> str:
    return (f"Mean ± std over runs; groups ranked by {stats['rank_by'].removeprefix('test/')}. "
            f"▲ = best group for the metric; * = the best group's lead over this group is significant "
            f"({stats['test']}, p < {stats['alpha']:g}); no mark = not significant or too few paired runs.")


def render_groups(stats: dict, console, title: str = "") -> None:
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    t.add_column("rank", justify="right")
    t.add_column(stats["group_by"])
    t.add_column("runs", justify="right")
    for m in stats["metrics"]:
        t.add_column(m.removeprefix("test/"), justify="right")
    for r in stats["groups"]:
        cells = [str(r["rank"]), r["group"], str(r["n"])]
        for m in stats["metrics"]:
            c = r["metrics"][m]
            text = _cell_text(c)
            cells.append(f"[bold green]{text}[/]" if c["best"] else text)
        t.add_row(*cells)
    # a piped / narrow terminal would otherwise truncate the mean±std cells
    console.print(t, width=max(console.width, 40 + 16 * len(stats["metrics"])), crop=False)
    console.print(f"[dim]{_legend(stats)}[/]")


def groups_frame(stats: dict):
    """Flat table of :func:`group_stats` (one row per group; mean, std, p-value per metric)."""
    import pandas as pd

    rows = []
    for r in stats["groups"]:
        row = {"rank": r["rank"], stats["group_by"]: r["group"], "runs": r["n"]}
        for m, c in r["metrics"].items():
            row[f"{m}_mean"] = c["mean"]
            row[f"{m}_std"] = c["std"]
            row[f"{m}_p_vs_best"] = c["p_value"]
            row[f"{m}_significant"] = c["significant"]
        rows.append(row)
    return pd.DataFrame(rows)


def groups_markdown(stats: dict) -> str:
    head = ["rank", stats["group_by"], "runs", *(m.removeprefix("test/") for m in stats["metrics"])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in stats["groups"]:
        cells = [str(r["rank"]), f"**{r['group']}**" if r["rank"] == 1 else r["group"], str(r["n"])]
        for m in stats["metrics"]:
            c = r["metrics"][m]
            text = _cell_text(c)
            cells.append(f"**{text}**" if c["best"] else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\n{_legend(stats)}\n"


def runs_markdown(df, metrics=HEADLINE) -> str:
    shown = [p for p in PARAM_COLUMNS if p in df.columns and df[p].notna().any()]
    head = ["run", *shown, *(m.removeprefix("test/") for m in metrics)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, row in df.iterrows():
        cells = [str(row["run_id"])[:8]] + [str(row[p]) for p in shown]
        cells += ["—" if row[m] != row[m] else f"{row[m]:.4f}" for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_table(df, console, metrics=HEADLINE, title: str = "") -> None:
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    t.add_column("run")
    shown_params = [p for p in PARAM_COLUMNS if p in df.columns and df[p].notna().any()]
    for p in shown_params:
        t.add_column(p)
    for m in metrics:
        t.add_column(m.removeprefix("test/"), justify="right")
    best = {m: best_index(df[m]) for m in metrics}
    for i, row in df.iterrows():
        name = f"{row['run_id'][:8]} {row['run_name'] or ''}".strip()
        cells = [name] + [str(row[p]) if row[p] is not None else "—" for p in shown_params]
        for m in metrics:
            v = row[m]
            text = "—" if v != v else f"{v:.4f}"
            cells.append(f"[bold green]{text}[/]" if best[m] == i else text)
        t.add_row(*cells)
    console.print(t)
    console.print("[dim]Best value per column in bold green (lowest for Hamming loss).[/]")


def compare_runs(tracking_uri: str, experiment: str, *, group_by: str | None = "loss", metrics=None,
                 parent: str | None = None, rank_by: str | None = None):
    """The data behind ``evalkit compare``: ``(runs frame, group stats or None)``.

    ``group_by=None`` (``--group-by none``) gives the plain per-run table.
    """
    grouped = group_by is not None
    metrics = tuple(metrics) if metrics else (GROUP_HEADLINE if grouped else HEADLINE)
    if rank_by and rank_by not in metrics:
        metrics = (rank_by, *metrics)
    params = PARAM_COLUMNS + ((group_by,) if grouped else ())
    df = select_runs(runs_frame(tracking_uri, experiment, metrics, params), parent)
    if df.empty:
        raise InputError(f"--experiment {experiment}: no runs to compare")
    if not grouped:
        return df, None
    return df, group_stats(df, group_by, metrics, rank_by=rank_by)


MAX_RUN_ROWS = 30  # the table view also lists the runs when there are at most this many


def show_compare(tracking_uri: str, experiment: str, console, *, group_by: str | None = "loss", metrics=None,
                 parent: str | None = None, rank_by: str | None = None, fmt: str = "table",
                 plot: str | None = None, log_plot: bool = False):
    """``evalkit compare`` (everything but history mode): print, and optionally plot.

    Returns the group stats (or the runs frame with ``group_by=None``).
    Raises:
        InputError: no runs, unknown group param or metric, ``--log-plot`` without a grid parent.
    """
    import sys

    df, stats = compare_runs(tracking_uri, experiment, group_by=group_by, metrics=metrics, parent=parent,
                             rank_by=rank_by)
    if stats is None:
        shown = tuple(metrics) if metrics else HEADLINE
        if plot or log_plot:
            raise InputError("--plot/--log-plot: the bar chart needs groups; drop --group-by none")
        if fmt == "csv":
            sys.stdout.write(df.to_csv(index=False))
        elif fmt == "json":
            sys.stdout.write(df.to_json(orient="records", indent=2, date_format="iso") + "\n")
        elif fmt == "markdown":
            sys.stdout.write(runs_markdown(df, shown))
        else:
            render_table(df, console, shown, title=f"Experiment '{experiment}': {len(df)} runs")
        return df
    parent_id = df["parent_run_id"].dropna().unique()
    scope = f"children of grid run {parent_id[0][:8]}" if len(parent_id) == 1 else "all runs"
    if fmt == "csv":
        sys.stdout.write(groups_frame(stats).to_csv(index=False))
    elif fmt == "json":
        import json

        sys.stdout.write(json.dumps(stats | {"experiment": experiment, "runs": int(len(df))}, indent=2) + "\n")
    elif fmt == "markdown":
        sys.stdout.write(groups_markdown(stats))
    else:
        render_groups(stats, console, title=f"Experiment '{experiment}' ({scope}): {len(df)} runs by {group_by}")
        if len(df) <= MAX_RUN_ROWS:  # the runs themselves, side by side (run, loss, seed, metrics)
            shown = tuple(metrics) if metrics else GROUP_HEADLINE
            render_table(df, console, shown, title=f"Runs ({scope}), newest first")
    if plot or log_plot:
        from evalkit.plots import group_bars

        fig = group_bars(stats, title=f"{experiment}: by {group_by}")
        try:
            if plot:
                fig.savefig(plot, dpi=120)
                console.print(f"Plot written to {plot}", highlight=False) if fmt == "table" else None
            if log_plot:
                if len(parent_id) != 1:
                    raise InputError("--log-plot: the runs compared have no single grid parent run; use --parent RUN_ID")
                from evalkit.tracking import log_figure_to_run

                log_figure_to_run(tracking_uri, str(parent_id[0]), fig, f"plots/compare_by_{group_by}.png")
                if fmt == "table":
                    console.print(f"Plot logged to parent run {parent_id[0]}")
        finally:
            import matplotlib.pyplot as plt

            plt.close(fig)
    return stats
