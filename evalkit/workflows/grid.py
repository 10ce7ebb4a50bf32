"""``evalkit run SPEC``: an experiment spec, with an optional ``[grid]`` of runs under one MLflow parent."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.workflows.events import EventCallback, make_emitter
from evalkit.workflows.experiment import RunResult, _no_run, run_experiment


@dataclass(frozen=True)
class GridResult:
    """What :func:`run_spec` returns: one :class:`RunResult` per cell, the parent run (``None``
    without a grid or tracking), the grouped statistics (:func:`evalkit.compare.group_stats`) and
    the wall time in seconds."""

    results: list[RunResult]
    parent_run_id: str | None
    stats: dict | None
    seconds: float = 0.0


def run_spec(path: str, overrides: dict[str, Any] | None = None, console=None, *, track: bool = True,
             on_event: EventCallback | None = None) -> GridResult:
    """Run an experiment spec (``experiments/*.toml``, see :mod:`evalkit.spec`).

    A spec with a ``[grid]`` runs one MLflow parent run (tag ``evalkit.grid=parent``, the spec file as
    an artifact) with one child run per grid cell, then reports and logs the cells grouped by the
    first grid axis that is not ``seed`` (mean ± std, paired test; ``compare.json`` and a bar chart on
    the parent). Without a grid it is a single run. ``overrides`` (CLI flags) win over spec values.
    With a grid, ``output`` receives the grouped summary instead of a per-run report.

    Raises:
        InputError: invalid spec (``file:line: field: problem``) or options, before anything runs.
        InfraError: tracking store unreachable.
    """
    from evalkit.spec import Spec, load_spec

    emit = make_emitter(on_event, console)
    started = time.perf_counter()
    spec = load_spec(path)
    configs = spec.configs(overrides)
    grid = {k: v for k, v in spec.grid.items() if k not in (overrides or {})}
    if not grid:
        res = run_experiment(configs[0], track=track, on_event=emit)
        return GridResult([res], None, None, time.perf_counter() - started)
    first = configs[0]
    axes = list(grid)
    group_by = next((a for a in axes if a != "seed"), axes[0])
    logger = None
    if track:
        from evalkit.tracking import RunLogger, resolve_tracking_uri

        store = resolve_tracking_uri(first.tracking_uri)  # once for the grid: the children log there too
        configs = [c.model_copy(update={"tracking_uri": store}) for c in configs]
        logger = RunLogger(store, first.experiment,
                           run_name=first.run_name or Path(path).stem,
                           tags={"evalkit.command": "run", "evalkit.grid": "parent", "evalkit.spec": str(path)})
    results: list[RunResult] = []
    rows = []
    with (logger if logger is not None else _no_run()) as parent:
        if parent:
            parent.log_params({"spec": str(path), "grid": json.dumps(grid), "cells": len(configs),
                               "group_by": group_by})
            parent.log_artifact(path)
        for i, (cell, cfg) in enumerate(zip(Spec(spec.path, spec.base, grid, spec.text).cells(), configs), 1):
            label = " ".join(f"{k}={v}" for k, v in cell.items())
            emit("grid_cell", i=i, n=len(configs), label=label)
            cfg = cfg.model_copy(update={"output": None})
            res = run_experiment(cfg, track=track, nested=True, on_event=emit,
                                 tags={"evalkit.grid": "child", "evalkit.cell": label})
            results.append(res)
            rows.append({k: str(v) for k, v in cell.items()} | {"run_id": res.run_id or f"cell-{i}"}
                        | res.report.metrics("test"))
        stats, unwritten = _summarise(rows, group_by, path, len(configs), started, first.output, parent, emit)
    if unwritten is not None:  # disk full / read-only: every run is logged; exit 3 with the summary on stdout
        raise unwritten
    if parent:
        emit("grid_done", parent_run_id=parent.run_id, runs=len(results), experiment=first.experiment)
    return GridResult(results, parent.run_id if parent else None, stats, time.perf_counter() - started)


def _summarise(rows: list[dict], group_by: str, path: str, n: int, started: float, output: str | None, parent, emit):
    """Group the cells' test metrics, report them, log ``compare.json`` and the bar chart, write ``output``."""
    import pandas as pd

    from evalkit.compare import GROUP_HEADLINE, group_stats

    df = pd.DataFrame(rows)
    metrics = tuple(m for m in GROUP_HEADLINE if m in df.columns)
    stats = group_stats(df, group_by, metrics) if len(df) > 1 else None
    seconds = time.perf_counter() - started
    if not stats:
        return None, None
    emit("grid_summary", stats=stats, title=f"Grid {Path(path).name}: {n} runs by {group_by} ({seconds:.0f} s)")
    if parent:
        import matplotlib.pyplot as plt

        from evalkit.plots import group_bars

        parent.log_dict(stats, "compare.json")
        fig = group_bars(stats, title=f"{Path(path).stem}: by {group_by}")
        try:
            parent.log_figure(fig, "plots/compare.png")
        finally:
            plt.close(fig)
        parent.log_metrics({"grid/seconds": seconds})
    if output:
        from evalkit.report import write_json_atomic

        from evalkit.errors import WriteError

        summary = stats | {"spec": str(path), "seconds": round(seconds, 2)}
        try:
            write_json_atomic(summary, output)
        except WriteError as e:
            e.args = (f"{e} (grid summary printed to stdout instead; every run was logged)",)
            e.report_json = json.dumps(summary, indent=2, default=str)
            return stats, e
        emit("written", path=output, what="Grid summary")
    return stats, None
