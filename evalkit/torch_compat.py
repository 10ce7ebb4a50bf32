"""The private torch names evalkit relies on, in one place (beside :mod:`evalkit.tracking.mlflow_compat`).

Each is used only to import a module early (a warm-up, :mod:`evalkit.workflows.warmups`), never
to change torch's behaviour; ``tests/test_compat.py`` fails loudly when a torch release moves one.
"""

from __future__ import annotations

import importlib

#: what ``torch.optim``'s first ``step`` imports (through ``add_param_group``): about 1.2 s
OPTIMIZER_STEP_MODULE = "torch._dynamo"
#: ``torch.export``'s tracer, imported when a model is written as pt2 (with networkx): about 0.7 s
EXPORT_TRACER_MODULE = "torch.export._trace"


def import_optimizer_step_modules() -> None:
    """Import what the first optimizer step of a training run imports (no other effect)."""
    importlib.import_module(OPTIMIZER_STEP_MODULE)


def import_export_tracer() -> None:
    """Import what writing a pt2 model (``torch.export``) imports (no other effect)."""
    importlib.import_module(EXPORT_TRACER_MODULE)


_torchvision_ops = None  # the torch.library declaring torchvision's ops when its own cannot load


def declare_torchvision_ops() -> None:
    """Let ``import torchvision`` work when its C++ ops cannot load (a torchvision wheel built for
    CUDA torch beside a CPU build of torch: its import then fails on registering ``nms``, and so does
    torchmetrics', which imports torchvision whenever it is installed). The two ops its import
    registers (``nms``, ``qnms``) are declared here without kernels; detection ops stay unavailable,
    models and transforms work. No effect when torchvision is absent, already imported or loads its
    own ops. Imports torch (not torchvision)."""
    global _torchvision_ops
    import glob
    import importlib.util
    import os
    import sys

    if _torchvision_ops is not None or "torchvision" in sys.modules:
        return
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return
    import torch

    if hasattr(torch.ops.torchvision, "nms"):  # loaded or declared already (e.g. by an import hook)
        return
    try:
        for path in glob.glob(os.path.join(os.path.dirname(spec.origin), "_C.*")):
            torch.ops.load_library(path)
            return
    except (OSError, RuntimeError):
        pass
    _torchvision_ops = torch.library.Library("torchvision", "FRAGMENT")
    for op in ("nms", "qnms"):
        _torchvision_ops.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
