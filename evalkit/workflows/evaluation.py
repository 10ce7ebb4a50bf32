"""Evaluation entry points: scores you have (:func:`evaluate_scores`), a predictions file
(:func:`evaluate_predictions`) and a trained model (:func:`evaluate_model`). Each returns an immutable
:class:`~evalkit.report.Report` from the one metric engine and prints nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from evalkit.config import DEFAULT_BETA, EvaluateJobConfig, RunConfig
from evalkit.errors import InputError
from evalkit.report import Report, build_report, metrics_block
from evalkit.workflows.events import EventCallback, make_emitter
from evalkit.workflows.predictions import STREAMING_CI_NOTE, evaluate_predictions, unmapped_note  # noqa: F401 (re-exported)


def evaluate_scores(
    targets,
    *,
    logits=None,
    probabilities=None,
    threshold: float | Any = 0.5,
    beta: float = DEFAULT_BETA,
    label_names=None,
    zero_division: float = 0.0,
    threshold_free: str = "exact",
    dataset_name: str = "scores",
    strategy: str | None = None,
    sample_weight=None,
    ci: float | None = None,
    ci_resamples: int = 1000,
    ci_method: str = "percentile",
    seed: int = 0,
    ks=(1, 3, 5),
) -> Report:
    """Evaluate scores you already have with evalkit's metric engine.

    Args:
        targets: ``(N, C)`` array-like (numpy, torch, pandas, lists; one label ``(N, 1)``) in {0, 1}.
        logits: ``(N, C)`` finite floating raw model outputs (sigmoid applied explicitly), or probabilities:
            ``(N, C)`` floating, in [0, 1]. Exactly one, by keyword (``evaluate_scores(y, p)`` is a
            TypeError: declared, never guessed). Torch tensors may require grad (they are detached).
        threshold: a cut in (0, 1) for every label, or ``(C,)`` cuts; the rule is probability >= threshold.
        beta: the F-beta reported besides F1 (default 2: recall weighs 4x precision).
        label_names: ``C`` names (default ``label_0..``).
        zero_division: value of 0/0 ratios: 0 (default, as scikit-learn), 1, or ``float("nan")`` (left
            out of the averages, scikit-learn's ``zero_division=np.nan``).
        threshold_free: ``exact`` (matches scikit-learn), ``streaming`` or ``none``.
        dataset_name: the report's ``dataset.name``. strategy: the report's threshold label.
        sample_weight: optional ``(N,)`` non-negative weights (scikit-learn's ``sample_weight``).
        ci: confidence level of bootstrap intervals over the rows, e.g. 0.95 (default ``None`` /
            ``0``: none here; ``evalkit run`` / ``evaluate`` and their configs default to 0.95;
            benchmarks/bench_ci_cost.py measures the cost): ``summary.<average>.<metric>_ci`` / ``summary.<scalar>_ci`` = ``[low, high]``,
            ``summary.ci_unstable_labels`` and a top-level ``confidence_interval`` block
            (:mod:`evalkit.stats.bootstrap`). ci_resamples: R (default 1000); ci_method: ``percentile``
            (mAP: studentized) or ``bca``; seed: the resampling seed (same seed, same intervals).
        ks: cut-offs of precision@k / nDCG@k.
    Returns:
        :class:`~evalkit.report.Report` (the ``--output`` JSON structure).
    Raises:
        InputError: both or neither of logits / probabilities, not ``(N, C)`` arrays of one shape,
            values out of range, a threshold outside (0, 1), bad weights or interval settings (or any without ``ci``).
    """
    from evalkit.data.core import content_digest
    from evalkit.thresholds import Thresholds, ThresholdStrategy

    Y, scores, kind, names, thr = _scores_input(targets, logits, probabilities, label_names, threshold)
    scalar, C = np.ndim(threshold) == 0, Y.shape[1]
    metrics, extra = _scores_metrics(Y, scores, kind, thr, names, beta=beta, zero_division=zero_division,
                                     threshold_free=threshold_free, sample_weight=sample_weight, ks=ks,
                                     ci=dict(level=ci, resamples=ci_resamples, method=ci_method, seed=seed))
    dataset = {"name": dataset_name, "n_samples": int(Y.shape[0]), "n_labels": int(C),
               "digest": content_digest(np.ascontiguousarray(Y, dtype=np.uint8), names)}
    label = strategy or (f"fixed:{float(thr[0]):g}" if scalar else "per-class (given)")
    given = Thresholds(ThresholdStrategy("given"), tuple(float(t) for t in thr), source=label)
    return build_report(metrics, dataset=dataset, scores=kind, thresholds=given, beta=beta, **extra)


def _scores_input(targets, logits, probabilities, label_names, threshold):
    """``(Y, scores, kind, names, thresholds (C,))`` of :func:`evaluate_scores`'s arguments (InputError
    when both or neither of logits / probabilities are given, or targets are not ``(N, C)``)."""
    if (logits is None) == (probabilities is None):
        raise InputError("scores: pass exactly one of logits or probabilities")
    kind = "logits" if logits is not None else "probabilities"
    scores = _array(logits if logits is not None else probabilities, kind)
    Y = _array(targets, "targets")
    if Y.ndim != 2:
        hint = " (one label: pass targets.reshape(-1, 1) and scores alike)" if Y.ndim == 1 else ""
        raise InputError(f"targets: expected shape (N, C), got {Y.shape}{hint}")
    C = Y.shape[1]
    if C == 0:
        raise InputError(f"targets: expected at least one label column (C >= 1), got shape {Y.shape}")
    from evalkit.metrics.functional import check_label_names

    return Y, scores, kind, check_label_names(label_names, C), _threshold(threshold, C)


def _array(x, name: str) -> np.ndarray:
    """An array-like (numpy, torch tensor - also one that requires grad, or bfloat16 -, pandas, nested
    lists) as a numpy array; InputError naming ``name`` for ragged or non-array input."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch
        x = x.detach().cpu()
        if not x.dtype.is_complex and x.is_floating_point() and x.element_size() < 4:
            x = x.float()  # float16 / bfloat16 (numpy has no bfloat16); the engine upcasts them alike
        return x.numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError):
        raise InputError(f"{name}: expected an (N, C) array of numbers, got {type(x).__name__} that is not "
                         "one (rows of different lengths?)") from None


def _threshold(threshold, C: int) -> np.ndarray:
    """The ``(C,)`` float64 cuts of ``threshold`` (a number or C numbers), each in (0, 1)."""
    try:
        thr = _array(threshold, "threshold")
        thr = thr.astype(np.float64) if thr.dtype.kind in "iuf" else None
    except (InputError, TypeError, ValueError):
        thr = None
    if thr is None or thr.ndim > 1 or (thr.ndim == 1 and thr.size != C):
        got = f"shape {thr.shape}" if thr is not None else repr(threshold)[:60]
        raise InputError(f"threshold: expected a number in (0, 1) or {C} of them (one per label), got {got}")
    outside = ~((thr > 0) & (thr < 1))  # NaN is outside too
    if outside.any():
        bad = np.atleast_1d(thr)[np.atleast_1d(outside)][0]
        raise InputError(f"threshold: expected cuts in (0, 1) (the rule is probability >= threshold), got {bad:g}")
    return np.broadcast_to(thr, (C,)).copy() if thr.ndim == 0 else thr


def _ci_off(ci: dict) -> bool:
    """Whether ``ci`` (the :class:`~evalkit.stats.bootstrap.BootstrapSpec` fields) asks for no intervals.

    Raises:
        InputError: ``resamples`` / ``method`` set with the level off (they would be ignored).
    """
    if ci["level"]:
        return False
    for name, key in (("ci_resamples", "resamples"), ("ci_method", "method")):
        if ci[key] != EvaluateJobConfig.model_fields[name].default:
            raise InputError(f"{name}: applies to confidence intervals (ci=0.95), not to ci={ci['level']!r}; drop it")
    return True


def _scores_metrics(Y, scores, kind: str, thr, names, *, beta, zero_division, threshold_free, sample_weight, ks,
                    ci: dict) -> tuple[dict, dict]:
    """``(metrics block, extra report keys)`` of :func:`evaluate_scores`: the engine's metrics and,
    unless ``ci`` (:class:`~evalkit.stats.bootstrap.BootstrapSpec` fields) is off, their bootstrap intervals."""
    from evalkit.metrics import compute_metrics
    from evalkit.stats.bootstrap import BootstrapSpec, report_block, report_intervals

    off = _ci_off(ci)
    metrics = metrics_block(compute_metrics(Y, scores, scores_kind=kind, threshold=thr, beta=beta,
                                            zero_division=zero_division, label_names=names,
                                            threshold_free=threshold_free, sample_weight=sample_weight, ks=ks))
    if off:
        return metrics, {}
    spec = BootstrapSpec(**ci)
    metrics["summary"] = report_intervals(Y, scores, scores_kind=kind, thresholds=thr, beta=beta,
                                          zero_division=zero_division, sample_weight=sample_weight,
                                          label_names=names, summary=metrics["summary"], spec=spec,
                                          ranking=threshold_free != "none")
    return metrics, {"confidence_interval": report_block(spec, np.shape(Y), threshold_free != "none")}


def evaluate_model(model: str, dataset: str | None = None, test_dataset: str | None = None, *,
                   on_event: EventCallback | None = None, **options: Any) -> Report:
    """Evaluate a trained model on a dataset's test split, preprocessed exactly as in training.

    Args:
        model: MLflow URI (``runs:/<id>/<name>``, ``models:/<name>/<version>``, ``models:/<name>@<alias>``),
            a TorchScript / ``.pt2`` / ``state_dict`` file (see :mod:`evalkit.model_io`).
        dataset: built-in name or data file; evaluated on its test split (yeast: the standard 917 rows;
            a single file: the seeded stratified split of training, with the run's ``test_size`` /
            ``seed``). Default: the dataset recorded with the model.
        test_dataset: a test file, evaluated whole (without ``dataset`` too).
        options: any :class:`~evalkit.config.EvaluateJobConfig` field of the model path
            (``reader_options``, ``arch``, ``hidden``, ``trust_pickle``, ``preprocess``, ``threshold``,
            ``beta``, ``scores``, ``device``, ``amp``, ``batch_size``, ``label_map``, ``map_reduce``,
            ``threshold_free``, ``tracking_uri``), plus ``test_size`` / ``seed`` (override the run's).
        on_event: where notes and warnings go (nothing is printed without it; the CLI's rendering:
            ``on_event=evalkit.cli.ui.ConsoleRenderer(Console())``).
    Returns:
        :class:`Report`, with ``model`` (spec, kind, run, preprocessing source), ``warnings`` and ``notes``.
    Raises:
        InputError: bad options, data, model file or label map; output width != number of labels;
            a pickled model without ``trust_pickle``.
        InfraError: tracking store unreachable or the logged model cannot be loaded.
    """
    split = {k: options.pop(k) for k in ("test_size", "seed") if k in options}
    if options.get("reader_options") is None:
        options.pop("reader_options", None)
    options.setdefault("batch_size", 4096)
    try:
        cfg = EvaluateJobConfig(model=model, dataset=dataset, test_dataset=test_dataset, **options)
    except Exception as e:  # pydantic.ValidationError
        from pydantic import ValidationError

        if isinstance(e, ValidationError):
            err = e.errors()[0]
            raise InputError(f"--{'-'.join(str(x) for x in err['loc']).replace('_', '-')}: {err['msg']}") from None
        raise
    return evaluate_model_config(cfg, reader_options_given="reader_options" in options, emit=make_emitter(on_event),
                                 **split)


def evaluate_model_config(cfg: EvaluateJobConfig, *, reader_options_given: bool = True, emit=None,
                          test_size: float | None = None, seed: int | None = None, scores_sink=None) -> Report:
    """:func:`evaluate_model` for a config with ``model``; ``scores_sink.add(targets, probabilities, labels)``."""
    from evalkit.model_io import apply_preprocess, load_model
    from evalkit.models import resolve_device
    from evalkit.stats.bootstrap import spec_or_none, with_intervals
    from evalkit.tracking import redact_uri

    emit = emit or make_emitter()
    device = resolve_device(cfg.device)
    labelmap = _read_label_map(cfg.label_map) if cfg.label_map else None
    # the preprocessing record first (it may name the dataset), then the data, then the model
    loaded, record, preprocess = _record(cfg)
    test, name = _test_data(cfg, record, reader_options_given, test_size, seed)
    test = _as_model_takes(test, cfg, record)  # an image table streamed at the model's size; CSR densified
    names = list(test.label_names)
    if record and record.get("label_names") and list(record["label_names"]) != names:
        raise InputError(f"{test.source or test.name}: labels {names[:4]}... differ from the labels the model was "
                         f"trained on {list(record['label_names'])[:4]}...; expected the same labels in the same order")
    X = apply_preprocess(test.X, record, where=f"--model {cfg.model}")
    if loaded is None:
        loaded = load_model(cfg.model, tracking_uri=cfg.tracking_uri, arch=cfg.arch, hidden=cfg.hidden,
                            n_features=test.n_features, input_shape=test.X.shape[1:], n_labels=test.n_labels,
                            trust_pickle=cfg.trust_pickle, preprocess=preprocess if record is not None else None)
        if record is None:
            record = loaded.preprocess
            X = apply_preprocess(test.X, record, where=f"--model {cfg.model}")
    notes = list(loaded.notes) + list(test.meta.get("notes", []))
    if record is None:
        notes.append("no preprocessing record (preprocess.json) found: features are used as read, not standardised")
    probabilities, warnings, Y = _score(cfg, loaded, X, test, device, notes)
    extra = {}
    if labelmap is not None:
        from evalkit.labelmap import apply_label_map

        Y, probabilities, names, unmapped = apply_label_map(labelmap, names, Y, probabilities, cfg.map_reduce)
        if unmapped:
            notes.append(unmapped_note(unmapped))
        extra["label_map"] = {"file": str(cfg.label_map), "reduce": cfg.map_reduce, "targets": names,
                              "unmapped": unmapped}
    thresholds = _thresholds(cfg, record if labelmap is None else None, loaded, names)
    metrics = thresholds.evaluate(Y, probabilities, beta=cfg.beta, label_names=names, threshold_free=cfg.threshold_free)
    if scores_sink is not None:
        scores_sink.add(Y, probabilities, names)
    extra |= with_intervals(metrics, Y, probabilities, thresholds, beta=cfg.beta, label_names=names,
                            spec=spec_or_none(cfg.ci, cfg.ci_resamples, cfg.ci_method, 0), threshold_free=cfg.threshold_free)
    extra["model"] = {"spec": redact_uri(cfg.model), "kind": loaded.kind, "run_id": loaded.source_run,
                      "preprocess": loaded.preprocess_source or preprocess, "device": device}
    if warnings:
        extra["warnings"] = warnings
    if notes:
        extra["notes"] = notes
    for kind, text in [("warning", w) for w in warnings] + [("note", n) for n in notes]:
        emit(kind, text=text)
    ds_info = {"name": name, "n_samples": int(Y.shape[0]), "n_labels": int(Y.shape[1]), "digest": test.digest}
    return build_report(metrics, dataset=ds_info, scores=cfg.scores, thresholds=thresholds, beta=cfg.beta, **extra)


def _as_model_takes(test, cfg: EvaluateJobConfig, record: dict | None):
    """``test`` as the model takes it: an image table's (:mod:`evalkit.images.lazy`) streamed as the
    model was trained (the record's image side and channels, ``--workers``, ``--skip-bad-images``);
    sparse (CSR) features densified; other data as it is."""
    from evalkit.images.lazy import record_images

    test = record_images([test], record, workers=cfg.workers, skip_bad=cfg.skip_bad_images)[0]
    if not isinstance(test.X, np.ndarray) and test.X.ndim == 2:  # sparse (CSR): the evaluated split is densified
        test = test.with_features(test.X.toarray())
    return test


def _read_label_map(path: str):
    from evalkit.labelmap import read_label_map

    return read_label_map(path)


def _record(cfg: EvaluateJobConfig):
    """``(loaded model or None, preprocessing record or None, its path)``: from ``--preprocess``, the
    model's MLflow run, or a sidecar file next to a model file."""
    from evalkit.inputs import find_sidecar
    from evalkit.model_io import is_mlflow_uri, load_model, read_preprocess

    if cfg.preprocess:
        return None, read_preprocess(cfg.preprocess), cfg.preprocess
    if is_mlflow_uri(cfg.model):
        loaded = load_model(cfg.model, tracking_uri=cfg.tracking_uri, trust_pickle=cfg.trust_pickle)
        return loaded, loaded.preprocess, None
    sidecar = find_sidecar(Path(cfg.model))  # (the CLI refuses an -o that names it: evalkit.inputs.found_inputs)
    return (None, read_preprocess(sidecar), str(sidecar)) if sidecar is not None else (None, None, None)


def _test_data(cfg: EvaluateJobConfig, record: dict | None, reader_options_given: bool, test_size, seed):
    """The evaluated rows and the dataset name: ``--test-dataset`` whole, else ``--dataset`` (or the
    recorded one)'s test split, split as in training."""
    from evalkit.data import make_splits
    from evalkit.data.load import load_dataset, read_file

    recorded = (record or {}).get("dataset") or {}
    options = dict(cfg.reader_options) if reader_options_given else dict(recorded.get("reader_options") or {})
    same_data = cfg.dataset is None and cfg.test_dataset is None  # the recorded table itself: its image root too
    if reader_options_given and (record or {}).get("image"):  # an image table: the run's label options kept
        from evalkit.images.lazy import recorded_options

        kept = recorded.get("reader_options") or {}
        options = (kept if same_data else recorded_options(kept)) | options
    dataset = cfg.dataset
    if dataset is None and cfg.test_dataset is None:
        dataset = recorded.get("spec")
        if dataset is None:
            raise InputError("evaluate --model: give --dataset NAME|FILE or --test-dataset FILE "
                             "(no dataset is recorded with this model)")
    from evalkit.images.lazy import check_output_not_image

    if cfg.test_dataset is not None:
        test = read_file(cfg.test_dataset, **options)
        check_output_not_image(cfg.output, test)
        return _as_trained(test, recorded), test.name
    train, test = load_dataset(dataset, None, **options)
    check_output_not_image(cfg.output, train, test)  # every image of the table is an input, not only the test rows
    train = _as_trained(train, recorded)
    if test is None:
        defaults = RunConfig.model_fields
        ts = test_size if test_size is not None else recorded.get("test_size", defaults["test_size"].default)
        sd = seed if seed is not None else recorded.get("seed", defaults["seed"].default)
        vs = recorded.get("val_size", defaults["val_size"].default)
        test = make_splits(train, None, val_size=vs, test_size=ts, seed=sd).test
    return test, train.name


def _as_trained(data, recorded: dict):
    """``data`` with its one-hot text columns laid out as in training (the record's ``one_hot``,
    :func:`evalkit.data.tabular.align_one_hot`); as it is without a record or text columns."""
    if not recorded or ("one_hot" not in recorded and "one_hot" not in data.meta):
        return data
    from evalkit.data.tabular import align_one_hot

    return align_one_hot(data, recorded.get("one_hot") or {}, "the model's training data")


def _score(cfg: EvaluateJobConfig, loaded, X, test, device: str, notes: list[str]):
    """Model outputs -> ``(probabilities (N, C) float32, warnings, targets (N, C))``, as declared by
    ``cfg.scores`` (``--skip-bad-images``: the rows of skipped images left out)."""
    from evalkit.model_io import check_probabilities, double_sigmoid_warning, predict
    from evalkit.scores import sigmoid

    rows = max(1, min(cfg.batch_size, 2**26 // max(1, test.n_features)))  # at most ~256 MB of float32 input per batch
    outputs = predict(loaded.module, X, device=device, amp=cfg.amp, batch_size=rows, notes=notes)
    Y = test.Y
    if cfg.skip_bad_images:  # images left out: NaN rows
        from evalkit.images.lazy import readable, skipped_rows

        outputs, Y = readable(outputs, Y)
        notes.append(f"--skip-bad-images: {skipped_rows(test)} image(s) skipped (missing or unreadable)")
    if outputs.shape[1] != test.n_labels:
        raise InputError(f"--model {cfg.model}: the model outputs {outputs.shape[1]} scores per sample but the dataset "
                         f"{test.name} has {test.n_labels} labels; expected them to match")
    if not np.isfinite(outputs).all():
        raise InputError(f"--model {cfg.model}: the model's outputs contain NaN or infinite values; expected finite "
                         f"{cfg.scores}")
    if cfg.scores == "logits":
        w = double_sigmoid_warning(outputs, cfg.scores)
        return sigmoid(outputs), [w] if w else [], Y
    check_probabilities(outputs)
    return outputs.astype(np.float32), [], Y


def _thresholds(cfg: EvaluateJobConfig, record: dict | None, loaded, names: list[str]):
    """``--threshold`` when given, else the thresholds the model's run chose, else ``fixed:0.5``."""
    from evalkit.thresholds import Thresholds, read_thresholds

    if cfg.threshold is not None:
        return read_thresholds(cfg.threshold, names)
    if record and record.get("threshold"):
        # where the record came from: the model's run, --preprocess FILE or a model file's sidecar
        own = loaded.source_run and (loaded.preprocess_source or "").startswith("run ")
        origin = f"run {loaded.source_run}" if own else loaded.preprocess_source or "preprocess.json"
        return Thresholds.from_dict(record["threshold"], len(names), where=cfg.preprocess or cfg.model, source=origin)
    return Thresholds.fixed(0.5, len(names))
