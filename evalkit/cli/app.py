"""The Typer app of the ``evalkit`` command line and what every command shares: the console
factory, one-line errors with their exit codes (:func:`user_errors`), SIGTERM handling and logging
quieting. Command modules (:mod:`.commands`, :mod:`.datasets`, :mod:`.runs`, :mod:`.tune_command`,
:mod:`.ui_command`) import from here and never from each other; :mod:`evalkit.cli` registers them."""

from __future__ import annotations

import inspect
import os
import sys
from contextlib import contextmanager
from typing import Annotated

import typer

from typer.core import TyperArgument, TyperCommand, TyperGroup

from evalkit.cli.options import FieldNames, escape, validation_message
from evalkit.config import ExecutorConfig
from evalkit.errors import EXIT_BAD_INPUT, EvalkitError


def _no_type(ctx) -> str:
    return ""


#: metavars of options declared without one, by Typer's type label (``<int>`` -> ``N``)
_METAVARS = {"str": "TEXT", "int": "N", "float": "FLOAT", "list[str]": "TEXT", "bool": ""}


class _PlainHelp:
    """``--help`` without Python types: no ``<bool>`` (a flag takes no value), no type after an
    argument's name, and an option declared without a metavar gets ``TEXT`` / ``N`` / ``FLOAT`` /
    its choices (``table|csv``) instead of ``<str>`` / ``<int>`` ... (options derived from the configs
    have theirs: :func:`evalkit.cli.options.layout`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.help:  # Typer keeps the line breaks of a docstring's later paragraphs: ragged in a narrow terminal
            self.help = "\n\n".join(p if p.startswith("\b") else " ".join(p.split("\n"))
                                     for p in inspect.cleandoc(self.help).split("\n\n"))

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if isinstance(param, TyperArgument):  # its name (SPEC, names...) says what it is
                param.display_type_rich = _no_type
            elif param.metavar is None:
                label = param.display_type(ctx).strip("<>")
                param.metavar = "" if getattr(param, "is_flag", False) else _METAVARS.get(label, label)
        return params


class Command(_PlainHelp, TyperCommand):
    """Every evalkit command (``app.command(cls=Command)``); its usage errors are one line
    (:func:`usage_errors`, around the parsing only, never around the command's work)."""

    def make_context(self, info_name, args, parent=None, **extra):
        # click raises some parser errors (an option missing its value) without a context: name the command
        path = f"{parent.command_path} {info_name}" if parent is not None else info_name
        with usage_errors(path or "evalkit"):
            return super().make_context(info_name, args, parent=parent, **extra)


class Group(_PlainHelp, TyperGroup):
    """The ``evalkit`` group. A usage error (an unknown option, a value of the wrong type, a missing
    argument) is one line on stderr, exit 2, as every other bad input (:func:`usage_errors`)."""

    def make_context(self, info_name, args, parent=None, **extra):
        with usage_errors():
            return super().make_context(info_name, args, parent=parent, **extra)

    def resolve_command(self, ctx, args):
        with usage_errors():  # an unknown command
            return super().resolve_command(ctx, args)


@contextmanager
def usage_errors(command: str = "evalkit"):
    """Turn click's usage errors (but ``evalkit`` alone, which shows the help) into one line:
    ``error: evalkit run: No such option: --bogus (see evalkit run --help)``, exit 2. ``command`` names the
    command being parsed when the error carries no context of its own."""
    try:
        yield
    except Exception as e:
        kinds = {c.__name__ for c in type(e).__mro__}  # click's UsageError, or the copy Typer vendors
        if "UsageError" not in kinds or "NoArgsIsHelpError" in kinds or not hasattr(e, "format_message"):
            raise
        ctx = getattr(e, "ctx", None)
        where = ctx.command_path if ctx is not None else command
        message = " ".join(e.format_message().split()).rstrip(".")
        print(f"error: {where}: {message} (see {where} --help)", file=sys.stderr, flush=True)
        sys.exit(EXIT_BAD_INPUT)


app = typer.Typer(
    cls=Group,
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
#: set by the console script (:func:`evalkit.cli.main`): this process is the command, so its signal
#: handlers may change (not so when a test or a notebook invokes the app in-process)
STANDALONE = False


def console(stderr: bool = False):
    """A rich console for stdout (or stderr); 160 columns when not a terminal (cron logs, CI)."""

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or "COLUMNS" in os.environ else 160
    return Console(stderr=stderr, highlight=False, width=width)


def _fail(message: str, code: int) -> None:
    """One line on stderr (never read as markup), the traceback too with ``--debug``, then exit ``code``."""
    from evalkit.cli.outputs import error_line

    error_line(message)
    if DEBUG:
        import traceback

        traceback.print_exc()
    raise typer.Exit(code)


@contextmanager
def user_errors(ctx=None):
    """Turn evalkit / validation errors into one line on stderr and the documented exit code
    (with ``--debug`` the traceback is printed too; the exit code does not change).

    Yields the :class:`~evalkit.cli.options.FieldNames` that names configuration fields in the
    messages: the flags of ``ctx``'s command, or spec keys once told (``names.from_spec(...)``)."""
    from pydantic import ValidationError

    names = FieldNames(ctx.command if ctx is not None else None)
    try:
        yield names
    except EvalkitError as e:
        if getattr(e, "report_json", None):  # the report file could not be written: stdout, the last resort
            sys.stdout.write(e.report_json + "\n")
            sys.stdout.flush()
        _fail(e.named(names), e.exit_code)
    except ValidationError as e:
        _fail(validation_message(e, names), EXIT_BAD_INPUT)
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
        _ignore_further_interrupts()  # exiting already: another Ctrl-C must not print a traceback
        # RunLogger marks the interrupt when it ended a run KILLED; before any run there is nothing to claim
        tail = "; MLflow run ended as KILLED" if getattr(e, "run_killed", False) else ""
        console(stderr=True).print(f"interrupted ({'SIGTERM' if code == 143 else 'Ctrl-C'}){tail}", markup=False)
        raise typer.Exit(code) from None


def _ignore_further_interrupts() -> None:
    import signal
    import threading

    if STANDALONE and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


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


def _ex(name: str, unit: str = "cell") -> str:
    """Help of an executor option, from :class:`~evalkit.config.ExecutorConfig` (its default shown
    unless None); ``unit``: what the option places (``trial`` for ``evalkit tune``)."""
    f = ExecutorConfig.model_fields[name]
    text = f.description.replace("Cells", unit.capitalize() + "s").replace("cell", unit)
    default = "" if f.default is None else f"; default: {f.default}"
    return escape(f"{text} [spec: [executor] {name}{default}]")




def quiet_logging(verbose: bool = False) -> None:
    """MLflow's, alembic's and SQLAlchemy's INFO lines ("Creating initial MLflow database tables")
    stay off the terminal unless ``verbose``: their loggers at WARNING, and ``MLFLOW_LOGGING_LEVEL``
    (read when mlflow is imported, also by an ``mlflow ui`` child process) unless the user set it."""
    import logging

    if verbose:
        return
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)


