"""``evalkit ui``: the MLflow UI on evalkit's store, opened on the training runs table.

Importing this module imports no mlflow (the CLI registers the command at start-up).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def ui(
    tracking_uri: Annotated[Optional[str], typer.Option(
        "--tracking-uri", help="Tracking store (default: $MLFLOW_TRACKING_URI, else sqlite:///mlruns/mlflow.db "
        "in the current folder).")] = None,
    experiment: Annotated[str, typer.Option("--experiment", help="Experiment the link opens.")] = "evalkit",
    host: Annotated[str, typer.Option("--host", help="Interface the UI listens on (127.0.0.1: this machine "
                                                     "only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port the UI listens on.", min=1, max=65535)] = 5000,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the link in a web browser.")] = False,
    tracking_timeout: Annotated[float, typer.Option(help="Seconds to wait for an http(s) tracking store.",
                                                    min=0.1)] = 10.0,
) -> None:
    """Start the MLflow UI on the tracking store and print a link to the runs table (loss, seed,
    dataset, model and the headline test metrics, sorted by test/macro_f2). Ctrl-C stops it.

    An http(s) tracking server is not started again: the link points at it.
    """
    from evalkit.cli.app import console, user_errors

    with user_errors():
        from evalkit.cli.outputs import results_kept

        results_kept()  # files / the tracking store: a full stdout only warns
        from evalkit.tracking import resolve_tracking_uri
        from evalkit.tracking.store import check_store, is_http

        store = resolve_tracking_uri(tracking_uri)
        out = console()
        if is_http(store):
            check_store(store, tracking_timeout)  # a server that is down: one line within the tracking timeout, exit 3
            link = experiment_link(store, store, experiment)
            out.print(f"MLflow UI of {store}: {link}", soft_wrap=True)
            if open_browser:
                _open(link)
            return
        serve(store, experiment, host, port, open_browser, out)


def experiment_link(store: str, base_url: str, experiment: str) -> str:
    """The runs-table link of ``experiment`` (its UI tags set first), or of the experiments list when
    the experiment does not exist yet."""
    from evalkit.tracking.run import tag_experiment
    from evalkit.tracking.store import client_for, ensure_store
    from evalkit.tracking.view import runs_view_url

    ensure_store(store)
    exp = client_for(store).get_experiment_by_name(experiment)
    if exp is None:
        return runs_view_url(base_url)
    tag_experiment(store, exp.experiment_id)
    return runs_view_url(base_url, exp.experiment_id)


def serve(store: str, experiment: str, host: str, port: int, open_browser: bool, out) -> None:
    """Run ``mlflow ui`` on ``store`` until it exits or Ctrl-C (then it is stopped)."""
    import subprocess

    from evalkit.errors import InfraError

    _check_port(host, port)
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else host
    base = f"http://{f'[{shown}]' if ':' in shown and not shown.startswith('[') else shown}:{port}"
    link = experiment_link(store, base, experiment)  # creates / migrates the store before the server does
    cmd, env = _server_command(store, host, port)
    quiet = env.get("MLFLOW_LOGGING_LEVEL", "").upper() in ("WARNING", "ERROR", "CRITICAL")  # not --verbose
    import signal

    def stop(signum, frame):  # SIGTERM, SIGHUP (its terminal closed): stop the server too
        raise KeyboardInterrupt

    stopping = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {sig: signal.signal(sig, stop) for sig in stopping}
    # its own process group: the server's workers are stopped with it, whatever stops evalkit ui
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, **(dict(stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                                                                     if quiet else {}))
    if quiet:
        _drop_noise(proc.stdout)
    try:
        if not _wait_ready(base, proc):
            code = proc.poll()
            raise InfraError(f"mlflow ui did not start on {base}" + (f" (exit code {code})" if code is not None
                                                                    else " within 3 minutes"))
        out.print(f"MLflow UI on {store}\nRuns of experiment {experiment!r}: {link}\nCtrl-C stops it.", soft_wrap=True)
        if open_browser:
            _open(link)
        code = proc.wait()
        if code not in (0, -2, 130):
            raise InfraError(f"mlflow ui exited with code {code}")
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop(proc)


def _server_command(store: str, host: str, port: int) -> tuple[list[str], dict[str, str]]:
    """The ``mlflow ui`` command line and environment. Nothing in the working folder (a stray
    ``uvicorn.py``, ``typing_extensions.py`` or ``evalkit/``) is imported by the server: ``-P``, and
    PYTHONSAFEPATH=1 for the uvicorn process it starts; uvicorn's ``--app-dir`` (default: the working
    folder, put first on its ``sys.path``) is the folder mlflow is installed in."""
    import os
    import shlex
    import sys
    from importlib.util import find_spec

    from evalkit.tracking.store import default_artifact_location

    cmd = [sys.executable, "-P", "-m", "mlflow", "ui", "--backend-store-uri", store, "--host", host, "--port", str(port),
           "--workers", "1"]  # one local user: one worker starts fastest
    artifacts = default_artifact_location(store)
    if artifacts:
        cmd += ["--default-artifact-root", artifacts]
    env = dict(os.environ, PYTHONSAFEPATH="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    opts = f"--app-dir {shlex.quote(str(Path(find_spec('mlflow').origin).parents[1]))}"
    if env.get("MLFLOW_LOGGING_LEVEL", "").upper() in ("WARNING", "ERROR", "CRITICAL"):  # not --verbose
        opts += " --log-level warning"
        env.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning,ignore:starlette.middleware.wsgi is deprecated")
    return cmd + ["--uvicorn-opts", opts], env


#: MLflow's own start-up lines, not shown unless --verbose (the server's warnings and errors still are)
NOISE = ("Registry store URI not provided", "[MLflow] Security middleware", "INFO ", "INFO:",
         "Creating initial MLflow database tables")


def _drop_noise(stream) -> None:
    """Copy the server's output to stderr without :data:`NOISE` (a daemon thread, until it closes)."""
    import sys
    import threading

    def pump() -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace")
            if not line.lstrip().startswith(NOISE):
                sys.stderr.write(line)
                sys.stderr.flush()

    threading.Thread(target=pump, name="mlflow-ui-output", daemon=True).start()


def _stop(proc) -> None:
    """Stop the server's process group (SIGTERM, then SIGKILL after 10 s)."""
    import os
    import signal
    import subprocess

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(10)
            return
        except subprocess.TimeoutExpired:
            continue


def _check_port(host: str, port: int) -> None:
    """Refuse a ``port`` already taken on ``host`` (an IPv4 or IPv6 address or a host name, checked
    with its own address family). Raises InputError (exit 2) naming --host / --port."""
    import socket

    from evalkit.errors import InputError

    try:
        family, _, _, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                      flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as e:
        raise InputError(f"--host {host!r}: not an address of this machine ({e})") from None
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as e:
            raise InputError(f"--port {port}: {host}:{port} is not free ({e.strerror}); pass another --port") from None


def _wait_ready(base: str, proc, seconds: float = 180.0) -> bool:
    """Poll ``/health`` every 0.25 s until the server answers, exits, or ``seconds`` pass (a loaded
    machine can take a minute to start it)."""
    import time
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                if r.status == 200:
                    return True
        except Exception:
            pass
        time.sleep(0.25)
    return False


def _open(link: str) -> None:
    import webbrowser

    webbrowser.open(link)
