"""evalkit's private MLflow dependencies still exist (fails loudly when an MLflow upgrade moves them).

Every private MLflow name evalkit uses is listed in ``evalkit.tracking.mlflow_compat.PRIVATE_NAMES``,
the only module that may touch them; the pickle checks of model loading rely on MLflow's model-folder
file names, checked here too.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from evalkit.tracking import mlflow_compat


@pytest.mark.parametrize("module,name", mlflow_compat.PRIVATE_NAMES, ids=lambda v: str(v))
def test_private_mlflow_name_still_exists(module, name):
    import mlflow

    mod = importlib.import_module(module)
    assert hasattr(mod, name), (
        f"MLflow {mlflow.__version__} no longer has {module}.{name}, which evalkit relies on "
        f"(see evalkit/tracking/mlflow_compat.py): find where MLflow moved it and update mlflow_compat")


def test_model_folder_layout_matches_mlflow():
    import mlflow.pytorch

    for const, ours in mlflow_compat.LAYOUT.items():
        theirs = getattr(mlflow.pytorch, const, None)
        assert theirs == ours, (f"MLflow's {const} is {theirs!r}, evalkit's pickle check expects {ours!r}: "
                                "update evalkit/tracking/mlflow_compat.py")
    assert mlflow_compat.missing_private_names() == []


def test_missing_private_name_fails_closed():
    with pytest.raises(mlflow_compat.CompatError, match="private MLflow API mlflow.pytorch._no_such_thing"):
        mlflow_compat.private("mlflow.pytorch", "_no_such_thing")


def test_no_other_module_uses_private_mlflow_apis():
    """Private MLflow names (``mlflow.x._y``) appear only in mlflow_compat."""
    import re

    root = Path(__file__).resolve().parents[1] / "evalkit"
    pattern = re.compile(r"(?:from\s+mlflow[\w.]*\s+import\s+\(?\s*_\w+|mlflow(?:\.\w+)*\._[a-z]\w*)")
    offenders = [f"{p.relative_to(root)}: {m.group(0)}" for p in root.rglob("*.py") if p.name != "mlflow_compat.py"
                 for m in pattern.finditer(p.read_text())]
    assert offenders == [], "private MLflow APIs outside evalkit/tracking/mlflow_compat.py: " + "; ".join(offenders)
