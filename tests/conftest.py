"""Shared fixtures: one migrated MLflow SQLite store per session, copied per test (migrations cost ~7 s)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from evalkit.torch_compat import declare_torchvision_ops

# tests import torchmetrics directly (comparisons); with a CUDA-built torchvision beside CPU torch its
# import fails unless torchvision's ops are declared first (what evalkit's engine does too)
declare_torchvision_ops()

SHARED = Path(__file__).resolve().parents[2] / "shared"
MULAN = SHARED / "datasets" / "mulan"


@pytest.fixture(autouse=True)
def _isolated_environ():
    """Each test starts from the same environment: commands run in-process set variables such as
    EVALKIT_TRACKING_TIMEOUT and MLFLOW_HTTP_REQUEST_* (tracking.configure_http), which would otherwise
    leak into every later test (e.g. a 4 s --tracking-timeout becoming the next test's default)."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def _migrated_store(tmp_path_factory) -> Path:
    import mlflow

    db = tmp_path_factory.mktemp("store-template") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{db}").search_experiments()  # runs the schema migrations once
    return db


@pytest.fixture
def store(tmp_path, _migrated_store, monkeypatch) -> str:
    """A fresh, already-migrated SQLite tracking store in ``tmp_path/mlruns``; cwd is ``tmp_path``.

    Returns the tracking URI (also the default store for commands run in cwd).
    """
    d = tmp_path / "mlruns"
    d.mkdir()
    shutil.copy(_migrated_store, d / "mlflow.db")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return f"sqlite:///{d / 'mlflow.db'}"


@pytest.fixture
def cli():
    """Invoke the evalkit CLI in-process; returns (exit_code, stdout, stderr)."""
    from typer.testing import CliRunner

    from evalkit.cli import app

    runner = CliRunner()

    def invoke(*args: str):
        result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        return result

    return invoke


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (services a test starts listen on loopback only)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(uri: str) -> bool:
    """True when an MLflow server at ``uri`` answers ``/health`` with 200 within a second."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def start_mlflow_server(folder, backend_uri: str, *, workers: int = 1, wait: float = 120.0):
    """Start ``mlflow server`` on a free loopback port (artifacts under ``folder``), in its own process
    group; return ``(uri, process)`` once ``/health`` answers. The wait is a bound on a hang, not a
    timing check. Fails the test with the server's log if it exits or never answers."""
    import os
    import signal
    import subprocess
    import sys
    import time

    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    with open(Path(folder) / "server.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers",
             str(workers), "--backend-store-uri", backend_uri, "--artifacts-destination", str(Path(folder) / "artifacts"),
             # uvicorn kills a worker that misses a 5 s health check (and every request it holds): on
             # a loaded 2-core CI machine that is the test machine, not evalkit, failing
             *(["--uvicorn-opts", "--timeout-worker-healthcheck 60"] if workers > 1 else [])],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + wait
    while not healthy(uri):
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"mlflow server did not start:\n{(Path(folder) / 'server.log').read_text()[-3000:]}")
        time.sleep(0.3)
    return uri, proc


def warm_server(uri: str, rounds: int = 2, clients: int = 8) -> None:
    """Send ``rounds`` of ``clients`` concurrent experiment searches, so that every worker of a
    multi-worker server has opened its store (a team server is long-running; a cold one on a loaded
    CI machine is not what a test is about). Fails the test when the server errs."""
    import json
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    def search(_):
        req = urllib.request.Request(uri + "/api/2.0/mlflow/experiments/search", method="POST",
                                     data=json.dumps({"max_results": 1}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status

    with ThreadPoolExecutor(clients) as pool:
        for _ in range(rounds):
            assert set(pool.map(search, range(clients))) == {200}


def stop_process_group(proc, timeout: float = 20.0) -> None:
    """SIGTERM a server started with :func:`start_mlflow_server` (its whole process group), SIGKILL
    after ``timeout`` seconds; a no-op when it has already exited."""
    import os
    import signal
    import subprocess

    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
