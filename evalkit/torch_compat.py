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
