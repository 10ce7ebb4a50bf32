"""The ``evalkit`` command line: a thin typed layer over the Python API (:mod:`evalkit.workflows`).

Options of ``run`` and ``evaluate`` are derived from :class:`~evalkit.config.RunConfig` and
:class:`~evalkit.config.EvaluateJobConfig` (:mod:`evalkit.cli.options`); rendering lives in
:mod:`evalkit.cli.ui`. Exit codes: 0 success (all gates pass), 1 a gate failed, 2 bad input or
usage, 3 infrastructure fault (tracking store unreachable, model not loadable), 130/143 interrupted.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from enum import Enum
from typing import Annotated, Any, Optional

import typer

from evalkit.cli.options import collect, parameters, validation_message, with_parameters
from evalkit.config import EvaluateJobConfig, ExecutorConfig, RunConfig
from evalkit.errors import EXIT_BAD_INPUT, EvalkitError, InputError

app = typer.Typer(
    name="evalkit",
    help="Multi-label classification experiments: train with a chosen loss, evaluate exactly, track in MLflow.\n\n"
    "Exit codes: 0 ok, 1 a quality gate failed, 2 bad input or usage, 3 infrastructure fault "
    "(tracking store unreachable, model not loadable), 130/143 interrupted. "
    "Add --debug anywhere on the command line to show the traceback of an error (the exit code stays the same); "
    "--verbose shows MLflow's own log lines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DEBUG = False


def console(stderr: bool = False):
    """A rich console for stdout (or stderr); 160 columns when not a terminal (cron logs, CI)."""
    import os

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or "COLUMNS" in os.environ else 160
    return Console(stderr=stderr, highlight=False, width=width)


def _fail(message: str, code: int) -> None:
    """One line on stderr (never read as markup), the traceback too with ``--debug``, then exit ``code``."""
    err = console(stderr=True)
    err.print("[red]error:[/] ", end="")
    from evalkit.cli.ui import printable

    err.print(printable(message), markup=False, soft_wrap=True)
    if DEBUG:
        import traceback

        traceback.print_exc()
    raise typer.Exit(code)


@contextmanager
def user_errors():
    """Turn evalkit / validation errors into one line on stderr and the documented exit code
    (with ``--debug`` the traceback is printed too; the exit code does not change)."""
    from pydantic import ValidationError

    try:
        yield
    except EvalkitError as e:
        if getattr(e, "report_json", None):  # the report file could not be written: stdout, the last resort
            sys.stdout.write(e.report_json + "\n")
            sys.stdout.flush()
        _fail(str(e), e.exit_code)
    except ValidationError as e:
        _fail(validation_message(e), EXIT_BAD_INPUT)
    except (MemoryError, ImportError, OSError) as e:
        from evalkit.errors import EXIT_INFRA, os_cause, out_of_memory

        if out_of_memory(e):  # also an ImportError of a library that could not be mapped: exit 3, no traceback
            _fail(f"out of memory ({type(e).__name__}): raise the memory limit or lower --batch-size / --hidden / "
                  "--fold-processes; a run that had started is ended FAILED (tag evalkit.error)", EXIT_INFRA)
        if not isinstance(e, OSError):
            raise
        # disk full, read-only or unwritable paths not handled where they occurred: exit 3
        _fail(f"{e.filename or 'file system'}: {os_cause(e)}", EXIT_INFRA)
    except KeyboardInterrupt as e:
        from evalkit.tracking import Terminated

        code = 143 if isinstance(e, Terminated) else 130
        # RunLogger marks the interrupt when it ended a run KILLED; before any run there is nothing to claim
        tail = "; MLflow run ended as KILLED" if getattr(e, "run_killed", False) else ""
        console(stderr=True).print(f"interrupted ({'SIGTERM' if code == 143 else 'Ctrl-C'}){tail}", markup=False)
        raise typer.Exit(code) from None


def _terminate_on_sigterm() -> None:
    """SIGTERM before a run starts ends the command like Ctrl-C (one line, exit 143); inside a run
    the run's own handler takes over and ends it KILLED."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        from evalkit.tracking import Terminated

        def handler(signum, frame):
            raise Terminated("terminated by SIGTERM")

        signal.signal(signal.SIGTERM, handler)


def _version(value: bool) -> None:
    if value:
        from evalkit import __version__

        typer.echo(f"evalkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="Show the version and exit.", callback=_version,
                                          is_eager=True)] = False,
) -> None:
    """Multi-label classification experiments: train with a chosen loss, evaluate exactly, track in MLflow."""


# -- run -----------------------------------------------------------------------------------------------


def _ex(name: str) -> str:
    """Help of an executor option, from :class:`~evalkit.config.ExecutorConfig` (default shown)."""
    f = ExecutorConfig.model_fields[name]
    return f"{f.description} [spec: \\[executor] {name}; default: {f.default}]"




RUN_SPEC_HELP = ("Experiment spec (experiments/*.toml): RunConfig fields and an optional \\[grid] table of runs; "
                 "flags override it.")
JOB_SPEC_HELP = "TOML job spec; its \\[evaluate] table sets these options (the command line wins)."
FORCE_HELP = "Overwrite an existing output file (-o / --plot); an input of the command is never overwritten."
Force = Annotated[bool, typer.Option("--force", help=FORCE_HELP)]


def config_command(model, name: str | None = None):
    """Register a command whose options are ``model``'s fields (see :mod:`evalkit.cli.options`)."""

    def wrap(fn):
        return app.command(name)(with_parameters(parameters(model))(fn))

    return wrap


@config_command(RunConfig)
def run(
    ctx: typer.Context,
    spec: Annotated[Optional[str], typer.Argument(help=RUN_SPEC_HELP)] = None,
    track: Annotated[bool, typer.Option("--track/--no-track", help="Log the run to MLflow.")] = True,
    executor: Annotated[Optional[str], typer.Option(help="Where a spec's grid cells run: " + _ex("kind"))] = None,
    ray_address: Annotated[Optional[str], typer.Option(help=_ex("address"))] = None,
    max_concurrent: Annotated[Optional[int], typer.Option(help=_ex("max_concurrent"))] = None,
    cpus_per_cell: Annotated[Optional[float], typer.Option(help=_ex("cpus_per_cell"))] = None,
    gpus_per_cell: Annotated[Optional[float], typer.Option(help=_ex("gpus_per_cell"))] = None,
    max_retries: Annotated[Optional[int], typer.Option(help=_ex("max_retries"))] = None,
    force: Force = False,
    **options: Any,
) -> None:
    """Train a model on a dataset with a chosen loss, evaluate it on the test split, log to MLflow.

    Data files: see `evalkit datasets` for the formats and the --label-* options.
    """
    with user_errors():
        _terminate_on_sigterm()  # SIGTERM before the run's own handler: one line, exit 143, workers stopped
        from evalkit.cli.ui import ConsoleRenderer, flushed

        overrides = collect(RunConfig, dict(options), ctx)
        renderer = ConsoleRenderer(console(), defer=("written",))  # "Report written" after the results
        placement = dict(kind=executor, address=ray_address, max_concurrent=max_concurrent,
                         cpus_per_cell=cpus_per_cell, gpus_per_cell=gpus_per_cell, max_retries=max_retries)
        from evalkit.cli.outputs import check_config_outputs

        if spec is not None:
            from evalkit.spec import load_spec
            from evalkit.workflows.grid import run_spec

            check_config_outputs(load_spec(spec).configs(overrides), force, spec)  # before any training
            with flushed(renderer):
                run_spec(spec, overrides, track=track, on_event=renderer, executor=placement)
            return
        if any(v is not None for v in placement.values()):
            raise InputError("--executor / --ray-address / --max-concurrent / --cpus-per-cell / --gpus-per-cell / "
                             "--max-retries: apply to the cells of a spec (evalkit run SPEC); give a spec file")
        from evalkit.workflows.experiment import run_experiment

        config = RunConfig(**overrides)
        check_config_outputs([config], force)  # before any training
        with flushed(renderer):
            run_experiment(config, track=track, on_event=renderer)


# -- evaluate ------------------------------------------------------------------------------------------


@config_command(EvaluateJobConfig)
def evaluate(
    ctx: typer.Context,
    no_per_class: Annotated[bool, typer.Option("--no-per-class", help="Same as --per-class none.")] = False,
    spec: Annotated[Optional[str], typer.Option(help=JOB_SPEC_HELP)] = None,
    force: Force = False,
    **options: Any,
) -> None:
    """Evaluate existing predictions (or a model) with the same report as `evalkit run`, and gate on it.

    Exit codes: 0 all gates pass, 1 a gate failed, 2 bad input or usage, 3 infrastructure fault
    (tracking store unreachable: the report is still written and the run spooled locally).
    """
    with user_errors():
        from evalkit.cli.ui import ConsoleRenderer, flushed, split_renderer
        from evalkit.spec import load_evaluate_spec
        from evalkit.workflows.job import evaluate_job

        given = collect(EvaluateJobConfig, dict(options), ctx)
        if no_per_class:
            given["per_class"] = "none"
        config = load_evaluate_spec(spec, given) if spec else EvaluateJobConfig(**given)
        from evalkit.cli.outputs import check_config_outputs

        check_config_outputs([config], force, spec)  # before any evaluation
        _terminate_on_sigterm()
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


@app.command()
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


@app.command()
def compare(
    experiment: Annotated[str, typer.Option(help="MLflow experiment name.")] = RunConfig.model_fields["experiment"].default,
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI (default sqlite:///mlruns/mlflow.db).")] = None,
    format: Annotated[Format, typer.Option("--format", help="table, csv, json or markdown.")] = Format.table,
    metric: Annotated[Optional[list[str]], typer.Option(help="Metric column, repeatable (default: headline test metrics).")] = None,
    group_by: Annotated[str, typer.Option(help="Group runs by this param (mean ± std, ranking, paired test over seeds); 'none' lists every run.")] = "loss",
    parent: Annotated[Optional[str], typer.Option(help="Compare the child runs of this grid parent run (default: the latest grid's, if any).")] = None,
    rank_by: Annotated[Optional[str], typer.Option(help="Metric that ranks the groups (default: the first metric).")] = None,
    log_plot: Annotated[bool, typer.Option("--log-plot", help="Log the grouped bar chart to the grid's parent run.")] = False,
    trigger: Annotated[Optional[str], typer.Option(help="History mode: the runs tagged evalkit.trigger=TRIGGER (scheduled, manual) over time, as a table and --plot.")] = None,
    job: Annotated[Optional[str], typer.Option(help="History mode: only the runs of this job (tag evalkit.job).")] = None,
    plot: Annotated[Optional[str], typer.Option(help="Save a PNG: the grouped bar chart (with error bars), or in history mode the metrics over time.")] = None,
    force: Force = False,
) -> None:
    """Compare the runs of an experiment: grouped by loss (mean ± std over seeds, ranked, with a paired
    significance test of the best group's lead), or one row per run with --group-by none.

    With --trigger / --job: the history of a scheduled job (oldest first) and its trend (--plot FILE).
    """
    with user_errors():
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

        show_compare(uri, experiment, console(), group_by=None if group_by.lower() == "none" else group_by,
                     metrics=tuple(metric) if metric else None, parent=parent, rank_by=rank_by, fmt=format.value,
                     plot=plot, log_plot=log_plot)


# -- spool ---------------------------------------------------------------------------------------------


@app.command("sync-spool")
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
        from evalkit.cli.spool_render import show_sync
        from evalkit.tracking import resolve_tracking_uri
        from evalkit.tracking import sync_spool as upload

        if tracking_uri:
            resolve_tracking_uri(tracking_uri)  # malformed URI: exit 2
        show_sync(upload(tracking_uri, spool_dir, timeout=tracking_timeout), console())


def quiet_logging(verbose: bool = False) -> None:
    """MLflow's, alembic's and SQLAlchemy's INFO lines ("Creating initial MLflow database tables")
    stay off the terminal unless ``verbose``: their loggers at WARNING, and ``MLFLOW_LOGGING_LEVEL``
    (read when mlflow is imported, also by an ``mlflow ui`` child process) unless the user set it."""
    import logging
    import os

    if verbose:
        return
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)


# -- sub-commands in their own modules (each light at import: no mlflow, torch or pandas) -------------

from evalkit.cli.datasets import datasets_app  # noqa: E402
from evalkit.cli.runs import runs_app  # noqa: E402
from evalkit.cli.tune_command import tune  # noqa: E402
from evalkit.cli.ui_command import ui  # noqa: E402

app.add_typer(datasets_app, name="datasets")
app.add_typer(runs_app, name="runs")
app.command("tune")(tune)
app.command("ui")(ui)


def main() -> None:
    """Console-script entry point (handles ``--debug`` and ``--verbose`` anywhere on the line)."""
    global DEBUG
    if "--debug" in sys.argv[1:]:
        DEBUG = True
        sys.argv = [a for a in sys.argv if a != "--debug"]
    verbose = "--verbose" in sys.argv[1:]
    sys.argv = [a for a in sys.argv if a != "--verbose"]
    quiet_logging(verbose)
    from evalkit.cli.outputs import guard_stdout

    guard_stdout()  # a closed or full stdout never fails the work nor changes the exit code
    from evalkit.cli.exit_compat import exit_now

    fast = os.environ.get("EVALKIT_NO_FAST_EXIT", "") in ("", "0")  # EVALKIT_NO_FAST_EXIT=1: a normal exit
    try:
        app()
    except SystemExit as e:
        if not fast:
            raise
        exit_now(e.code)
    if fast:
        exit_now(0)


__all__ = ["app", "main", "InputError"]
