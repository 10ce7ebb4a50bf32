"""Ray sessions for grids and searches: :func:`start_ray` (a local instance bound to 127.0.0.1, or
a cluster joined by address), :func:`import_ray` (names the extra when Ray is missing) and
:func:`check_cluster_store` (a cluster's workers must reach the tracking store)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from evalkit.config import ExecutorConfig
from evalkit.errors import InputError

#: how the extra is named in the messages
RAY_EXTRA = "pip install 'evalkit[ray]'"
#: the MLflow tag of a grid cell's / trial's run naming the Ray node it ran on (hex node id, as ``ray status``
#: and ``ray.nodes()`` show it)
NODE_TAG = "evalkit.ray_node_id"


def import_ray():
    """``import ray``, or InputError (exit 2) saying which extra to install."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise InputError(f"--executor ray: Ray is not installed; install the extra: {RAY_EXTRA}") from None
    return ray


def node_tags() -> dict[str, str]:
    """``{NODE_TAG: node id}`` in a Ray worker (a grid cell's task, a search trial): the node this
    process runs on, from ``ray.get_runtime_context().get_node_id()`` (56 hex digits). ``{}`` in a
    process not connected to Ray (the sequential executor). Never raises: a tag is not worth a cell."""
    import sys

    ray = sys.modules.get("ray")
    try:
        if ray is None or not ray.is_initialized():
            return {}
        return {NODE_TAG: ray.get_runtime_context().get_node_id()}
    except Exception:
        return {}


def check_cluster_store(options: ExecutorConfig, tracking_uri: str | None, experiment: str | None = None) -> None:
    """Refuse a Ray cluster (``--ray-address``) whose workers could not write the tracking store:
    a SQLite / file store, or an experiment whose artifacts go to a local path. No-op without an
    address (a local Ray instance shares this machine's files).

    Raises:
        InputError (exit 2): one line saying to use an MLflow server.
    """
    if options.kind != "ray" or not options.address or not tracking_uri:
        return
    from evalkit.tracking import redact_uri

    hint = ("use an MLflow server reachable from every node (--tracking-uri http://HOST:5000, e.g. the "
            "PostgreSQL-backed deployment, with proxied artifacts)")
    scheme = tracking_uri.split(":", 1)[0].split("+", 1)[0]
    if scheme in ("sqlite", "file") or "://" not in tracking_uri:
        raise InputError(f"--ray-address {options.address}: the tracking store {redact_uri(tracking_uri)} is a local "
                         f"file that workers on other machines cannot write; {hint}")
    if experiment is None:
        return
    from evalkit.tracking.store import client_for, get_or_create_experiment

    exp = client_for(tracking_uri).get_experiment(get_or_create_experiment(tracking_uri, experiment))
    where = exp.artifact_location or ""
    if _is_local_path(where):
        raise InputError(f"--ray-address {options.address}: experiment {experiment!r} stores artifacts at the local "
                         f"path {where}, which workers on other machines cannot write; {hint}")


def _is_local_path(location: str) -> bool:
    """True for an artifact location on this machine's disk: no URI scheme (``/x``, ``./mlruns``,
    ``C:\\x``) or ``file:``. Any other scheme (``mlflow-artifacts:/1`` of a server that proxies
    artifacts, ``s3://``, ``gs://``, ``dbfs:/``, ...) is reachable from other nodes."""
    import re

    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):", location)
    return match is None or len(match.group(1)) == 1 or match.group(1).lower() == "file"


def start_ray(options: ExecutorConfig):
    """Join ``options.address``, or start a local Ray instance bound to 127.0.0.1 (no dashboard, no
    usage stats) sized to this machine. Returns ``(ray, started)``: ``started`` is True when this
    call started Ray (the caller shuts it down).

    Raises:
        InputError: Ray is not installed (names the extra to install).
        InfraError: the cluster cannot be joined.
    """
    from evalkit.errors import InfraError
    from evalkit.ray_compat import keep_cwd_off_workers_path, set_cluster_mode

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # never phone home
    if not options.address:
        # a local instance: loopback only (Ray otherwise binds to the machine's routable address)
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray = import_ray()
    if ray.is_initialized():
        return ray, False
    if not options.address:  # before Ray starts: a cell that can never be scheduled waits forever
        check_cpus_per_cell(options, os.cpu_count() or 1)
        set_cluster_mode(os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] not in ("0", "false"))
    import logging

    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), _package_root()) if p)
    kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                                  configure_logging=False)
    handlers = _signal_handlers()
    keep_cwd_off_workers_path(_package_root())
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "PYTHONSAFEPATH")}
    try:
        if options.address:
            ray.init(address=options.address, runtime_env={"env_vars": {"PYTHONPATH": path, "PYTHONSAFEPATH": "1"}},
                     **kwargs)
        else:
            # Ray runs task workers at nice 15 by default: the cells are the work here, so they keep the
            # driver's priority (otherwise any other busy process on the machine starves them)
            os.environ.setdefault("RAY_worker_niceness", "0")
            # a local instance's processes inherit this environment: workers then import evalkit from
            # here without a runtime_env, which would stop Ray from using its pre-started workers
            os.environ["PYTHONPATH"] = path
            os.environ["PYTHONSAFEPATH"] = "1"  # its `python -m` processes: not the working folder either
            ray.init(num_cpus=os.cpu_count() or 1, _node_ip_address="127.0.0.1", **kwargs)
    except Exception as e:
        raise InfraError(f"--ray-address {options.address or '(local)'}: cannot start or join Ray: "
                         f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    finally:
        _restore_signal_handlers(handlers)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    if options.address:
        try:
            check_cpus_per_cell(options, ray.cluster_resources().get("CPU", 0))
        except InputError:
            ray.shutdown()
            raise
    return ray, True


def check_cpus_per_cell(options: ExecutorConfig, available: float) -> None:
    """Refuse ``cpus_per_cell`` above the CPUs of the Ray instance / cluster (``available``): Ray would
    wait forever for a worker that large.

    Raises:
        InputError (exit 2): one line naming the spec key / flag and the CPUs available.
    """
    if options.cpus_per_cell > available:
        where = f"the Ray cluster {options.address}" if options.address else "this machine"
        raise InputError(f"[executor] cpus_per_cell (--cpus-per-cell / --cpus-per-trial) = {options.cpus_per_cell:g}: "
                         f"more than the {available:g} CPU(s) of {where}; no cell could ever start")


def _signal_handlers() -> dict:
    """The Python handlers of SIGTERM / SIGINT (main thread only)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}


def _restore_signal_handlers(handlers: dict) -> None:
    """Put back the handlers that ``ray.init`` replaced with its own (its SIGTERM handler aborts the
    process, which would leave the runs RUNNING): SIGTERM then ends the grid KILLED, exit 143."""
    import signal

    for sig, handler in handlers.items():
        if handler is not None:
            signal.signal(sig, handler)


def _package_root() -> str:
    """The folder holding the ``evalkit`` package (workers of a local instance import it from there)."""
    return str(Path(__file__).resolve().parents[2])


