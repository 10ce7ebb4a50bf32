"""Loading MLflow-logged PyTorch models (``runs:/``, ``models:/``, local MLflow model folders)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

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


def inspect_model_folder(folder: str | os.PathLike, spec: str) -> tuple[str, Path]:
    """What loading the MLflow PyTorch model in ``folder`` would deserialise, read from its ``MLmodel``
    file and data folder only (nothing is loaded).

    Mirrors ``mlflow.pytorch``'s own choice: ``<model_data>/model.pth`` (``torch.save`` pickle, or
    TorchScript saved under that name) wins over ``<model_data>/model.pt2`` (``torch.export``); a
    ``model_data`` that is a file is ``torch.load``-ed (pickle).

    Args:
        folder: a local MLflow model folder. spec: what the user named (for messages).
    Returns:
        ``(kind, file)``: kind ``pt2``, ``torchscript`` or ``pickle``; the file that would be loaded.
    Raises:
        InputError (exit 2): no readable ``MLmodel``, no ``pytorch`` flavor, model data outside the
            folder or missing.
    """
    import yaml

    from evalkit.model_files import model_file_kind
    from evalkit.tracking.mlflow_compat import PICKLE_FILE, PT2_FILE

    root = Path(folder).resolve()
    try:
        conf = yaml.safe_load((root / "MLmodel").read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise InputError(f"--model {spec}: unreadable MLmodel file ({first_line(e)})") from None
    flavor = (conf.get("flavors") or {}).get("pytorch") if isinstance(conf, dict) else None
    if not isinstance(flavor, dict):
        raise InputError(f"--model {spec}: not a PyTorch MLflow model (its MLmodel has no pytorch flavor)")
    data = (root / str(flavor.get("model_data") or "data")).resolve()
    if not data.is_relative_to(root):
        raise InputError(f"--model {spec}: refused: the MLmodel points its model data outside the model folder")
    if data.is_file():
        return "pickle", data
    if (data / PICKLE_FILE).is_file():
        return ("torchscript" if model_file_kind(data / PICKLE_FILE) == "torchscript" else "pickle"), data / PICKLE_FILE
    if (data / PT2_FILE).is_file():
        return "pt2", data / PT2_FILE
    raise InputError(f"--model {spec}: the MLflow model holds no model data ({PT2_FILE} or {PICKLE_FILE} "
                     f"under {data.name}/)")


def _load_folder(folder: Path, spec: str, trust_pickle: bool):
    """Load the model in a local MLflow model folder after :func:`inspect_model_folder`."""
    import torch

    kind, file = inspect_model_folder(folder, spec)
    if trust_pickle:  # the user vouches for the source: MLflow's own loader, pickles allowed
        import mlflow.pytorch

        with pickle_deserialization(True):
            return mlflow.pytorch.load_model(str(folder))
    if kind == "pickle":
        raise pickle_refusal(spec, f"this MLflow model is stored in pickle format ({file.parent.name}/{file.name})")
    if kind == "torchscript":
        return torch.jit.load(str(file), map_location="cpu")
    verify_pt2_file(file, spec)
    with pickle_deserialization(False):
        return torch.export.load(str(file)).module()


def load_logged_model(tracking_uri: str, uri: str, *, trust_pickle: bool = False):
    """Load an MLflow PyTorch model: ``runs:/<id>/<name>``, ``models:/<name>/<version>``,
    ``models:/<name>@<alias>``, ``models:/<model id>`` or a local MLflow model folder.

    The model folder is downloaded and inspected (:func:`inspect_model_folder`) before anything is
    deserialised. Without ``trust_pickle`` only pickle-free content loads: a ``torch.export`` archive
    that MLflow's verifier finds free of pickle payloads, or TorchScript; a pickled model is refused.

    Args:
        tracking_uri: a resolved URI (also the registry for ``models:/``). uri: the model.
        trust_pickle: allow unpickling (runs code from the model: trusted sources only).
    Returns:
        the ``torch.nn.Module`` (or exported program module).
    Raises:
        InputError (exit 2): no such model, not a PyTorch model, or pickled content without
            ``trust_pickle`` (one line naming ``--trust-pickle``).
        InfraError (exit 3): the store is unreachable or the model cannot be downloaded / loaded.
    """
    import tempfile

    from evalkit.errors import EvalkitError
    from evalkit.tracking.queries import model_store_error

    mlflow_for(tracking_uri)
    local = Path(uri)
    with tempfile.TemporaryDirectory(prefix="evalkit-model-") as tmp:
        try:
            if uri.startswith(("runs:/", "models:/")):
                import mlflow.artifacts

                local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
            return _load_folder(local, uri, trust_pickle)
        except EvalkitError:
            raise
        except Exception as e:
            raise model_store_error(uri, tracking_uri, e) from None


@contextmanager
def pickle_deserialization(allowed: bool):
    """``MLFLOW_ALLOW_PICKLE_DESERIALIZATION`` set to ``allowed`` inside the block (restored after):
    a second layer behind evalkit's own checks for whatever MLflow loads."""
    key = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"
    old = os.environ.get(key)
    os.environ[key] = "true" if allowed else "false"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old
