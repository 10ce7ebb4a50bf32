"""The ``evalkit`` command line (Typer): :mod:`.app` holds the app and what every command shares,
:mod:`.commands` (run, evaluate, losses, compare, sync-spool), :mod:`.datasets`, :mod:`.runs`,
:mod:`.tune_command` and :mod:`.ui_command` hold the commands (registered here), :mod:`.options`
derives their options from the configuration models, :mod:`.ui` and :mod:`.tables` hold all terminal
rendering. Importing it stays light: torch, mlflow, pandas and scikit-learn load only inside the commands."""

import os
import sys

from evalkit.cli import app as app_module
from evalkit.cli import commands  # noqa: F401  (registers run, evaluate, losses, compare, sync-spool)
from evalkit.cli.app import Command, app
from evalkit.cli.datasets import datasets_app
from evalkit.cli.runs import runs_app
from evalkit.cli.tune_command import tune
from evalkit.cli.ui_command import ui

app.add_typer(datasets_app, name="datasets")
app.add_typer(runs_app, name="runs")
app.command("tune", cls=Command)(tune)
app.command("ui", cls=Command)(ui)


def main() -> None:
    """Console-script entry point (handles ``--debug`` and ``--verbose`` anywhere on the line; ``run``
    also receives its ``--verbose``)."""
    app_module.STANDALONE = True
    if "--debug" in sys.argv[1:]:
        app_module.DEBUG = True
        sys.argv = [a for a in sys.argv if a != "--debug"]
    verbose = "--verbose" in sys.argv[1:]
    command = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    if command != "run":  # `run --verbose` (-v) is run's own option too: every cell's tables
        sys.argv = [a for a in sys.argv if a != "--verbose"]
    app_module.quiet_logging(verbose)
    from evalkit.cli.outputs import guard_stdout

    guard_stdout()  # a closed or full stdout never fails the work (a full one: exit 3 if it was the result)
    from evalkit.cli.exit_compat import exit_now

    fast = os.environ.get("EVALKIT_NO_FAST_EXIT", "") in ("", "0")  # EVALKIT_NO_FAST_EXIT=1: a normal exit
    try:
        app()
    except SystemExit as e:
        if not fast:
            from evalkit.cli.outputs import stdout_lost_note

            raise SystemExit(stdout_lost_note(e.code)) from None
        exit_now(e.code)
    if fast:
        exit_now(0)




__all__ = ["app", "main"]
