"""evalkit: multi-label classification experiments with exact metrics and MLflow tracking.

The Python API (the CLI is a thin layer over it; nothing here prints unless given a console or an
``on_event`` callback)::

    import evalkit
    result = evalkit.run_experiment(evalkit.RunConfig(epochs=20), track=False)
    report = evalkit.evaluate_scores(targets, logits=logits)
    job = evalkit.evaluate_job(evalkit.EvaluateJobConfig(predictions="p.npz", gates=["test/macro_f2>=0.5"]))

Heavy dependencies (torch, mlflow, pandas, sklearn) are imported lazily by the functions that need
them, so ``import evalkit`` and ``evalkit --help`` stay fast.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "RunConfig": "evalkit.config",
    "EvaluateJobConfig": "evalkit.config",
    "run_experiment": "evalkit.workflows.experiment",
    "prepare_data": "evalkit.workflows.experiment",
    "RunResult": "evalkit.workflows.experiment",
    "run_spec": "evalkit.workflows.grid",
    "GridResult": "evalkit.workflows.grid",
    "evaluate_scores": "evalkit.workflows.evaluation",
    "evaluate_predictions": "evalkit.workflows.evaluation",
    "evaluate_model": "evalkit.workflows.evaluation",
    "evaluate_job": "evalkit.workflows.job",
    "JobResult": "evalkit.workflows.job",
    "Report": "evalkit.report",
    "Thresholds": "evalkit.thresholds",
    "Event": "evalkit.workflows.events",
}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str):  # lazy public API
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'evalkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
