"""Loading MLflow-logged PyTorch models (``runs:/``, ``models:/``, local MLflow model folders)."""

from __future__ import annotations

import os

from evalkit.errors import InputError
from evalkit.tracking.redact import first_line
from evalkit.tracking.store import mlflow_for


def pickle_refusal(spec: str, what: str) -> InputError:
    """The one-line refusal (exit 2) for content that would be unpickled: ``what`` says what it is.
    Returned, not raised."""
    return InputError(f"--model {spec}: refused: {what}, and unpickling it could run arbitrary code; pass "
                      "--trust-pickle only if you trust its source (safer: save a state_dict, TorchScript or "
                      "torch.export .pt2 file)")


def verify_pt2_file(path: str | os.PathLike, spec: str | None = None) -> None:
    """Refuse a ``torch.export`` (.pt2) archive that carries pickle payloads (``torch.export.load``
    unpickles them), using MLflow's verifier (through :mod:`evalkit.tracking.mlflow_compat`).

    Args:
        path: the archive. spec: what the user named (for the message; default ``path``).
    Raises:
        InputError (exit 2): the archive holds records that are not plain tensors / JSON / text, or
            the verifier is missing from the installed MLflow (fails closed).
    """
    from evalkit.tracking.mlflow_compat import CompatError, validate_pt2_pickle_free

    spec = spec or str(path)
    try:
        validate_pt2_pickle_free(str(path))
    except CompatError:
        raise pickle_refusal(spec, "cannot verify that this .pt2 archive is free of pickled code "
                                   "(MLflow's verifier is missing)") from None
    except Exception as e:
        raise pickle_refusal(spec, f"the .pt2 archive holds pickled objects ({first_line(e, 120)})") from None


def load_logged_model(tracking_uri: str, uri: str):
    """Load an MLflow-logged PyTorch model.

    Raises:
        InputError (exit 2): no such model.
        InfraError (exit 3): the store is unreachable or the model cannot be loaded.
    """
    from evalkit.tracking.queries import model_store_error

    mlflow = mlflow_for(tracking_uri)
    import mlflow.pytorch

    try:
        return mlflow.pytorch.load_model(uri)
    except Exception as e:
        raise model_store_error(uri, tracking_uri, e) from None
