"""The private names of dependencies evalkit relies on still exist (a dependency upgrade that moves one
fails here, loudly, not in a user's run)."""

from __future__ import annotations

import importlib

import pytest


def test_torch_private_modules_still_exist():
    from evalkit import torch_compat

    for name in (torch_compat.OPTIMIZER_STEP_MODULE, torch_compat.EXPORT_TRACER_MODULE):
        assert importlib.util.find_spec(name) is not None, name
    torch_compat.import_optimizer_step_modules()
    torch_compat.import_export_tracer()


def test_ray_private_names_still_exist():
    pytest.importorskip("ray")
    from evalkit import ray_compat

    module, name = ray_compat.CLUSTER_FLAG
    assert hasattr(importlib.import_module(module), name)
    worker = importlib.import_module(ray_compat.WORKER_MODULE)
    assert hasattr(worker, "os")


def test_ray_compat_names_a_moved_name(monkeypatch):
    pytest.importorskip("ray")
    from evalkit import ray_compat

    monkeypatch.setattr(ray_compat, "CLUSTER_FLAG", ("ray._private.ray_constants", "NO_SUCH_NAME"))
    with pytest.raises(ray_compat.RayCompatError, match="NO_SUCH_NAME"):
        ray_compat.set_cluster_mode(False)
