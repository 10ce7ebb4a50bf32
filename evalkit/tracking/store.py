"""The tracking store: URI resolution (pure), store preparation (side effects), probes, init lock.

Store: ``--tracking-uri`` > ``MLFLOW_TRACKING_URI`` > ``sqlite:///<cwd>/mlruns/mlflow.db``, with
artifacts under ``<cwd>/mlruns/`` (MLflow 3.x refuses a plain ``./mlruns`` file store unless
``MLFLOW_ALLOW_FILE_STORE=true``; SQLite is the supported local default).

:func:`resolve_tracking_uri` only computes and validates the URI (no folders, threads or environment
changes), so a command resolves it once and passes the result around. Side effects happen when the
store is first used: :func:`prepare_store` (folders, file-store switch), :func:`configure_http`
(MLflow's HTTP environment variables, the one place they are set), :func:`start_probe`.
"""

from __future__ import annotations

import json
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from evalkit.errors import InfraError, InputError
from evalkit.tracking.health import check_driver, check_sqlite, repair_failed_creation
from evalkit.tracking.health import sqlite_path as _sqlite_path
from evalkit.tracking.redact import redact_uri, store_failure, store_reason
from evalkit.tracking.settings import DEFAULT_TIMEOUT

DEFAULT_STORE_DIR = "mlruns"
DEFAULT_DB = "mlflow.db"
# per request once a server has answered: slowness is then load (a shared server, many jobs at
# once), not absence; MLflow's own default is 120 s
ANSWERED_TIMEOUT = 60.0  # seconds
# retries of one request once a server has answered (urllib3 backoff 0, 2, 4 s): a dropped connection
# (a server worker restarted under load) is retried instead of spooling the run; before an answer: 1
ANSWERED_RETRIES = 3
KNOWN_SCHEMES = ("sqlite", "http", "https", "file", "postgresql", "mysql", "mssql", "databricks")

_READY: set[str] = set()  # stores known to answer (per process)
_PREPARED: set[str] = set()
_PROBES: dict[str, tuple[threading.Thread, list]] = {}
_HTTP_TIMEOUT: list[float] = []  # the timeout given to configure_http (empty: MLflow's defaults kept)


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The tracking URI: ``uri`` > ``$MLFLOW_TRACKING_URI`` > ``sqlite:///<cwd>/mlruns/mlflow.db``.

    Pure and idempotent: creates no folder, starts no probe, changes no environment variable.

    Args:
        uri: a URI given by the user (``--tracking-uri``), or None.
    Raises:
        InputError (exit 2): a malformed URI (unknown scheme, missing host or database path).
    """
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or None
    if uri is None:
        return f"sqlite:///{Path.cwd() / DEFAULT_STORE_DIR / DEFAULT_DB}"
    parts = urlsplit(uri)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in KNOWN_SCHEMES:
        raise InputError(
            f"--tracking-uri: {redact_uri(uri)!r} is not a tracking URI; expected e.g. "
            "sqlite:///mlruns/mlflow.db or http://127.0.0.1:5000"
        )
    if scheme in ("http", "https") and not parts.hostname:
        raise InputError(f"--tracking-uri: {redact_uri(uri)!r} has no host")
    if scheme == "sqlite" and not _sqlite_path(uri):
        raise InputError(f"--tracking-uri: {uri!r} names no database file (expected sqlite:///path/to/mlflow.db)")
    return uri


def absolute_uri(uri: str) -> str:
    """``uri`` with a relative SQLite database path made absolute (against the current folder), so
    that it names the same store from any folder (e.g. when recorded in a spool entry)."""
    path = _sqlite_path(uri)
    if path and path != ":memory:" and not Path(path).expanduser().is_absolute():
        return uri.split(":///", 1)[0] + f":///{Path(path).expanduser().resolve()}"
    return uri


def is_http(uri: str) -> bool:
    """True for an ``http(s)://`` tracking server."""
    return uri.split(":", 1)[0] in ("http", "https")


def prepare_store(tracking_uri: str) -> None:
    """Side effects a store needs before MLflow opens it, once per process: the folder of a SQLite
    database is created; a ``file:`` store sets ``MLFLOW_ALLOW_FILE_STORE=true`` (unless set).

    Raises:
        OSError: the database folder cannot be created (callers turn it into InfraError).
    """
    if tracking_uri in _PREPARED:
        return
    path = _sqlite_path(tracking_uri)
    if path and path != ":memory:":
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
    if tracking_uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    _PREPARED.add(tracking_uri)


def configure_http(timeout: float = DEFAULT_TIMEOUT, answered: bool = False) -> None:
    """Bound MLflow's HTTP calls so an unreachable server fails a job within about ``timeout``
    seconds instead of retrying for minutes (MLflow's defaults: 7 retries, backoff 2, 120 s timeout).

    Once the server has answered (``answered=True``, set by the probe), each request may take up
    to ``max(timeout, ANSWERED_TIMEOUT)`` seconds and is retried ``ANSWERED_RETRIES`` times (after
    0, 2 and 4 s): a server that answers but is slow or drops a connection is loaded (ten jobs at
    once on a shared machine queue requests for seconds; uvicorn restarts a worker that misses its
    health check, closing the connections it held), and failing then would spool a run the server
    was about to record. A server that vanishes mid-run still fails within about 6 s when
    connections are refused.

    MLflow's HTTP client reads these settings only from the environment, so this is the single
    adapter from evalkit's explicit :class:`~evalkit.tracking.settings.TrackingSettings` to MLflow:
    the only place evalkit sets them, called inside the tracking package (:func:`check_store`,
    :func:`start_probe`, ``sync_spool``) with the timeout it was given; evalkit itself never reads
    them back. It sets ``MLFLOW_HTTP_REQUEST_TIMEOUT`` (per request: ``timeout // 2`` s, at least 1; after an
    answer ``max(timeout, ANSWERED_TIMEOUT)``), ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` (1; after an
    answer ``ANSWERED_RETRIES``),
    ``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR`` (1) and ``MLFLOW_HTTP_REQUEST_BACKOFF_JITTER`` (0).

    Args:
        timeout: seconds (float > 0).
        answered: the server answered a probe within ``timeout``.
    """
    _HTTP_TIMEOUT[:] = [timeout]
    per_request = max(timeout, ANSWERED_TIMEOUT) if answered else max(1, timeout // 2)
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(int(per_request))
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(ANSWERED_RETRIES if answered else 1)
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1"
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_JITTER"] = "0"


def _answered() -> None:
    """The server answered: give its requests the loaded-server budget (when evalkit set the limits)."""
    if _HTTP_TIMEOUT:
        configure_http(_HTTP_TIMEOUT[0], answered=True)


def mlflow_for(tracking_uri: str):
    """The ``mlflow`` module with ``tracking_uri`` set as the current store (prepared first).

    Raises:
        OSError: the store's folder cannot be created.
    """
    prepare_store(tracking_uri)
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    return mlflow


def client_for(tracking_uri: str):
    """An ``mlflow.MlflowClient`` for ``tracking_uri`` (the store prepared first)."""
    return mlflow_for(tracking_uri).MlflowClient(tracking_uri)


@contextmanager
def store_lock(tracking_uri: str):
    """An exclusive ``fcntl.flock`` on ``<db dir>/.init.lock`` for a SQLite store (no-op otherwise):
    MLflow's schema migrations race when several jobs open a fresh database at once.

    Raises:
        OSError: the lock file cannot be created.
    """
    path = _sqlite_path(tracking_uri)
    if not path or path == ":memory:":
        yield
        return
    import fcntl

    lock = Path(path).expanduser().parent / ".init.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


#: lower-case fragments of the store errors that a retry resolves: SQLite busy, and a concurrent
#: insert of the same row (two jobs logging the same dataset to one experiment at once: MLflow's
#: check-then-insert loses the race, PostgreSQL and SQLite raise a unique violation, an MLflow
#: server answers HTTP 500); the retry finds the row the other job committed
TRANSIENT_STORE_ERRORS = ("database is locked", "database is busy", "database table is locked",
                          "unique constraint", "uniqueviolation", "duplicate key value",
                          # an MLflow server's 500 / 503 once MLflow's own HTTP retry is used up
                          "too many 500 error responses", "too many 503 error responses")


def retry_busy(fn, attempts: int = 8):
    """Call ``fn()``, retrying with backoff (0.2 s doubling to 2 s) while the store reports a
    transient error (:data:`TRANSIENT_STORE_ERRORS`: SQLite "database is locked" / "busy", or a
    unique violation from a concurrent insert of the same row, or an MLflow server's HTTP 500 / 503);
    any other exception (or the last one) is raised as is: an unreachable server (refused, timed
    out) still fails at once. ``fn`` must be idempotent (every MLflow logging call is)."""
    delay = 0.2
    for i in range(attempts):
        try:
            return fn()
        except Exception as e:
            msg = str(e).lower()
            if i == attempts - 1 or not any(fragment in msg for fragment in TRANSIENT_STORE_ERRORS):
                raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def ensure_store(tracking_uri: str, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Open (and for a new SQLite file: create and migrate) the store once per process, under the
    store's init lock, within about ``timeout`` seconds for SQLite as for HTTP.

    A SQLite store whose creation failed earlier (disk full or a kill during the schema migrations)
    and that holds no runs is moved aside (``<db>.failed-<time>``) and created anew.

    Raises:
        InfraError (exit 3): the store cannot be reached or created; the database driver is missing
            (the message says which package to install); the SQLite path is a directory, not
            writable, locked or not a database (one line naming the path and the cause).
    """
    if tracking_uri in _READY:
        return
    from evalkit.errors import os_cause

    check_driver(tracking_uri)
    where = f"tracking store {redact_uri(tracking_uri)}"
    path = _sqlite_path(tracking_uri)
    try:
        prepare_store(tracking_uri)
        check_sqlite(tracking_uri, timeout)
        with store_lock(tracking_uri):  # the client runs the schema migrations of a new database
            from evalkit.tracking.mlflow_compat import bound_sql_retries

            bound_sql_retries(timeout)
            repair_failed_creation(tracking_uri, timeout)
            try:
                _open(tracking_uri)
            except Exception as e:
                if not (path and repair_failed_creation(tracking_uri, timeout, e)):
                    raise
                _open(tracking_uri)  # created anew
    except InfraError:
        raise
    except OSError as e:
        failed = getattr(e, "filename", None) or (Path(path).expanduser() if path else "")
        raise InfraError(f"{where} unreachable: {failed}: {os_cause(e)}") from None
    except Exception as e:  # "unreachable" only for a connection / timeout error; disk full etc.: it answered
        raise InfraError(store_failure(where, e)) from None
    _READY.add(tracking_uri)
    if is_http(tracking_uri):
        _answered()


def _open(tracking_uri: str) -> None:
    client = client_for(tracking_uri)
    retry_busy(lambda: client.search_experiments(max_results=1))


def check_store(tracking_uri: str, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Fail fast before expensive work when the store does not answer within about ``timeout`` seconds.

    Raises:
        InfraError (exit 3): the store is unreachable ("nothing was run").
    """
    if tracking_uri in _READY:
        return
    configure_http(timeout)
    reason = probe_store(tracking_uri, timeout)
    if reason:
        waited = f"no answer within --tracking-timeout {timeout:g} s; " if "timed out" in reason else ""
        raise InfraError(f"{reason} ({waited}nothing was run; check the server or pass --tracking-uri)")


def start_probe(tracking_uri: str, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Probe an HTTP(S) store in a background thread (``timeout`` seconds), so that waiting for an
    unreachable server overlaps the work done before tracking; :func:`probe_store` collects the
    answer. MLflow's HTTP calls are bounded by the same ``timeout`` (:func:`configure_http`). No-op
    for other stores."""
    if not is_http(tracking_uri) or tracking_uri in _READY or tracking_uri in _PROBES:
        return
    configure_http(timeout)
    box: list = []
    t = threading.Thread(target=lambda: box.append(_probe_http(tracking_uri, timeout)), daemon=True,
                         name="evalkit-store-probe")
    t.start()
    _PROBES[tracking_uri] = (t, box)


def probe_store(tracking_uri: str, timeout: float = DEFAULT_TIMEOUT) -> str | None:
    """Check, cheaply and within about ``timeout`` seconds, that the store answers (collecting a
    probe started by :func:`start_probe`). Never raises.

    Returns:
        None when the store answers, else a one-line reason (credentials redacted).
    """
    if is_http(tracking_uri):
        pending = _PROBES.pop(tracking_uri, None)
        if pending is not None:
            thread, box = pending
            thread.join(timeout + 5)
            reason = box[0] if box else f"tracking store {redact_uri(tracking_uri)} unreachable: timed out"
        else:
            reason = _probe_http(tracking_uri, timeout)
        if reason is None:
            _answered()
        return reason
    try:
        ensure_store(tracking_uri, timeout)
    except InfraError as e:
        return str(e)
    return None


def _probe_http(tracking_uri: str, timeout: float) -> str | None:
    """One request with ``urllib`` (not mlflow: importing it would eat the time budget), given the
    whole ``timeout``: it is the only call made before the server has answered, so a loaded server
    that answers within the user's ``--tracking-timeout`` counts as there. Any answer but 404 / 5xx
    means the server is there; authentication is left to the real calls."""
    import ssl
    import urllib.error
    import urllib.request

    url = tracking_uri.rstrip("/") + "/api/2.0/mlflow/experiments/search"
    context = None
    if url.startswith("https") and os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() in ("true", "1"):
        context = ssl._create_unverified_context()
    req = urllib.request.Request(url, data=json.dumps({"max_results": 1}).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=max(1.0, timeout), context=context) as resp:
            status = resp.status
    except urllib.error.HTTPError as e:
        status = e.code
    except Exception as e:  # URLError (refused, unknown host), socket timeouts, connection resets
        return f"tracking store {redact_uri(tracking_uri)} unreachable: {store_reason(e)}"
    if status == 404 or status >= 500:
        hint = "not an MLflow tracking server at this address?" if status == 404 else "server error"
        return f"tracking store {redact_uri(tracking_uri)} answered HTTP {status} ({hint})"
    _READY.add(tracking_uri)
    return None


def default_artifact_location(tracking_uri: str) -> str | None:
    """Artifacts of a SQLite store live beside its database (``file://`` URI of its folder); None
    for other stores (the server decides)."""
    path = _sqlite_path(tracking_uri)
    if path:
        return Path(path).resolve().parent.as_uri()
    return None


def get_or_create_experiment(tracking_uri: str, name: str, timeout: float = DEFAULT_TIMEOUT) -> str:
    """The id of experiment ``name``, created (artifacts beside a SQLite store) when missing; the
    store is opened first within ``timeout`` seconds (:func:`ensure_store`).

    Raises:
        InfraError (exit 3): the store is unreachable or refuses the call.
    """
    ensure_store(tracking_uri, timeout)
    from mlflow.exceptions import MlflowException

    client = client_for(tracking_uri)

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
        return retry_busy(get_or_create)
    except Exception as e:  # MlflowException, connection errors, "database is locked"
        raise InfraError(f"tracking store {redact_uri(tracking_uri)}: {store_reason(e)}") from e
