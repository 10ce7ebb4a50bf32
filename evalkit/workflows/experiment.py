"""``evalkit run`` as a function: config -> data -> model -> loss -> training -> scores -> thresholds
-> metrics -> report -> tracking. Prints nothing; progress goes to ``on_event`` (:mod:`.events`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evalkit.config import RunConfig
from evalkit.data.sparse import dense_rows
from evalkit.errors import InfraError, InputError
from evalkit.report import Report
from evalkit.workflows.events import EventCallback, make_emitter

#: tracked-metric prefix of the reference metrics at a fixed 0.5 cut (``test_at_0.5/micro_f2``)
REFERENCE_SPLIT = "test_at_0.5"


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


@dataclass(frozen=True)
class Trained:
    """The training stage's result: the scoring model, the validation scores thresholds are fitted
    on (``(N_val, C)`` probabilities and targets), the training label cardinality and fold info."""

    model: Any
    val_probabilities: np.ndarray
    val_targets: np.ndarray
    train_cardinality: float
    history: list[dict]
    best_epoch: int
    stopped_early: bool
    fold_info: dict[str, Any] = field(default_factory=dict)


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

    train, test = load_dataset(config.dataset, config.test_dataset, **config.reader_options)
    splits = make_splits(train, test, val_size=config.val_size, test_size=config.test_size, seed=config.seed)
    stats = standardization_stats(splits.train.X) if config.standardize else None
    out = standardize(splits, stats) if config.standardize else splits
    result = (out,) + ((stats,) if with_stats else ()) + ((splits,) if with_raw else ())
    return result if len(result) > 1 else out


def _check_options(config: RunConfig):
    """Everything that can be rejected from the options alone, before any data is read."""
    from evalkit.losses import loss_options
    from evalkit.thresholds import parse_objective, parse_strategy

    strategy = parse_strategy(config.threshold)
    parse_objective(config.objective)
    loss_options(config.loss, config.loss_options)  # validates the loss name and options
    if config.alias and not config.register_model:
        raise InputError(f"--alias {config.alias}: needs --register NAME (the registered model the alias points into)")
    if config.register_model and not config.log_model:
        raise InputError(f"--register {config.register_model}: needs the model to be logged; drop --no-log-model")
    return strategy


def run_experiment(config: RunConfig, console=None, *, track: bool = True, nested: bool = False,
                   tags: dict[str, str] | None = None, on_event: EventCallback | None = None,
                   evaluate_test: bool = True) -> RunResult:
    """Train on ``config.dataset``, tune thresholds on validation, evaluate on test, log to MLflow.

    Everything that can be rejected (options, data) is checked before an MLflow run starts, so bad
    input never leaves a run behind. Prints nothing unless given ``on_event`` or a rich ``console``.

    Args:
        config: the run's :class:`~evalkit.config.RunConfig`.
        console: a ``rich.console.Console`` to render progress and the report on (as the CLI does).
        track: log an MLflow run (default); ``False`` touches no tracking store.
        nested: start the run as a child of the active run (a spec grid's parent).
        tags: extra MLflow run tags.
        on_event: progress callback (:mod:`evalkit.workflows.events`).
        evaluate_test: ``False`` (a search trial) never scores the test split: the result has
            ``report=None`` and only the ``validation`` metrics (and ``thresholds.json``) are logged.
    Returns:
        :class:`RunResult`.
    Raises:
        InputError: bad options or data (exit 2). InfraError: tracking store unreachable (exit 3).
    """
    from evalkit.workflows.fold_pool import start_early

    emit = make_emitter(on_event, console)
    started = time.perf_counter()
    strategy = _check_options(config)
    early = start_early(config)  # fold workers import torch while this process does, and reads the data
    try:
        import torch

        from evalkit.models import resolve_device
        from evalkit.thresholds import check_strategy
        from evalkit.train import seed_everything
        from evalkit.workflows import model_choice

        device = resolve_device(config.device)
        store = None
        if track:
            from evalkit.tracking import resolve_tracking_uri

            store = resolve_tracking_uri(config.tracking_uri)
        splits, std_stats, raw = prepare_data(config, with_stats=True, with_raw=True)
        emit("dataset", splits=splits)
        for note in dict.fromkeys([*splits.train.meta.get("notes", []), *splits.test.meta.get("notes", [])]):
            emit("note", text=note)  # what the readers did on their own (e.g. an ID-like attribute dropped)
        _warn_empty_labels(splits, emit)
        check_strategy(strategy, splits.train.n_labels)
        config = model_choice.resolve_budget(config, splits)  # folds / epochs / batch size by data size
        model_choice.check_architectures(config, splits)  # architecture errors before a run starts
    except BaseException:
        if early is not None:
            early.__exit__(None, None, None)
        raise

    from evalkit.tracking import RunLogger

    logger = RunLogger(store, config.experiment, run_name=config.run_name or run_name(splits.name, config, tags),
                       tags={"evalkit.command": "run", "evalkit.loss": config.loss, **(tags or {})},
                       nested=nested) if track else None
    previous_threads = torch.get_num_threads()
    unwritten = None  # the report file could not be written (WriteError): raised once the run is logged
    pool = None
    try:
        if device == "cpu":
            torch.set_num_threads(config.threads)
        pool, plan = _start_fold_pool(config, splits, device, early)  # fold 1 trains in a worker during tracking set-up
        if pool is not None:
            pool.warn = lambda text: emit("warning", text=text)
        with (logger if logger is not None else _no_run()) as run, pool if pool is not None else _no_run():
            chores = []  # fold-independent work: while workers train the last folds, when there is a pool
            if run:
                from evalkit.workflows.artifacts import log_dataset, prepare_result_logging

                run.log_params(config.params() | {"device": device, "dataset.digest": splits.digest,
                                                  "dataset.name": splits.name, "threshold": strategy.label})
                chores = [lambda: log_dataset(run, raw, folds=config.folds),
                          lambda: prepare_result_logging(config.log_model)]
            if pool is not None:
                pool.chores.extend(chores)
            else:
                for chore in chores:
                    chore()
            seed_everything(config.seed)
            torch.use_deterministic_algorithms(device == "cpu", warn_only=True)
            try:
                trained = model_choice.train(splits, config, device, emit, run, plan, pool)  # --model auto chooses here
            except Exception:  # (a FAILED run still shows its dataset)
                if pool is not None:
                    pool.run_chores()
                raise
            if pool is not None:
                pool.run_chores()  # those the folds left no time for
            config = config.model_copy(update={"model": trained.fold_info["model"]})
            if not evaluate_test:  # a search trial: validation only, the test split is never scored
                validation = _validation_only(config, strategy, splits, trained, run)
                return RunResult(None, run.run_id if run else None, store, trained.history,
                                 time.perf_counter() - started, None, validation)
            report, thresholds, test_prob = _evaluate(config, strategy, splits, trained, device, started)
            validation = validation_metrics(config, thresholds, trained, splits.label_names)
            if config.output:
                from evalkit.errors import WriteError

                try:
                    report.write_json(config.output)
                    emit("written", path=config.output, what="Report")
                except WriteError as e:  # disk full / read-only: the run is still logged, then exit 3
                    unwritten = e
            registered = None
            if run:
                from evalkit.workflows.artifacts import log_run_results, preprocess_for

                registered = log_run_results(
                    run, report, trained.model, dense_rows(splits.test.X, slice(0, 5)), config=config,
                    preprocess=preprocess_for(config, splits, std_stats, thresholds),
                    thresholds=thresholds, val=(trained.val_probabilities, trained.val_targets),
                    test=(test_prob, splits.test.Y))
                run.log_metrics({f"validation/{k}": v for k, v in validation.items()})
    except InfraError as e:  # the store failed too (results spooled): say the report was not written either
        if unwritten is not None:
            e.args = (f"{unwritten} (report printed to stdout instead); {e}",)
            e.report_json = report.to_json()
        raise
    finally:
        if pool is not None:  # also when the run could not start: no worker outlives its run
            pool.__exit__(None, None, None)
        torch.set_num_threads(previous_threads)
    emit("report", report=report, title="Test split", per_class=True)
    if run:
        from evalkit.tracking import redact_uri

        emit("tracked", run_id=run.run_id, experiment=config.experiment, tracking_uri=redact_uri(store),
             registered_model=registered)
    if unwritten is not None:
        kept = f"; the run was tracked ({run.run_id})" if run else ""
        unwritten.args = (f"{unwritten} (report printed to stdout instead{kept})",)
        unwritten.report_json = report.to_json()  # the CLI prints it: the last resort
        raise unwritten
    return RunResult(report, run.run_id if run else None, store, trained.history,
                     time.perf_counter() - started, registered, validation)


def run_name(dataset: str, config: RunConfig, tags: dict[str, str] | None = None) -> str:
    """A readable, unique run name: ``yeast-bce-s0-3fa2`` (a grid cell: ``yeast-loss=bce,seed=0-3fa2``).

    The 4 hex characters come from the OS's randomness, so seeding the experiment never repeats names.
    """
    import secrets

    cell = (tags or {}).get("evalkit.cell")
    base = f"{dataset}-{cell.replace(' ', ',')}" if cell else f"{dataset}-{config.loss}-s{config.seed}"
    return f"{base}-{secrets.token_hex(2)}"


class _no_run:
    """The ``with`` target when nothing is tracked."""

    def __enter__(self):
        return None

    def __exit__(self, *exc) -> bool:
        return False


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
    from evalkit.train import predict_logits

    thresholds = _fit_cuts(config, strategy, trained)
    test_prob = sigmoid(predict_logits(trained.model, splits.test.X, device))
    names = splits.label_names
    metrics = thresholds.evaluate(splits.test.Y, test_prob, beta=config.beta, label_names=names)
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
    report = build_report(metrics, dataset=dataset, scores="logits", thresholds=thresholds, beta=config.beta,
                          training=training, **{"reference_at_0.5": reference},
                          seconds=round(time.perf_counter() - started, 2))
    return report, thresholds, test_prob


def _start_fold_pool(config: RunConfig, splits, device: str, early=None):
    """``(pool, plan)``: for a cross-fitted CPU run that trains folds in several processes
    (:func:`~evalkit.workflows.fold_pool.resolve_fold_processes`), the folds and a started
    :class:`~evalkit.workflows.fold_pool.FoldPool` (``early``, the workers started before the data
    was read, when given) whose workers already train fold 1's costly candidates
    (:func:`~evalkit.workflows.model_choice.prefetch_candidates`); else ``(None, plan or None)`` and
    ``early`` stopped. The caller enters the pool (leaving it stops the workers)."""
    from evalkit.workflows import model_choice
    from evalkit.workflows.fold_pool import FoldPool, resolve_fold_processes

    plan, processes = None, 1
    try:
        if config.folds > 1 and device == "cpu":
            plan = plan_folds(splits, config)
            processes = resolve_fold_processes(config, len(plan.folds[0][0]))
        if processes < 2:
            if early is not None:
                early.__exit__(None, None, None)
            return None, plan
        try:
            pool = early or FoldPool(processes - 1, config.threads)
        except OSError:  # no process could be started: the folds train one after another
            return None, plan
        pool.shrink(processes - 1)
        model_choice.prefetch_candidates(pool, plan, config, splits)
    except BaseException:
        if early is not None:
            early.__exit__(None, None, None)
        raise
    return pool, plan


def _warn_empty_labels(splits, emit) -> None:
    for name in ("train", "val", "test"):
        ds = getattr(splits, name)
        empty = [n for n, c in zip(ds.label_names, ds.Y.sum(axis=0)) if c == 0]
        if empty:
            shown = ", ".join(empty[:8]) + (f" (+{len(empty) - 8} more)" if len(empty) > 8 else "")
            emit("warning", text=f"{len(empty)} label(s) have no positives in the {name} split: {shown} "
                                 "(their average precision / AUROC are undefined there)")


# -- training ----------------------------------------------------------------------------------------


def epoch_metrics(row: dict, monitor: str) -> dict[str, float]:
    """The MLflow metrics of one epoch's history ``row``: ``train/loss``, ``val/loss`` and, when early
    stopping watches a metric, ``val/<metric>`` (``val/map``)."""
    m = {"train/loss": row["train_loss"], "val/loss": row["val_loss"]}
    if "val_metric" in row:
        m[f"val/{monitor.removeprefix('val_')}"] = row["val_metric"]
    return m


def _fit(model, loss_fn, train, val, config: RunConfig, device: str, emit, log_metrics):
    """One training run with progress events and per-epoch metrics (``log_metrics(dict, step)``)."""
    from evalkit.train import train_model

    emit("train_start", epochs=config.epochs, monitor=config.monitor)

    def on_epoch(row: dict) -> None:
        emit("epoch", row=row, monitor=config.monitor)
        if log_metrics is not None:
            log_metrics(epoch_metrics(row, config.monitor), step=row["epoch"])

    result = train_model(
        model, loss_fn, train.X, train.Y, val.X, val.Y,
        optimizer=config.optimizer, lr=config.lr, weight_decay=config.weight_decay, epochs=config.epochs,
        batch_size=config.batch_size, patience=config.patience, monitor=config.monitor, beta=config.beta,
        seed=config.seed, input_noise=config.input_noise, device=device, on_epoch=on_epoch,
    )
    emit("train_end", best_epoch=result.best_epoch, epochs_run=len(result.history), stopped_early=result.stopped_early)
    return result


def _build(config: RunConfig, data, train_Y):
    from evalkit.losses import build_loss
    from evalkit.models import build_model

    model = build_model(config.model, data.n_features, data.n_labels, hidden=config.hidden, dropout=config.dropout,
                        activation=config.activation, batch_norm=config.batch_norm, input_shape=data.X.shape[1:])
    return model, build_loss(config.loss, train_Y, config.loss_options)


def _train_once(splits, config: RunConfig, device: str, emit, run, fit_fold=None) -> Trained:
    """``folds = 1``: one model; thresholds are tuned on the validation split. ``fit_fold(k, train,
    held, config, log_metrics) -> TrainResult`` replaces build + fit (``--model auto``)."""
    from evalkit.scores import sigmoid
    from evalkit.train import predict_logits

    log = run.log_metrics if run else None
    if fit_fold is not None:
        res = fit_fold(1, splits.train, splits.val, config, log)
    else:
        model, loss_fn = _build(config, splits.train, splits.train.Y)
        res = _fit(model, loss_fn, splits.train, splits.val, config, device, emit, log)
    val_prob = sigmoid(predict_logits(res.model, splits.val.X, device))
    return Trained(res.model, val_prob, splits.val.Y, splits.train.label_cardinality, res.history, res.best_epoch,
                   res.stopped_early)


def _fold_logger(run, k: int):
    """``log_metrics`` of fold ``k``: every fold logs under ``fold<k>/`` (``fold1/train/loss``), so
    the run page lists the folds in order, none of them posing as the run's own curve."""
    prefix = f"fold{k}/"

    def log(metrics: dict, step: int | None = None) -> None:
        run.log_metrics({prefix + key: v for key, v in metrics.items()}, step=step)

    return log


def row_logger(log, monitor: str):
    """``log_metrics`` as a per-epoch callback: ``row`` -> :func:`epoch_metrics` at step ``row["epoch"]``
    (None when ``log`` is None)."""
    if log is None:
        return None
    return lambda row: log(epoch_metrics(row, monitor), step=row["epoch"])


def worker_result(out: dict, cfg: RunConfig, train, emit):
    """A model trained by a worker process (:func:`evalkit.workflows.fold_pool.train_fold` with
    ``cfg`` on ``train``; its curve was logged as it came, :func:`row_logger`) as a
    :class:`~evalkit.train.TrainResult`: the model rebuilt and loaded with the worker's weights, and
    ``train_end`` emitted, as for a model trained here."""
    from evalkit.train import TrainResult, seed_everything

    seed_everything(cfg.seed)
    model, _ = _build(cfg, train, train.Y)
    model.load_state_dict(out["state"])
    model.eval()
    emit("train_end", best_epoch=out["best_epoch"], epochs_run=len(out["history"]), stopped_early=out["stopped_early"])
    return TrainResult(model, out["history"], out["best_epoch"], out["stopped_early"])


class _Abandoned(Exception):
    """A fold trained in advance (:func:`_cross_fit`'s ``speculate``) is not needed: its model lost."""


@dataclass
class FoldPlan:
    """The cross-fitting folds of a run: ``full`` (train + validation rows) and, per fold, the
    ``(fit rows, out-of-fold rows)`` index arrays (multi-label stratified, seeded)."""
    full: Any
    folds: list

    def data(self, k: int, config: RunConfig):
        """``(seed, train, held)`` of fold ``k`` (1-based): its seed ``config.seed + k - 1`` and rows."""
        a, b = self.folds[k - 1]
        return config.seed + k - 1, self.full.subset(a), self.full.subset(b)


def plan_folds(splits, config: RunConfig) -> FoldPlan:
    """The ``config.folds`` folds of train + validation (``MultilabelStratifiedKFold``, ``config.seed``)."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    from evalkit.data.core import Dataset
    from evalkit.data.sparse import vstack

    tr, va = splits.train, splits.val
    full = Dataset(tr.name, vstack([tr.X, va.X]), np.concatenate([tr.Y, va.Y]), tr.feature_names,
                   tr.label_names, tr.source, dict(tr.meta))
    kfold = MultilabelStratifiedKFold(n_splits=config.folds, shuffle=True, random_state=config.seed)
    return FoldPlan(full, list(kfold.split(np.zeros((full.n_samples, 1)), full.Y)))


def _cross_fit(splits, config: RunConfig, device: str, emit, run, fit_fold=None, fold_config=None,
               plan: FoldPlan | None = None, pool=None) -> Trained:
    """Train ``config.folds`` models on stratified folds of train + validation.

    The scoring model is the fold models' probability average; the out-of-fold probabilities are the
    validation scores thresholds are tuned on; the test split is never touched here. Per-epoch
    metrics of fold k go to ``fold<k>/...`` (``fold1/`` included). ``fit_fold(k, train, held, config,
    log_metrics) -> TrainResult`` replaces build + fit (``--model auto``; on fold 1 with a pool it also
    gets ``while_waiting=speculate``, see below); ``fold_config(config)`` is
    then the config folds 2..K train with (the chosen candidate's). With ``fold_processes`` > 1,
    folds 2..K train in this process and worker processes at once (:mod:`evalkit.workflows.fold_pool`:
    the same models); ``pool`` is a :class:`~evalkit.workflows.fold_pool.FoldPool` already started
    by the caller (else one is started here), ``plan`` the folds already computed. While a worker
    still trains fold 1 (of the costly candidate, or of a named model), this process trains fold 2
    of it (``speculate``): kept when that model is the one folds 2..K train, dropped as soon as it
    lost; the same seed, rows and config, so the same model either way.
    """
    from contextlib import nullcontext

    from evalkit.models import probability_average
    from evalkit.scores import sigmoid
    from evalkit.train import TrainResult, predict_logits, preserved_rng, seed_everything
    from evalkit.workflows.fold_pool import FoldPool, resolve_fold_processes

    plan = plan or plan_folds(splits, config)
    full, folds = plan.full, plan.folds
    oof = np.zeros(full.Y.shape, dtype=np.float64)
    processes = (pool.workers + 1 if pool is not None else resolve_fold_processes(config, len(folds[0][0]))) \
        if device == "cpu" else 1
    results: dict[int, TrainResult] = {}

    def fold_data(k: int):
        return plan.data(k, config)

    fold_cfg = fold_config or (lambda cfg: cfg)  # the config folds 2..K train with (after the choice)
    early: dict[str, Any] = {}  # fold 2, trained here while a worker trained fold 1 (speculate)

    def local(k: int) -> TrainResult:
        seed, train, held = fold_data(k)
        seed_everything(seed)
        emit("fold", k=k, folds=config.folds, n_train=train.n_samples, n_out_of_fold=held.n_samples)
        log = _fold_logger(run, k) if run else None
        cfg = config.model_copy(update={"seed": seed})
        if fit_fold is not None:
            return fit_fold(k, train, held, cfg, log, **({"while_waiting": speculate} if k == 1 and pool else {}))
        if pool is not None and k == 1:
            pool.follow((1, cfg.model), row_logger(log, cfg.monitor))  # its curve, live
            if pool.pending((1, cfg.model)):  # a named model: fold 2 is needed whatever fold 1 gives
                speculate(lambda c: c, lambda: None if pool.pending((1, cfg.model)) else True, True)
        out = pool.take((1, cfg.model)) if pool is not None and k == 1 else None
        if out is not None:  # trained by a worker while this process set up tracking
            return worker_result(out, cfg, train, emit)
        seed_everything(seed)
        model, loss_fn = _build(cfg, full, train.Y)
        return _fit(model, loss_fn, train, held, cfg, device, emit, log)

    sent: dict[int, tuple] = {}  # what each worker fold was trained on (its model is rebuilt from it)

    def remote_args(k: int) -> tuple:
        seed, train, held = fold_data(k)
        cfg = config.model_copy(update={"seed": seed})
        sent[k] = (seed, train, held, fold_cfg(cfg))
        return sent[k]

    def logs(k: int):
        return row_logger(_fold_logger(run, k), fold_cfg(config).monitor) if run else None

    def log_rows(k: int, rows: list[tuple[dict, int]]) -> None:
        """Log fold ``k``'s epochs held back so far (``(metrics, step)`` each), then forget them."""
        if run:
            log = _fold_logger(run, k)
            for metrics, step in rows:
                log(metrics, step=step)
        rows.clear()

    def speculate(config_for, verdict, sure: bool) -> None:
        """While a worker trains fold 1 (of the model folds 2..K will train with if it wins), train
        fold 2 of it here (the same seed, rows and config as later: the same model), without a
        progress bar. ``verdict()`` (None: not known yet) is asked after each epoch until known: once
        it says the model won, the workers start on folds 3..K; if it lost, fold 2 stops. Its curve
        is logged live once the model won (``sure``: from the start); the epochs before wait."""
        if config.folds < 2:
            return
        seed, train, held = fold_data(2)
        cfg = config_for(config.model_copy(update={"seed": seed}))
        log = _fold_logger(run, 2) if run else None
        waiting: list[tuple[dict, int]] = []  # epochs not logged yet
        live = sure

        def epoch(metrics: dict, step: int) -> None:
            nonlocal fold_cfg, live
            if live:
                if log is not None:
                    log(metrics, step=step)
            else:
                waiting.append((metrics, step))
            if "won" not in early:
                with preserved_rng():  # collecting fold 1 reseeds; this fold's dropout goes on unchanged
                    won = verdict()
                if won is False:
                    raise _Abandoned
                if won:
                    early["won"] = True
                    fold_cfg = config_for  # what folds 3..K train with (the choice is made)
                    if not live:
                        live = True
                        log_rows(2, waiting)
                    pool.start(range(3, config.folds + 1), remote_args, logs)

        try:
            seed_everything(seed)
            model, loss_fn = _build(cfg, full, train.Y)
            res = _fit(model, loss_fn, train, held, cfg, device, lambda kind, **data: None, epoch)
        except Exception:  # it lost (or failed: trained again the usual way, which then reports it)
            return
        early["fold2"] = (cfg, res, waiting)

    try:
        owned = FoldPool(processes - 1, config.threads) if processes > 1 and pool is None else nullcontext(pool)
    except OSError:  # no process could be started: the folds train one after another
        owned = nullcontext(None)
    with owned as pool:
        results[1] = local(1)  # --model auto chooses here; the workers start meanwhile
        if pool is None:
            for k in range(2, config.folds + 1):
                results[k] = local(k)
        else:
            emit("note", text=f"folds 2-{config.folds}: {processes} processes train at once "
                              f"(this one and {processes - 1} worker process(es); --fold-processes)")
            first = 2
            if "fold2" in early and early["fold2"][0].model == fold_cfg(config).model:  # trained while waiting
                cfg, res, rows = early["fold2"]
                seed, train, held = fold_data(2)
                emit("fold", k=2, folds=config.folds, n_train=train.n_samples, n_out_of_fold=held.n_samples)
                log_rows(2, rows)
                emit("train_end", best_epoch=res.best_epoch, epochs_run=len(res.history),
                     stopped_early=res.stopped_early)
                results[2], first = res, 3
            if not pool.started:
                pool.start(range(first, config.folds + 1), remote_args, logs)
            for k, (where, out) in sorted(pool.finish(local).items()):
                if where == "local":
                    results[k] = out
                    continue
                _, train, held, cfg = sent[k]
                emit("fold", k=k, folds=config.folds, n_train=train.n_samples, n_out_of_fold=held.n_samples)
                results[k] = worker_result(out, cfg, train, emit)
    members = []
    for k in range(1, config.folds + 1):
        res = results[k]
        held = full.subset(folds[k - 1][1])
        oof[folds[k - 1][1]] = sigmoid(predict_logits(res.model, held.X, device))
        members.append(res.model)
    results = [results[k] for k in range(1, config.folds + 1)]
    ensemble = probability_average(members).to(device).eval()
    first = results[0]
    info = {"best_epoch_per_fold": [r.best_epoch for r in results],
            "epochs_run_per_fold": [len(r.history) for r in results]}
    return Trained(ensemble, oof, full.Y, full.label_cardinality, first.history, first.best_epoch,
                   first.stopped_early, info)
