"""The input files a configuration names, checked before any heavy import (numpy, torch, MLflow).

A missing file, a directory where a file is expected, or an unknown built-in dataset name is an
:class:`~evalkit.errors.InputError` (exit 2) that the command line raises within a fraction of a second:
:func:`check_run_inputs` / :func:`check_evaluate_inputs` run on the validated config before a workflow
is imported. The readers call the same checks (:func:`require_dataset_file`,
:func:`require_predictions_file`), so a message reads the same from every entry point. Standard library
only; the names of :data:`BUILTIN_DATASETS` live here for that reason.
"""

from __future__ import annotations

import re
from pathlib import Path

from evalkit.errors import InputError, field_name
from evalkit.images.backbones import BACKBONES  # names only: torchvision is imported when one is built

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
#: ``-train`` / ``_test`` / ``.trn`` ... at the end of a file stem, optionally followed by ``-sparse``
#: (``bibtex-train-sparse``): the part that :func:`evalkit.data.common.dataset_name` strips.
SPLIT_SUFFIX = re.compile(r"[-_.](?:train|test|trn|tst)(?:[-_.]sparse)?$", re.IGNORECASE)
#: a trailing ``-sparse`` (``rcv1-sparse``, ``bibtex-train-sparse``).
SPARSE_SUFFIX = re.compile(r"[-_.]sparse$", re.IGNORECASE)
#: the preprocessing record's file name (a run artifact; a sidecar of a model file)
PREPROCESS_FILE = "preprocess.json"


def _where(field: str | None, path) -> str:
    """``field path`` (the field marked for naming, see :func:`evalkit.errors.field_name`) or ``path``."""
    return f"{field_name(field)} {path}" if field else str(path)


def _require_nonempty(path, field: str | None, expected: str) -> None:
    """An empty path (``Path("")`` is the working folder) is named as empty, not as a directory."""
    if not str(path).strip():
        raise InputError(f"{field_name(field) if field else 'path'}: empty path; expected {expected}")


def require_dataset_file(path, field: str | None = None) -> None:
    """``path`` is a data file (a built-in name is not: see :func:`check_run_inputs`).

    Raises:
        InputError: ``[field ]path: no such file (and not a built-in dataset: yeast, ...)``, or
            ``[field ]path: is a directory; expected a data file ...``, or ``field: empty path; ...``.
    """
    _require_nonempty(path, field, "a data file or a built-in dataset name")
    if not Path(path).exists():
        raise InputError(f"{_where(field, path)}: no such file (and not a built-in dataset: "
                         f"{', '.join(BUILTIN_DATASETS)})")
    if Path(path).is_dir():
        raise InputError(f"{_where(field, path)}: is a directory; expected a data file (.arff, .csv, .tsv, .parquet, "
                         ".npz, ...: see evalkit datasets)")


def require_predictions_file(path, field: str | None = None) -> None:
    """``path`` is a predictions file. Raises InputError: an empty path, a directory, or no such file."""
    _require_nonempty(path, field, "a predictions file (.npz, .parquet or .csv)")
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{_where(field, p)}: is a directory; expected a predictions file (.npz, .parquet or .csv)")
    if not p.is_file():
        raise InputError(f"{_where(field, p)}: file not found")


def require_model_file(spec: str) -> None:
    """``spec`` (a ``model`` that is not an MLflow URI) exists. Raises InputError naming the forms accepted."""
    _require_nonempty(spec, "model", "an MLflow URI or a model file")
    if not Path(spec).exists():
        raise InputError(f"{field_name('model')} {spec}: no such file; expected an MLflow URI (runs:/<id>/<name>, "
                         "models:/<name>/<version>, models:/<name>@<alias>), a TorchScript, .pt2 or state_dict file")


def _require_file(path, field: str, expected: str) -> None:
    _require_nonempty(path, field, expected)
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{field_name(field)} {p}: is a directory; expected {expected}")
    if not p.exists():
        raise InputError(f"{field_name(field)} {p}: no such file; expected {expected}")


def check_run_inputs(config) -> None:
    """The files a :class:`~evalkit.config.RunConfig` reads exist: ``dataset`` (unless a built-in
    name), ``test_dataset``, ``reader_options.label_file`` and, for a backbone ``model``, ``weights``
    (for any other model the backbone options refuse ``--weights`` itself once the data is read).

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
    if config.weights is not None and config.model in BACKBONES:
        _require_file(config.weights, "weights", f"a state_dict file of {config.model}")


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


# -- inputs found, not named ------------------------------------------------------------------------


def label_file_candidates(path: Path) -> list[Path]:
    """Where a MULAN label XML file for ``path`` may be, in order of preference.

    ``emotions-train.arff`` -> ``[emotions.xml, emotions-train.xml]``; ``scene.arff`` -> ``[scene.xml]``;
    ``bibtex-train-sparse.arff`` -> ``[bibtex.xml, bibtex-train.xml, bibtex-train-sparse.xml]``;
    ``rcv1-sparse.arff.gz`` -> ``[rcv1.xml, rcv1-sparse.xml]``.
    """
    path = Path(path)
    name = path.name
    stem = name[: -len(".arff.gz")] if name.lower().endswith(".arff.gz") else path.stem
    stems = [SPARSE_SUFFIX.sub("", SPLIT_SUFFIX.sub("", stem)), SPARSE_SUFFIX.sub("", stem), stem]
    out: list[Path] = []
    for s in stems:
        p = path.with_name(s + ".xml")
        if s and p not in out:
            out.append(p)
    return out


def find_label_file(path: Path) -> Path | None:
    """The first existing :func:`label_file_candidates` entry, or None."""
    for p in label_file_candidates(path):
        if p.is_file():
            return p
    return None


def sidecar_candidates(model_path: Path) -> list[Path]:
    """Where a preprocessing record for a model file may sit: ``model.pt.preprocess.json``,
    ``model.preprocess.json``, ``preprocess.json`` (same folder)."""
    return [model_path.with_name(model_path.name + ".preprocess.json"),
            model_path.with_name(model_path.stem + ".preprocess.json"),
            model_path.with_name(PREPROCESS_FILE)]


def find_sidecar(model_path: Path) -> Path | None:
    """The preprocessing record read for a model file without ``--preprocess``: the first existing
    :func:`sidecar_candidates` entry, or None."""
    for cand in sidecar_candidates(Path(model_path)):
        if cand.is_file():
            return cand
    return None


def found_inputs(cfg) -> dict[str, Path]:
    """The files a :class:`~evalkit.config.RunConfig` / ``EvaluateJobConfig`` reads without naming
    them, as ``{what: path}``: the MULAN label file found next to an ARFF ``dataset`` / ``test_dataset``
    (neither ``label_file`` nor ``meka_labels`` given) and, for ``evaluate --model FILE`` without
    ``--preprocess``, the preprocessing record beside the model (with the dataset and label file it
    records, when the command names none). Never raises."""
    found: dict[str, Path] = {}
    options = dict(cfg.reader_options or {})
    next_to = "(the MULAN label file found next to {})"
    datasets = {f"--dataset {next_to.format('it')}": cfg.dataset,
                f"--test-dataset {next_to.format('it')}": cfg.test_dataset}
    model = getattr(cfg, "model", None) if "predictions" in type(cfg).model_fields else None  # evaluate's
    if model and not model.startswith(MLFLOW_SCHEMES) and not cfg.preprocess:
        sidecar = find_sidecar(Path(model))
        if sidecar is not None:
            found["--model (the preprocessing record found next to it)"] = sidecar
            recorded = _recorded_dataset(sidecar)
            if cfg.dataset is None and cfg.test_dataset is None and isinstance(recorded.get("spec"), str):
                found["--model (the dataset its preprocessing record names)"] = Path(recorded["spec"])
                datasets[f"--model {next_to.format('the dataset its preprocessing record names')}"] = recorded["spec"]
            if not options:
                kept = recorded.get("reader_options")
                options = dict(kept) if isinstance(kept, dict) else {}
                if isinstance(options.get("label_file"), str):
                    found["--model (the label file its preprocessing record names)"] = Path(options["label_file"])
    if options.get("label_file") is None and options.get("meka_labels") is None:
        for what, spec in datasets.items():
            if isinstance(spec, str) and spec.lower().endswith((".arff", ".arff.gz")) and Path(spec).is_file():
                found[what] = find_label_file(Path(spec))
    return {what: path for what, path in found.items() if path}


def _recorded_dataset(sidecar: Path) -> dict:
    """The ``dataset`` section of a preprocessing record, ``{}`` when it cannot be read."""
    import json

    try:
        section = json.loads(sidecar.read_text(encoding="utf-8")).get("dataset")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return {}
    return section if isinstance(section, dict) else {}
