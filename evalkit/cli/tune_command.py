"""``evalkit tune SPEC``: the hyperparameter search command (:mod:`evalkit.workflows.tune`).

Registered on the ``evalkit`` app by :mod:`evalkit.cli.commands`; imports nothing heavy (Ray, torch
and MLflow load inside the command).
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from evalkit.cli.app import _ex, console, user_errors
from evalkit.cli.options import layout
from evalkit.errors import InputError


def tune(
    ctx: typer.Context,
    spec: Annotated[str, typer.Argument(help="Experiment spec (experiments/*.toml) with a \\[search] table: RunConfig "
                                        "fields mapped to choice / uniform / loguniform / randint spaces, "
                                        "num_samples, metric, scheduler.", metavar="SPEC")],
    num_samples: Annotated[Optional[int], typer.Option(help="Override \\[search] num_samples.",
                                                       **layout("tune", "num_samples", int))] = None,
    track: Annotated[bool, typer.Option("--track/--no-track", help="Log the search to MLflow.",
                                        **layout("tune", "track", bool))] = True,
    address: Annotated[Optional[str], typer.Option("--ray-address", help=_ex("address", "trial"),
                                                   **layout("tune", "address"))] = None,
    max_concurrent: Annotated[Optional[int], typer.Option(help="Trials running at once (default: as many as the "
                                                          "CPUs / GPUs allow).", **layout("tune", "max_concurrent", int))] = None,
    cpus_per_cell: Annotated[Optional[float], typer.Option("--cpus-per-trial", help=_ex("cpus_per_cell", "trial"),
                                                           **layout("tune", "cpus_per_cell", float))] = None,
    gpus_per_cell: Annotated[Optional[float], typer.Option("--gpus-per-trial", help=_ex("gpus_per_cell", "trial"),
                                                           **layout("tune", "gpus_per_cell", float))] = None,
    max_retries: Annotated[Optional[int], typer.Option(help=_ex("max_retries", "trial"),
                                                       **layout("tune", "max_retries", int))] = None,
) -> None:
    """Search hyperparameters on Ray Tune: one MLflow child run per trial, the objective a validation
    (out-of-fold) metric; the best configuration is then evaluated once on the test split and logged
    as the parent run's result. Needs the extra: pip install 'evalkit\\[ray]'.
    """
    with user_errors(ctx) as names:
        from evalkit.cli.outputs import results_kept

        results_kept()  # files / the tracking store: a full stdout only warns
        if num_samples is not None and num_samples < 1:
            raise InputError(f"--num-samples: expected at least 1, got {num_samples}")
        from evalkit.spec import load_spec, spec_table

        placement = dict(address=address, max_concurrent=max_concurrent, cpus_per_cell=cpus_per_cell,
                         gpus_per_cell=gpus_per_cell, max_retries=max_retries)
        names.from_spec(spec_table(spec), {k: v for k, v in placement.items() if v is not None})
        from evalkit.workflows.tune import check_tune_inputs, run_tune

        # an unreadable spec, a bad [search] table, a missing input file: before Ray and torch load
        loaded = load_spec(spec)
        check_tune_inputs(loaded, loaded.search_space()[1])
        from evalkit.cli.ui import ConsoleRenderer

        run_tune(spec, track=track, executor=placement, num_samples=num_samples, on_event=ConsoleRenderer(console()))
