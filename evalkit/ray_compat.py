"""The private Ray names evalkit relies on, in one place (beside :mod:`evalkit.tracking.mlflow_compat`
and :mod:`evalkit.torch_compat`); ``tests/test_compat.py`` fails loudly when a Ray release moves one.

Each function raises :class:`RayCompatError` naming the private name when it is gone, instead of
silently doing nothing: a moved name is found by the tests, not by a user.
"""

from __future__ import annotations

import os

#: ``ray._private.ray_constants.ENABLE_RAY_CLUSTER``: read when Ray is imported
CLUSTER_FLAG = ("ray._private.ray_constants", "ENABLE_RAY_CLUSTER")
#: ``ray._private.worker`` (its ``connect`` puts ``os.path.abspath(os.path.curdir)`` on workers' sys.path)
WORKER_MODULE = "ray._private.worker"


class RayCompatError(RuntimeError):
    """A private Ray name evalkit relies on has moved (this Ray release is not supported)."""


def _module(name: str):
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise RayCompatError(f"{name}: not in this Ray release ({e}); evalkit supports ray 2.50-2.60") from None


def set_cluster_mode(enabled: bool) -> None:
    """Set Ray's cluster-mode flag (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER``), also when Ray was imported
    before the variable was set: ``False`` keeps a local instance on loopback."""
    module, name = CLUSTER_FLAG
    constants = _module(module)
    if not hasattr(constants, name):
        raise RayCompatError(f"{module}.{name}: not in this Ray release; evalkit supports ray 2.50-2.60")
    setattr(constants, name, enabled)


def keep_cwd_off_workers_path(folder: str) -> None:
    """Stop ``ray.init`` from putting this process's working folder first on every worker's
    ``sys.path``: Ray 2.x adds ``os.path.abspath(os.path.curdir)`` to the job's
    ``py_driver_sys_path`` (``ray._private.worker.connect``), so a stray ``evalkit/`` or
    ``typing_extensions.py`` there would be imported by the workers. ``folder`` (evalkit's package
    root, already on the workers' PYTHONPATH) is named instead, so nothing else changes."""
    worker = _module(WORKER_MODULE)
    if not hasattr(worker, "os"):
        raise RayCompatError(f"{WORKER_MODULE}.os: not in this Ray release; evalkit supports ray 2.50-2.60")

    class _SafeCurdir:
        """``os.path`` as Ray's ``connect`` sees it, with ``curdir`` = ``folder``."""

        curdir = folder

        def __getattr__(self, name):
            return getattr(os.path, name)

    class _SafeOs:
        path = _SafeCurdir()

        def __getattr__(self, name):
            return getattr(os, name)

    if worker.os is os:
        worker.os = _SafeOs()
