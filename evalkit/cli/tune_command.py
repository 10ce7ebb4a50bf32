"""``evalkit tune SPEC``: the hyperparameter search command (:mod:`evalkit.workflows.tune`).

Registered on the ``evalkit`` app by :mod:`evalkit.cli.commands`; imports nothing heavy (Ray, torch
and MLflow load inside the command).
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from evalkit.cli.app import _ex, console, user_errors
from evalkit.errors import InputError


def tune(
    spec: Annotated[str, typer.Argument(help="Experiment spec (experiments/*.toml) with a \\[search] table: RunConfig "
                                        "fields mapped to choice / uniform / loguniform / randint spaces, "
                                        "num_samples, metric, scheduler.")],
    track: Annotated[bool, typer.Option("--track/--no-track", help="Log the search to MLflow.")] = True,
    ray_address: Annotated[Optional[str], typer.Option(help=_ex("address"))] = None,
    max_concurrent: Annotated[Optional[int], typer.Option(help="Trials running at once (default: as many as the "
                                                          "CPUs / GPUs allow).")] = None,
    cpus_per_cell: Annotated[Optional[float], typer.Option("--cpus-per-trial", help=_ex("cpus_per_cell"))] = None,
    gpus_per_cell: Annotated[Optional[float], typer.Option("--gpus-per-trial", help=_ex("gpus_per_cell"))] = None,
    max_retries: Annotated[Optional[int], typer.Option(help=_ex("max_retries"))] = None,
    num_samples: Annotated[Optional[int], typer.Option(help="Override \\[search] num_samples.")] = None,
) -> None:
    """Search hyperparameters on Ray Tune: one MLflow child run per trial, the objective a validation
    (out-of-fold) metric; the best configuration is then evaluated once on the test split and logged
    as the parent run's result. Needs the extra: pip install 'evalkit\\[ray]'.
    """
    with user_errors():
        from evalkit.cli.ui import ConsoleRenderer
        from evalkit.workflows.tune import run_tune

        if num_samples is not None and num_samples < 1:
            raise InputError(f"--num-samples: expected at least 1, got {num_samples}")
        placement = dict(address=ray_address, max_concurrent=max_concurrent, cpus_per_cell=cpus_per_cell,
                         gpus_per_cell=gpus_per_cell, max_retries=max_retries)
        run_tune(spec, track=track, executor=placement, num_samples=num_samples, on_event=ConsoleRenderer(console()))
