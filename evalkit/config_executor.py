"""The configuration of grid executors (``[executor]``, ``--executor``) and of ``evalkit tune``'s
``[search]`` table; re-exported by :mod:`evalkit.config`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from evalkit.config import refuse_unused
from evalkit.errors import field_name


#: ExecutorConfig fields that only the Ray executor reads
RAY_ONLY = ("address", "max_concurrent", "cpus_per_cell", "gpus_per_cell", "max_retries")


class ExecutorConfig(BaseModel):
    """Where the cells of a spec grid (and the trials of ``evalkit tune``) run: the ``[executor]``
    table of a spec and the ``run`` / ``tune`` options ``--executor``, ``--ray-address``,
    ``--max-concurrent``, ``--cpus-per-cell``, ``--gpus-per-cell``, ``--max-retries``.

    Raises:
        pydantic.ValidationError: a value of the wrong type or out of range, or an unknown field.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    kind: Literal["sequential", "ray"] = Field("sequential", description="sequential (one cell after another, in this "
                                               "process) or ray (cells as Ray tasks; needs evalkit[ray]).")
    address: str | None = Field(None, description="Ray cluster to join (auto or ray://HOST:PORT); default: start a "
                                "local Ray instance. A cluster needs an MLflow server as the tracking store.")
    max_concurrent: int | None = Field(None, ge=1, le=100_000, description="Cells running at once (default: as many as "
                                       "the CPUs / GPUs allow).")
    cpus_per_cell: float = Field(1.0, gt=0, le=1024, description="CPUs reserved per cell (also its torch threads, "
                                 "rounded down, at least 1).")
    gpus_per_cell: float = Field(0.0, ge=0, le=64, description="GPUs reserved per cell (fractions share a GPU).")
    max_retries: int = Field(0, ge=0, le=100, description="Retries of a cell that raises or whose worker dies, "
                             "before it is marked FAILED.")

    def check_applies(self) -> None:
        """Refuse Ray-only options with the sequential executor (InputError naming the flag), which
        would ignore them. Called where the cells are placed (``evalkit run SPEC``); ``tune`` always
        uses Ray."""
        if self.kind == "sequential":
            refuse_unused(self, "the sequential executor (cells one after another here)", f"{field_name('kind')} ray",
                          RAY_ONLY)


class SearchConfig(BaseModel):
    """The settings of ``evalkit tune`` besides the search space: the ``[search]`` table of a spec
    (its other keys are :class:`RunConfig` fields mapped to spaces, see :mod:`evalkit.workflows.tune`).

    Raises:
        pydantic.ValidationError: a value of the wrong type or out of range, or an unknown field.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    num_samples: int = Field(8, ge=1, le=100_000, description="Trials sampled from the space.")
    # mAP is threshold-free, so the out-of-fold value is unbiased; F2 at cuts fitted on the same
    # out-of-fold scores is optimistic (still never a test number)
    metric: Literal["validation/map", "validation/mean_f2", "validation/micro_f2", "validation/macro_f2"] = Field(
        "validation/map", description="What the search maximises: a validation (cross-fitted, out-of-fold) metric, "
        "never a test-split number.")
    scheduler: Literal["none", "asha"] = Field("none", description="Early stopping of weak trials: none or asha (ASHA, "
                                               "on the per-epoch validation metric of the first fold).")
    grace_period: int = Field(5, ge=1, description="ASHA: epochs every trial runs before it may be stopped.")
    reduction_factor: float = Field(3.0, gt=1, description="ASHA: keep 1 / reduction_factor of the trials per rung.")
    seed: int = Field(0, ge=0, lt=2**32, description="Seed of the search's sampling (trial configs are reproducible).")


#: the defaults other modules' function signatures use, read from the models above (one source)
