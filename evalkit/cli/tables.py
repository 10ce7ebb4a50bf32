"""Terminal and text rendering of ``evalkit compare``: grouped tables, run tables, Markdown / CSV /
JSON on stdout, and the history of scheduled jobs. The data comes from :mod:`evalkit.compare` and
:mod:`evalkit.history`; this module only shows it."""

from __future__ import annotations

import sys

from evalkit.compare import (HEADLINE, PARAM_COLUMNS, best_index, compare_runs, groups_frame,
                             status_notes, unfinished_note)
from evalkit.cli.ui import escape, printable, title_text
from evalkit.errors import InputError
from evalkit.history import DEFAULT_METRICS, history_frame, plot_history


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
    per = " within each dataset" if stats.get("within") else ""
    return (f"Mean ± std over runs; groups ranked by {stats['rank_by'].removeprefix('test/')}{per}. "
            f"▲ = best group for the metric{per}; * = the best group's lead over this group is significant "
            f"({stats['test']}, p < {stats['alpha']:g}, p-values {stats.get('correction') or 'not adjusted'}); "
            f"no mark = not significant or too few paired runs.")


def render_groups(stats: dict, console, title: str = "") -> None:
    """The grouped table (rank, group, runs, mean ± std per metric; best bold, significance marks) and its legend."""
    from rich.table import Table

    t = Table(title=title_text(title), title_justify="left")
    t.add_column("rank", justify="right")
    t.add_column(escape(stats["group_by"]))
    t.add_column("runs", justify="right")
    for m in stats["metrics"]:
        t.add_column(escape(m.removeprefix("test/")), justify="right")
    for r in stats["groups"]:
        cells = [str(r["rank"]), escape(r["group"]), str(r["n"])]
        for m in stats["metrics"]:
            c = r["metrics"][m]
            text = _cell_text(c)
            cells.append(f"[bold green]{text}[/]" if c["best"] else text)
        t.add_row(*cells)
    # a piped / narrow terminal would otherwise truncate the mean±std cells
    console.print(t, width=max(console.width, 40 + 16 * len(stats["metrics"])), crop=False)
    console.print(f"[dim]{_legend(stats)}[/]")


def groups_markdown(stats: dict) -> str:
    """The grouped table as Markdown (for READMEs and PRs), legend included."""
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
    """One Markdown row per run: run id, params, metrics (4 decimals; ``—`` for undefined)."""
    shown = [p for p in PARAM_COLUMNS if p in df.columns and df[p].notna().any()]
    head = ["run", "status", *shown, *(m.removeprefix("test/") for m in metrics)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, row in df.iterrows():
        cells = [str(row["run_id"])[:8], str(row.get("status", ""))] + [str(row[p]) for p in shown]
        cells += ["—" if row[m] != row[m] else f"{row[m]:.4f}" for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_table(df, console, metrics=HEADLINE, title: str = "") -> None:
    """One row per run (id and name, params, metrics); the best value per column in bold green."""
    from rich.table import Table

    t = Table(title=title_text(title), title_justify="left")
    t.add_column("run")
    t.add_column("status")
    shown_params = [p for p in PARAM_COLUMNS if p in df.columns and df[p].notna().any()]
    for p in shown_params:
        t.add_column(p)
    for m in metrics:
        t.add_column(escape(m.removeprefix("test/")), justify="right")
    done = df["status"] == "FINISHED" if "status" in df.columns else None
    best = {m: best_index(df[m] if done is None else df[m].where(done)) for m in metrics}
    for i, row in df.iterrows():
        name = escape(f"{row['run_id'][:8]} {row['run_name'] or ''}".strip())
        status = str(row.get("status", "") or "")
        cells = [name, status if status == "FINISHED" else f"[yellow]{escape(status)}[/]"]
        cells += [escape(row[p]) if row[p] is not None else "—" for p in shown_params]
        for m in metrics:
            v = row[m]
            text = "—" if v != v else f"{v:.4f}"
            cells.append(f"[bold green]{text}[/]" if best[m] == i else text)
        t.add_row(*cells)
    console.print(t)
    console.print("[dim]Best value per column (of the FINISHED runs) in bold green (lowest for Hamming loss).[/]")
    note = unfinished_note(df) if "status" in df.columns else ""
    if note:
        console.print(f"[yellow]{escape(note)}: not results (still running, failed or killed)[/]")


def render_history(df, console, metrics=DEFAULT_METRICS, title: str = "") -> None:
    """A job's history table, oldest first, with each metric's change against the previous run."""
    from rich.table import Table

    t = Table(title=title_text(title), title_justify="left")
    for c in ("time (UTC)", "run", "job", "gate", "status"):
        t.add_column(c)
    for m in metrics:
        t.add_column(escape(m), justify="right")
    prev: dict = {}
    for _, row in df.iterrows():
        cells = [row["start_time"].strftime("%Y-%m-%d %H:%M"), row["run_id"][:8], escape(row["job"] or "—"),
                 {"fail": "[red]fail[/]", "pass": "[green]pass[/]"}.get(row["gate"], escape(row["gate"] or "—")),
                 escape(row["status"])]
        for m in metrics:
            v = row[m]
            text = "—" if v != v else f"{v:.4f}"
            if v == v and m in prev and prev[m] == prev[m]:
                d = v - prev[m]
                text += f" ({d:+.4f})" if abs(d) >= 5e-5 else ""
            cells.append(text)
            prev[m] = v
        t.add_row(*cells)
    console.print(t)


MAX_RUN_ROWS = 30  # the table view also lists the runs when there are at most this many


def confirm(console, fmt: str, text: str) -> None:
    """A confirmation line (``Plot written to FILE``): after the table, or on stderr when stdout
    carries CSV / JSON / Markdown (which must stay parseable)."""
    if fmt == "table":
        console.print(escape(text), soft_wrap=True, highlight=False)
    else:
        print(printable(text), file=sys.stderr)


def show_compare(tracking_uri: str, experiment: str, console, *, group_by: str | None = "loss", metrics=None,
                 parent: str | None = None, rank_by: str | None = None, fmt: str = "table",
                 plot: str | None = None, log_plot: bool = False, or_each: bool = False):
    """``evalkit compare`` (everything but history mode): print, and optionally plot.

    ``or_each``: the grouping is the default, not asked for (see :func:`evalkit.compare.compare_runs`).
    Returns the group stats (or the runs frame with ``group_by=None``).
    Raises:
        InputError: no runs, unknown group param or metric, ``--log-plot`` without a grid parent.
    """
    df, stats = compare_runs(tracking_uri, experiment, group_by=group_by, metrics=metrics, parent=parent,
                             rank_by=rank_by, or_each=or_each)
    if stats is None:
        ungrouped = f" (none has a {group_by} param: one row per run)" if group_by is not None else ""
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
            render_table(df, console, shown, title=f"Experiment '{experiment}': {len(df)} runs{ungrouped}")
        return df
    parent_id = df["parent_run_id"].dropna().unique()
    kind = "search" if stats["group_by"] == "trial" else "grid"  # trials of an `evalkit tune` parent
    scope = f"children of {kind} run {parent_id[0][:8]}" if len(parent_id) == 1 else "all runs"
    if fmt == "csv":
        sys.stdout.write(groups_frame(stats).to_csv(index=False))
        for note in status_notes(stats):
            print(note, file=sys.stderr)
    elif fmt == "json":
        from evalkit.cli.outputs import json_text

        sys.stdout.write(json_text(stats | {"experiment": experiment, "runs": int(len(df))}))
    elif fmt == "markdown":
        sys.stdout.write(groups_markdown(stats) + "".join(f"\n{n}\n" for n in status_notes(stats)))
    else:
        n_stats = int((df["status"] == "FINISHED").sum())
        render_groups(stats, console, title=f"Experiment '{experiment}' ({scope}): {n_stats} finished runs by {stats['group_by']}")
        for note in status_notes(stats):
            console.print(f"[yellow]{escape(note)}[/]", soft_wrap=True)
        if len(df) <= MAX_RUN_ROWS:  # the runs themselves, side by side (run, loss, seed, metrics)
            shown = tuple(metrics) if metrics else tuple(stats["metrics"])
            render_table(df, console, shown, title=f"Runs ({scope}), newest first")
    if plot or log_plot:
        from evalkit.plots import group_bars

        fig = group_bars(stats, title=f"{experiment}: by {group_by}")
        try:
            if plot:
                from evalkit.plots import save_figure

                save_figure(fig, plot)
                confirm(console, fmt, f"Plot written to {plot}")
            if log_plot:
                if len(parent_id) != 1:
                    raise InputError("--log-plot: the runs compared have no single grid parent run; use --parent RUN_ID")
                from evalkit.tracking import log_figure_to_run

                log_figure_to_run(tracking_uri, str(parent_id[0]), fig, f"plots/compare_by_{group_by}.png")
                confirm(console, fmt, f"Plot logged to parent run {parent_id[0]}")
        finally:
            import matplotlib.pyplot as plt

            plt.close(fig)
    return stats
def show_history(tracking_uri: str, experiment: str, console, metrics=DEFAULT_METRICS, *, trigger=None, job=None,
                 plot: str | None = None, fmt: str = "table") -> object:
    """Table (or CSV / JSON on stdout) and optional PNG plot of a job's history; returns the frame."""
    metrics = tuple(metrics) or DEFAULT_METRICS
    df = history_frame(tracking_uri, experiment, metrics, trigger=trigger, job=job)
    what = " ".join(x for x in (f"trigger={trigger}" if trigger else "", f"job={job}" if job else "") if x)
    title = f"History of experiment '{experiment}' ({what}): {len(df)} runs"
    if fmt == "csv":
        sys.stdout.write(df.to_csv(index=False))
    elif fmt == "json":
        sys.stdout.write(df.to_json(orient="records", indent=2, date_format="iso") + "\n")
    else:
        render_history(df, console, metrics, title)
    if plot:
        import matplotlib.pyplot as plt

        plt.close(plot_history(df, metrics, plot, title))
        confirm(console, fmt, f"Plot written to {plot}")
    return df
