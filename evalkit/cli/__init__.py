"""The ``evalkit`` command line (Typer): :mod:`.commands` holds the commands, :mod:`.options` derives their
options from the configuration models, :mod:`.ui` and :mod:`.tables` hold all terminal rendering.
Importing it stays light: torch, mlflow, pandas and scikit-learn load only inside the commands."""

from evalkit.cli.commands import app, main

__all__ = ["app", "main"]
