"""``evalkit ui``: a down HTTP store fails within the tracking timeout, SIGHUP (terminal closed)
stops the MLflow server, IPv6 hosts are checked with their own address family."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import healthy

ROOT = Path(__file__).resolve().parents[1]


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_ui_on_an_http_store_that_never_answers_fails_in_one_line_with_exit_3(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with socket.socket() as srv:  # accepted by the kernel, never answered (MLflow's retries: 248 s)
        srv.bind(("127.0.0.1", 0))
        srv.listen(16)
        uri = f"http://127.0.0.1:{srv.getsockname()[1]}"
        r = cli("ui", "--tracking-uri", uri, "--tracking-timeout", "3")
    assert r.exit_code == 3, r.output
    line = r.output.strip()
    assert "\n" not in line and uri in line and "unreachable" in line, line


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_ui_checks_an_ipv6_host_with_the_ipv6_family(store, cli):
    from evalkit.cli.ui_command import _check_port

    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        s.bind(("::1", 0))
        port = s.getsockname()[1]
        s.listen()
        r = cli("ui", "--host", "::1", "--port", str(port))
        assert r.exit_code == 2 and f"--port {port}: ::1:{port} is not free" in r.output, r.output
    _check_port("::1", port)  # free again: no error (it was "not free" for any IPv6 host before)


def test_ui_refuses_a_host_that_is_no_address(store, cli):
    r = cli("ui", "--host", "no-such-host.invalid")
    assert r.exit_code == 2 and "--host 'no-such-host.invalid'" in r.output, r.output


def test_sighup_of_evalkit_ui_stops_its_server(tmp_path):
    from conftest import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen([sys.executable, "-P", "-m", "evalkit", "ui", "--port", str(port),
                             "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240  # a bound on a hang, not a timing check
        while not healthy(base):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate(timeout=30)
            time.sleep(0.5)
        proc.send_signal(signal.SIGHUP)
        proc.communicate(timeout=300)  # a guard against a hang, not a speed check
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not healthy(base)  # the server's process group was stopped with it
    assert _listener_gone(port, wait=60), f"something still listens on port {port} after SIGHUP"


def _listener_gone(port: int, wait: float) -> bool:
    """True once no socket listens on 127.0.0.1:``port`` (within ``wait`` seconds: a bound on a hang,
    not a timing check; a loaded machine's exiting server workers take a moment). SO_REUSEADDR: the
    connections the server closed sit in TIME_WAIT on that port, which is not listening."""
    deadline = time.monotonic() + wait
    while True:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
                s.listen()
                return True
            except OSError:
                if time.monotonic() > deadline:
                    return False
        time.sleep(0.5)
