"""The input files a configuration names, checked before any heavy import (numpy, torch, MLflow).

A missing file, a directory where a file is expected, or an unknown built-in dataset name is an
:class:`~evalkit.errors.InputError` (exit 2) that the command line raises within a fraction of a second:
:func:`check_run_inputs` / :func:`check_evaluate_inputs` run on the validated config before a workflow
is imported. The readers call the same checks (:func:`require_dataset_file`,
:func:`require_predictions_file`), so a message reads the same from every entry point. Standard library
only; the names of :data:`BUILTIN_DATASETS` live here for that reason.
"""

from __future__ import annotations

from pathlib import Path

from evalkit.errors import InputError, field_name

#: built-in datasets: name -> one-line description (``evalkit datasets``; loaded by
#: :mod:`evalkit.data.builtin`)
BUILTIN_DATASETS: dict[str, str] = {
    "yeast": "MULAN yeast (Elisseeff & Weston 2001): 2417 genes, 103 features, 14 labels; "
    "standard split 1500 train / 917 test; shipped with evalkit",
    "digits-grid": "demo image set: 2x2 grids of scikit-learn's handwritten digits, 16x16 grayscale, "
    "10 labels (which digits appear); 3000 train / 1000 test; offline; not a benchmark of record",
}
#: model references that name an MLflow model, not a file
MLFLOW_SCHEMES = ("runs:/", "models:/")


def _where(field: str | None, path) -> str:
    """``field path`` (the field marked for naming, see :func:`evalkit.errors.field_name`) or ``path``."""
    return f"{field_name(field)} {path}" if field else str(path)


def require_dataset_file(path, field: str | None = None) -> None:
    """``path`` is a data file (a built-in name is not: see :func:`check_run_inputs`).

    Raises:
        InputError: ``[field ]path: no such file (and not a built-in dataset: yeast, ...)``, or
            ``[field ]path: is a directory; expected a data file ...``.
    """
    if not Path(path).exists():
        raise InputError(f"{_where(field, path)}: no such file (and not a built-in dataset: "
                         f"{', '.join(BUILTIN_DATASETS)})")
    if Path(path).is_dir():
        raise InputError(f"{_where(field, path)}: is a directory; expected a data file (.arff, .csv, .tsv, .parquet, "
                         ".npz, ...: see evalkit datasets)")


def require_predictions_file(path, field: str | None = None) -> None:
    """``path`` is a predictions file. Raises InputError: a directory, or no such file."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{_where(field, p)}: is a directory; expected a predictions file (.npz, .parquet or .csv)")
    if not p.is_file():
        raise InputError(f"{_where(field, p)}: file not found")


def require_model_file(spec: str) -> None:
    """``spec`` (a ``model`` that is not an MLflow URI) exists. Raises InputError naming the forms accepted."""
    if not Path(spec).exists():
        raise InputError(f"{field_name('model')} {spec}: no such file; expected an MLflow URI (runs:/<id>/<name>, "
                         "models:/<name>/<version>, models:/<name>@<alias>), a TorchScript, .pt2 or state_dict file")


def _require_file(path, field: str, expected: str) -> None:
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{field_name(field)} {p}: is a directory; expected {expected}")
    if not p.exists():
        raise InputError(f"{field_name(field)} {p}: no such file; expected {expected}")


def check_run_inputs(config) -> None:
    """The files a :class:`~evalkit.config.RunConfig` reads exist: ``dataset`` (unless a built-in
    name), ``test_dataset`` and ``reader_options.label_file`` (``weights`` is checked with the
    backbone options, which say first whether it applies at all).

    Raises:
        InputError: the first missing file, naming its field.
    """
    if config.dataset not in BUILTIN_DATASETS:
        require_dataset_file(config.dataset, "dataset")
    if config.test_dataset is not None:
        require_dataset_file(config.test_dataset, "test_dataset")
    label_file = (config.reader_options or {}).get("label_file")
    if label_file is not None:
        _require_file(label_file, "label_file", "a MULAN label XML file")


def check_evaluate_inputs(config) -> None:
    """The files an :class:`~evalkit.config.EvaluateJobConfig` reads exist: ``predictions``, a
    ``model`` file (not an MLflow URI), the data files, ``preprocess``, ``label_map`` and a
    ``threshold`` that names a ``.json`` / ``.csv`` file.

    Raises:
        InputError: the first missing file, naming its field.
    """
    if config.predictions is not None:
        require_predictions_file(config.predictions, "predictions")
    if config.model is not None and not config.model.startswith(MLFLOW_SCHEMES):
        require_model_file(config.model)
    if config.dataset is not None and config.dataset not in BUILTIN_DATASETS:
        require_dataset_file(config.dataset, "dataset")
    if config.test_dataset is not None:
        require_dataset_file(config.test_dataset, "test_dataset")
    if config.preprocess is not None:
        _require_file(config.preprocess, "preprocess", "the preprocess.json logged by `evalkit run`")
    if config.label_map is not None:
        _require_file(config.label_map, "label_map", "a CSV (source,target) or JSON {source: target} file")
    threshold = (config.threshold or "").strip()
    if threshold.endswith((".json", ".csv")) and not Path(threshold).exists():
        raise InputError(f"{field_name('threshold')}: {threshold}: no such file")
