"""The ONLY place evalkit touches private MLflow APIs or relies on MLflow's internal file layout.

``tests/test_mlflow_compat.py`` imports everything listed in :data:`PRIVATE_NAMES` and checks the
model-folder layout constants below against MLflow's own, so an MLflow upgrade that moves or renames
one fails that test with a clear message instead of silently weakening the pickle checks.
"""

from __future__ import annotations

import importlib

# (module, attribute): private MLflow names evalkit uses, and why
PRIVATE_NAMES = (
    ("mlflow.pytorch", "_validate_pt2_archive_is_pickle_free"),  # pickle-free check of a .pt2 archive
    ("mlflow.pytorch", "_EXPORTED_TORCH_MODEL_FILE_NAME"),  # "model.pt2" in the model's data folder
    ("mlflow.pytorch", "_SERIALIZED_TORCH_MODEL_FILE_NAME"),  # "model.pth": torch.save pickle / TorchScript
    ("mlflow.pytorch", "_PICKLE_MODULE_INFO_FILE_NAME"),  # "pickle_module_info.txt"
    ("mlflow.store.db.utils", "MAX_RETRY_COUNT"),  # retries of a SQL store's first connection (bounded)
    ("mlflow.utils.validation", "_validate_model_name"),  # --register NAME, checked before training
    ("mlflow.utils.validation", "_validate_model_alias_name"),  # --alias A, checked before training
    ("mlflow.utils.validation", "_validate_model_alias_name_reserved"),  # "latest", "v1" ... are reserved
)

# MLflow's PyTorch model folder layout (``<model>/MLmodel``, ``<model>/<model_data>/<file>``), as MLflow
# 3.x writes it; checked against the private constants above by the compat test.
PT2_FILE = "model.pt2"
PICKLE_FILE = "model.pth"
PICKLE_MODULE_FILE = "pickle_module_info.txt"
LAYOUT = {"_EXPORTED_TORCH_MODEL_FILE_NAME": PT2_FILE, "_SERIALIZED_TORCH_MODEL_FILE_NAME": PICKLE_FILE,
          "_PICKLE_MODULE_INFO_FILE_NAME": PICKLE_MODULE_FILE}


class CompatError(ImportError):
    """A private MLflow name evalkit relies on is missing (MLflow moved or renamed it)."""


def private(module: str, name: str):
    """The private MLflow object ``module.name``.

    Raises:
        CompatError: the module or the name no longer exists in the installed MLflow.
    """
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        import mlflow

        raise CompatError(f"evalkit needs the private MLflow API {module}.{name}, missing in MLflow "
                          f"{mlflow.__version__} ({e}); update evalkit/tracking/mlflow_compat.py") from e


def missing_private_names() -> list[str]:
    """``module.name`` of every entry of :data:`PRIVATE_NAMES` the installed MLflow lacks (empty: all there)."""
    out = []
    for module, name in PRIVATE_NAMES:
        try:
            private(module, name)
        except CompatError:
            out.append(f"{module}.{name}")
    return out


def validate_pt2_pickle_free(path: str) -> None:
    """Check with MLflow's verifier that the ``.pt2`` archive at ``path`` holds only tensors, JSON and
    text records (``torch.export.load`` would otherwise unpickle them with ``weights_only=False``).

    Args:
        path: a ``torch.export.save`` archive (str).
    Raises:
        CompatError: the verifier is gone (callers must fail closed).
        Exception: (``MlflowException``) the archive carries a pickle payload or is not a zip archive.
    """
    private("mlflow.pytorch", "_validate_pt2_archive_is_pickle_free")(str(path))


def bound_sql_retries(timeout: float) -> None:
    """Bound MLflow's retries when it first connects to a SQL store (``MAX_RETRY_COUNT`` attempts with
    sleeps of 0.1 * (2**n - 1) s: 10 attempts sleep ~100 s, each with a multi-line warning) so that
    they sleep at most about ``timeout / 2`` seconds in total; MLflow's retry warnings are silenced
    (evalkit reports the failure as one line). No-op when MLflow moved the constant."""
    import logging

    try:
        utils = importlib.import_module("mlflow.store.db.utils")
        if not hasattr(utils, "MAX_RETRY_COUNT"):
            return
    except ImportError:
        return
    attempts, slept = 1, 0.0
    while attempts < 10:
        nxt = 0.1 * (2 ** attempts - 1)
        if slept + nxt > max(0.5, timeout / 2):
            break
        slept += nxt
        attempts += 1
    utils.MAX_RETRY_COUNT = attempts
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.ERROR)


def registry_name_problem(name: str, alias: str | None) -> tuple[str, str] | None:
    """``(flag, MLflow's message)`` when the registry would refuse the model ``name`` or the ``alias``
    (MLflow's own rules, checked before training), else ``None``."""
    from mlflow.exceptions import MlflowException

    checks = [("--register", name, "_validate_model_name")]
    if alias is not None:
        checks += [("--alias", alias, "_validate_model_alias_name"), ("--alias", alias, "_validate_model_alias_name_reserved")]
    for flag, value, check in checks:
        try:
            private("mlflow.utils.validation", check)(value)
        except MlflowException as e:
            return flag, " ".join(e.message.split())
    return None
