"""The ``evalkit`` command line: a thin typed layer over the Python API (:mod:`evalkit.workflows`).

Options of ``run`` and ``evaluate`` are derived from :class:`~evalkit.config.RunConfig` and
:class:`~evalkit.config.EvaluateJobConfig` (:mod:`evalkit.cli.options`); rendering lives in
:mod:`evalkit.cli.ui`. Exit codes: 0 success (all gates pass), 1 a gate failed, 2 bad input or
usage, 3 infrastructure fault (tracking store unreachable, model not loadable), 130/143 interrupted.
"""

from __future__ import annotations

import sys
from enum import Enum
from typing import Annotated, Any, Literal, Optional

import typer

from evalkit.cli.options import RAY_OPTIONS, collect, layout, parameters, with_parameters
from evalkit.config import EvaluateJobConfig, RunConfig
from evalkit.errors import InputError, field_name

from evalkit.cli.app import Command, _ex, _fail, _terminate_on_sigterm, app, console, user_errors  # noqa: F401


RUN_SPEC_HELP = ("Experiment spec (experiments/*.toml): RunConfig fields and an optional \\[grid] table of runs; "
                 "flags override it.")
JOB_SPEC_HELP = ("TOML job spec; its \\[evaluate] table sets these options (the command line wins; --gate / "
                 "--max-drop add to the spec's, see --replace-gates).")
VERBOSE_HELP = ("A spec's \\[grid]: print each cell's dataset, training and report tables as a single run does "
                "(default: one line per cell as it ends, then the grouped summary).")
REPLACE_GATES_HELP = ("With --spec: --gate / --max-drop replace the spec's gates and max_drop (and its baseline "
                      "unless --max-drop is given) instead of adding to them.")
FORCE_HELP = "Overwrite an existing output file (-o / --plot); an input of the command is never overwritten."
Force = Annotated[bool, typer.Option("--force", help=FORCE_HELP)]
Executor = Optional[Literal["sequential", "ray"]]


def config_command(model):
    """Register a command whose options are ``model``'s fields (see :mod:`evalkit.cli.options`), in
    the order of its help panels."""

    def wrap(fn):
        return app.command(cls=Command)(with_parameters(parameters(model, fn.__name__), fn.__name__)(fn))

    return wrap


@config_command(RunConfig)
def run(
    ctx: typer.Context,
    spec: Annotated[Optional[str], typer.Argument(help=RUN_SPEC_HELP, metavar="SPEC", show_default=False)] = None,
    track: Annotated[bool, typer.Option("--track/--no-track", help="Log the run to MLflow.",
                                        **layout("run", "track", bool))] = True,
    kind: Annotated[Optional[str], typer.Option("--executor", help="Where a spec's grid cells run: " + _ex("kind"),
                                                **layout("run", "kind", Executor))] = None,
    address: Annotated[Optional[str], typer.Option("--ray-address", help=_ex("address"), **layout("run", "address"))] = None,
    max_concurrent: Annotated[Optional[int], typer.Option(help=_ex("max_concurrent"),
                                                          **layout("run", "max_concurrent", int))] = None,
    cpus_per_cell: Annotated[Optional[float], typer.Option(help=_ex("cpus_per_cell"),
                                                           **layout("run", "cpus_per_cell", float))] = None,
    gpus_per_cell: Annotated[Optional[float], typer.Option(help=_ex("gpus_per_cell"),
                                                           **layout("run", "gpus_per_cell", float))] = None,
    max_retries: Annotated[Optional[int], typer.Option(help=_ex("max_retries"), **layout("run", "max_retries", int))] = None,
    force: Annotated[bool, typer.Option("--force", help=FORCE_HELP, **layout("run", "force", bool))] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help=VERBOSE_HELP, **layout("run", "verbose", bool))] = False,
    **options: Any,
) -> None:
    """Train a model on a dataset with a chosen loss, evaluate it on the test split, log to MLflow.

    Data files: see `evalkit datasets` for the formats and the --label-* options.
    """
    with user_errors(ctx) as names:
        overrides = collect(RunConfig, dict(options), ctx)
        placement = dict(kind=kind, address=address, max_concurrent=max_concurrent, cpus_per_cell=cpus_per_cell,
                         gpus_per_cell=gpus_per_cell, max_retries=max_retries)
        if spec is None and any(v is not None for v in placement.values()):
            raise InputError(f"{' / '.join(map(field_name, RAY_OPTIONS))}: apply to the cells of a spec "
                             "(evalkit run SPEC); give a spec file")
        if spec is not None:
            from evalkit.spec import load_spec, spec_table

            names.from_spec(spec_table(spec), overrides | {k: v for k, v in placement.items() if v is not None})
        configs = load_spec(spec).configs(overrides) if spec is not None else [RunConfig(**overrides)]
        from evalkit.cli.outputs import results_kept
        from evalkit.inputs import check_run_inputs

        # before anything heavy is imported, before any training; a --resume's saved configuration checked
        checked = _check_run_outputs(configs, track, force, spec, names)
        for config in checked:
            check_run_inputs(config)
        if track or all(c.output for c in checked):
            results_kept()  # a full stdout only warns
        _terminate_on_sigterm()  # SIGTERM before the run's own handler: one line, exit 143, workers stopped
        from evalkit.cli.ui import ConsoleRenderer, flushed

        # "Report written" after the results; a grid prints one line per cell unless --verbose
        renderer = ConsoleRenderer(console(), defer=("written",), quiet_cells=not verbose)
        if spec is not None:
            from evalkit.workflows.grid import run_spec

            with flushed(renderer):
                run_spec(spec, overrides, track=track, on_event=renderer, executor=placement)
            return
        from evalkit.workflows.experiment import run_experiment

        with flushed(renderer):
            run_experiment(configs[0], track=track, on_event=renderer)


def _check_run_outputs(configs: list[RunConfig], track: bool, force: bool, spec: str | None,
                       names=None) -> list[RunConfig]:
    """The configurations the runs will have (a ``--resume``'s is the killed run's saved one: its
    inputs, its ``-o``), their outputs checked against their inputs (:func:`check_config_outputs`).

    Raises:
        InputError: an output that is an input or exists (without ``--force``); ``--no-track`` or
            another option with ``--resume``; a run without a checkpoint to resume.
    """
    from evalkit.cli.outputs import check_config_outputs
    from evalkit.workflows.resume import resumed_config

    checked = [resumed_config(c, track) if c.resume else c for c in configs]
    first = configs[0]
    saved = first.resume and "output" not in first.model_fields_set  # the killed run's own -o, written now
    flag = f"-o/--output (of run {first.resume})" if saved else "-o/--output"
    check_config_outputs(checked, force, spec, output_flag=flag, names=names)
    return checked


# -- evaluate ------------------------------------------------------------------------------------------


@config_command(EvaluateJobConfig)
def evaluate(
    ctx: typer.Context,
    no_per_class: Annotated[bool, typer.Option("--no-per-class", help="Same as --per-class none.",
                                               **layout("evaluate", "no_per_class", bool))] = False,
    spec: Annotated[Optional[str], typer.Option(help=JOB_SPEC_HELP, **layout("evaluate", "spec"))] = None,
    replace_gates: Annotated[bool, typer.Option("--replace-gates", help=REPLACE_GATES_HELP,
                                                **layout("evaluate", "replace_gates", bool))] = False,
    force: Annotated[bool, typer.Option("--force", help=FORCE_HELP, **layout("evaluate", "force", bool))] = False,
    **options: Any,
) -> None:
    """Evaluate existing predictions (or a model) with the same report as `evalkit run`, and gate on it.

    Exit codes: 0 all gates pass, 1 a gate failed, 2 bad input or usage, 3 infrastructure fault
    (tracking store unreachable: the report is still written and the run spooled locally).
    """
    with user_errors(ctx) as names:
        given = collect(EvaluateJobConfig, dict(options), ctx)
        if no_per_class:
            given["per_class"] = "none"
        if replace_gates and not spec:
            raise InputError("--replace-gates: applies to evaluate --spec FILE (whose gates it replaces); drop it")
        if spec:
            from evalkit.spec import load_evaluate_spec, spec_table

            names.from_spec(spec_table(spec, "evaluate"), given, "evaluate")
        config = load_evaluate_spec(spec, given, replace_gates=replace_gates) if spec else EvaluateJobConfig(**given)
        from evalkit.cli.outputs import check_config_outputs, results_kept
        from evalkit.inputs import check_evaluate_inputs

        check_config_outputs([config], force, spec, names=names)  # before anything heavy is imported or evaluated
        check_evaluate_inputs(config)
        if config.track or config.output:
            results_kept()  # a full stdout only warns
        _terminate_on_sigterm()
        from evalkit.cli.ui import ConsoleRenderer, flushed, split_renderer
        from evalkit.workflows.job import evaluate_job

        out = console()
        # the results are printed once the report file and the run are saved
        renderer = ConsoleRenderer(out, defer=("report", "gates", "tracked", "written"))
        with flushed(renderer):
            result = evaluate_job(config, on_event=split_renderer(renderer, ConsoleRenderer(console(stderr=True))))
        if result.error:
            if not getattr(result, "report_written", True):  # the report file could not be written
                sys.stdout.write(result.report.to_json() + "\n")
                sys.stdout.flush()
            _fail(result.error, result.exit_code)
        if result.exit_code:
            raise typer.Exit(result.exit_code)


# -- listing commands ----------------------------------------------------------------------------------


@app.command(cls=Command)
def losses() -> None:
    """List the available losses with their options and documented defaults."""
    from rich.table import Table

    from evalkit.losses import LOSSES

    t = Table(title="Losses (--loss NAME, options with --loss-option KEY=VALUE)", title_justify="left", show_lines=True)
    for col in ("name", "what it is", "when it helps", "options (default)"):
        t.add_column(col)
    for spec in LOSSES.values():
        opts = "\n".join(f"{k}={v[0]:g}: {v[1]}" for k, v in spec.options.items()) or "—"
        t.add_row(spec.name, spec.summary, spec.when, opts)
    console().print(t)


# -- compare -------------------------------------------------------------------------------------------


class Format(str, Enum):
    """Output format of ``evalkit compare``."""
    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"


@app.command(cls=Command)
def compare(
    ctx: typer.Context,
    runs: Annotated[Optional[list[str]], typer.Argument(help="RUN_A RUN_B: compare two runs on the same test rows, row by row (paired bootstrap of B - A; needs their scores.parquet). Run ids, or their first 6+ digits.", show_default=False, metavar="RUN_A RUN_B")] = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment name.")] = RunConfig.model_fields["experiment"].default,
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI (default sqlite:///mlruns/mlflow.db).")] = None,
    format: Annotated[Format, typer.Option("--format", help="table, csv, json or markdown.")] = Format.table,
    metric: Annotated[Optional[list[str]], typer.Option(help="Metric column, repeatable (default: headline test metrics).")] = None,
    group_by: Annotated[str, typer.Option("--group-by", "--by", help="Group runs by this param (mean ± std, ranking, paired test over seeds); 'none' lists every run (as does the default when no run has a loss param).")] = "loss",
    parent: Annotated[Optional[str], typer.Option(help="Compare the child runs of this grid parent run (default: the latest grid's, if any).")] = None,
    rank_by: Annotated[Optional[str], typer.Option(help="Metric that ranks the groups (default: the first metric).")] = None,
    log_plot: Annotated[bool, typer.Option("--log-plot", help="Log the grouped bar chart to the grid's parent run.")] = False,
    trigger: Annotated[Optional[str], typer.Option(help="History mode: the runs tagged evalkit.trigger=TRIGGER (scheduled, manual) over time, as a table and --plot.")] = None,
    job: Annotated[Optional[str], typer.Option(help="History mode: only the runs of this job (tag evalkit.job).")] = None,
    plot: Annotated[Optional[str], typer.Option(help="Save a PNG: the grouped bar chart (with error bars), or in history mode the metrics over time.")] = None,
    force: Force = False,
) -> None:
    """Compare the runs of an experiment: grouped by loss (mean ± std over seeds, ranked, with a paired
    significance test of the best group's lead, Holm-adjusted), or one row per run with --group-by none.

    With RUN_A RUN_B: the two runs' metrics recomputed from their kept test scores, with the paired
    difference B - A, its bootstrap interval and p-value (McNemar's exact test for subset accuracy);
    refused (exit 2) when the runs were evaluated on different test rows.

    With --trigger / --job: the history of a scheduled job (oldest first) and its trend (--plot FILE).
    """
    with user_errors():
        from evalkit.gates import metric_key

        metric = [metric_key(m) for m in metric] if metric else metric  # gate aliases too: macro_f2, map
        rank_by = metric_key(rank_by) if rank_by else rank_by
        if runs:
            from evalkit.cli.paired_table import show_paired

            show_paired(runs, tracking_uri, console(), metrics=metric, fmt=format.value,
                        others={"--parent": parent, "--rank-by": rank_by, "--trigger": trigger, "--job": job,
                                "--plot": plot, "--log-plot": log_plot or None})
            return
        from evalkit.tracking import resolve_tracking_uri

        from evalkit.cli.outputs import DEFAULT_STORE, check_outputs, check_plot_path

        check_plot_path(plot)
        check_outputs({"--plot": plot}, {"--tracking-uri": tracking_uri or DEFAULT_STORE}, force)
        uri = resolve_tracking_uri(tracking_uri)
        if trigger or job:
            from evalkit.cli.tables import show_history
            from evalkit.history import DEFAULT_METRICS

            show_history(uri, experiment, console(), tuple(metric or DEFAULT_METRICS), trigger=trigger, job=job,
                         plot=plot, fmt=format.value)
            return
        from evalkit.cli.tables import show_compare

        defaulted = getattr(ctx.get_parameter_source("group_by"), "name", "") == "DEFAULT"  # not typed
        show_compare(uri, experiment, console(), group_by=None if group_by.lower() == "none" else group_by,
                     metrics=tuple(metric) if metric else None, parent=parent, rank_by=rank_by, fmt=format.value,
                     plot=plot, log_plot=log_plot, or_each=defaulted and not (plot or log_plot))


# -- spool ---------------------------------------------------------------------------------------------


@app.command("sync-spool", cls=Command)
def sync_spool(
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI to upload to (default: the store each run was meant for).")] = None,
    spool_dir: Annotated[Optional[str], typer.Option(help="Spool directory (default $EVALKIT_SPOOL_DIR or mlruns/spool).")] = None,
    tracking_timeout: Annotated[float, typer.Option(help="Seconds to wait for the tracking store.")] = EvaluateJobConfig.model_fields["tracking_timeout"].default,
) -> None:
    """Upload runs spooled while the tracking store was unreachable; each is removed once uploaded.

    Each entry uploads once (a restored entry is skipped); a corrupt one is moved to corrupt/.

    Another sync running on the same spool: waits up to 10 s, then leaves it to that one (exit 0).

    Exit codes: 0 all uploaded (or nothing to do), 2 corrupt entries moved aside, 3 some runs kept.
    """
    with user_errors():
        from evalkit.cli.outputs import results_kept
        from evalkit.cli.spool_render import show_sync
        from evalkit.tracking import resolve_tracking_uri
        from evalkit.tracking import sync_spool as upload

        if tracking_uri:
            resolve_tracking_uri(tracking_uri)  # malformed URI: exit 2
        results_kept()
        show_sync(upload(tracking_uri, spool_dir, timeout=tracking_timeout), console())


__all__ = ["app", "InputError"]
