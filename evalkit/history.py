"""The history of a scheduled job: ``evalkit compare --trigger scheduled --metric test/macro_f2``.

One row per evaluation run (oldest first) with its time, job, gate verdict, the metrics whose gates
failed (tag ``evalkit.failed_gates``) and the metrics, for a table and a line plot of each metric
over time (``--plot FILE``, PNG via matplotlib's Agg backend; a point whose own gate failed is
marked with a red cross).
"""

from __future__ import annotations

DEFAULT_METRICS = ("test/macro_f2",)


def history_frame(tracking_uri: str, experiment: str, metrics=DEFAULT_METRICS, *, trigger: str | None = None,
                  job: str | None = None):
    """Runs of ``experiment`` with ``evalkit.trigger == trigger`` (and ``evalkit.job == job``), oldest
    first: columns ``start_time`` (UTC), ``run_id``, ``job``, ``trigger``, ``gate``, ``status``, metrics."""
    import pandas as pd

    from evalkit.tracking import search_runs
    from evalkit.tracking.queries import filter_string_value

    parts = []
    if trigger:
        parts.append(f"tags.\"evalkit.trigger\" = {filter_string_value(trigger, '--trigger', '')}")
    if job:
        parts.append(f"tags.\"evalkit.job\" = {filter_string_value(job, '--job', '')}")
    df = search_runs(tracking_uri, experiment, filter_string=" and ".join(parts))
    cols = ["start_time", "run_id", "job", "trigger", "gate", "failed_gates", "status", *metrics]
    if len(df) == 0:
        return pd.DataFrame(columns=cols)
    out = pd.DataFrame({
        "start_time": pd.to_datetime(df["start_time"], utc=True),
        "run_id": df["run_id"],
        "job": df.get("tags.evalkit.job", pd.Series([None] * len(df))),
        "trigger": df.get("tags.evalkit.trigger", pd.Series([None] * len(df))),
        "gate": df.get("tags.evalkit.gate", pd.Series([None] * len(df))),
        "failed_gates": df.get("tags.evalkit.failed_gates", pd.Series([None] * len(df))).fillna(""),
        "status": df["status"],
    })
    for m in metrics:
        out[m] = df.get(f"metrics.{m}", pd.Series([float("nan")] * len(df))).astype(float)
    return out.sort_values("start_time", kind="stable").reset_index(drop=True)[cols]


def plot_history(df, metrics=DEFAULT_METRICS, path: str | None = None, title: str = ""):
    """Line plot of each metric over time; runs whose gate failed get a red cross. Saved as PNG to
    ``path`` when given. Returns the matplotlib Figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    marked = False
    for m in metrics:
        ax.plot(df["start_time"], df[m], marker="o", label=m)
        failed = df[df["failed_gates"].astype(str).str.split(",").apply(lambda names, m=m: m in names)]
        if len(failed):  # only the points whose own gate failed
            ax.scatter(failed["start_time"], failed[m], marker="x", color="red", s=80, zorder=3,
                       label=None if marked else "gate failed")
            marked = True
    ax.set_xlabel("run start (UTC)")
    ax.set_ylabel("value")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.autofmt_xdate()
    fig.tight_layout()
    if path:
        from evalkit.plots import save_figure

        save_figure(fig, path, dpi=100)  # atomic: temporary file + rename
    return fig
