"""Everything MLflow: store resolution, batched logging, run lifecycle, model logging, compare.

This is the only module that imports mlflow (lazily, inside functions: ``import mlflow`` costs ~3 s).

Store: ``--tracking-uri`` > ``MLFLOW_TRACKING_URI`` > ``sqlite:///<cwd>/mlruns/mlflow.db``, with
artifacts under ``<cwd>/mlruns/`` (MLflow 3.x refuses a plain ``./mlruns`` file store unless
``MLFLOW_ALLOW_FILE_STORE=true``; SQLite is the supported local default).
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from contextlib import contextmanager
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
    if scheme in ("http", "https"):
        start_probe(uri)  # in the background: an unreachable server is known by the time tracking starts
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


# -- fault handling: bounded HTTP, store initialisation lock, busy retries, redaction --------------

_CRED_IN_URI = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^/@\s:]+(?::[^/@\s]*)?@")
SECRET_ENV = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_CLIENT_CERT_PATH",
              "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AZURE_STORAGE_ACCESS_KEY", "DATABRICKS_TOKEN")


def redact_text(text: str) -> str:
    """Credentials removed from any text: ``scheme://user:pass@`` -> ``scheme://***@`` and the values
    of credential environment variables (:data:`SECRET_ENV`) -> ``***``."""
    text = _CRED_IN_URI.sub(r"\g<scheme>***@", str(text))
    for name in SECRET_ENV:
        secret = os.environ.get(name)
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def configure_http(timeout: float = 10.0) -> None:
    """Bound MLflow's HTTP calls so an unreachable server fails a job within about ``timeout``
    seconds instead of retrying for minutes (MLflow's defaults: 7 retries, backoff 2, 120 s timeout).
    Sets ``MLFLOW_HTTP_REQUEST_TIMEOUT`` (per request), ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` (1),
    ``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR`` (1) and ``MLFLOW_HTTP_REQUEST_BACKOFF_JITTER`` (0)."""
    os.environ["EVALKIT_TRACKING_TIMEOUT"] = f"{timeout:g}"
    per_request = max(1, int(timeout // 2))
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(per_request)
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "1"
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1"
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_JITTER"] = "0"


_REASONS = (
    (("connection refused", "newconnectionerror", "failed to establish a new connection"), "connection refused"),
    (("name or service not known", "nodename nor servname", "temporary failure in name resolution"), "unknown host"),
    (("timed out", "timeout"), "timed out"),
    (("remotedisconnected", "connection aborted", "connection reset"), "connection lost"),
)


def _first_line(e: BaseException) -> str:
    """A short, credential-free reason for a store error (connection refused, timed out, ...)."""
    text = str(e).strip()
    low = text.lower()
    for needles, reason in _REASONS:
        if any(n in low for n in needles):
            return reason
    lines = text.splitlines()
    return redact_text(lines[0] if lines else type(e).__name__)[:300]


@contextmanager
def _store_lock(tracking_uri: str):
    """An exclusive ``fcntl.flock`` on ``<db dir>/.init.lock`` for a SQLite store (no-op otherwise):
    MLflow's schema migrations race when several jobs open a fresh database at once."""
    if not tracking_uri.startswith("sqlite:///") or tracking_uri.endswith(":memory:"):
        yield
        return
    import fcntl

    lock = Path(tracking_uri.split(":///", 1)[1]).expanduser().parent / ".init.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


_READY: set[str] = set()


def ensure_store(tracking_uri: str) -> None:
    """Open (and for a new SQLite file: create and migrate) the store once per process, under the
    store's init lock. Raises InfraError when the store cannot be reached."""
    if tracking_uri in _READY:
        return
    mlflow = _mlflow(tracking_uri)
    try:
        with _store_lock(tracking_uri):
            _retry_busy(lambda: mlflow.MlflowClient(tracking_uri).search_experiments(max_results=1))
    except Exception as e:
        raise InfraError(f"tracking store {redact_uri(tracking_uri)} unreachable: {_first_line(e)}") from None
    _READY.add(tracking_uri)


def _retry_busy(fn, attempts: int = 8):
    """Call ``fn``, retrying with backoff while SQLite reports "database is locked" / "busy"."""
    delay = 0.2
    for i in range(attempts):
        try:
            return fn()
        except Exception as e:
            msg = str(e).lower()
            if i == attempts - 1 or not ("database is locked" in msg or "database is busy" in msg
                                         or "database table is locked" in msg):
                raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def check_store(tracking_uri: str, timeout: float | None = None) -> None:
    """Fail fast before expensive work: raise InfraError (exit 3) when the store does not answer within
    about ``timeout`` seconds (default ``$EVALKIT_TRACKING_TIMEOUT`` or 10)."""
    if tracking_uri in _READY:
        return
    timeout = float(timeout or os.environ.get("EVALKIT_TRACKING_TIMEOUT") or 10)
    configure_http(timeout)
    reason = probe_store(tracking_uri, timeout)
    if reason:
        raise InfraError(f"{reason} (nothing was run; check the server or pass --tracking-uri)")


_PROBES: dict[str, tuple[threading.Thread, list]] = {}


def _is_http(uri: str) -> bool:
    return uri.split(":", 1)[0] in ("http", "https")


def start_probe(tracking_uri: str, timeout: float | None = None) -> None:
    """Probe an HTTP(S) store in a background thread, so that waiting for an unreachable server
    overlaps the work done before tracking; :func:`probe_store` collects the answer."""
    if not _is_http(tracking_uri) or tracking_uri in _READY or tracking_uri in _PROBES:
        return
    timeout = float(timeout or os.environ.get("EVALKIT_TRACKING_TIMEOUT") or 10)
    box: list = []
    t = threading.Thread(target=lambda: box.append(_probe_http(tracking_uri, timeout)), daemon=True,
                         name="evalkit-store-probe")
    t.start()
    _PROBES[tracking_uri] = (t, box)


def probe_store(tracking_uri: str, timeout: float = 10.0) -> str | None:
    """Check, cheaply and within about ``timeout`` seconds, that the store answers. Returns None when
    it does, else a one-line reason (credentials redacted). Call before the expensive work (or
    :func:`start_probe` before it and this after it)."""
    if _is_http(tracking_uri):
        pending = _PROBES.pop(tracking_uri, None)
        if pending is not None:
            thread, box = pending
            thread.join(timeout + 5)
            if box:
                return box[0]
            return f"tracking store {redact_uri(tracking_uri)} unreachable: timed out"
        return _probe_http(tracking_uri, timeout)
    try:
        ensure_store(tracking_uri)
    except InfraError as e:
        return str(e)
    return None


def _probe_http(tracking_uri: str, timeout: float) -> str | None:
    """One bounded request with ``requests`` (not mlflow: importing it would eat the time budget).
    Any answer but 404 / 5xx means the server is there; authentication is left to the real calls."""
    import requests

    url = tracking_uri.rstrip("/") + "/api/2.0/mlflow/experiments/search"
    verify = os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() not in ("true", "1")
    try:
        resp = requests.post(url, json={"max_results": 1}, timeout=max(1.0, timeout / 2), verify=verify)
    except Exception as e:
        return f"tracking store {redact_uri(tracking_uri)} unreachable: {_first_line(e)}"
    if resp.status_code == 404 or resp.status_code >= 500:
        hint = "not an MLflow tracking server at this address?" if resp.status_code == 404 else "server error"
        return f"tracking store {redact_uri(tracking_uri)} answered HTTP {resp.status_code} ({hint})"
    _READY.add(tracking_uri)
    return None


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
    ensure_store(tracking_uri)
    mlflow = _mlflow(tracking_uri)
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(tracking_uri)

    def get_or_create() -> str:
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

    try:
        return _retry_busy(get_or_create)
    except Exception as e:  # MlflowException, connection errors, "database is locked"
        raise InfraError(f"tracking store {redact_uri(tracking_uri)}: {_first_line(e)}") from e


class RunLogger:
    """One MLflow run as a context manager. Ends FINISHED, FAILED (exception) or KILLED
    (Ctrl-C / SIGTERM), never RUNNING. All metric and param logging is batched.

    Nothing is lost when the store is down: if the run cannot be started (or ``offline_reason`` says
    the store was found unreachable beforehand), or a logging call fails mid-run, the logger goes
    offline, keeps what was not logged in a :class:`evalkit.spool.Journal`, writes it to the spool
    on exit (``self.spooled``) and raises :class:`InfraError` (exit 3) naming the spool directory;
    ``evalkit sync-spool`` uploads it later. Params and tags are redacted of credentials.
    """

    def __init__(self, tracking_uri: str, experiment: str, *, run_name: str | None = None,
                 tags: dict[str, str] | None = None, nested: bool = False, offline_reason: str | None = None,
                 spool: bool = True, fail_fast: bool | None = None):
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_name = run_name
        self.tags = dict(tags or {})
        self.nested = nested
        self.run_id: str | None = None
        self.offline: str | None = offline_reason
        self.spool = spool
        self.spooled: Path | None = None
        self.journal = None
        # fail fast (InfraError, nothing run yet) when the store does not answer at the start, unless the
        # caller already knows it is down (offline_reason: work on, spool everything)
        self.fail_fast = offline_reason is None if fail_fast is None else fail_fast
        self._old_handler = None

    # -- lifecycle
    def __enter__(self) -> "RunLogger":
        from evalkit import __version__
        from evalkit.spool import Journal

        tags = {k: redact_text(v) for k, v in {"evalkit.version": __version__, **self.tags}.items()}
        self.journal = Journal(self.experiment, self.run_name, tracking_uri=redact_uri(self.tracking_uri))
        if self.fail_fast and not self.nested:
            check_store(self.tracking_uri)
        if not self.offline:
            try:
                mlflow = _mlflow(self.tracking_uri)
                exp_id = get_or_create_experiment(self.tracking_uri, self.experiment)
                run = _retry_busy(lambda: mlflow.start_run(experiment_id=exp_id, run_name=self.run_name,
                                                           tags=tags, nested=self.nested))
                self.run_id = run.info.run_id
                self.journal.run_id = self.run_id
            except InfraError as e:
                self.offline = str(e)
            except Exception as e:
                self._go_offline(e)
        if self.offline and self.run_id is None:
            self.journal.tags.update(tags)
        self._install_sigterm()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._restore_sigterm()
        if exc_type is None:
            status = "FINISHED"
        elif issubclass(exc_type, KeyboardInterrupt):
            status = "KILLED"
        else:
            status = "FAILED"
        if self.run_id is not None:
            import mlflow

            final = "FAILED" if self.offline else status  # offline: FAILED until sync-spool sets the real one
            try:
                mlflow.end_run(status=final)  # pops the active run first, then sets the status
            except Exception:  # set it directly (SQLite busy: retried), never masking the original error
                try:
                    client = mlflow.MlflowClient(self.tracking_uri)
                    _retry_busy(lambda: client.set_terminated(self.run_id, final))
                except Exception as e:
                    if not self.offline:
                        self._go_offline(e)
        if not self.offline:
            return
        where = ""
        if self.spool:
            self.spooled = self.journal.write(status, self.offline)
            where = f"; nothing lost: results spooled to {self.spooled} (upload later with `evalkit sync-spool`)"
        if exc_type is None:
            raise InfraError(f"{self.offline}{where}")

    def _go_offline(self, e: BaseException) -> None:
        if not self.offline:
            self.offline = f"tracking store {redact_uri(self.tracking_uri)} unreachable: {_first_line(e)}"

    def _do(self, call, journal) -> bool:
        """Run ``call`` against the store; on failure (or when offline) journal instead. True if logged."""
        if not self.offline:
            try:
                _retry_busy(call)
                return True
            except Exception as e:
                self._go_offline(e)
        journal()
        return False

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

        clean = {k: redact_text("" if v is None else str(v))[:6000] for k, v in params.items()}
        items = list(clean.items())
        for i in range(0, len(items), 100):
            chunk = dict(items[i : i + 100])
            self._do(lambda: mlflow.log_params(chunk), lambda: self.journal.params.update(chunk))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        import mlflow

        items = list(metrics.items())
        now = int(time.time() * 1000)
        for i in range(0, len(items), 1000):
            chunk = dict(items[i : i + 1000])
            self._do(lambda: mlflow.log_metrics(chunk, step=step), lambda: self.journal.add_metrics(chunk, step, now))

    def log_history(self, history: list[dict]) -> None:
        """Per-epoch ``train/loss``, ``val/loss`` (and ``val/monitor``) with step = epoch, in one batch."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        names = {"train_loss": "train/loss", "val_loss": "val/loss", "val_metric": "val/monitor"}
        rows = [Metric(names[k], float(v), now, int(r["epoch"])) for r in history for k, v in r.items() if k in names]
        client = _mlflow(self.tracking_uri).MlflowClient(self.tracking_uri)
        for i in range(0, len(rows), 1000):
            chunk = rows[i : i + 1000]
            self._do(lambda: client.log_batch(self.run_id, metrics=chunk),
                     lambda: self.journal.metrics.extend({"key": m.key, "value": m.value, "step": m.step,
                                                          "timestamp": m.timestamp} for m in chunk))

    def set_tags(self, tags: dict[str, str]) -> None:
        import mlflow

        clean = {k: redact_text(v) for k, v in tags.items()}
        self._do(lambda: mlflow.set_tags(clean), lambda: self.journal.tags.update(clean))

    def log_dict(self, data: dict, artifact_file: str) -> None:
        import json

        import mlflow

        self._do(lambda: mlflow.log_dict(data, artifact_file),
                 lambda: self.journal.add_text(artifact_file, json.dumps(data, indent=2, default=str)))

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        import mlflow

        self._do(lambda: mlflow.log_artifact(str(path), artifact_path),
                 lambda: self.journal.add_file(path, artifact_path))

    def log_figure(self, figure, artifact_file: str) -> None:
        import io

        import mlflow

        def journal():
            buf = io.BytesIO()
            figure.savefig(buf, format=Path(artifact_file).suffix.lstrip(".") or "png")
            parent = str(Path(artifact_file).parent)
            self.journal.artifacts.append((Path(artifact_file).name, None if parent == "." else parent, buf.getvalue()))

        self._do(lambda: mlflow.log_figure(figure, artifact_file), journal)

    def log_model(self, model, input_example, *, name: str = "model", registered_model_name: str | None = None):
        """Log a torch model as a pt2 (``torch.export``) MLflow model; returns the model URI."""
        import mlflow.pytorch
        import torch

        pip = [f"torch=={torch.__version__.split('+')[0]}"]
        if not self.offline:
            try:
                info = mlflow.pytorch.log_model(
                    model.cpu().eval(),
                    name=name,
                    input_example=input_example,
                    serialization_format="pt2",
                    pip_requirements=pip,
                    registered_model_name=registered_model_name,
                )
                self.registered_version = getattr(info, "registered_model_version", None)
                return info.model_uri
            except Exception as e:
                self._go_offline(e)
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:  # offline: the MLflow model directory goes to the spool
            mlflow.pytorch.save_model(model.cpu().eval(), f"{tmp}/{name}", input_example=input_example,
                                      serialization_format="pt2", pip_requirements=pip)
            self.journal.add_file(f"{tmp}/{name}", name)
        return None

    def set_model_alias(self, name: str, alias: str, version: str | int | None = None) -> str:
        """Point ``models:/<name>@<alias>`` at ``version`` (default: the version just registered)."""
        version = version if version is not None else getattr(self, "registered_version", None)
        if version is None:
            if self.offline:  # the model went to the spool; register it after `evalkit sync-spool`
                self.journal.tags[f"evalkit.pending_alias.{name}"] = alias
                return None
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
        self._do(lambda: mlflow.log_input(ds, context=context),  # offline: recorded as a tag instead
                 lambda: self.journal.tags.update({f"evalkit.input.{context}": f"{name} digest={digest}"}))


def log_figure_to_run(tracking_uri: str, run_id: str, figure, artifact_file: str) -> None:
    """Log a matplotlib figure to an existing (e.g. finished grid parent) run."""
    _mlflow(tracking_uri).MlflowClient(tracking_uri).log_figure(run_id, figure, artifact_file)


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


# -- scheduled jobs: baselines, spool upload ---------------------------------------------------------


def baseline_run(tracking_uri: str, experiment: str, spec: str, *, job: str | None = None,
                 model_uri: str | None = None) -> dict:
    """The baseline of relative gates: ``{"run_id", "source", "metrics", "reason"}``.

    ``spec``: ``last`` (the last FINISHED run of ``job`` in ``experiment``, by start time; run_id None
    when there is none yet), ``champion`` (the run that produced the version behind
    ``models:/<name>@champion``, name taken from ``model_uri``), ``models:/NAME@ALIAS`` /
    ``models:/NAME/VERSION``, or a run id.

    Raises:
        InputError: unknown run id, registered model, version or alias. InfraError: store unreachable.
    """
    mlflow = _mlflow(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri)
    source = spec
    try:
        if spec == "last":
            exp = client.get_experiment_by_name(experiment)
            runs = []
            if exp is not None:
                flt = "attributes.status = 'FINISHED'"
                if job:
                    flt += f" and tags.\"evalkit.job\" = '{job}'"
                runs = client.search_runs([exp.experiment_id], filter_string=flt,
                                          order_by=["attributes.start_time DESC"], max_results=1)
            if not runs:
                return {"run_id": None, "source": "last", "metrics": {},
                        "reason": f"no earlier finished run of job {job!r} in experiment {experiment!r}"}
            run = runs[0]
        else:
            if spec == "champion":
                name = (model_uri or "").removeprefix("models:/").split("@", 1)[0].split("/", 1)[0]
                source = f"models:/{name}@champion"
            run_id = model_source_run(tracking_uri, source) if source.startswith("models:/") else spec
            if not run_id:
                raise InputError(f"--baseline {spec}: cannot tell which run produced {source}")
            run = client.get_run(run_id)
    except (InputError, InfraError):
        raise
    except Exception as e:
        from mlflow.exceptions import MlflowException

        if isinstance(e, MlflowException) and getattr(e, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST",
                                                                               "INVALID_PARAMETER_VALUE"):
            raise InputError(f"--baseline {spec}: no such run in {redact_uri(tracking_uri)} ({_first_line(e)})") from None
        raise InfraError(f"--baseline {spec}: tracking store {redact_uri(tracking_uri)}: {_first_line(e)}") from None
    return {"run_id": run.info.run_id, "source": source, "metrics": dict(run.data.metrics), "reason": ""}


def sync_spool(tracking_uri: str | None, root: str | os.PathLike | None = None, console=None) -> tuple[int, int]:
    """Upload every spool entry and remove it once uploaded. A run created before the store failed is
    resumed (its missing params / metrics / tags / artifacts added and its final status set);
    otherwise a new run is created with the original start and end times.

    Target: ``tracking_uri`` > ``$MLFLOW_TRACKING_URI`` > the store each entry was meant for (unless
    that URI held credentials, which are never written to disk) > the default local store.

    Returns ``(uploaded, left)``. Raises InfraError when a store is unreachable (entries are kept).
    """
    from mlflow.entities import Metric, Param, RunTag

    from evalkit import spool

    explicit = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    done = left = 0
    for entry in spool.entries(root):
        run_info = entry.run
        recorded = run_info.get("tracking_uri") or ""
        target = resolve_tracking_uri(explicit or (recorded if recorded and "***@" not in recorded else None))
        ensure_store(target)
        client = _mlflow(target).MlflowClient(target)
        try:
            run_id = run_info.get("run_id")
            if run_id:
                try:
                    client.get_run(run_id)
                except Exception:
                    run_id = None
            if not run_id:
                exp_id = get_or_create_experiment(tracking_uri, run_info["experiment"])
                run_id = client.create_run(exp_id, start_time=run_info.get("start_time"),
                                           run_name=run_info.get("run_name"),
                                           tags={"evalkit.spooled": "true"}).info.run_id
            params = [Param(k, str(v)) for k, v in entry.params.items()]
            tags = [RunTag(k, str(v)) for k, v in entry.tags.items()]
            metrics = [Metric(m["key"], float(m["value"]), int(m["timestamp"]), int(m["step"])) for m in entry.metrics]
            for i in range(0, max(len(params), len(tags), len(metrics)), 100):
                client.log_batch(run_id, metrics=metrics[i : i + 100], params=params[i : i + 100],
                                 tags=tags[i : i + 100])
            if entry.artifacts.is_dir() and any(entry.artifacts.iterdir()):
                client.log_artifacts(run_id, str(entry.artifacts))
            client.set_tag(run_id, "evalkit.spool_synced", "true")
            client.set_terminated(run_id, run_info.get("status") or "FINISHED", end_time=run_info.get("end_time"))
        except Exception as e:
            left += 1
            if console is not None:
                console.print(f"[red]not uploaded[/] {entry.path}: {_first_line(e)}")
            continue
        spool.remove(entry)
        done += 1
        if console is not None:
            console.print(f"uploaded {entry.path.name} -> run {run_id} in experiment '{run_info['experiment']}' "
                          f"({redact_uri(target)})")
    return done, left
