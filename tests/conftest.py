"""Shared fixtures: one migrated MLflow SQLite store per session, copied per test (migrations cost ~7 s)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

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
