"""Python API: the same flow the CLI runs, callable from a notebook.

``run_experiment(RunConfig(...))`` trains and evaluates; ``evaluate_scores(targets, logits=...)``
evaluates scores you already have. Both return a :class:`evalkit.report.Report`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evalkit.config import RunConfig
from evalkit.errors import InputError
from evalkit.report import Report, build_report, fbeta_key, metrics_block


#: tracked-metric prefix of the reference metrics at a fixed 0.5 cut (``test_at_0.5/micro_f2``)
REFERENCE_SPLIT = "test_at_0.5"


@dataclass
class RunResult:
    report: Report
    run_id: str | None
    tracking_uri: str | None
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def evaluate_scores(
    targets,
    logits=None,
    probabilities=None,
    *,
    threshold: float | Any = 0.5,
    beta: float = 2.0,
    label_names=None,
    zero_division: float = 0.0,
    threshold_free: str = "exact",
    dataset_name: str = "scores",
    strategy: str | None = None,
) -> Report:
    """Evaluate scores you already have with evalkit's metric engine.

    Args:
        targets: ``(N, C)`` array-like in {0, 1}.
        logits: ``(N, C)`` raw model outputs (sigmoid applied explicitly), or
        probabilities: ``(N, C)`` in [0, 1]. Exactly one of the two.
        threshold: a cut in (0, 1) for every label, or ``(C,)`` per-label cuts; the rule is
            probability >= threshold.
        beta: the F-beta reported besides F1 (default 2: recall weighs 4x precision).
        label_names: ``C`` names (default ``label_0..``).
        zero_division: value of 0/0 ratios, 0 (default, as scikit-learn) or 1.
        threshold_free: ``exact`` (matches scikit-learn), ``streaming`` or ``none``.
    Returns:
        :class:`~evalkit.report.Report` (the ``--output`` JSON structure).
    Raises:
        InputError: both or neither of logits / probabilities, shape mismatch, values out of range.
    """
    from evalkit.data.core import content_digest
    from evalkit.metrics import compute_metrics

    if (logits is None) == (probabilities is None):
        raise InputError("scores: pass exactly one of logits or probabilities")
    kind = "logits" if logits is not None else "probabilities"
    scores = np.asarray(logits if logits is not None else probabilities)
    Y = np.asarray(targets)
    if Y.ndim != 2:
        raise InputError(f"targets: expected shape (N, C), got {Y.shape}")
    C = Y.shape[1]
    names = [str(n) for n in label_names] if label_names is not None else [f"label_{i}" for i in range(C)]
    thr = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (C,)) if np.ndim(threshold) == 0 else np.asarray(threshold, dtype=np.float64)
    metrics = metrics_block(compute_metrics(Y, scores, scores_kind=kind, threshold=thr, beta=beta,
                                            zero_division=zero_division, label_names=names,
                                            threshold_free=threshold_free))
    dataset = {"name": dataset_name, "n_samples": int(Y.shape[0]), "n_labels": int(C),
               "digest": content_digest(np.ascontiguousarray(Y, dtype=np.uint8), names)}
    label = strategy or (f"fixed:{float(thr[0]):g}" if np.ndim(threshold) == 0 else "per-class (given)")
    return build_report(metrics, dataset=dataset, scores=kind, strategy=label, thresholds=thr, beta=beta)


def _summary_table(splits, console) -> None:
    from rich.table import Table

    t = Table(title=f"Dataset {splits.name} (digest {splits.digest})", title_justify="left")
    for col in ("split", "samples", "features", "labels", "cardinality", "density", "labels with no positives"):
        t.add_column(col, justify="left" if col in ("split", "labels with no positives") else "right")
    for name in ("train", "val", "test"):
        ds = getattr(splits, name)
        empty = [n for n, s in zip(ds.label_names, ds.Y.sum(axis=0)) if s == 0]
        t.add_row(name, str(ds.n_samples), str(ds.n_features), str(ds.n_labels), f"{ds.label_cardinality:.3f}",
                  f"{ds.label_density:.3f}", ", ".join(empty) or "—")
    console.print(t)


def prepare_data(config: RunConfig, *, with_stats: bool = False):
    """config -> (train / val / test splits, standardised with train statistics).

    ``with_stats=True`` returns ``(splits, (mean, std) or None)``: the train statistics that
    ``preprocess.json`` records so that ``evaluate --model`` standardises exactly as in training.
    """
    from evalkit.data import load_dataset, make_splits, standardize
    from evalkit.model_io import fit_standardization

    train, test = load_dataset(config.dataset, config.test_dataset, **config.reader_options)
    splits = make_splits(train, test, val_size=config.val_size, test_size=config.test_size, seed=config.seed)
    stats = fit_standardization(splits.train.X) if config.standardize else None
    out = standardize(splits) if config.standardize else splits
    return (out, stats) if with_stats else out


def run_experiment(config: RunConfig, console=None, *, track: bool = True, nested: bool = False,
                   tags: dict[str, str] | None = None) -> RunResult:
    """Train on ``config.dataset``, tune thresholds on validation, evaluate on test, log to MLflow.

    Stages: dataset -> split -> model -> loss -> train -> scores -> thresholds -> metrics -> report
    -> tracking. Everything that can be rejected (options, data) is checked before an MLflow run
    starts, so bad input never leaves a run behind.

    Raises:
        InputError: bad options or data. InfraError: tracking store unreachable.

    ``nested=True`` starts the MLflow run as a child of the active run (a spec grid's parent);
    ``tags`` are added to the run.
    """
    import torch
    from rich.console import Console

    from evalkit.losses import build_loss, loss_options
    from evalkit.metrics import compute_metrics
    from evalkit.models import build_model, resolve_device
    from evalkit.thresholds import check_strategy, evaluate, fit_thresholds, parse_objective, parse_strategy
    from evalkit.tracking import RunLogger, resolve_tracking_uri
    from evalkit.train import predict_logits, seed_everything, train_model

    console = console or Console()
    started = time.perf_counter()
    strategy = parse_strategy(config.threshold)
    parse_objective(config.objective)
    loss_options(config.loss, config.loss_options)  # validates the loss name and options
    device = resolve_device(config.device)
    if device == "cpu":
        torch.set_num_threads(config.threads)
    tracking_uri = resolve_tracking_uri(config.tracking_uri) if track else None

    if config.alias and not config.register_model:
        raise InputError(f"--alias {config.alias}: needs --register NAME (the registered model the alias points into)")
    if config.register_model and not config.log_model:
        raise InputError(f"--register {config.register_model}: needs the model to be logged; drop --no-log-model")
    splits, std_stats = prepare_data(config, with_stats=True)
    _summary_table(splits, console)
    _warn_empty_labels(splits, console)
    check_strategy(strategy, splits.train.n_labels)
    seed_everything(config.seed)
    torch.use_deterministic_algorithms(device == "cpu", warn_only=True)
    model = build_model(config.model, splits.train.n_features, splits.train.n_labels, hidden=config.hidden,
                        dropout=config.dropout, activation=config.activation, batch_norm=config.batch_norm,
                        input_shape=splits.train.X.shape[1:])
    loss_fn = build_loss(config.loss, splits.train.Y, config.loss_options)

    logger = RunLogger(tracking_uri, config.experiment, run_name=config.run_name,
                       tags={"evalkit.command": "run", "evalkit.loss": config.loss, **(tags or {})},
                       nested=nested) if track else None
    with (logger or _Null()) as run:
        if run:
            params = config.params() | {"device": device, "dataset.digest": splits.digest,
                                        "dataset.name": splits.name, "threshold": strategy.label}
            run.log_params(params)
            _log_dataset(run, splits, config)
        if config.folds > 1:  # cross-fitting: validation scores are the out-of-fold scores of train + val
            history, val_prob, val_Y, train_card = _cross_fit(splits, config, device, console, run)
        else:
            history = _train_with_progress(model, loss_fn, splits, config, device, console, run)
            val_prob = torch.sigmoid(torch.from_numpy(predict_logits(history.model, splits.val.X, device))).numpy()
            val_Y, train_card = splits.val.Y, splits.train.label_cardinality
        test_logits = predict_logits(history.model, splits.test.X, device)
        # thresholds see validation scores only (never the test split)
        thresholds = fit_thresholds(strategy, val_prob, val_Y, beta=config.beta, objective=config.objective,
                                    train_cardinality=train_card)
        names = splits.label_names
        test_prob = torch.sigmoid(torch.from_numpy(test_logits)).numpy()
        metrics = evaluate(strategy, splits.test.Y, test_prob, thresholds, beta=config.beta, label_names=names)
        dataset = {"name": splits.name, "n_samples": splits.test.n_samples, "n_labels": splits.test.n_labels,
                   "digest": splits.digest}
        extra: dict[str, Any] = {
            "training": {"best_epoch": history.best_epoch, "epochs_run": len(history.history),
                         "stopped_early": history.stopped_early, "loss": config.loss, "device": device,
                         "folds": config.folds, **getattr(history, "fold_info", {})},
        }
        # always: the metrics at the textbook 0.5 cut, for reference (threshold-free ones are the same)
        ref = metrics_block(compute_metrics(splits.test.Y, test_prob, scores_kind="probabilities", threshold=0.5,
                                            beta=config.beta, label_names=names, threshold_free="none"))
        extra["reference_at_0.5"] = {"threshold": 0.5,
                                     "summary": {k: v for k, v in ref["summary"].items() if v is not None},
                                     "per_class": [{"label": r["label"], "f1": r["f1"], fbeta_key(config.beta):
                                                    r[fbeta_key(config.beta)]} for r in ref["per_class"]]}
        report = build_report(metrics, dataset=dataset, scores="logits", strategy=strategy.label,
                              thresholds=np.nan_to_num(thresholds), beta=config.beta, **extra)
        _describe_thresholds(report, strategy, config)
        report["seconds"] = round(time.perf_counter() - started, 2)
        if config.output:
            report.write_json(config.output)
        if run:
            preprocess = _preprocess_record(config, splits, std_stats, report)
            _log_results(run, report, history.model, splits.test.X[:5], preprocess=preprocess,
                         register=config.register_model, alias=config.alias, log_model=config.log_model)
            _log_threshold_artifacts(run, report, strategy, config, (val_prob, val_Y), (test_prob, splits.test.Y))
            report["run_id"] = run.run_id
    render_report(report, console)
    if run:
        from evalkit.tracking import redact_uri

        console.print(f"MLflow run [bold]{run.run_id}[/] in experiment '{config.experiment}' "
                      f"({redact_uri(tracking_uri)})")
        if report.get("registered_model"):
            console.print(f"Registered model [bold]{report['registered_model']}[/]")
    if config.output:
        console.print(f"Report written to {config.output}")
    return RunResult(report, run.run_id if run else None, tracking_uri, history.history,
                     time.perf_counter() - started)


def render_report(report: Report, console) -> None:
    from evalkit.report import render

    render(report, console)


def _log_results(run, report: Report, model, input_example: np.ndarray, *, preprocess: dict | None = None,
                 register: str | None = None, alias: str | None = None, log_model: bool = True) -> None:
    import tempfile
    from pathlib import Path

    from evalkit.report import write_csv_atomic

    metrics = report.metrics("test")
    ref = report.get("reference_at_0.5")
    if ref:
        from evalkit.report import metric_keys

        # "test@0.5/..." would be the natural name, but MLflow rejects "@" in metric names
        metrics |= metric_keys({"summary": ref["summary"], "per_class": []}, REFERENCE_SPLIT, per_class=False)
    run.log_metrics(metrics)
    run.log_dict(dict(report), "report.json")
    with tempfile.TemporaryDirectory() as tmp:
        run.log_artifact(write_csv_atomic(report.per_class_frame(), Path(tmp) / "per_class.csv"))
    if preprocess is not None:
        from evalkit.model_io import PREPROCESS_FILE

        run.log_dict(preprocess, PREPROCESS_FILE)
    if log_model:
        run.log_model(model, input_example, registered_model_name=register)
    if log_model and register:
        version = getattr(run, "registered_version", None)
        report["registered_model"] = f"models:/{register}/{version}"
        if alias:
            report["registered_model"] = run.set_model_alias(register, alias) + f" (version {version})"


def _train_with_progress(model, loss_fn, splits, config: RunConfig, device: str, console, run):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from evalkit.train import train_model

    with Progress(TextColumn("[bold]train[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                  TimeElapsedColumn(), console=console, transient=False) as progress:
        task = progress.add_task("", total=config.epochs)

        def on_epoch(row: dict) -> None:
            desc = f"epoch {row['epoch']}: train loss {row['train_loss']:.4f}  val loss {row['val_loss']:.4f}"
            if "val_metric" in row:
                desc += f"  {config.monitor} {row['val_metric']:.4f}"
            progress.update(task, advance=1, description=desc)
            if run:
                m = {"train/loss": row["train_loss"], "val/loss": row["val_loss"]}
                if "val_metric" in row:
                    m[f"val/{config.monitor.removeprefix('val_')}"] = row["val_metric"]
                run.log_metrics(m, step=row["epoch"])

        result = train_model(
            model, loss_fn, splits.train.X, splits.train.Y, splits.val.X, splits.val.Y,
            optimizer=config.optimizer, lr=config.lr, weight_decay=config.weight_decay, epochs=config.epochs,
            batch_size=config.batch_size, patience=config.patience, monitor=config.monitor, beta=config.beta,
            seed=config.seed, input_noise=config.input_noise, device=device, on_epoch=on_epoch,
        )
        progress.update(task, total=len(result.history))
    console.print(f"best epoch {result.best_epoch} of {len(result.history)}"
                  + (" (early stop)" if result.stopped_early else ""))
    return result


class _Null:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return False


def evaluate_predictions(
    path: str,
    *,
    threshold: str = "0.5",
    beta: float = 2.0,
    threshold_free: str = "exact",
    batch_size: int = 65536,
    zero_division: float = 0.0,
) -> Report:
    """Evaluate a predictions file (``.npz``, ``.parquet`` or ``.csv``; see :mod:`evalkit.metrics.io`)
    in batches, so a file larger than memory still evaluates (use ``threshold_free="streaming"``
    to keep threshold-free metrics in O(C x bins) memory).

    Raises:
        InputError: missing file, malformed content, thresholds that do not fit the labels.
    """
    from evalkit.metrics import MultilabelEngine
    from evalkit.metrics.io import iter_prediction_batches
    from evalkit.thresholds import parse_given

    engine = None
    import hashlib

    h = hashlib.sha256()
    n = 0
    for targets, scores, kind, labels in iter_prediction_batches(path, batch_size):
        if engine is None:
            label_names = [str(x) for x in labels]
            strategy, thr = parse_given(threshold, label_names)
            engine = MultilabelEngine(len(label_names), scores=kind, threshold=thr, beta=beta,
                                      zero_division=zero_division, threshold_free=threshold_free,
                                      label_names=label_names)
            scores_kind = kind
        t = np.ascontiguousarray(targets)
        h.update(memoryview(np.ascontiguousarray(t, dtype=np.uint8)).cast("B"))
        import torch

        engine.update(torch.as_tensor(np.asarray(scores)), torch.as_tensor(t))
        n += t.shape[0]
    if engine is None or n == 0:
        raise InputError(f"{path}: no samples")
    metrics = metrics_block(engine.compute())
    from pathlib import Path

    dataset = {"name": Path(path).stem, "n_samples": n, "n_labels": len(label_names), "digest": h.hexdigest()[:16]}
    return build_report(metrics, dataset=dataset, scores=scores_kind, strategy=strategy, thresholds=thr, beta=beta)


# -- datasets: summary, inputs, preprocessing record -------------------------------------------------


def _warn_empty_labels(splits, console) -> None:
    for name in ("train", "val", "test"):
        ds = getattr(splits, name)
        empty = [n for n, c in zip(ds.label_names, ds.Y.sum(axis=0)) if c == 0]
        if empty:
            shown = ", ".join(empty[:8]) + (f" (+{len(empty) - 8} more)" if len(empty) > 8 else "")
            console.print(f"[yellow]warning:[/] {len(empty)} label(s) have no positives in the {name} split: {shown} "
                          "(their average precision / AUROC are undefined there)")


def _log_dataset(run, splits, config: RunConfig) -> None:
    """Dataset inputs (``mlflow.log_input``, full-content digests) and the summary artifacts:
    ``dataset/summary.json``, ``dataset/cooccurrence.csv`` and ``dataset/cooccurrence.png``."""
    import tempfile
    from pathlib import Path

    from evalkit.data.summary import cooccurrence, plot_cooccurrence, summarize

    run.log_dataset(splits.train.X, splits.train.Y, name=splits.name, digest=splits.digest, context="training")
    run.log_dataset(splits.test.X, splits.test.Y, name=f"{splits.name}-test", digest=splits.test.digest,
                    context="testing")
    summary = summarize(splits)
    Y = np.concatenate([splits.train.Y, splits.val.Y, splits.test.Y])
    co = cooccurrence(Y, splits.label_names)
    run.log_dict({"name": splits.name, "digest": splits.digest, "splits": summary,
                  "cooccurrence": "dataset/cooccurrence.csv (all splits)"}, "dataset/summary.json")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cooccurrence.csv"
        co.to_csv(path)
        run.log_artifact(path, "dataset")
    run.log_figure(plot_cooccurrence(co, title=f"Label co-occurrence: {splits.name} (all splits)"),
                   "dataset/cooccurrence.png")


def _preprocess_record(config: RunConfig, splits, std_stats, report: Report) -> dict:
    from pathlib import Path

    from evalkit.model_io import preprocess_record

    def where(spec):
        return str(Path(spec).resolve()) if spec and Path(spec).exists() else spec

    mean, std = std_stats if std_stats is not None else (None, None)
    return preprocess_record(
        dataset={"spec": where(config.dataset), "test_dataset": where(config.test_dataset),
                 "reader_options": dict(config.reader_options), "name": splits.name, "digest": splits.digest,
                 "test_size": config.test_size, "val_size": config.val_size, "seed": config.seed},
        input_shape=splits.train.X.shape[1:], label_names=splits.label_names, standardize=std_stats is not None,
        mean=mean, std=std, threshold=report["threshold"],
        model={"arch": config.model, "hidden": list(config.hidden), "dropout": config.dropout,
               "activation": config.activation, "batch_norm": config.batch_norm},
    )


# -- evaluating a trained model -----------------------------------------------------------------------


def evaluate_model(
    model: str,
    dataset: str | None = None,
    test_dataset: str | None = None,
    *,
    reader_options: dict | None = None,
    arch: str | None = None,
    hidden: list[int] | None = None,
    trust_pickle: bool = False,
    preprocess: str | None = None,
    threshold: str | None = None,
    beta: float = 2.0,
    scores: str = "logits",
    device: str = "auto",
    amp: str | None = None,
    batch_size: int = 4096,
    label_map: str | None = None,
    map_reduce: str = "max",
    threshold_free: str = "exact",
    tracking_uri: str | None = None,
    test_size: float | None = None,
    seed: int | None = None,
    console=None,
) -> Report:
    """Evaluate a trained model on a dataset's test split, preprocessed exactly as in training.

    Args:
        model: MLflow URI (``runs:/<id>/<name>``, ``models:/<name>/<version>``, ``models:/<name>@<alias>``),
            a TorchScript / ``.pt2`` / ``state_dict`` file (see :mod:`evalkit.model_io`).
        dataset: built-in name or data file; evaluated on its test split (yeast: the standard 917 rows;
            a single file: the seeded stratified split of training, ``test_size`` / ``seed`` from the
            run). Default: the dataset recorded with the model.
        test_dataset: a test file, evaluated whole (without ``dataset`` too).
        reader_options: ``label_file``, ``label_columns``, ... (default: as recorded with the model).
        arch / hidden: architecture of a ``state_dict`` file. trust_pickle: allow a pickled full model.
        preprocess: ``preprocess.json`` (default: from the model's run, or a sidecar of the model file).
        threshold: number, comma list or file (``evaluate --threshold``); default: the thresholds the
            run chose (from its preprocessing record), else 0.5.
        scores: ``logits`` (default; a warning when all outputs lie in [0, 1]) or ``probabilities``.
        device / amp / batch_size: inference settings (``amp`` is ignored on CPU).
        label_map / map_reduce: evaluate on a coarser label set (:mod:`evalkit.labelmap`).
    Returns:
        :class:`Report`, with ``model`` (spec, kind, run, preprocessing source) and ``warnings``.
    Raises:
        InputError: bad options, data, model file or label map; output width != number of labels.
        InfraError: tracking store unreachable or the logged model cannot be loaded.
    """
    from rich.console import Console

    from evalkit.data import make_splits
    from evalkit.data.load import load_dataset, read_file
    from evalkit.metrics import compute_metrics
    from evalkit.model_io import (apply_preprocess, check_probabilities, double_sigmoid_warning, load_model,
                                  predict, sigmoid)
    from evalkit.models import resolve_device

    console = console or Console(stderr=True)
    if scores not in ("logits", "probabilities"):
        raise InputError(f"--scores: expected logits or probabilities, got {scores!r}")
    device = resolve_device(device)
    labelmap = None
    if label_map:
        from evalkit.labelmap import REDUCTIONS, read_label_map

        if map_reduce not in REDUCTIONS:
            raise InputError(f"--map-reduce: expected one of {', '.join(REDUCTIONS)}, got {map_reduce!r}")
        labelmap = read_label_map(label_map)

    # the preprocessing record first (it may name the dataset), then the data, then the model
    from evalkit.model_io import is_mlflow_uri, read_preprocess

    loaded = None
    record = read_preprocess(preprocess) if preprocess else None
    if record is None and is_mlflow_uri(model):
        loaded = load_model(model, tracking_uri=tracking_uri)
        record = loaded.preprocess
    elif record is None:
        from pathlib import Path

        from evalkit.model_io import sidecar_candidates

        for cand in sidecar_candidates(Path(model)):
            if cand.is_file():
                record, preprocess = read_preprocess(cand), str(cand)
                break
    recorded = (record or {}).get("dataset") or {}
    options = dict(recorded.get("reader_options") or {}) if reader_options is None else dict(reader_options)
    if dataset is None and test_dataset is None:
        dataset = recorded.get("spec")
        if dataset is None:
            raise InputError("evaluate --model: give --dataset NAME|FILE or --test-dataset FILE "
                             "(no dataset is recorded with this model)")
    if test_dataset is not None:
        test = read_file(test_dataset, **options)
        name = test.name
    else:
        train, test = load_dataset(dataset, None, **options)
        name = train.name
        if test is None:
            ts = test_size if test_size is not None else recorded.get("test_size", RunConfig().test_size)
            sd = seed if seed is not None else recorded.get("seed", RunConfig().seed)
            vs = recorded.get("val_size", RunConfig().val_size)
            test = make_splits(train, None, val_size=vs, test_size=ts, seed=sd).test
    names = list(test.label_names)
    if record and record.get("label_names") and list(record["label_names"]) != names:
        raise InputError(f"{test.source or test.name}: labels {names[:4]}... differ from the labels the model was "
                         f"trained on {list(record['label_names'])[:4]}...; expected the same labels in the same order")
    X = apply_preprocess(test.X, record, where=f"--model {model}")

    if loaded is None:
        loaded = load_model(model, tracking_uri=tracking_uri, arch=arch, hidden=hidden, n_features=test.n_features,
                            input_shape=test.X.shape[1:], n_labels=test.n_labels, trust_pickle=trust_pickle,
                            preprocess=preprocess if record is not None else None)
        if record is None:
            record = loaded.preprocess
            X = apply_preprocess(test.X, record, where=f"--model {model}")
    notes = list(loaded.notes)
    if record is None:
        notes.append("no preprocessing record (preprocess.json) found: features are used as read, not standardised")
    rows = max(1, min(batch_size, 2**26 // max(1, test.n_features)))  # at most ~256 MB of float32 input per batch
    outputs = predict(loaded.module, X, device=device, amp=amp, batch_size=rows, notes=notes)
    if outputs.shape[1] != test.n_labels:
        raise InputError(f"--model {model}: the model outputs {outputs.shape[1]} scores per sample but the dataset "
                         f"{test.name} has {test.n_labels} labels; expected them to match")
    warnings: list[str] = []
    if scores == "logits":
        w = double_sigmoid_warning(outputs, scores)
        if w:
            warnings.append(w)
        probabilities = sigmoid(outputs)
    else:
        check_probabilities(outputs)
        probabilities = outputs.astype(np.float32)

    Y = test.Y
    extra: dict[str, Any] = {}
    if labelmap is not None:
        from evalkit.labelmap import apply_label_map

        Y, probabilities, names, unmapped = apply_label_map(labelmap, names, Y, probabilities, map_reduce)
        if unmapped:
            notes.append(f"{len(unmapped)} label(s) not in the label map are left out: "
                         + ", ".join(unmapped[:8]) + (" ..." if len(unmapped) > 8 else ""))
        extra["label_map"] = {"file": str(label_map), "reduce": map_reduce, "targets": names,
                              "unmapped": unmapped}

    metrics, top_k = None, None
    if threshold is not None:
        from evalkit.thresholds import parse_given

        strategy, thr = parse_given(threshold, names)
    elif labelmap is None and record and record.get("threshold"):
        recorded_thr = record["threshold"]
        origin = f"run {loaded.source_run}" if loaded.source_run else "preprocess.json"
        strategy = f"{recorded_thr['strategy']} (from {origin})"
        if recorded_thr.get("k") is not None:  # top-k: a per-sample cut, no per-label thresholds
            from evalkit.thresholds import ThresholdStrategy
            from evalkit.thresholds import evaluate as evaluate_rule

            top_k = int(recorded_thr["k"])
            metrics = evaluate_rule(ThresholdStrategy("top-k", float(top_k)), Y, probabilities,
                                    np.full(len(names), np.nan), beta=beta, label_names=names,
                                    threshold_free=threshold_free)
            thr = np.zeros(len(names))
        else:
            thr = np.asarray(recorded_thr["values"], dtype=np.float64)
            if thr.shape != (len(names),):
                raise InputError(f"{preprocess or model}: {thr.size} recorded thresholds for {len(names)} labels")
    else:
        strategy, thr = "fixed:0.5", np.full(len(names), 0.5)

    if metrics is None:
        metrics = metrics_block(compute_metrics(Y, probabilities, scores_kind="probabilities", threshold=thr, beta=beta,
                                                label_names=names, threshold_free=threshold_free))
    ds_info = {"name": name, "n_samples": int(Y.shape[0]), "n_labels": int(Y.shape[1]), "digest": test.digest}
    from evalkit.tracking import redact_uri

    extra["model"] = {"spec": redact_uri(model), "kind": loaded.kind, "run_id": loaded.source_run,
                      "preprocess": loaded.preprocess_source or preprocess, "device": device}
    if warnings:
        extra["warnings"] = warnings
    if notes:
        extra["notes"] = notes
    for w in warnings:
        console.print(f"[yellow]warning:[/] {w}")
    for n in notes:
        console.print(f"note: {n}")
    report = build_report(metrics, dataset=ds_info, scores=scores, strategy=strategy, thresholds=thr, beta=beta,
                          **extra)
    if top_k is not None:
        report["threshold"].update(values=[None] * len(names), k=top_k)
    return report


def _describe_thresholds(report: Report, strategy, config: RunConfig) -> None:
    """Complete the report's ``threshold`` block: how the values were chosen (and, for ``top-k``,
    that there are no per-label values: ``values`` are null and ``k`` holds K)."""
    block = report["threshold"]
    if strategy.per_sample:
        block["values"] = [None] * len(block["values"])
        block["k"] = int(strategy.value)
        block["note"] = "top-k: each sample's K highest-scoring labels; a per-sample cut, no per-label threshold"
    if strategy.fitted:
        block["fitted_on"] = "validation"
        block["objective"] = config.objective if strategy.name != "pcut" else "train label cardinality"
        block["beta"] = float(config.beta)


def _log_threshold_artifacts(run, report: Report, strategy, config: RunConfig, val, test) -> None:
    """``thresholds.csv`` (label, threshold: readable by ``evaluate --threshold FILE``) and the plots."""
    import tempfile
    from pathlib import Path

    import pandas as pd

    from evalkit.report import write_csv_atomic

    names = [r["label"] for r in report["per_class"]]
    run.log_dict(dict(report["threshold"]) | {"labels": names}, "thresholds.json")
    if not strategy.per_sample:
        with tempfile.TemporaryDirectory() as tmp:
            frame = pd.DataFrame({"label": names, "threshold": report["threshold"]["values"]})
            run.log_artifact(write_csv_atomic(frame, Path(tmp) / "thresholds.csv"))
    from evalkit.plots import run_figures

    for path, fig in run_figures(report, strategy, val, test, beta=config.beta, objective=config.objective):
        try:
            run.log_figure(fig, path)
        finally:
            import matplotlib.pyplot as plt

            plt.close(fig)


@dataclass
class GridResult:
    results: list[RunResult]
    parent_run_id: str | None
    stats: dict | None
    seconds: float = 0.0


def run_spec(path: str, overrides: dict[str, Any] | None = None, console=None, *, track: bool = True) -> GridResult:
    """Run an experiment spec (``experiments/*.toml``, see :mod:`evalkit.spec`).

    A spec with a ``[grid]`` runs one MLflow parent run (tag ``evalkit.grid=parent``, the spec file as
    an artifact) with one child run per grid cell, then prints and logs the cells grouped by the first
    grid axis that is not ``seed`` (mean ± std, paired test; ``compare.json`` and a bar chart on the
    parent). Without a grid it is a single ``run``. ``overrides`` (CLI flags) win over spec values.
    With a grid, ``output`` receives the grouped summary instead of a per-run report.

    Raises:
        InputError: invalid spec (``file:line: field: problem``) or options, before anything runs.
    """
    import json
    from pathlib import Path

    from rich.console import Console

    from evalkit.spec import Spec, load_spec

    console = console or Console()
    started = time.perf_counter()
    spec = load_spec(path)
    configs = spec.configs(overrides)
    grid = {k: v for k, v in spec.grid.items() if k not in (overrides or {})}
    if not grid:
        res = run_experiment(configs[0], console, track=track)
        return GridResult([res], None, None, time.perf_counter() - started)
    from evalkit.compare import GROUP_HEADLINE, group_stats, render_groups
    from evalkit.tracking import RunLogger, resolve_tracking_uri

    first = configs[0]
    output = first.output
    cells = configs
    axes = list(grid)
    group_by = next((a for a in axes if a != "seed"), axes[0])
    tracking_uri = resolve_tracking_uri(first.tracking_uri) if track else None
    logger = RunLogger(tracking_uri, first.experiment, run_name=first.run_name or Path(path).stem,
                       tags={"evalkit.command": "run", "evalkit.grid": "parent", "evalkit.spec": str(path)}) if track else None
    results: list[RunResult] = []
    rows = []
    with (logger or _Null()) as parent:
        if parent:
            parent.log_params({"spec": str(path), "grid": json.dumps(grid), "cells": len(cells),
                               "group_by": group_by})
            parent.log_artifact(path)
        for i, (cell, cfg) in enumerate(zip(Spec(spec.path, spec.base, grid, spec.text).cells(), cells), 1):
            label = " ".join(f"{k}={v}" for k, v in cell.items())
            console.rule(f"grid cell {i}/{len(cells)}: {label}")
            cfg = cfg.model_copy(update={"output": None, "run_name": cfg.run_name or label})
            res = run_experiment(cfg, console, track=track, nested=True,
                                 tags={"evalkit.grid": "child", "evalkit.cell": label})
            results.append(res)
            metrics = res.report.metrics("test")
            rows.append({k: str(v) for k, v in cell.items()} | {"run_id": res.run_id or f"cell-{i}"} | metrics)
        import pandas as pd

        df = pd.DataFrame(rows)
        metrics = tuple(m for m in GROUP_HEADLINE if m in df.columns)
        stats = group_stats(df, group_by, metrics) if len(df) > 1 else None
        seconds = time.perf_counter() - started
        if stats:
            render_groups(stats, console, title=f"Grid {Path(path).name}: {len(cells)} runs by {group_by} "
                                                 f"({seconds:.0f} s)")
            if parent:
                from evalkit.plots import group_bars

                parent.log_dict(stats, "compare.json")
                fig = group_bars(stats, title=f"{Path(path).stem}: by {group_by}")
                try:
                    parent.log_figure(fig, "plots/compare.png")
                finally:
                    import matplotlib.pyplot as plt

                    plt.close(fig)
                parent.log_metrics({"grid/seconds": seconds})
        if output and stats:
            from evalkit.report import write_json_atomic

            write_json_atomic(stats | {"spec": str(path), "seconds": round(seconds, 2)}, output)
            console.print(f"Grid summary written to {output}")
    if parent:
        console.print(f"MLflow parent run [bold]{parent.run_id}[/] with {len(results)} child runs; "
                      f"compare them with: evalkit compare --experiment {first.experiment} --parent {parent.run_id}")
    return GridResult(results, parent.run_id if parent else None, stats, time.perf_counter() - started)


class _FoldRun:
    """Per-epoch metrics of fold k >= 2 go to ``fold<k>/...`` (fold 1 keeps the standard names)."""

    def __init__(self, run, fold: int):
        self.run, self.prefix = run, "" if fold == 1 else f"fold{fold}/"

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        self.run.log_metrics({self.prefix + k: v for k, v in metrics.items()}, step=step)


def _cross_fit(splits, config: RunConfig, device: str, console, run):
    """Train ``config.folds`` models on stratified folds of train + validation.

    Returns ``(result, oof_probabilities, oof_targets, train_cardinality)``: ``result.model`` is the
    fold models' probability average (it scores the test split), the out-of-fold probabilities are
    the validation scores thresholds are tuned on; the test split is never touched here.
    """
    import torch
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    from evalkit.data.core import Dataset, Splits
    from evalkit.losses import build_loss
    from evalkit.models import build_model, probability_average
    from evalkit.train import TrainResult, predict_logits, seed_everything

    tr, va = splits.train, splits.val
    full = Dataset(tr.name, np.concatenate([tr.X, va.X]), np.concatenate([tr.Y, va.Y]), tr.feature_names,
                   tr.label_names, tr.source, dict(tr.meta))
    oof = np.zeros(full.Y.shape, dtype=np.float64)
    members, results = [], []
    kfold = MultilabelStratifiedKFold(n_splits=config.folds, shuffle=True, random_state=config.seed)
    for k, (a, b) in enumerate(kfold.split(np.zeros((full.n_samples, 1)), full.Y), 1):
        seed = config.seed + k - 1
        seed_everything(seed)
        fold = Splits(full.subset(a), full.subset(b), splits.test, splits.digest, splits.name)
        model = build_model(config.model, full.n_features, full.n_labels, hidden=config.hidden, dropout=config.dropout,
                            activation=config.activation, batch_norm=config.batch_norm, input_shape=full.X.shape[1:])
        loss_fn = build_loss(config.loss, fold.train.Y, config.loss_options)
        console.print(f"fold {k}/{config.folds}: {len(a)} train, {len(b)} out-of-fold")
        res = _train_with_progress(model, loss_fn, fold, config.model_copy(update={"seed": seed}), device, console,
                                   _FoldRun(run, k) if run else None)
        oof[b] = torch.sigmoid(torch.from_numpy(predict_logits(res.model, fold.val.X, device))).numpy()
        members.append(res.model)
        results.append(res)
    ensemble = probability_average(members).to(device).eval()
    out = TrainResult(model=ensemble, history=results[0].history, best_epoch=results[0].best_epoch,
                      stopped_early=results[0].stopped_early)
    out.fold_info = {"best_epoch_per_fold": [r.best_epoch for r in results],
                     "epochs_run_per_fold": [len(r.history) for r in results]}
    return out, oof, full.Y, full.label_cardinality
