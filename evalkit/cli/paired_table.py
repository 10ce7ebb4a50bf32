"""Rendering of ``evalkit compare RUN_A RUN_B`` (table, JSON, CSV, Markdown); the data comes from
:func:`evalkit.compare_paired.compare_two_runs`."""

from __future__ import annotations

import sys

from evalkit.cli.ui import escape
from evalkit.errors import InputError

ALPHA = 0.05
SHOWN_PARAMS = ("dataset.name", "loss", "seed", "model", "epochs", "threshold")


def show_paired(runs: list[str], tracking_uri: str | None, console, *, metrics=None, fmt: str = "table",
                others: dict | None = None) -> dict:
    """Compare two runs row by row and print the result; returns it.

    Raises:
        InputError: not two run ids, an option of the other views, or as
            :func:`~evalkit.compare_paired.compare_two_runs`.
    """
    from evalkit.compare_paired import compare_two_runs
    from evalkit.tracking import resolve_tracking_uri

    if len(runs) != 2:
        raise InputError(f"RUN_A RUN_B: expected two run ids, got {len(runs)} ({' '.join(runs)[:120]})")
    for flag, value in (others or {}).items():
        if value:
            raise InputError(f"{flag}: applies to the grouped and history views, not to compare RUN_A RUN_B; drop it")
    result = compare_two_runs(resolve_tracking_uri(tracking_uri), runs[0], runs[1], metrics)
    if fmt == "json":
        from evalkit.cli.outputs import json_text

        sys.stdout.write(json_text(result))
    elif fmt == "csv":
        sys.stdout.write(paired_frame(result).to_csv(index=False))
    elif fmt == "markdown":
        sys.stdout.write(paired_markdown(result))
    else:
        render_paired(result, console)
    return result


def paired_frame(result: dict):
    """One row per metric: metric, A, B, B - A, CI bounds, p-value (McNemar's p for subset accuracy)."""
    import pandas as pd

    rows = []
    for r in result["results"]:
        ci = r["ci"] or [None, None]
        rows.append({"metric": r["metric"], "a": r["a"], "b": r["b"], "b_minus_a": r["difference"], "ci_low": ci[0],
                     "ci_high": ci[1], "p_value": r["p_value"],
                     "mcnemar_p_value": (r.get("mcnemar") or {}).get("p_value")})
    return pd.DataFrame(rows)


def paired_markdown(result: dict) -> str:
    """The paired table as Markdown, footer included: the same cells as the terminal table."""
    level = f"{100 * result['bootstrap']['level']:g}% CI"
    lines = [f"| metric | A | B | B - A | {level} | p | better |", "|---|---|---|---|---|---|---|"]
    for r in result["results"]:
        lines.append("| " + " | ".join([r["metric"], *_cells(r)]) + " |")
    return "\n".join(lines) + f"\n\nA = {result['a']['run_id']}, B = {result['b']['run_id']}. {footer(result)}\n"


def _cells(r: dict) -> list[str]:
    """A, B, B - A (``*`` when p < alpha), interval, p and the better run of one metric's row."""
    from evalkit.stats import p_text

    ci = "—" if r["ci"] is None else f"[{r['ci'][0]:+.4f}, {r['ci'][1]:+.4f}]"
    p = r["p_value"]
    mark = "*" if p is not None and p < ALPHA else ""
    diff = "—" if r["difference"] != r["difference"] else f"{r['difference']:+.4f}{mark}"
    return [_num(r["a"]), _num(r["b"]), diff, ci, "—" if p is None else p_text(p, ALPHA), _better(r) if mark else "—"]


def _run_line(tag: str, info: dict, differ: set[str]) -> str:
    params = ", ".join(f"{'[bold]' if k in differ else ''}{k}={escape(str(info['params'][k]))}{'[/]' if k in differ else ''}"
                       for k in SHOWN_PARAMS if k in info["params"])
    return f"{tag} = {info['run_id']}  {escape(info['run_name'] or '')}  ({params})"


def footer(result: dict) -> str:
    """How the numbers were computed, in one paragraph."""
    from evalkit.stats import p_text

    bs = result["bootstrap"]
    text = (f"Paired bootstrap over the same {result['n_rows']} test rows ({bs['resamples']} resamples, seed "
            f"{bs['seed']}; {bs['level']:.0%} percentile interval of B - A; p two-sided); each run at its own "
            f"thresholds, metrics from the kept scores (scores.parquet). * = p < {ALPHA:g}; better: the run a "
            f"significant difference favours.")
    for r in result["results"]:
        mc = r.get("mcnemar")
        if mc:
            text += (f" subset_accuracy, McNemar exact test: p = {p_text(mc['p_value'], ALPHA)} ({mc['a_only']} "
                     f"{'row' if mc['a_only'] == 1 else 'rows'} only A matches exactly, {mc['b_only']} only B).")
    return text


def render_paired(result: dict, console) -> None:
    """The paired table: A, B, B - A with its interval and p-value per metric, and the footer."""
    from rich.table import Table

    a, b = result["a"], result["b"]
    differ = {k for k in SHOWN_PARAMS if a["params"].get(k) != b["params"].get(k)}
    level = f"{result['bootstrap']['level']:.0%} CI"
    t = Table(title=escape(f"Paired comparison on {result['n_rows']} test rows (digest {result['digest'] or '?'}): B - A"),
              title_justify="left")
    for col in ("metric", "A", "B", "B - A", level, "p", "better"):
        t.add_column(col, justify="left" if col == "metric" else "right")
    for r in result["results"]:
        t.add_row(escape(r["metric"].removeprefix("test/")), *_cells(r))
    console.print(_run_line("A", a, differ), highlight=False, soft_wrap=True)
    console.print(_run_line("B", b, differ), highlight=False, soft_wrap=True)
    console.print(t)
    console.print(f"[dim]{escape(footer(result))}[/]", soft_wrap=True)


def _better(r: dict) -> str:
    """``A`` or ``B``: the run the difference favours (lower is better for Hamming loss)."""
    from evalkit.direction import lower_is_better

    return "B" if (r["difference"] < 0) == lower_is_better(r["metric"]) else "A"


def _num(v) -> str:
    return "—" if v is None or v != v else f"{v:.4f}"
