"""Logging a run's model and registering it (``--register NAME --alias A``).

Models are logged in MLflow's pickle-free ``pt2`` format only; nothing here unpickles a model
(``MLFLOW_ALLOW_PICKLE_DESERIALIZATION`` is false while MLflow logs it, so any load MLflow does to
validate the input example goes through its pickle-free check).
"""

from __future__ import annotations

import contextlib
import io
import re
import sys

from evalkit.errors import InputError
from evalkit.tracking.loading import pickle_deserialization
from evalkit.tracking.store import client_for


def log_model(logger, model, input_example, *, name: str = "model", registered_model_name: str | None = None):
    """Log ``model`` (a ``torch.nn.Module``) to the run of ``logger`` (a :class:`RunLogger`) as a pt2
    MLflow model named ``name``, registered as ``registered_model_name`` when given (the version goes
    to ``logger.registered_version``).

    When the store is (or goes) down the MLflow model folder is written to the run's spool entry and
    nothing is registered. Returns the model URI, or None when offline. Never raises for store errors.
    """
    import mlflow.pytorch
    import torch

    pip = [f"torch=={torch.__version__.split('+')[0]}"]
    module = model.cpu().eval()
    if not logger.offline:
        try:
            with pickle_deserialization(False), _without_registration_lines():
                info = mlflow.pytorch.log_model(module, name=name, input_example=input_example,
                                                serialization_format="pt2", pip_requirements=pip,
                                                registered_model_name=registered_model_name)
            version = getattr(info, "registered_model_version", None)
            logger.registered_version = None if version is None else str(version)
            return info.model_uri
        except Exception as e:
            logger.go_offline(e)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, pickle_deserialization(False):  # offline: the model folder goes to the spool
        mlflow.pytorch.save_model(module, f"{tmp}/{name}", input_example=input_example,
                                  serialization_format="pt2", pip_requirements=pip)
        logger.journal.add_file(f"{tmp}/{name}", name)
    return None


#: what MLflow prints to stderr when it registers a version (evalkit prints its own line, with the URI)
_REGISTRATION_LINES = re.compile(r"(Successfully registered model '.*'\.|Registered model '.*' already exists\. "
                                 r"Creating a new version of this model\.\.\.|Created version '.*' of model '.*'\.)\s*")


@contextlib.contextmanager
def _without_registration_lines():
    """Keep MLflow's registration lines off stderr; anything else it writes there is passed on."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stderr(buffer):
            yield
    finally:
        rest = "".join(line for line in buffer.getvalue().splitlines(keepends=True)
                       if not _REGISTRATION_LINES.fullmatch(line))
        if rest:
            sys.stderr.write(rest)


def set_alias(logger, name: str, alias: str, version: str | int | None = None) -> str | None:
    """Point ``models:/<name>@<alias>`` at ``version`` (default: ``logger.registered_version``).

    Returns ``models:/<name>@<alias>``, or None when the logger is (or goes) offline: then nothing is
    registered (the model sits in the spool) and the run ends with InfraError (exit 3).
    Raises:
        InputError (exit 2): nothing was registered in this run and no ``version`` is given.
    """
    version = version if version is not None else logger.registered_version
    if logger.offline:
        return None
    if version is None:
        raise InputError(f"--alias {alias}: nothing registered in this run; pass --register NAME too")
    ok = logger.do(lambda: client_for(logger.tracking_uri).set_registered_model_alias(name, alias, str(version)),
                   lambda: None)
    return f"models:/{name}@{alias}" if ok else None


def describe_registration(logger, name: str, alias: str | None = None) -> str | None:
    """Set ``alias`` on the version just registered as ``name`` and describe it:
    ``models:/NAME@ALIAS (version V)``, ``models:/NAME/V``, or None when nothing was registered
    (store down: the model is in the spool entry, the run ends with exit 3).

    Raises:
        InputError (exit 2): the store answers but nothing was registered as ``name`` in this run.
    """
    version = logger.registered_version
    if logger.offline:
        return None
    if alias:
        ref = set_alias(logger, name, alias, version)
        return None if ref is None else f"{ref} (version {version})"
    if version is None:
        raise InputError(f"--register {name}: nothing was registered in this run")
    return f"models:/{name}/{version}"
