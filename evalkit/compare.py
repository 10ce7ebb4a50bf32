"""``evalkit compare``: the runs of an experiment side by side, best value per column marked."""

from __future__ import annotations

from evalkit.tracking import LOWER_IS_BETTER, search_runs

HEADLINE = ("test/micro_f2", "test/macro_f2", "test/macro_map", "test/macro_auroc", "test/subset_accuracy",
            "test/hamming_loss")
PARAM_COLUMNS = ("loss", "seed", "threshold", "model")


def runs_frame(tracking_uri: str, experiment: str, metrics=HEADLINE, params=PARAM_COLUMNS, filter_string: str = ""):
    """One row per run: run id, name, status, the given params and metrics (pandas DataFrame)."""
    import pandas as pd

    df = search_runs(tracking_uri, experiment, filter_string=filter_string)
    cols: dict = {}
    if len(df) == 0:
        return pd.DataFrame(columns=["run_id", "run_name", "status", *params, *metrics])
    cols["run_id"] = df["run_id"]
    cols["run_name"] = df.get("tags.mlflow.runName", pd.Series([""] * len(df)))
    cols["status"] = df["status"]
    cols["start_time"] = df["start_time"]
    for p in params:
        cols[p] = df.get(f"params.{p}", pd.Series([None] * len(df)))
    for m in metrics:
        cols[m] = df.get(f"metrics.{m}", pd.Series([float("nan")] * len(df))).astype(float)
    return pd.DataFrame(cols).reset_index(drop=True)


def best_index(series) -> int | None:
    """Row index of the best value of a metric column (min for losses / errors, else max)."""
    s = series.dropna()
    if s.empty:
        return None
    lower = any(str(series.name).endswith(k) for k in LOWER_IS_BETTER)
    return int(s.idxmin() if lower else s.idxmax())


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
