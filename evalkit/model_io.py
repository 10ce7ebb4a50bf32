"""Loading trained models for evaluation, their preprocessing record, and batched inference.

Model specs accepted by ``evalkit evaluate --model SPEC``:

* MLflow URIs: ``runs:/<run id>/<name>``, ``models:/<name>/<version>``, ``models:/<name>@<alias>``,
  or a local MLflow model directory (one holding an ``MLmodel`` file), loaded by
  :func:`evalkit.tracking.loading.load_logged_model`: the folder is inspected first; pt2 archives are
  checked to hold no pickled code, and a model stored in pickle format is refused unless
  ``trust_pickle``;
* a TorchScript file (``torch.jit.save``);
* a ``torch.export`` archive (``.pt2``, ``torch.export.save``), refused when it carries pickled
  objects unless ``trust_pickle``;
* a ``state_dict`` file (``torch.save(model.state_dict())``) plus the architecture (``arch`` /
  ``hidden``, or the ``model`` section of the preprocessing record), read with
  ``torch.load(..., weights_only=True)``;
* a pickled full model (``torch.save(model)``): only with ``trust_pickle=True``, because unpickling
  runs arbitrary code. Without it the file is refused with a one-line explanation.

The preprocessing record (``preprocess.json``) is what evaluation needs to feed a model exactly as in
training. ``evalkit run`` logs it as a run artifact next to the model::

    {"format": "evalkit.preprocess/1",
     "dataset": {"spec", "test_dataset", "reader_options", "name", "digest", "test_size", "val_size", "seed",
                 "one_hot" (CSV / Parquet text columns: {column: values}, only when there are some)},
     "input_shape": [F] | [3, H, W], "label_names": [...],
     "standardize": bool, "mean": [F floats], "std": [F floats],   # train-split statistics
     "scores": "logits", "threshold": {"strategy": str, "values": [C floats] (top-k: nulls and "k": K)},
     "model": {"arch", "hidden", "dropout", "activation", "batch_norm"}}

For a model file the record comes from ``--preprocess FILE`` or a sidecar next to the model
(``<model file>.preprocess.json``, ``<stem>.preprocess.json`` or ``preprocess.json``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.model_files import model_file_kind
from evalkit.errors import InfraError, InputError
from evalkit.inputs import MLFLOW_SCHEMES, PREPROCESS_FILE, find_sidecar, require_model_file
from evalkit.inputs import sidecar_candidates  # noqa: F401 (where a sidecar may sit)
from evalkit.tracking.redact import first_line as _first_line

PREPROCESS_FORMAT = "evalkit.preprocess/1"


@dataclass
class LoadedModel:
    """A model ready for inference and what is known about it."""

    module: Any
    kind: str  # mlflow | torchscript | pt2 | state_dict | pickle
    spec: str
    source_run: str | None = None
    preprocess: dict | None = None
    preprocess_source: str | None = None
    notes: list[str] = field(default_factory=list)


# -- preprocessing record ---------------------------------------------------------------------------


def apply_preprocess(X: np.ndarray, record: dict | None, where: str = "preprocess") -> np.ndarray:
    """Standardise ``X`` with the record's train statistics, exactly as in training.

    Raises:
        InputError: the features do not have the shape the model was trained on.
    """
    if not record:
        return X
    shape = record.get("input_shape")
    if shape is not None and tuple(X.shape[1:]) != tuple(shape):
        raise InputError(f"{where}: the model was trained on features of shape (N, {', '.join(map(str, shape))}), "
                         f"the evaluation data has (N, {', '.join(map(str, X.shape[1:]))})")
    if not record.get("standardize"):
        return X
    mean = np.asarray(record["mean"], dtype=np.float64)
    std = np.asarray(record["std"], dtype=np.float64)
    Xf = X.reshape(X.shape[0], -1)
    if mean.shape != (Xf.shape[1],) or std.shape != (Xf.shape[1],):
        raise InputError(f"{where}: standardisation statistics for {mean.size} features, the data has {Xf.shape[1]}")
    from evalkit.data.split import zscore

    return zscore(X, mean, std)


def preprocess_record(*, dataset: dict, input_shape, label_names, standardize: bool, mean=None, std=None,
                      threshold: dict, model: dict) -> dict:
    """The ``preprocess.json`` record (see the module docs)."""
    return {
        "format": PREPROCESS_FORMAT,
        "dataset": dataset,
        "input_shape": [int(d) for d in input_shape],
        "label_names": [str(n) for n in label_names],
        "standardize": bool(standardize),
        "mean": [float(v) for v in mean] if standardize else None,
        "std": [float(v) for v in std] if standardize else None,
        "scores": "logits",
        "threshold": {"strategy": threshold["strategy"],
                      "values": [None if v is None else float(v) for v in threshold["values"]],
                      **({"k": int(threshold["k"])} if threshold.get("k") is not None else {})},
        "model": model,
    }


def read_preprocess(path: str | Path) -> dict:
    """Read a ``preprocess.json`` record (or an evalkit report carrying only thresholds).

    Raises:
        InputError: missing / unreadable file or not an evalkit preprocessing record.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"--preprocess {p}: no such file; expected the preprocess.json logged by `evalkit run`")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"--preprocess {p}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or data.get("format") != PREPROCESS_FORMAT:
        raise InputError(f"--preprocess {p}: not an evalkit preprocessing record "
                         f"(expected \"format\": \"{PREPROCESS_FORMAT}\")")
    if data.get("standardize") and not (isinstance(data.get("mean"), list) and isinstance(data.get("std"), list)):
        raise InputError(f"--preprocess {p}: standardize is true but mean / std are missing")
    return data


# -- loading ----------------------------------------------------------------------------------------


def is_mlflow_uri(spec: str) -> bool:
    """True for ``runs:/...`` and ``models:/...`` specs."""
    return spec.startswith(MLFLOW_SCHEMES)


def load_model(spec: str, *, tracking_uri: str | None = None, arch: str | None = None, hidden=None,
               n_features: int | None = None, input_shape=None, n_labels: int | None = None,
               trust_pickle: bool = False, preprocess: str | None = None) -> LoadedModel:
    """Load the model named by ``spec`` (see the module docs) with its preprocessing record.

    Args:
        spec: MLflow URI, MLflow model directory, or model file.
        tracking_uri: store for MLflow URIs (resolved by the caller).
        arch / hidden: architecture of a ``state_dict`` file (default: the record's ``model`` section).
        n_features / input_shape / n_labels: the data the model will see (to build a ``state_dict`` model).
        trust_pickle: allow unpickling a full model or a pickle-format MLflow model (runs code from it:
            trusted sources only).
        preprocess: a ``preprocess.json`` file (default: from the run / a sidecar).

    Raises:
        InputError: missing file, unknown format, a pickled model without ``trust_pickle``, a
            ``state_dict`` without an architecture or not fitting it, no such MLflow model.
        InfraError: the tracking store is unreachable or the logged model cannot be loaded.
    """
    record, record_source = (read_preprocess(preprocess), str(preprocess)) if preprocess else (None, None)
    if is_mlflow_uri(spec) or (Path(spec).is_dir() and (Path(spec) / "MLmodel").is_file()):
        from evalkit import tracking

        uri = tracking.resolve_tracking_uri(tracking_uri)
        run_id = tracking.model_source_run(uri, spec) if is_mlflow_uri(spec) else None
        module = tracking.load_logged_model(uri, spec, trust_pickle=trust_pickle)
        if record is None and run_id:
            record = tracking.load_run_json(uri, run_id, PREPROCESS_FILE)
            record_source = f"run {run_id}/{PREPROCESS_FILE}" if record else None
        return LoadedModel(module, "mlflow", spec, run_id, record, record_source)

    path = Path(spec)
    require_model_file(spec)
    if path.is_dir():
        raise InputError(f"--model {spec}: a folder without an MLmodel file; expected a model file or MLflow model")
    if record is None and (sidecar := find_sidecar(path)) is not None:
        record, record_source = read_preprocess(sidecar), str(sidecar)
    kind = model_file_kind(path)
    notes: list[str] = []
    if kind == "torchscript":
        module = _guard(spec, lambda: _torch().jit.load(str(path), map_location="cpu"))
    elif kind == "pt2":
        if not trust_pickle:
            from evalkit.tracking.loading import verify_pt2_file

            verify_pt2_file(path, spec)
        module = _guard(spec, lambda: _torch().export.load(str(path)).module())
    else:
        module, kind = _load_checkpoint(path, spec, arch=arch, hidden=hidden, record=record, n_features=n_features,
                                        input_shape=input_shape, n_labels=n_labels, trust_pickle=trust_pickle)
    return LoadedModel(module, kind, spec, None, record, record_source, notes)


def _torch():
    import torch

    return torch


EvalkitErrorTypes = (InputError, InfraError)


def _guard(spec: str, fn):
    try:
        return fn()
    except EvalkitErrorTypes:
        raise
    except Exception as e:
        raise InputError(f"--model {spec}: cannot load ({type(e).__name__}: {_first_line(e)})") from None


def _load_checkpoint(path: Path, spec: str, *, arch, hidden, record, n_features, input_shape, n_labels,
                     trust_pickle: bool):
    import pickle
    import warnings

    torch = _torch()
    try:
        with warnings.catch_warnings():  # "Detected pickle protocol 4 ...": the error below says what matters
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "unsupported global" not in str(e).lower():  # no pickled classes: not a torch.save file at all
            raise InputError(f"--model {spec}: not a model file (the weights-only reader says: {_unpickler_cause(e)}); "
                             "expected TorchScript, torch.export .pt2, or a torch.save state_dict") from None
        if not trust_pickle:
            from evalkit.tracking.loading import pickle_refusal

            raise pickle_refusal(spec, "this is a pickled full model") from None
        obj = _guard(spec, lambda: torch.load(str(path), map_location="cpu", weights_only=False))
        if not isinstance(obj, torch.nn.Module):
            raise InputError(f"--model {spec}: the pickled object is a {type(obj).__name__}, not a torch.nn.Module")
        return obj, "pickle"
    except Exception as e:
        raise InputError(f"--model {spec}: not a model file ({_first_line(e)}); expected TorchScript, "
                         "torch.export .pt2, or a torch.save state_dict") from None
    if isinstance(obj, torch.nn.Module):  # e.g. a module whose classes are all allow-listed
        return obj, "pickle"
    state = obj
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                state = obj[key]
                break
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"--model {spec}: holds a {type(obj).__name__}, not a state_dict of tensors; expected "
                         "torch.save(model.state_dict()), TorchScript or a .pt2 archive")
    return _from_state_dict(state, spec, arch=arch, hidden=hidden, record=record, n_features=n_features,
                            input_shape=input_shape, n_labels=n_labels), "state_dict"


def _unpickler_cause(e: BaseException) -> str:
    """What torch's weights-only unpickler found (``Unsupported operand 149``), without torch's advice
    to re-run with ``weights_only=False`` (which would execute the file's code)."""
    text = str(e)
    detail = text.split("WeightsUnpickler error:", 1)[1] if "WeightsUnpickler error:" in text else text
    lines = [ln.strip() for ln in detail.splitlines() if ln.strip() and "weights_only" not in ln
             and not ln.strip().startswith("Check the documentation")]
    return lines[0] if lines else type(e).__name__


def _from_state_dict(state: dict, spec: str, *, arch, hidden, record, n_features, input_shape, n_labels):
    from evalkit.models import ARCHITECTURES, build_model

    saved = (record or {}).get("model") or {}
    arch = arch or saved.get("arch")
    if not arch:
        raise InputError(f"--model {spec}: a state_dict holds weights only; pass --arch "
                         f"({'|'.join(ARCHITECTURES)}) and --hidden as in training")
    hidden = list(hidden) if hidden else list(saved.get("hidden") or [256])
    weights = [v for k, v in state.items() if k.endswith("weight") and v.ndim == 2]
    out_width = int(weights[-1].shape[0]) if weights else n_labels
    if out_width != n_labels and n_labels is not None:
        raise InputError(f"--model {spec}: the model outputs {out_width} scores per sample but the dataset has "
                         f"{n_labels} labels; expected them to match")
    batch_norm = bool(saved.get("batch_norm", any(k.endswith("running_mean") for k in state)))
    # Dropout layers hold no weights but shift the layer indices: its value is irrelevant in eval mode,
    # so try the recorded layout first, then the other one.
    recorded = float(saved.get("dropout", 0.0))
    error = None
    for dropout in dict.fromkeys([recorded, 0.0 if recorded > 0 else 0.1]):
        model = build_model(arch, n_features, out_width, hidden=hidden, dropout=dropout,
                            activation=saved.get("activation", "relu"), batch_norm=batch_norm, input_shape=input_shape,
                            field="arch")
        try:
            model.load_state_dict(state, strict=True)
            return model.eval()
        except RuntimeError as e:
            error = error or e
    detail = " ".join(str(error).split())[:240]
    raise InputError(f"--model {spec}: the state_dict does not fit --arch {arch}"
                     f"{' --hidden ' + ','.join(map(str, hidden)) if arch == 'mlp' else ''} ({detail})")


# -- inference --------------------------------------------------------------------------------------


def predict(module, X: np.ndarray, *, device: str = "cpu", amp: str | None = None, batch_size: int = 4096,
            notes: list[str] | None = None) -> np.ndarray:
    """Model outputs ``(N, C)`` float32, batched under ``torch.inference_mode()`` on ``device``.

    ``amp`` (``bf16`` / ``fp16``) autocasts on CUDA; on CPU it is ignored (a note is appended), so CPU
    numbers stay exact float32.

    Raises:
        InputError: the model rejects the input or returns something other than ``(N, C)``.
    """
    import contextlib

    torch = _torch()
    notes = notes if notes is not None else []
    try:
        module.eval()
    except (NotImplementedError, RuntimeError, AttributeError):  # exported programs are already in eval mode
        pass
    try:
        module = module.to(device)
    except Exception as e:  # exported programs cannot always move
        if device != "cpu":
            notes.append(f"model stays on cpu ({_first_line(e)})")
            device = "cpu"
    ctx = contextlib.nullcontext()
    if amp:
        if amp not in ("bf16", "fp16"):
            raise InputError(f"--amp: expected bf16 or fp16, got {amp!r}")
        if device.startswith("cuda"):
            ctx = torch.autocast("cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)
        else:
            notes.append(f"--amp {amp} ignored on CPU (evaluation runs in float32)")
    outs, kept = [], []
    with torch.inference_mode(), ctx:
        for xb, ok in _input_batches(X, batch_size):
            kept.append(ok)
            if len(xb) == 0:  # every image of the batch skipped (--skip-bad-images)
                outs.append(None)
                continue
            xb = xb.to(device)
            try:
                out = module(xb)
            except Exception as e:
                raise InputError(f"--model: the model rejects input of shape {tuple(xb.shape)} "
                                 f"({type(e).__name__}: {_first_line(e)})") from None
            if isinstance(out, (tuple, list)):
                out = out[0]
            if isinstance(out, dict):
                out = out.get("logits", next(iter(out.values())))
            outs.append(out.detach().float().cpu())
    if any(ok is not None for ok in kept):  # streamed images: NaN rows for the skipped ones
        from evalkit.images.stream import place_rows

        return place_rows(outs, kept).numpy()
    Z = torch.cat(outs).numpy() if outs else np.zeros((0, 0), np.float32)
    if Z.ndim != 2:
        raise InputError(f"--model: expected outputs of shape (N, C), got {Z.shape}")
    return Z


def _input_batches(X, batch_size: int):
    """``(batch tensor, kept)`` of ``X`` in order: ``kept`` None for arrays; for image tables
    (:class:`~evalkit.images.lazy.LazyImages`, streamed from disk) the batch's readable-row mask."""
    from evalkit.images.lazy import is_lazy

    if is_lazy(X):
        from evalkit.images.stream import image_batches

        yield from image_batches(X, batch_size)
        return
    torch = _torch()
    for i in range(0, X.shape[0], batch_size):
        yield torch.from_numpy(np.ascontiguousarray(X[i : i + batch_size])), None


def double_sigmoid_warning(outputs: np.ndarray, scores: str) -> str | None:
    """A warning when outputs treated as logits all lie in [0, 1] (they look like probabilities)."""
    if scores == "logits" and outputs.size and float(outputs.min()) >= 0.0 and float(outputs.max()) <= 1.0:
        return ("the model's outputs all lie in [0, 1], so they look like probabilities, but they are evaluated as "
                "logits: a sigmoid would be applied twice (the classic sigmoid-then-BCEWithLogitsLoss bug). "
                "If the model ends with a sigmoid, pass --scores probabilities")
    return None


def check_probabilities(outputs: np.ndarray) -> None:
    """Check that outputs evaluated as probabilities are finite values in [0, 1].

    Raises:
        InputError (exit 2): some output lies outside [0, 1] or is not finite.
    """
    if outputs.size and (float(outputs.min()) < 0.0 or float(outputs.max()) > 1.0 or not np.isfinite(outputs).all()):
        raise InputError(f"--scores probabilities: the model's outputs range over [{float(outputs.min()):.4g}, "
                         f"{float(outputs.max()):.4g}], expected values in [0, 1]; drop --scores to treat them as logits")
