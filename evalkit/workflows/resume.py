"""Per-epoch checkpoints of tracked image runs and ``evalkit run --resume RUN_ID``.

A tracked run on images (an image table, or image tensors) that trains one model (``--folds 1``)
keeps, while it runs, a folder tied to its MLflow run: ``<checkpoint dir>/<run id>/`` with
``config.json`` (the run's complete configuration, budget applied) and ``checkpoint.pt`` (written
atomically after every epoch by :func:`evalkit.train.train_model`: weights, optimizer, early
stopping). The run is tagged ``evalkit.checkpoint`` with the file. The folder is removed when the run
finishes; a killed run (``kill -9``, power loss) leaves it behind, and ``evalkit run --resume RUN_ID``
reopens that MLflow run with the saved configuration and continues after the last finished epoch.
A seeded CPU run resumed so ends with the same model and metrics as an uninterrupted one.

The checkpoint dir is ``$EVALKIT_CHECKPOINT_DIR``, default ``mlruns/checkpoints`` (beside the default store).
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from evalkit.config import RunConfig
from evalkit.errors import InputError, field_name

#: where run checkpoints go (default :data:`DEFAULT_DIR`)
CHECKPOINT_ENV = "EVALKIT_CHECKPOINT_DIR"
DEFAULT_DIR = "mlruns/checkpoints"
#: options ``--resume`` takes besides the run id (the saved configuration decides the rest)
RESUME_OPTIONS = ("resume", "tracking_uri", "tracking_timeout", "workers", "output")


def run_folder(run_id: str) -> Path:
    """The checkpoint folder of run ``run_id``."""
    if not run_id or any(c in run_id for c in "/\\."):
        raise InputError(f"--resume {run_id!r}: expected an MLflow run id (32 hex characters)")
    return Path(os.environ.get(CHECKPOINT_ENV) or DEFAULT_DIR) / run_id


def resumed_config(config: RunConfig, track: bool = True) -> RunConfig:
    """The saved configuration of run ``config.resume`` (with ``--tracking-uri`` / ``--workers`` / ``-o``
    as given). ``track``: the run is resumed tracked (it reopens its MLflow run); ``False`` is refused.

    Raises:
        InputError: another option given with ``--resume`` (``track=False`` too); the run has no
            checkpoint folder (it finished, was not an image run trained with ``--folds 1``, or was
            not tracked here).
    """
    extra = sorted(set(config.model_fields_set) - set(RESUME_OPTIONS))
    if extra:
        raise InputError(f"--{extra[0].replace('_', '-')}: --resume continues a run with its own options; drop it")
    if not track:
        raise InputError(f"{field_name('track', False)}: --resume continues a tracked run (it reopens MLflow run "
                         f"{config.resume}); drop {field_name('track', False)}")
    saved = run_folder(config.resume) / "config.json"
    if not saved.is_file():
        raise InputError(f"--resume {config.resume}: no checkpoint of this run in {saved.parent} (only a tracked image "
                         f"run with --folds 1 that did not finish has one; ${CHECKPOINT_ENV} sets the folder)")
    given = {k: getattr(config, k) for k in RESUME_OPTIONS if k in config.model_fields_set}
    return RunConfig.model_validate_json(saved.read_text()).model_copy(update=given)


def wants_checkpoint(run, config: RunConfig, splits) -> bool:
    """Whether the run checkpoints every epoch: tracked (a run id), one model, image data."""
    return run is not None and run.run_id is not None and config.folds == 1 and len(splits.train.X.shape) == 4


@contextmanager
def run_checkpoint(run, config: RunConfig, splits):
    """Within the block, training checkpoints into the run's folder (:func:`wants_checkpoint`; else
    nothing happens); the folder is removed when the block ends without an error."""
    from evalkit.train import checkpointing

    if not wants_checkpoint(run, config, splits):
        yield None
        return
    folder = run_folder(run.run_id)
    folder.mkdir(parents=True, exist_ok=True)
    if not config.resume:
        tmp = folder / "config.json.tmp"
        tmp.write_text(config.model_copy(update={"resume": None}).model_dump_json(indent=1))
        os.replace(tmp, folder / "config.json")
    run.set_tags({"evalkit.checkpoint": str((folder / "checkpoint.pt").resolve())})
    with checkpointing(str(folder / "checkpoint.pt")):
        yield folder
    shutil.rmtree(folder, ignore_errors=True)  # finished: nothing to resume
