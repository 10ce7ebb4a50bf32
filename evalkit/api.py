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
from evalkit.report import Report, build_report


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
    metrics = compute_metrics(Y, scores, scores_kind=kind, threshold=thr, beta=beta, zero_division=zero_division,
                              label_names=names, threshold_free=threshold_free)
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


def prepare_data(config: RunConfig):
    """config -> (train / val / test splits, standardised with train statistics)."""
    from evalkit.data import load_dataset, make_splits, standardize

    train, test = load_dataset(config.dataset, config.test_dataset, **config.reader_options)
    splits = make_splits(train, test, val_size=config.val_size, test_size=config.test_size, seed=config.seed)
    return standardize(splits) if config.standardize else splits


def run_experiment(config: RunConfig, console=None, *, track: bool = True) -> RunResult:
    """Train on ``config.dataset``, tune thresholds on validation, evaluate on test, log to MLflow.

    Stages: dataset -> split -> model -> loss -> train -> scores -> thresholds -> metrics -> report
    -> tracking. Everything that can be rejected (options, data) is checked before an MLflow run
    starts, so bad input never leaves a run behind.

    Raises:
        InputError: bad options or data. InfraError: tracking store unreachable.
    """
    import torch
    from rich.console import Console

    from evalkit.losses import build_loss, loss_options
    from evalkit.metrics import compute_metrics
    from evalkit.models import build_model, resolve_device
    from evalkit.thresholds import fit_thresholds, parse_strategy
    from evalkit.tracking import RunLogger, resolve_tracking_uri
    from evalkit.train import predict_logits, seed_everything, train_model

    console = console or Console()
    started = time.perf_counter()
    strategy = parse_strategy(config.threshold)
    loss_options(config.loss, config.loss_options)  # validates the loss name and options
    device = resolve_device(config.device)
    tracking_uri = resolve_tracking_uri(config.tracking_uri) if track else None

    splits = prepare_data(config)
    _summary_table(splits, console)
    seed_everything(config.seed)
    torch.use_deterministic_algorithms(device == "cpu", warn_only=True)
    model = build_model(config.model, splits.train.n_features, splits.train.n_labels, hidden=config.hidden,
                        dropout=config.dropout, activation=config.activation, batch_norm=config.batch_norm)
    loss_fn = build_loss(config.loss, splits.train.Y, config.loss_options)

    logger = RunLogger(tracking_uri, config.experiment, run_name=config.run_name,
                       tags={"evalkit.command": "run", "evalkit.loss": config.loss}) if track else None
    with (logger or _Null()) as run:
        if run:
            params = config.params() | {"device": device, "dataset.digest": splits.digest,
                                        "dataset.name": splits.name, "threshold": strategy.label}
            run.log_params(params)
        history = _train_with_progress(model, loss_fn, splits, config, device, console, run)
        val_logits = predict_logits(history.model, splits.val.X, device)
        test_logits = predict_logits(history.model, splits.test.X, device)
        val_prob = torch.sigmoid(torch.from_numpy(val_logits)).numpy()
        thresholds = fit_thresholds(strategy, val_prob, splits.val.Y, beta=config.beta)
        names = splits.label_names
        test_prob = torch.sigmoid(torch.from_numpy(test_logits)).numpy()
        metrics = compute_metrics(splits.test.Y, test_prob, scores_kind="probabilities", threshold=thresholds,
                                  beta=config.beta, label_names=names)
        dataset = {"name": splits.name, "n_samples": splits.test.n_samples, "n_labels": splits.test.n_labels,
                   "digest": splits.digest}
        extra: dict[str, Any] = {
            "training": {"best_epoch": history.best_epoch, "epochs_run": len(history.history),
                         "stopped_early": history.stopped_early, "loss": config.loss, "device": device},
        }
        if not (strategy.name == "fixed" and strategy.value == 0.5):
            ref = compute_metrics(splits.test.Y, test_prob, scores_kind="probabilities", threshold=0.5,
                                  beta=config.beta, label_names=names, threshold_free="none")
            extra["reference_at_0.5"] = {"summary": ref["summary"]}
        report = build_report(metrics, dataset=dataset, scores="logits", strategy=strategy.label,
                              thresholds=thresholds, beta=config.beta, **extra)
        report["seconds"] = round(time.perf_counter() - started, 2)
        if config.output:
            report.write_json(config.output)
        if run:
            _log_results(run, report, history.model, splits.test.X[:5])
            report["run_id"] = run.run_id
    render_report(report, console)
    if run:
        from evalkit.tracking import redact_uri

        console.print(f"MLflow run [bold]{run.run_id}[/] in experiment '{config.experiment}' "
                      f"({redact_uri(tracking_uri)})")
    if config.output:
        console.print(f"Report written to {config.output}")
    return RunResult(report, run.run_id if run else None, tracking_uri, history.history,
                     time.perf_counter() - started)


def render_report(report: Report, console) -> None:
    from evalkit.report import render

    render(report, console)


def _log_results(run, report: Report, model, input_example: np.ndarray) -> None:
    import tempfile
    from pathlib import Path

    from evalkit.report import write_csv_atomic

    metrics = report.metrics("test")
    ref = report.get("reference_at_0.5")
    if ref:
        from evalkit.report import metric_keys

        metrics |= metric_keys({"summary": ref["summary"], "per_class": []}, "test@0.5", per_class=False)
    run.log_metrics(metrics)
    run.log_dict(dict(report), "report.json")
    with tempfile.TemporaryDirectory() as tmp:
        run.log_artifact(write_csv_atomic(report.per_class_frame(), Path(tmp) / "per_class.csv"))
    run.log_model(model, input_example)


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
            seed=config.seed, device=device, on_epoch=on_epoch,
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
    metrics = engine.compute()
    from pathlib import Path

    dataset = {"name": Path(path).stem, "n_samples": n, "n_labels": len(label_names), "digest": h.hexdigest()[:16]}
    return build_report(metrics, dataset=dataset, scores=scores_kind, strategy=strategy, thresholds=thr, beta=beta)
