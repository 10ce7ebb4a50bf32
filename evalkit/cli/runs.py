"""``evalkit runs``: managing evalkit's MLflow runs.

``evalkit runs reap --older-than 1h`` ends as KILLED the RUNNING evalkit runs whose process is gone
(``kill -9``, a crash, OOM: MLflow cannot know they are over). Light at import (no mlflow, no torch).
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from evalkit.cli.app import Command, Group
from evalkit.config import TRACKING_TIMEOUT

runs_app = typer.Typer(cls=Group, help="Manage evalkit's MLflow runs (reap runs left RUNNING by a dead process).",
                       no_args_is_help=True)


@runs_app.command("reap", cls=Command)
def reap(
    older_than: Annotated[str, typer.Option(help="Only runs started longer ago than this (30m, 1h, 2d, or seconds).")] = "1h",
    any_host: Annotated[bool, typer.Option("--any-host", help="Also runs of other hosts (or without a recorded process), "
                                           "by age alone: their process cannot be checked from here.")] = False,
    experiment: Annotated[Optional[list[str]], typer.Option(help="Only this experiment (repeatable; default: all).")] = None,
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI (default sqlite:///mlruns/mlflow.db).")] = None,
    tracking_timeout: Annotated[float, typer.Option(help="Seconds to wait for the tracking store.")] = TRACKING_TIMEOUT,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the runs, change nothing.")] = False,
) -> None:
    """Mark stale RUNNING evalkit runs as KILLED: those of this host whose process (PID and start
    time, tagged evalkit.host / evalkit.pid at run start) is gone, started more than --older-than ago.
    Prints one line per run. Exit codes: 0 done (also when there was nothing to reap), 2 bad option,
    3 the store is unreachable."""
    from evalkit.cli.app import console, user_errors

    with user_errors():
        from evalkit.cli.outputs import results_kept

        results_kept()  # files / the tracking store: a full stdout only warns
        from evalkit.tracking import check_store, resolve_tracking_uri
        from evalkit.tracking.reap import parse_age
        from evalkit.tracking.reap import reap as do_reap

        age = parse_age(older_than)
        uri = resolve_tracking_uri(tracking_uri)
        check_store(uri, tracking_timeout)
        out = console()
        stale = do_reap(uri, age, any_host=any_host, experiments=experiment, dry_run=dry_run)
        for s in stale:
            out.print(s.line(dry_run), markup=False, highlight=False, soft_wrap=True)
        verb = "would be marked" if dry_run else "marked"
        out.print(f"{len(stale)} stale run(s) {verb} KILLED", markup=False, highlight=False)
