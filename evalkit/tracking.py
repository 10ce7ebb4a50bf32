"""Everything MLflow: store resolution, batched logging, run lifecycle, model logging, compare.

This is the only module that imports mlflow (lazily, inside functions: ``import mlflow`` costs ~3 s).

Store: ``--tracking-uri`` > ``MLFLOW_TRACKING_URI`` > ``sqlite:///<cwd>/mlruns/mlflow.db``, with
artifacts under ``<cwd>/mlruns/`` (MLflow 3.x refuses a plain ``./mlruns`` file store unless
``MLFLOW_ALLOW_FILE_STORE=true``; SQLite is the supported local default).
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from evalkit.errors import InfraError, InputError

DEFAULT_STORE_DIR = "mlruns"
DEFAULT_DB = "mlflow.db"
KNOWN_SCHEMES = ("sqlite", "http", "https", "file", "postgresql", "mysql", "mssql", "databricks")
# metrics where lower is better (compare highlights the minimum)
LOWER_IS_BETTER = ("hamming_loss", "coverage_error", "label_ranking_loss", "loss")


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM (exit code 143)."""


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The tracking URI: ``uri`` > ``$MLFLOW_TRACKING_URI`` > the default local SQLite store.

    The default store directory ``./mlruns`` is created on first use.

    Raises:
        InputError: a malformed URI (unknown scheme, missing host or path).
    """
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or None
    if uri is None:
        store = Path.cwd() / DEFAULT_STORE_DIR
        store.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{store / DEFAULT_DB}"
    parts = urlsplit(uri)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in KNOWN_SCHEMES:
        raise InputError(
            f"--tracking-uri: {redact_uri(uri)!r} is not a tracking URI; expected e.g. "
            "sqlite:///mlruns/mlflow.db or http://127.0.0.1:5000"
        )
    if scheme in ("http", "https") and not parts.hostname:
        raise InputError(f"--tracking-uri: {redact_uri(uri)!r} has no host")
    if scheme == "sqlite":
        path = uri.split(":///", 1)[1] if ":///" in uri else ""
        if not path:
            raise InputError(f"--tracking-uri: {uri!r} names no database file (expected sqlite:///path/to/mlflow.db)")
        if path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
    if scheme == "file":
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return uri


def redact_uri(uri: str) -> str:
    """``https://user:pass@host/x`` -> ``https://***@host/x``: credentials never reach logs or params."""
    parts = urlsplit(uri)
    if parts.username or parts.password:
        netloc = "***@" + parts.netloc.rsplit("@", 1)[1]
        return parts._replace(netloc=netloc).geturl()
    return uri


def default_artifact_location(tracking_uri: str) -> str | None:
    """Artifacts of the default local store live beside it, under ``mlruns/``."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.split(":///", 1)[1])
        return db.resolve().parent.as_uri()
    return None


def _mlflow(tracking_uri: str):
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    return mlflow


def get_or_create_experiment(tracking_uri: str, name: str) -> str:
    """Experiment id for ``name``, created (artifacts under the store's folder) when missing."""
    mlflow = _mlflow(tracking_uri)
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(tracking_uri)
    try:
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        try:
            return client.create_experiment(name, artifact_location=default_artifact_location(tracking_uri))
        except MlflowException:  # created concurrently by another job
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
            return exp.experiment_id
    except MlflowException as e:
        raise InfraError(f"tracking store {redact_uri(tracking_uri)}: {str(e).splitlines()[0]}") from e


class RunLogger:
    """One MLflow run as a context manager. Ends FINISHED, FAILED (exception) or KILLED
    (Ctrl-C / SIGTERM), never RUNNING. All metric and param logging is batched."""

    def __init__(self, tracking_uri: str, experiment: str, *, run_name: str | None = None,
                 tags: dict[str, str] | None = None, nested: bool = False):
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_name = run_name
        self.tags = dict(tags or {})
        self.nested = nested
        self.run_id: str | None = None
        self._old_handler = None

    # -- lifecycle
    def __enter__(self) -> "RunLogger":
        mlflow = _mlflow(self.tracking_uri)
        exp_id = get_or_create_experiment(self.tracking_uri, self.experiment)
        from evalkit import __version__

        tags = {"evalkit.version": __version__, **self.tags}
        run = mlflow.start_run(experiment_id=exp_id, run_name=self.run_name, tags=tags, nested=self.nested)
        self.run_id = run.info.run_id
        self._install_sigterm()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        import mlflow

        self._restore_sigterm()
        if exc_type is None:
            status = "FINISHED"
        elif issubclass(exc_type, KeyboardInterrupt):
            status = "KILLED"
        else:
            status = "FAILED"
        try:
            mlflow.end_run(status=status)
        except Exception:  # never mask the original error
            if exc_type is None:
                raise

    def _install_sigterm(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum, frame):
            raise Terminated("terminated by SIGTERM")

        self._old_handler = signal.signal(signal.SIGTERM, handler)

    def _restore_sigterm(self) -> None:
        if self._old_handler is not None:
            signal.signal(signal.SIGTERM, self._old_handler)
            self._old_handler = None

    # -- logging (batched)
    def log_params(self, params: dict[str, Any]) -> None:
        import mlflow

        clean = {k: ("" if v is None else str(v))[:6000] for k, v in params.items()}
        items = list(clean.items())
        for i in range(0, len(items), 100):
            mlflow.log_params(dict(items[i : i + 100]))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        import mlflow

        items = list(metrics.items())
        for i in range(0, len(items), 1000):
            mlflow.log_metrics(dict(items[i : i + 1000]), step=step)

    def log_history(self, history: list[dict]) -> None:
        """Per-epoch ``train/loss``, ``val/loss`` (and ``val/monitor``) with step = epoch, in one batch."""
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        names = {"train_loss": "train/loss", "val_loss": "val/loss", "val_metric": "val/monitor"}
        rows = [Metric(names[k], float(v), now, int(r["epoch"])) for r in history for k, v in r.items() if k in names]
        client = _mlflow(self.tracking_uri).MlflowClient(self.tracking_uri)
        for i in range(0, len(rows), 1000):
            client.log_batch(self.run_id, metrics=rows[i : i + 1000])

    def set_tags(self, tags: dict[str, str]) -> None:
        import mlflow

        mlflow.set_tags(tags)

    def log_dict(self, data: dict, artifact_file: str) -> None:
        import mlflow

        mlflow.log_dict(data, artifact_file)

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        import mlflow

        mlflow.log_artifact(str(path), artifact_path)

    def log_figure(self, figure, artifact_file: str) -> None:
        import mlflow

        mlflow.log_figure(figure, artifact_file)

    def log_model(self, model, input_example, *, name: str = "model", registered_model_name: str | None = None):
        """Log a torch model as a pt2 (``torch.export``) MLflow model; returns the model URI."""
        import mlflow.pytorch
        import torch

        info = mlflow.pytorch.log_model(
            model.cpu().eval(),
            name=name,
            input_example=input_example,
            serialization_format="pt2",
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            registered_model_name=registered_model_name,
        )
        self.registered_version = getattr(info, "registered_model_version", None)
        return info.model_uri

    def set_model_alias(self, name: str, alias: str, version: str | int | None = None) -> str:
        """Point ``models:/<name>@<alias>`` at ``version`` (default: the version just registered)."""
        version = version if version is not None else getattr(self, "registered_version", None)
        if version is None:
            raise InputError(f"--alias {alias}: nothing registered in this run; pass --register NAME too")
        client = _mlflow(self.tracking_uri).MlflowClient(self.tracking_uri)
        client.set_registered_model_alias(name, alias, str(version))
        return f"models:/{name}@{alias}"

    def log_dataset(self, X, Y, *, name: str, digest: str, context: str, source: str | None = None) -> None:
        """Record a dataset split as a run input (``mlflow.log_input``) under evalkit's full-content
        ``digest`` (MLflow's own digest only samples the first rows)."""
        import mlflow
        import mlflow.data

        ds = mlflow.data.from_numpy(X, targets=Y, name=name, digest=digest, source=source)
        mlflow.log_input(ds, context=context)


def search_runs(tracking_uri: str, experiment: str, *, filter_string: str = ""):
    """Runs of ``experiment`` as a pandas DataFrame (newest first); empty when none.

    Raises:
        InputError: the experiment does not exist.
    """
    mlflow = _mlflow(tracking_uri)
    exp = mlflow.MlflowClient(tracking_uri).get_experiment_by_name(experiment)
    if exp is None:
        raise InputError(f"--experiment: no experiment named {experiment!r} in {redact_uri(tracking_uri)}")
    return mlflow.search_runs(
        experiment_ids=[exp.experiment_id],
        filter_string=filter_string,
        order_by=["attributes.start_time DESC"],
    )


# -- models logged to MLflow: loading, the run that logged them, its artifacts ----------------------


def _model_store_error(uri: str, tracking_uri: str, e: Exception) -> Exception:
    from mlflow.exceptions import MlflowException

    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    code = getattr(e, "error_code", "") if isinstance(e, MlflowException) else ""
    if code == "RESOURCE_DOES_NOT_EXIST" or "not found" in msg.lower() or "does not exist" in msg.lower():
        return InputError(f"--model {uri}: not found in {redact_uri(tracking_uri)} ({msg[:200]})")
    return InfraError(f"--model {uri}: cannot load the model from {redact_uri(tracking_uri)}: {msg[:200]}")


def model_source_run(tracking_uri: str, uri: str) -> str | None:
    """The id of the run that logged the model ``uri`` (``runs:/<id>/<name>``, ``models:/<name>/<version>``,
    ``models:/<name>@<alias>``, ``models:/<model id>``), or None when it cannot be told.

    Raises:
        InputError: the registered model, version or alias does not exist. InfraError: store unreachable.
    """
    mlflow = _mlflow(tracking_uri)
    if uri.startswith("runs:/"):
        return uri[len("runs:/"):].strip("/").split("/", 1)[0] or None
    if not uri.startswith("models:/"):
        return None
    ref = uri[len("models:/"):].strip("/")
    client = mlflow.MlflowClient(tracking_uri)
    try:
        if "@" in ref:
            name, alias = ref.split("@", 1)
            mv = client.get_model_version_by_alias(name, alias)
        elif "/" in ref:
            name, version = ref.rsplit("/", 1)
            mv = client.get_model_version(name, version)
        else:  # a logged model id (MLflow 3: models:/m-...)
            return client.get_logged_model(ref).source_run_id
        if mv.run_id:
            return mv.run_id
        model_id = getattr(mv, "model_id", None)
        return client.get_logged_model(model_id).source_run_id if model_id else None
    except Exception as e:  # MlflowException, connection errors
        raise _model_store_error(uri, tracking_uri, e) from None


def load_logged_model(tracking_uri: str, uri: str):
    """Load an MLflow-logged PyTorch model (pt2 models are checked to be pickle-free by MLflow first).

    Raises:
        InputError: no such model. InfraError: the store is unreachable or the model cannot be loaded.
    """
    mlflow = _mlflow(tracking_uri)
    import mlflow.pytorch

    try:
        return mlflow.pytorch.load_model(uri)
    except Exception as e:
        raise _model_store_error(uri, tracking_uri, e) from None


def load_run_json(tracking_uri: str, run_id: str, artifact_file: str) -> dict | None:
    """A JSON artifact of a run (e.g. ``preprocess.json``, ``report.json``), or None when absent."""
    mlflow = _mlflow(tracking_uri)
    import mlflow.artifacts

    try:
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/{artifact_file}")
    except Exception:
        return None


def verify_pt2_file(path: str | os.PathLike) -> None:
    """Refuse a ``torch.export`` (.pt2) archive that carries pickle payloads (``torch.export.load``
    unpickles them), using MLflow's verifier.

    Raises:
        InputError: the archive holds records that are not plain tensors / JSON / text.
    """
    try:
        from mlflow.pytorch import _validate_pt2_archive_is_pickle_free as validate
    except ImportError:  # verifier moved: fail closed
        raise InputError(f"{path}: cannot verify that this .pt2 archive is free of pickled code; "
                         "pass --trust-pickle if you trust its source") from None
    try:
        validate(str(path))
    except Exception as e:
        raise InputError(f"{path}: refused: the .pt2 archive holds pickled objects that could run code when "
                         f"loaded ({str(e).split(chr(10))[0][:120]}); pass --trust-pickle if you trust its source") from None
