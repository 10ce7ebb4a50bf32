"""What kind of model file a path holds, told from its bytes (no torch import, nothing unpickled).

Used by both :mod:`evalkit.model_io` (loading a model the user names) and
:mod:`evalkit.tracking.loading` (a logged MLflow model's data file), below both.
"""

from __future__ import annotations

import zipfile
from pathlib import Path


def model_file_kind(path: str | Path) -> str:
    """``"torchscript"``, ``"pt2"`` (torch.export) or ``"checkpoint"`` (torch.save: a state_dict or a
    pickled model; also the answer for a file that is no model at all: loading it says so).

    TorchScript and pt2 files are zip archives: pt2 holds an ``archive_format`` record, TorchScript
    ``constants.pkl`` or a ``code/`` folder. Never raises for an unreadable archive.
    """
    if not zipfile.is_zipfile(path):
        return "checkpoint"  # legacy torch.save format (or not a model at all: torch.load says so)
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (OSError, zipfile.BadZipFile):
        return "checkpoint"
    if any(n.endswith("/archive_format") or n == "archive_format" for n in names):
        return "pt2"
    if any(n.endswith("/constants.pkl") for n in names) or any("/code/" in n for n in names):
        return "torchscript"
    return "checkpoint"
