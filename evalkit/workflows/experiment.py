"""``evalkit run`` as a function: config -> data -> model -> loss -> training -> scores -> thresholds
-> metrics -> report -> tracking. Prints nothing; progress goes to ``on_event`` (:mod:`.events`)."""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any


from evalkit.config import RunConfig
from evalkit.data.sparse import dense_rows
from evalkit.errors import InfraError, InputError
from evalkit.report import Report
from evalkit.workflows.events import EventCallback, make_emitter
from evalkit.workflows.training import Trained

if TYPE_CHECKING:
    from evalkit.tracking.settings import TrackingSettings



@dataclass(frozen=True)
class RunResult:
    """What :func:`run_experiment` returns.

    Attributes:
        report: the test-split :class:`~evalkit.report.Report` (immutable); ``None`` for a run with
            ``evaluate_test=False`` (a search trial).
        run_id: the MLflow run, or ``None`` when not tracked.
        tracking_uri: the store it went to (``None`` when not tracked).
        history: one dict per epoch (``epoch``, ``train_loss``, ``val_loss``, ``val_metric``) of the
            (first fold's) training.
        seconds: wall time of the whole run.
        registered_model: ``models:/NAME/VERSION`` (and alias) when ``register_model`` was set.
        validation: metrics of the validation (out-of-fold with ``folds > 1``) scores at the fitted
            thresholds: ``map``, ``micro_f<beta>``, ``macro_f<beta>``, ``mean_f<beta>`` (their mean);
            tracked as ``validation/<name>``. What ``evalkit tune`` optimises (never a test number).
    """

    report: Report | None
    run_id: str | None
    tracking_uri: str | None
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    registered_model: str | None = None
    validation: dict[str, float] = field(default_factory=dict)


def prepare_data(config: RunConfig, *, with_stats: bool = False, with_raw: bool = False):
    """config -> (train / val / test :class:`~evalkit.data.core.Splits`, standardised with train statistics).

    ``with_stats=True`` returns ``(splits, (mean, std) or None)``: the train statistics, ``(F,)``
    float64 each, that ``preprocess.json`` records so that ``evaluate --model`` standardises exactly
    as in training. ``with_raw=True`` appends the splits as read (not standardised): what the run's
    dataset inputs describe, so their digests equal those of ``evaluate --model`` on the same rows.

    Raises:
        InputError: the dataset cannot be read or split.
    """
    from evalkit.data import load_dataset, make_splits, standardize
    from evalkit.data.split import standardization_stats

    from evalkit.images.lazy import check_output_not_image, configure_images, is_lazy

    train, test = load_dataset(config.dataset, config.test_dataset, **config.reader_options)
    check_output_not_image(config.output, train, test)  # an image of the table is an input too
    train, test = configure_images([train, test], size=config.image_size, workers=config.workers,
                                   augment=config.augment, skip_bad=config.skip_bad_images)
    splits = make_splits(train, test, val_size=config.val_size, test_size=config.test_size, seed=config.seed)
    scaled = config.standardize and not is_lazy(train.X)  # streamed images: pixels in [0, 1] as read
    stats = standardization_stats(splits.train.X) if scaled else None
    out = standardize(splits, stats) if scaled else splits
    result = (out,) + ((stats,) if with_stats else ()) + ((splits,) if with_raw else ())
    return result if len(result) > 1 else out


def _check_options(config: RunConfig, track: bool = True):
    """Everything that can be rejected from the options alone, before any data is read. Returns the
    config's parsed threshold strategy (parsed once, by the config)."""
    config.loss_settings  # noqa: B018 -- the loss options against the loss (InputError naming the option)
    if config.alias and not config.register_model:
        raise InputError(f"--alias {config.alias}: needs --register NAME (the registered model the alias points into)")
    if config.register_model is not None:
        if not config.log_model:
            raise InputError(f"--register {config.register_model}: needs the model to be logged; drop --no-log-model")
        if not track:
            raise InputError(f"--register {config.register_model}: applies to a tracked run (the registry is in the "
                             "tracking store); drop --no-track")
        _check_registry_names(config.register_model, config.alias)
    return config.threshold_strategy


def _check_registry_names(name: str, alias: str | None) -> None:
    """MLflow's own rules for a registered model's name and an alias, checked before any training (the
    registry refused them only after it, as if the store had failed)."""
    from evalkit.tracking.mlflow_compat import registry_name_problem

    problem = registry_name_problem(name, alias)
    if problem is not None:
        flag, message = problem
        raise InputError(f"{flag} {name if flag == '--register' else alias!r}: {message}")


@dataclass(frozen=True)
class _Setup:
    """What the run is set up with once its options and data were checked (nothing tracked yet):
    the config with the training budget applied, the threshold strategy, the device, the tracking
    store, the splits (standardised), their standardisation statistics and the splits as read."""

    config: RunConfig
    strategy: Any
    device: str
    store: TrackingSettings | None  # None when not tracked
    splits: Any
    std_stats: Any
    raw: Any


@dataclass(frozen=True)
class _Outcome:
    """A finished run's results: the report (None for a search trial), the run, the registered model,
    the validation metrics, the first fold's history and the report file's write error, if any."""

    report: Report | None
    run: Any
    registered: str | None
    validation: dict[str, float]
    history: list[dict]
    unwritten: Exception | None = None


def run_experiment(config: RunConfig, *, track: bool = True, nested: bool = False,
                   tags: dict[str, str] | None = None, on_event: EventCallback | None = None,
                   evaluate_test: bool = True) -> RunResult:
    """Train on ``config.dataset``, tune thresholds on validation, evaluate on test, log to MLflow.

    Everything that can be rejected (options, data) is checked before an MLflow run starts, so bad
    input never leaves a run behind. The report file and the run are complete before the report is
    emitted. Prints nothing: progress goes to ``on_event`` (the CLI's rendering:
    ``on_event=evalkit.cli.ui.ConsoleRenderer(Console())``).

    Args:
        config: the run's :class:`~evalkit.config.RunConfig`.
        track: log an MLflow run (default); ``False`` touches no tracking store.
        nested: start the run as a child of the active run (a spec grid's parent).
        tags: extra MLflow run tags.
        on_event: progress callback (:mod:`evalkit.workflows.events`).
        evaluate_test: ``False`` (a search trial) never scores the test split: the result has
            ``report=None`` and only the ``validation`` metrics (and ``thresholds.json``) are logged.
    Returns:
        :class:`RunResult`.
    Raises:
        InputError: bad options or data (exit 2). InfraError: tracking store unreachable, or the report
        file could not be written (exit 3; ``report_json`` holds the report).
    """
    emit = make_emitter(on_event)
    started = time.perf_counter()
    if config.resume:  # the killed run's own options, tracked (track=False refused: evalkit.workflows.resume)
        config = _resumed(config, track)
    strategy = _check_options(config, track)
    outcome = None
    try:
        with ExitStack() as stack:
            outcome = _run_stages(stack, config, strategy, track=track, nested=nested, tags=tags, emit=emit,
                                  evaluate_test=evaluate_test, started=started)
    except InfraError as e:  # the store failed too (results spooled): say the report was not written either
        if outcome is not None and outcome.unwritten is not None:
            raise InfraError(f"{outcome.unwritten} (report printed to stdout instead); {e}",
                             report_json=outcome.report.to_json()) from e
        raise
    run_id = outcome.run.run_id if outcome.run else None
    if outcome.report is not None:
        emit("report", report=outcome.report, title="Test split", per_class=True)
        from evalkit.metrics.degenerate import degenerate_note

        if note := degenerate_note(outcome.report):
            emit(note[0], text=note[1])
    if outcome.run:
        from evalkit.tracking import redact_uri

        emit("tracked", run_id=run_id, experiment=config.experiment, tracking_uri=redact_uri(outcome.run.tracking_uri),
             registered_model=outcome.registered)
    if outcome.unwritten is not None:
        kept = f"; the run was tracked ({run_id})" if run_id else ""
        raise InfraError(f"{outcome.unwritten} (report printed to stdout instead{kept})",
                         report_json=outcome.report.to_json())  # the CLI prints it: the last resort
    store = outcome.run.tracking_uri if outcome.run else None
    return RunResult(outcome.report, run_id, store, outcome.history, time.perf_counter() - started,
                     outcome.registered, outcome.validation)


def _resumed(config: RunConfig, track: bool) -> RunConfig:
    from evalkit.workflows.resume import resumed_config

    return resumed_config(config, track)


def _run_stages(stack: ExitStack, config: RunConfig, strategy, *, track: bool, nested: bool, tags, emit,
                evaluate_test: bool, started: float) -> _Outcome:
    """The stages of :func:`run_experiment`; every lifetime (fold workers, the MLflow run, torch's
    settings) is held by ``stack``."""
    from evalkit.train import seed_everything, torch_settings
    from evalkit.workflows import model_choice
    from evalkit.workflows.training import fold_workers, plan_folds, start_workers_early

    said: set[str] = set()

    def warn(text: str) -> None:  # a pool that cannot start is told once (early start, then the real size)
        if text not in said:
            said.add(text)
            emit("warning", text=text)

    early = start_workers_early(config, warn)  # fold workers import torch while this process reads the data
    if early is not None:
        stack.callback(early.shutdown)
    setup = _prepare(config, strategy, track, emit)
    config = setup.config
    plan = plan_folds(setup.splits, config) if config.folds > 1 else None
    executor = fold_workers(config, plan, setup.device, early, warn)
    if executor is not None:
        stack.callback(executor.shutdown)  # no worker outlives its run
    fitting = model_choice.strategy(config, setup.splits, device=setup.device, executor=executor, plan=plan)
    run = stack.enter_context(_open_run(setup, tags, nested)) if track else None  # fold 1's candidates train meanwhile
    stack.enter_context(torch_settings(config.threads, setup.device))
    if run:
        _log_setup(run, setup)
    from evalkit.workflows.resume import run_checkpoint

    stack.enter_context(run_checkpoint(run, config, setup.splits))  # image runs: a checkpoint every epoch
    seed_everything(config.seed)
    trained = _train(setup, plan, fitting, executor, run, emit)
    if executor is not None:
        executor.shutdown()  # its work is done: free the cores now
    config = config.model_copy(update={"model": trained.fold_info["model"]})
    if not evaluate_test:  # a search trial: validation only, the test split is never scored
        return _Outcome(None, run, None, _validation_only(config, strategy, setup.splits, trained, run), trained.history)
    report, thresholds, test_prob, splits = _evaluate(config, strategy, setup.splits, trained, setup.device, started)
    if skipped := (report.get("images") or {}).get("skipped"):  # --skip-bad-images: said, counted, tagged
        emit("warning", text=f"--skip-bad-images: {skipped} image(s) left out (missing or unreadable)")
    validation = validation_metrics(config, thresholds, trained, splits.label_names)
    unwritten = _write_report(report, config.output, emit)
    registered = None
    shown = setup.raw.test if splits is setup.splits else splits.test  # the scored test rows (skipped images out)
    if run:
        from evalkit.workflows.artifacts import log_run_results, preprocess_for

        registered = log_run_results(
            run, report, trained.model, dense_rows(splits.test.X, slice(0, 5)), config=config,
            preprocess=preprocess_for(config, splits, setup.std_stats, thresholds),
            thresholds=thresholds, val=(trained.val_probabilities, trained.val_targets),
            test=(test_prob, splits.test.Y), test_digest=shown.digest)
        run.log_metrics({f"validation/{k}": v for k, v in validation.items()})
        from evalkit.images.grid import log_sample_grid

        log_sample_grid(run, shown, test_prob, thresholds)  # image data: sample test images, labelled
    return _Outcome(report, run, registered, validation, trained.history, unwritten)


def _prepare(config: RunConfig, strategy, track: bool, emit) -> _Setup:
    """Device, tracking store, data (read, split, standardised) and the checks that need the data
    (threshold strategy, architectures): everything that can fail before a run starts."""
    from evalkit.models import resolve_device
    from evalkit.thresholds import check_strategy
    from evalkit.workflows import model_choice

    device = resolve_device(config.device)
    store = None
    if track:
        from evalkit.tracking import TrackingSettings

        store = TrackingSettings.of(config)
    config = model_choice.data_defaults(config)  # ImageNet weights: pixels in [0, 1]
    splits, std_stats, raw = prepare_data(config, with_stats=True, with_raw=True)
    emit("dataset", splits=splits)
    for note in dict.fromkeys([*splits.train.meta.get("notes", []), *splits.test.meta.get("notes", [])]):
        emit("note", text=note)  # what the readers did on their own (e.g. an ID-like attribute dropped)
    _warn_empty_labels(splits, emit)
    check_strategy(strategy, splits.train.n_labels)
    config = model_choice.resolve_budget(config, splits)  # folds / epochs / batch size by data size
    if note := model_choice.auto_note(config, splits):
        emit("note", text=note)
    model_choice.check_architectures(config, splits)  # architecture errors before a run starts
    return _Setup(config, strategy, device, store, splits, std_stats, raw)


def _open_run(setup: _Setup, tags, nested: bool):
    """The run's :class:`~evalkit.tracking.RunLogger` (not started yet), given the run's
    :class:`~evalkit.tracking.TrackingSettings` (store and ``tracking_timeout``)."""
    from evalkit.tracking import RunLogger

    config = setup.config
    name = None if config.resume else config.run_name or run_name(setup.splits.name, config, tags)
    return RunLogger(setup.store, config.experiment, run_name=name, resume=config.resume,
                     tags={"evalkit.command": "run", "evalkit.loss": config.loss, **(tags or {})}, nested=nested)


def _log_setup(run, setup: _Setup) -> None:
    """Params and the dataset, logged as the run starts; what logging the results will import is
    imported meanwhile in the background (:func:`~evalkit.workflows.warmups.result_logging`)."""
    from evalkit.workflows.artifacts import log_dataset
    from evalkit.workflows.warmups import in_background, result_logging

    config = setup.config
    in_background(result_logging, config.log_model)
    run.log_params(config.params() | {"device": setup.device, "dataset.digest": setup.splits.digest,
                                      "dataset.name": setup.splits.name, "threshold": setup.strategy.label})
    log_dataset(run, setup.raw, folds=config.folds)


def _train(setup: _Setup, plan, fitting, executor, run, emit) -> Trained:
    """The training stage: one model (``folds = 1``) or cross-fitting, with the model choice of
    ``--model auto`` (:mod:`.model_choice`) as the fold strategy (``fitting``: ``(fit_fold, config)``
    of :func:`~evalkit.workflows.model_choice.strategy`)."""
    from evalkit.workflows import model_choice
    from evalkit.workflows.training import cross_fit, out_of_fold, train_once

    from evalkit.workflows.curves import CurveRun

    splits, device = setup.splits, setup.device
    run = CurveRun(run) if run is not None else None  # the chosen model's curves as metrics, all in curves.csv
    fit_fold, config = fitting
    fit_fold.run = run  # where the choice is logged: the run exists now
    try:
        if plan is None:
            trained = train_once(splits, fit_fold, config, emit=emit, run=run, device=device)
        else:
            results = cross_fit(plan, fit_fold, executor, config=config, emit=emit, run=run, device=device)
            trained = out_of_fold(plan, results, device)
    finally:  # interrupted too (Ctrl-C, SIGTERM): the curves so far
        if run is not None:
            run.log_csv()
    return model_choice.scoring_model(trained, fit_fold, setup.config, splits, device=device, emit=emit)


def _write_report(report: Report, path: str | None, emit) -> Exception | None:
    """Write the report file (when ``path``); returns the WriteError (disk full, read-only) instead
    of raising it, so that the run is still logged before the command fails (exit 3)."""
    from evalkit.errors import WriteError

    if not path:
        return None
    try:
        report.write_json(path)
    except WriteError as e:
        return e
    emit("written", path=path, what="Report")
    return None


def run_name(dataset: str, config: RunConfig, tags: dict[str, str] | None = None) -> str:
    """A readable, unique run name: ``yeast-bce-s0-3fa2`` (a grid cell: ``yeast-loss=bce,seed=0-3fa2``).

    The 4 hex characters come from the OS's randomness, so seeding the experiment never repeats names.
    """
    import secrets

    cell = (tags or {}).get("evalkit.cell")
    base = f"{dataset}-{cell.replace(' ', ',')}" if cell else f"{dataset}-{config.loss}-s{config.seed}"
    return f"{base}-{secrets.token_hex(2)}"


def _fit_cuts(config: RunConfig, strategy, trained: Trained):
    """The :class:`~evalkit.thresholds.Thresholds`, fitted on the validation scores only."""
    from evalkit import thresholds as th

    # thresholds see validation scores only (never the test split)
    cuts = th.fit_thresholds(strategy, trained.val_probabilities, trained.val_targets, beta=config.beta,
                             objective=config.objective, train_cardinality=trained.train_cardinality)
    fitted = dict(fitted_on="validation", beta=float(config.beta),
                  objective=config.objective if strategy.name != "pcut" else "train label cardinality") \
        if strategy.fitted else {}
    return th.Thresholds(strategy, None if strategy.per_sample else tuple(float(c) for c in cuts),
                         len(cuts), **fitted)


def validation_metrics(config: RunConfig, thresholds, trained: Trained, names) -> dict[str, float]:
    """``map``, ``micro_f<beta>``, ``macro_f<beta>``, ``mean_f<beta>`` of the validation (out-of-fold)
    scores at the fitted ``thresholds`` (the metric engine's values; NaN when undefined)."""
    from evalkit.report import fbeta_key

    fk = fbeta_key(config.beta)
    s = thresholds.evaluate(trained.val_targets, trained.val_probabilities, beta=config.beta,
                            label_names=names)["summary"]
    nan = float("nan")
    micro, macro = s["micro"].get(fk), s["macro"].get(fk)
    out = {"map": s.get("mean_average_precision"), f"micro_{fk}": micro, f"macro_{fk}": macro,
           f"mean_{fk}": None if micro is None or macro is None else (micro + macro) / 2}
    return {k: nan if v is None else float(v) for k, v in out.items()}


def _validation_only(config: RunConfig, strategy, splits, trained: Trained, run) -> dict[str, float]:
    """A search trial's evaluation: thresholds and validation metrics, logged; no test split."""
    thresholds = _fit_cuts(config, strategy, trained)
    validation = validation_metrics(config, thresholds, trained, splits.label_names)
    if run:
        run.log_metrics({f"validation/{k}": v for k, v in validation.items()})
        run.log_dict(thresholds.to_dict() | {"labels": list(splits.label_names)}, "thresholds.json")
    return validation


def _evaluate(config: RunConfig, strategy, splits, trained: Trained, device: str, started: float):
    """Scores -> thresholds (validation only) -> metrics -> the immutable report."""
    from evalkit.metrics import compute_metrics
    from evalkit.report import build_report, fbeta_key, metrics_block
    from evalkit.scores import sigmoid
    from evalkit.stats.bootstrap import spec_or_none, with_intervals
    from evalkit.train import predict_logits

    from evalkit.images.lazy import readable_test, skipped_rows

    thresholds = _fit_cuts(config, strategy, trained)
    test_prob, splits = readable_test(sigmoid(predict_logits(trained.model, splits.test.X, device)), splits)
    names = splits.label_names
    metrics = thresholds.evaluate(splits.test.Y, test_prob, beta=config.beta, label_names=names)
    intervals = with_intervals(metrics, splits.test.Y, test_prob, thresholds, beta=config.beta, label_names=names,
                               spec=spec_or_none(config.ci, config.ci_resamples, config.ci_method, config.seed))
    # always: the metrics at the textbook 0.5 cut, for reference (threshold-free ones are the same)
    ref = metrics_block(compute_metrics(splits.test.Y, test_prob, scores_kind="probabilities", threshold=0.5,
                                        beta=config.beta, label_names=names, threshold_free="none"))
    fk = fbeta_key(config.beta)
    reference = {"threshold": 0.5, "summary": {k: v for k, v in ref["summary"].items() if v is not None},
                 "per_class": [{"label": r["label"], "f1": r["f1"], fk: r[fk]} for r in ref["per_class"]]}
    training = {"best_epoch": trained.best_epoch, "epochs_run": len(trained.history),
                "stopped_early": trained.stopped_early, "loss": config.loss, "device": device,
                "folds": config.folds, **trained.fold_info}
    dataset = {"name": splits.name, "n_samples": splits.test.n_samples, "n_labels": splits.test.n_labels,
               "digest": splits.digest}
    images = {"images": {"skipped": skipped_rows(splits.train, splits.test)}} if config.skip_bad_images else {}
    report = build_report(metrics, dataset=dataset, scores="logits", thresholds=thresholds, beta=config.beta,
                          training=training, **{"reference_at_0.5": reference}, **intervals, **images,
                          seconds=round(time.perf_counter() - started, 2))
    return report, thresholds, test_prob, splits


def _warn_empty_labels(splits, emit) -> None:
    for name in ("train", "val", "test"):
        ds = getattr(splits, name)
        empty = [n for n, c in zip(ds.label_names, ds.Y.sum(axis=0)) if c == 0]
        if empty:
            shown = ", ".join(empty[:8]) + (f" (+{len(empty) - 8} more)" if len(empty) > 8 else "")
            emit("warning", text=f"{len(empty)} label(s) have no positives in the {name} split: {shown} "
                                 "(their average precision / AUROC are undefined there)")
