"""evalkit: multi-label classification experiments with exact metrics and MLflow tracking.

Heavy dependencies (torch, mlflow, pandas, sklearn) are imported lazily by the functions that need
them, so ``import evalkit`` and ``evalkit --help`` stay fast.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "evaluate_scores"]


def __getattr__(name: str):  # lazy public API
    if name == "evaluate_scores":
        from evalkit.api import evaluate_scores

        return evaluate_scores
    raise AttributeError(f"module 'evalkit' has no attribute {name!r}")
