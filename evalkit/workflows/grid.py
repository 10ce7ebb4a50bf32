"""``evalkit run SPEC``: an experiment spec, with an optional ``[grid]`` of runs under one MLflow parent."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.workflows.events import EventCallback, make_emitter
from evalkit.workflows.experiment import RunResult, run_experiment


@dataclass(frozen=True)
class GridResult:
    """What :func:`run_spec` returns: one :class:`RunResult` per cell, the parent run (``None``
    without a grid or tracking), the grouped statistics (:func:`evalkit.compare.group_stats`) and
    the wall time in seconds."""

    results: list[RunResult]
    parent_run_id: str | None
    stats: dict | None
    seconds: float = 0.0
    #: cells that failed after their retries (Ray executor): ``{"cell": label, "error": line}``
    failed: list[dict] = field(default_factory=list)


def run_spec(path: str, overrides: dict[str, Any] | None = None, *, track: bool = True,
             on_event: EventCallback | None = None, executor: dict[str, Any] | None = None) -> GridResult:
    """Run an experiment spec (``experiments/*.toml``, see :mod:`evalkit.spec`).

    A spec with a ``[grid]`` runs one MLflow parent run (tag ``evalkit.grid=parent``, the spec file as
    an artifact) with one child run per grid cell, then reports and logs the cells grouped by the
    first grid axis that is not ``seed`` (mean ± std, paired test; ``compare.json`` and a bar chart on
    the parent). Without a grid it is a single run. ``overrides`` (CLI flags) win over spec values.
    With a grid, ``output`` receives the grouped summary instead of a per-run report.

    ``executor`` (:class:`~evalkit.config.ExecutorConfig` fields, CLI flags) wins over the spec's
    ``[executor]`` table. The default runs the cells one after another in this process; ``kind="ray"``
    runs them as Ray tasks (:mod:`evalkit.workflows.executors`): a cell that still fails after
    ``max_retries`` is reported (``GridResult.failed``, parent tags ``evalkit.cells_succeeded`` /
    ``evalkit.cells_failed``) while the others finish.

    Raises:
        InputError: invalid spec (``file:line: field: problem``) or options (a Ray cluster with a local
            tracking store; Ray not installed), before anything runs.
        InfraError: tracking store unreachable; Ray cannot be started or joined.
        EvalkitError: every cell of a Ray grid failed (the first cell's error; InfraError when it was
            not an evalkit error).
    """
    from evalkit.spec import Spec, load_spec
    from evalkit.workflows.executors import make_executor
    from evalkit.workflows.ray_session import import_ray

    emit = make_emitter(on_event)
    started = time.perf_counter()
    spec = load_spec(path)
    configs = spec.configs(overrides)
    options = spec.executor_config(executor)
    options.check_applies()  # Ray-only options with the sequential executor: refused, not ignored
    grid = {k: v for k, v in spec.grid.items() if k not in (overrides or {})}
    cell_values = list(Spec(spec.path, spec.base, grid, spec.text).cells())
    check_label_counts(spec, cell_values, configs, overrides or {})
    if options.kind == "ray":
        import_ray()  # missing extra: exit 2 before anything runs
    if not grid:
        res = run_experiment(configs[0], track=track, on_event=emit)
        return GridResult([res], None, None, time.perf_counter() - started)
    axes = list(grid)
    group_by = next((a for a in axes if a != "seed"), axes[0])
    cells, configs, store = _cells(configs, cell_values, options, track)
    executor = make_executor(options)
    try:
        if options.kind == "ray":
            # start Ray and warm its workers now, while this process readies the store in a thread (a
            # new SQLite store's migrations take seconds): the two waits overlap instead of adding up
            with _in_background(_ready_store, store, configs[0].tracking_timeout) as failed:
                executor.start(cells[0].config, store)
            from evalkit.errors import EvalkitError

            if failed and isinstance(failed[0], EvalkitError):  # store unreachable: exit 3 before any run
                raise failed[0]
        return _run_cells(executor, cells, configs, grid, group_by, path, store, options, started, emit)
    finally:
        executor.close()


def resolve_cells_store(config, options, track: bool) -> str | None:
    """The tracking store of a grid's or a search's cells, resolved once (None when not tracked);
    refuses a Ray cluster (``options.address``) whose workers could not reach it (InputError)."""
    from evalkit.workflows.ray_session import check_cluster_store

    if not track:
        if options.address:
            check_cluster_store(options, None)
        return None
    from evalkit.tracking import resolve_tracking_uri

    store = resolve_tracking_uri(config.tracking_uri)
    check_cluster_store(options, store, config.experiment)
    return store


def _cells(configs: list, cell_values: list[dict], options, track: bool):
    """``(cells, configs, store)``: the grid's :class:`~evalkit.workflows.executors.Cell` list, the
    cells' configs (tracking to the one ``store`` resolved for the grid) and that store (None when
    not tracked). Raises InputError for a Ray cluster with a store its workers cannot reach."""
    from evalkit.workflows.executors import Cell

    store = resolve_cells_store(configs[0], options, track)
    if store is not None:  # the children log there too
        configs = [c.model_copy(update={"tracking_uri": store}) for c in configs]
    cells = [Cell(i, len(configs), " ".join(f"{k}={v}" for k, v in values.items()), values,
                  cfg.model_copy(update={"output": None}))
             for i, (values, cfg) in enumerate(zip(cell_values, configs), 1)]
    return cells, configs, store


def check_label_counts(spec, cells: list[dict], configs: list, overrides: dict, section: str = "grid") -> None:
    """Refuse a ``top-k:K`` threshold with K above its cell's label count before any cell runs (each
    cell's data read once per distinct dataset, only for top-k cells).

    Raises:
        InputError: ``file:line: grid.threshold: ...`` (``section.threshold``; ``--threshold: ...`` for
            the flag); a data error.
    """
    from evalkit.data import load_dataset
    from evalkit.errors import InputError
    from evalkit.thresholds import check_strategy

    labels: dict[str, int] = {}
    for cell, cfg in zip(cells, configs):
        strategy = cfg.threshold_strategy
        if strategy.name != "top-k":
            continue
        key = json.dumps([cfg.dataset, cfg.test_dataset, cfg.reader_options], sort_keys=True, default=str)
        if key not in labels:
            labels[key] = load_dataset(cfg.dataset, cfg.test_dataset, **cfg.reader_options)[0].n_labels
        try:
            check_strategy(strategy, labels[key])
        except InputError as e:
            if "threshold" in overrides:
                raise
            raise spec.located_error(("threshold",), str(e).removeprefix("--threshold: "), cell, section) from None


def _ready_store(store: str | None, timeout: float) -> None:
    """Open (create, migrate) the tracking store ahead of the parent run, within ``timeout`` seconds
    (``tracking_timeout``); its errors surface there."""
    if store:
        from evalkit.tracking import ensure_store

        ensure_store(store, timeout)


@contextmanager
def _in_background(fn, *args):
    """Run ``fn(*args)`` in a thread while the ``with`` body runs, and wait for it on exit. Yields a
    list that then holds ``fn``'s exception, if it raised (for the caller to raise in its thread)."""
    import threading

    failed: list[BaseException] = []

    def call() -> None:
        try:
            fn(*args)
        except Exception as e:
            failed.append(e)

    thread = threading.Thread(target=call, name=f"evalkit-{fn.__name__}", daemon=True)
    thread.start()
    try:
        yield failed
    finally:
        thread.join()


def _run_cells(executor, cells, configs, grid, group_by: str, path: str, store: str | None, options, started: float,
               emit) -> GridResult:
    """The grid's parent run around ``executor.run(cells)``, then the grouped summary."""
    first = configs[0]
    track = store is not None
    logger = None
    if track:
        from evalkit.tracking import RunLogger, TrackingSettings

        logger = RunLogger(TrackingSettings(store, first.tracking_timeout), first.experiment,
                           run_name=first.run_name or Path(path).stem,
                           tags={"evalkit.command": "run", "evalkit.grid": "parent", "evalkit.spec": str(path)})
    results: list[RunResult] = []
    rows = []
    with (logger if logger is not None else nullcontext()) as parent:
        if parent:
            parent.log_params({"spec": str(path), "grid": json.dumps(grid), "cells": len(configs),
                               "group_by": group_by, "executor": options.kind})
            parent.log_artifact(path)
        outcomes = executor.run(cells, track=track, parent_run_id=parent.run_id if parent else None,
                                tracking_uri=logger.tracking_uri if logger else None, emit=emit)
        executor.release()  # Ray's processes exit while the summary is made
        failed = [{"cell": o.cell.label, "error": o.error} for o in outcomes if not o.ok]
        for o in outcomes:
            if o.ok:
                results.append(o.result)
                rows.append({k: str(v) for k, v in o.cell.values.items()}
                            | {"run_id": o.result.run_id or f"cell-{o.cell.index}"} | o.result.report.metrics("test"))
        if parent:
            parent.set_tags({"evalkit.cells_succeeded": str(len(results)), "evalkit.cells_failed": str(len(failed))})
        if not results:
            _all_failed(outcomes)
        if failed:
            emit("warning", text=f"{len(failed)} of {len(cells)} cells FAILED after {options.max_retries} "
                                 f"retr{'y' if options.max_retries == 1 else 'ies'}: "
                                 + "; ".join(f"{f['cell']} ({f['error']})" for f in failed))
        stats, unwritten = _summarise(rows, group_by, path, len(configs), started, first.output, parent, emit)
    if unwritten is not None:  # disk full / read-only: every run is logged; exit 3 with the summary on stdout
        raise unwritten
    if parent:
        emit("grid_done", parent_run_id=parent.run_id, runs=len(results), experiment=first.experiment)
    return GridResult(results, parent.run_id if parent else None, stats, time.perf_counter() - started, failed)


def _all_failed(outcomes) -> None:
    """Every cell failed: raise the first cell's error as one line. An evalkit error keeps its kind
    (an InputError: exit 2); anything else (a crashed or killed worker, an exception in a cell) is
    an :class:`~evalkit.errors.InfraError` (exit 3), not a traceback."""
    from evalkit.errors import EvalkitError, InfraError

    first = outcomes[0]
    kind = type(first.exception) if isinstance(first.exception, EvalkitError) else InfraError
    raise kind(f"every grid cell failed; cell {first.cell.label}: {first.error}")


def _summarise(rows: list[dict], group_by: str, path: str, n: int, started: float, output: str | None, parent, emit):
    """Group the cells' test metrics, report them, log ``compare.json`` and the bar chart, write ``output``."""
    import pandas as pd

    from evalkit.compare import GROUP_HEADLINE, by_dataset, group_stats

    df, key = by_dataset(pd.DataFrame(rows), group_by, dataset="dataset")  # a dataset axis: never mixed
    metrics = tuple(m for m in GROUP_HEADLINE if m in df.columns)
    stats = group_stats(df, key, metrics, within="dataset" if key != group_by else None) if len(df) > 1 else None
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
