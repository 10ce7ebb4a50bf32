"""The training stage, one room: build a model and its loss, fit it, plan cross-fitting folds and
cross-fit them, here or on an executor.

* :func:`build` / :func:`fit` / :func:`train_task`: one model on one :class:`FoldTask`.
* :func:`plan_folds` -> :class:`FoldPlan`: the stratified folds of train + validation.
* :func:`cross_fit` ``(plan, fit_fold, executor)``: every fold's model; ``fit_fold`` is the strategy
  that trains a fold in this process (:class:`NamedModel`, or ``--model auto``'s
  :class:`~evalkit.workflows.model_choice.ModelChoice`); ``executor`` (a
  :class:`~evalkit.workflows.fold_pool.FoldPool`, or None) trains folds in worker processes at once.
  A fold gives the same model wherever it trains: it seeds Python, numpy and torch with its own
  seed (``seed + k - 1``) and trains on its own rows only (CPU, deterministic algorithms, the same
  ``--threads``).

Progress goes to ``emit`` (:mod:`.events`); a fold trained in a worker sends every event back
(``fold`` excepted, emitted here), replayed here in order when its model is collected, and its
epochs are logged as they end. Python warnings raised while a model trains become ``warning``
events, wherever it trains.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from evalkit.config import RunConfig

#: auto parallelism only when one fold's training is at least this much work (rows x hidden width
#: x epochs, a proxy of multiply-adds): below it, starting a worker (about 2 s) costs more than it saves
MIN_FOLD_WORK = 5e7
#: before the data is read, workers are started when a fold of this many rows would use them (the
#: decision is made again on the real size; workers a small dataset does not need are stopped)
EARLY_ROWS = 400

#: ``log_metrics(metrics, step)``: where a fold's per-epoch metrics go (an MLflow run's, prefixed)
LogMetrics = Callable[..., None]


@dataclass(frozen=True)
class FoldTask:
    """What one model trains on (picklable, sent to worker processes as is): fold ``k`` of ``folds``
    (``folds = 1``: the train / validation split), its ``seed``, ``train`` and ``held`` (early
    stopping, validation scores) :class:`~evalkit.data.core.Dataset` rows, and the ``config``."""

    k: int
    folds: int
    seed: int
    train: Any
    held: Any
    config: RunConfig

    def with_config(self, config: RunConfig) -> "FoldTask":
        """This task with another config (a candidate's, the chosen model's), the seed kept."""
        return replace(self, config=config.model_copy(update={"seed": self.seed}))


@dataclass(frozen=True)
class Trained:
    """The training stage's result: the scoring model, the validation scores thresholds are fitted
    on (``(N_val, C)`` float64 probabilities and targets: out-of-fold when cross-fitted), the
    training label cardinality, the first fold's history and early stopping, and fold info."""

    model: Any
    val_probabilities: np.ndarray
    val_targets: np.ndarray
    train_cardinality: float
    history: list[dict]
    best_epoch: int
    stopped_early: bool
    fold_info: dict[str, Any] = field(default_factory=dict)


def train_and_val(splits):
    """The train and validation rows of ``splits`` as one :class:`~evalkit.data.core.Dataset` (in that order)."""
    from evalkit.data.core import Dataset
    from evalkit.data.sparse import vstack

    tr, va = splits.train, splits.val
    return Dataset(tr.name, vstack([tr.X, va.X]), np.concatenate([tr.Y, va.Y]), tr.feature_names,
                   tr.label_names, tr.source, dict(tr.meta))


@dataclass(frozen=True)
class FoldPlan:
    """The cross-fitting folds of a run: ``full`` (train + validation rows) and, per fold, the
    ``(fit rows, out-of-fold rows)`` index arrays (multi-label stratified, seeded)."""

    full: Any
    folds: list

    def task(self, k: int, config: RunConfig) -> FoldTask:
        """Fold ``k`` (1-based): seed ``config.seed + k - 1``, its rows, ``config`` with that seed."""
        a, b = self.folds[k - 1]
        seed = config.seed + k - 1
        return FoldTask(k, len(self.folds), seed, self.full.subset(a), self.full.subset(b),
                        config.model_copy(update={"seed": seed}))


def plan_folds(splits, config: RunConfig) -> FoldPlan:
    """The ``config.folds`` folds of train + validation (``MultilabelStratifiedKFold``, ``config.seed``)."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    full = train_and_val(splits)
    kfold = MultilabelStratifiedKFold(n_splits=config.folds, shuffle=True, random_state=config.seed)
    return FoldPlan(full, list(kfold.split(np.zeros((full.n_samples, 1)), full.Y)))


def build(config: RunConfig, data, train_Y: np.ndarray):
    """``(model, loss_fn)`` of ``config`` for ``data``'s shape (``(N, F)`` features or ``(N, 3, H, W)``
    images), the loss built with ``train_Y`` ``(N, C)`` (``pos_weight`` from its label frequencies)."""
    from evalkit.losses import build_loss
    from evalkit.models import build_model

    model = build_model(config.model, data.n_features, data.n_labels, hidden=config.hidden, dropout=config.dropout,
                        activation=config.activation, batch_norm=config.batch_norm, input_shape=data.X.shape[1:],
                        image=image_options(config))
    if config.freeze_backbone:
        from evalkit.images.backbones import set_backbone_trainable

        set_backbone_trainable(model, False)
    return model, build_loss(config.loss, train_Y, config.loss_options)


def image_options(config: RunConfig) -> dict:
    """The options of a torchvision backbone (``--image-size``, ``--pretrained``, ``--weights``)."""
    return {"image_size": config.image_size, "pretrained": config.pretrained, "weights": config.weights}


def epoch_metrics(row: dict, monitor: str) -> dict[str, float]:
    """The MLflow metrics of one epoch's history ``row``: ``train/loss``, ``val/loss`` and, when early
    stopping watches a metric, ``val/<metric>`` (``val/map``)."""
    m = {"train/loss": row["train_loss"], "val/loss": row["val_loss"]}
    if "val_metric" in row:
        m[f"val/{monitor.removeprefix('val_')}"] = row["val_metric"]
    return m


def fit(model, loss_fn, train, val, config: RunConfig, device: str, emit, log_metrics: LogMetrics | None = None):
    """Train ``model`` on ``train`` (early stopping on ``val``) with progress events (``train_start``,
    ``epoch``, ``train_end``; a Python warning raised meanwhile: ``warning``) and per-epoch metrics
    (``log_metrics(dict, step=epoch)``). Returns :class:`~evalkit.train.TrainResult`.

    Raises:
        InputError: the loss became NaN / inf.
    """
    from evalkit.train import train_model

    emit("train_start", epochs=config.epochs, monitor=config.monitor)
    if config.amp != "off" and not str(device).startswith("cuda"):
        emit("note", text=f"--amp {config.amp}: CUDA only; training on {device} stays exact float32")

    def on_epoch(row: dict) -> None:
        if config.freeze_backbone and row["epoch"] == config.unfreeze_after:
            from evalkit.images.backbones import set_backbone_trainable

            set_backbone_trainable(model, True)
            emit("note", text=f"epoch {row['epoch']}: backbone unfrozen (--unfreeze-after {config.unfreeze_after})")
        emit("epoch", row=row, monitor=config.monitor)
        if log_metrics is not None:
            log_metrics(epoch_metrics(row, config.monitor), step=row["epoch"])

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        result = train_model(
            model, loss_fn, train.X, train.Y, val.X, val.Y,
            optimizer=config.optimizer, lr=config.lr, weight_decay=config.weight_decay, epochs=config.epochs,
            batch_size=config.batch_size, patience=config.patience, monitor=config.monitor, beta=config.beta,
            seed=config.seed, input_noise=config.input_noise, device=device, on_epoch=on_epoch, amp=config.amp,
        )
    for w in caught:
        emit("warning", text=f"training: {w.category.__name__}: {w.message}")
    emit("train_end", best_epoch=result.best_epoch, epochs_run=len(result.history), stopped_early=result.stopped_early)
    return result


def train_task(task: FoldTask, emit, log_metrics: LogMetrics | None = None, device: str = "cpu"):
    """Seed with ``task.seed``, :func:`build` ``task.config``'s model and :func:`fit` it: the model of
    ``task``, the same wherever it trains."""
    from evalkit.train import seed_everything

    if task.folds > 1:
        _warn_unlearnable_labels(task, emit)
    seed_everything(task.seed)
    model, loss_fn = build(task.config, task.train, task.train.Y)
    return fit(model, loss_fn, task.train, task.held, task.config, device, emit, log_metrics)


def _warn_unlearnable_labels(task: FoldTask, emit) -> None:
    """A ``warning`` naming the labels without a positive in fold ``task.k``'s training rows: that
    fold's model cannot learn them (it scores them as never present)."""
    names = task.train.label_names
    empty = [names[j] for j in np.flatnonzero(np.asarray(task.train.Y).sum(axis=0) == 0)]
    if empty:
        shown = ", ".join(empty[:8]) + (f" (+{len(empty) - 8} more)" if len(empty) > 8 else "")
        emit("warning", text=f"fold {task.k}: {len(empty)} label(s) have no positives in its {task.train.n_samples} "
                             f"training rows: {shown} (its model cannot learn them)")


def train_in_worker(task: FoldTask, emit=None):
    """:func:`train_task` on the CPU, as a worker process runs it (``emit``: where events go, none by default)."""
    from evalkit.workflows.events import Emitter

    return train_task(task, emit if emit is not None else Emitter())


class FitFold(Protocol):
    """How a fold is trained in this process: ``fit_fold(task, emit, log_metrics) -> TrainResult``;
    ``chooses`` (fold 1 must end before the others start) and ``fold_config(config)`` (the config
    the other folds train with, once fold 1 ended)."""

    chooses: bool
    run: Any  # the MLflow run a choice is logged to, set once the run exists (None: not logged)

    def __call__(self, task: FoldTask, emit, log_metrics: LogMetrics | None): ...

    def fold_config(self, config: RunConfig) -> RunConfig: ...


class NamedModel:
    """The :class:`FitFold` of a named architecture: every fold trains ``config.model`` (:func:`train_task`)."""

    chooses = False
    run = None  # unused: a named model has no choice to log

    def __init__(self, device: str) -> None:
        self.device = device

    def __call__(self, task: FoldTask, emit, log_metrics: LogMetrics | None):
        return train_task(task, emit, log_metrics, self.device)

    def fold_config(self, config: RunConfig) -> RunConfig:
        return config


class RemoteFold:
    """A :class:`FoldTask` submitted to an executor: its epochs are logged as they end (``log_metrics``,
    given now or later with :meth:`follow`), its other events kept until :meth:`result` replays them
    in the caller's thread."""

    def __init__(self, executor, task: FoldTask, log_metrics: LogMetrics | None = None) -> None:
        import threading

        self.task, self._log, self.events, self._lock = task, log_metrics, [], threading.Lock()
        self.future = executor.submit(train_in_worker, task, on_event=self._on_event)

    def _log_epoch(self, event) -> None:
        if event.kind == "epoch" and self._log is not None:
            row = event.data["row"]
            self._log(epoch_metrics(row, self.task.config.monitor), step=row["epoch"])

    def _on_event(self, event) -> None:  # in one of the executor's threads
        with self._lock:
            self._log_epoch(event)
            self.events.append(event)

    def follow(self, log_metrics: LogMetrics | None) -> None:
        """Log the epochs ended so far with ``log_metrics``, and the next ones as they end (a fold
        submitted before the MLflow run existed)."""
        with self._lock:
            self._log = log_metrics
            for event in self.events:
                self._log_epoch(event)

    def result(self, emit, here: Callable[[], Any]):
        """The trained model's result (its events replayed on ``emit``); ``here()`` trains it in this
        process instead when the worker never started it or died (a warning says so)."""
        from evalkit.workflows.fold_pool import NoWorkerLeft, WorkerDied

        if self.future.cancel():  # no worker took it yet
            return here()
        try:
            res = self.future.result()
        except NoWorkerLeft:  # the death of the last worker was told with the fold it was training
            return here()
        except WorkerDied as e:
            emit("warning", text=f"{e}; training it in this process instead")
            return here()
        for event in self.events:
            emit(event.kind, **event.data)
        return res


def fold_logger(run, k: int, prefix: str = "") -> LogMetrics | None:
    """``log_metrics`` of fold ``k``: keys under ``fold<k>/<prefix>`` (``fold1/train/loss``), so the
    run page lists the folds in order, none posing as the run's own curve. None without a run."""
    if run is None:
        return None
    head = f"fold{k}/{prefix}"
    return lambda metrics, step=None: run.log_metrics({head + key: v for key, v in metrics.items()}, step=step)


def cross_fit(plan: FoldPlan, fit_fold: FitFold, executor=None, *, config: RunConfig, emit, run=None,
              device: str = "cpu") -> list:
    """Train one model per fold of ``plan``; returns their :class:`~evalkit.train.TrainResult` in fold order.

    Fold 1 trains first, in this process, when ``fit_fold.chooses`` (``--model auto`` chooses the
    architecture there); the other folds train with ``fit_fold.fold_config(config)``. With an
    ``executor``, they are all submitted to it at once: its workers take them from the first, this
    process from the last, each taking the next when free. A fold whose worker died trains here.
    """
    tasks = [plan.task(k, config) for k in range(1, len(plan.folds) + 1)]
    results: dict[int, Any] = {}

    def here(task: FoldTask):
        from evalkit.train import seed_everything

        seed_everything(task.seed)
        emit("fold", k=task.k, folds=task.folds, n_train=task.train.n_samples, n_out_of_fold=task.held.n_samples)
        return fit_fold(task, emit, fold_logger(run, task.k))

    if fit_fold.chooses:
        results[1] = here(tasks[0])
        tasks = [t.with_config(fit_fold.fold_config(config)) for t in tasks[1:]]
        fit_fold = NamedModel(device)
    remote = {t.k: RemoteFold(executor, t, fold_logger(run, t.k)) for t in tasks} if executor is not None else {}
    if remote:
        emit("note", text=f"folds {tasks[0].k}-{tasks[-1].k}: {executor.workers + 1} processes train at once "
                          f"(this one and {executor.workers} worker process(es); --fold-processes)")
    for task in reversed(tasks) if remote else tasks:
        if task.k not in remote or remote[task.k].future.cancel():
            results[task.k] = here(task)
    for task in tasks:
        if task.k not in results:
            t = remote[task.k]
            emit("fold", k=task.k, folds=task.folds, n_train=task.train.n_samples, n_out_of_fold=task.held.n_samples)
            results[task.k] = t.result(emit, lambda t=task: fit_fold(t, emit, fold_logger(run, t.k)))
    return [results[k] for k in sorted(results)]


def _probabilities(model, X, device: str) -> np.ndarray:
    from evalkit.scores import sigmoid
    from evalkit.train import predict_logits

    return sigmoid(predict_logits(model, X, device))


def train_once(splits, fit_fold: FitFold, config: RunConfig, *, emit, run=None, device: str = "cpu") -> Trained:
    """``folds = 1``: one model trained on the training split (early stopping and thresholds on the
    validation split); its curves are logged under the run's own keys (``train/loss``)."""
    task = FoldTask(1, 1, config.seed, splits.train, splits.val, config)
    from evalkit.images.lazy import readable

    res = fit_fold(task, emit, run.log_metrics if run is not None else None)
    probabilities, targets = readable(_probabilities(res.model, splits.val.X, device), splits.val.Y)  # skipped images out
    return Trained(res.model, probabilities, targets, splits.train.label_cardinality, res.history, res.best_epoch,
                   res.stopped_early)


def out_of_fold(plan: FoldPlan, results: list, device: str = "cpu") -> Trained:
    """The cross-fitted :class:`Trained`: the fold models' probability average as the scoring model,
    each row's validation score from the fold model that did not train on it (out of fold)."""
    from evalkit.models import probability_average

    oof = np.zeros(plan.full.Y.shape, dtype=np.float64)
    for (_, held_rows), res in zip(plan.folds, results):
        oof[held_rows] = _probabilities(res.model, plan.full.subset(held_rows).X, device)
    ensemble = probability_average([r.model for r in results]).to(device).eval()
    first = results[0]
    info = {"best_epoch_per_fold": [r.best_epoch for r in results],
            "epochs_run_per_fold": [len(r.history) for r in results]}
    return Trained(ensemble, oof, plan.full.Y, plan.full.label_cardinality, first.history, first.best_epoch,
                   first.stopped_early, info)


# -- how many processes train folds --------------------------------------------------------------------


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a container's or taskset's limit)."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def resolve_fold_processes(config: RunConfig, n_fit: int) -> int:
    """The number of processes that train cross-fitting folds at once for ``config`` (``fold_processes``).

    An explicit value (>= 1) is kept, capped at ``folds - 1``. Auto (0): ``available_cores() //
    threads`` processes, capped at ``folds - 1``, when the run is cross-fitted on the CPU and one
    fold is at least :data:`MIN_FOLD_WORK` of work (``n_fit`` rows x hidden width x epochs); else 1.
    """
    folds_left = max(1, config.folds - 1)
    if config.fold_processes >= 1:
        return min(config.fold_processes, folds_left)
    if config.folds < 2 or config.device == "cuda":
        return 1
    width = 1 if config.model == "linear" else max(1, sum(config.hidden))
    if n_fit * width * config.epochs < MIN_FOLD_WORK:
        return 1
    return max(1, min(available_cores() // max(1, config.threads), folds_left))


def _gpu_likely() -> bool:
    """Whether this machine may have a CUDA device, judged without importing torch: an NVIDIA
    driver's control device (Linux; ``/dev/dxg`` under WSL)."""
    import os

    return any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/dxg"))


def _pool(processes: int, threads: int, warn: Callable[[str], None] | None):
    """A :class:`~evalkit.workflows.fold_pool.FoldPool` of ``processes - 1`` workers, or None when
    fewer than 2 processes are wanted or no worker can start (a process or thread limit: ``warn`` is
    told, and the folds train one after another in this process)."""
    from evalkit.workflows.fold_pool import FoldPool, PoolUnavailable
    from evalkit.workflows.warmups import fold_worker

    if processes < 2:
        return None
    try:
        return FoldPool(processes - 1, initializer=fold_worker, initargs=(threads,))
    except PoolUnavailable as e:
        if warn is not None:
            warn(f"{e}; the folds train one after another in this process")
        return None


def start_workers_early(config: RunConfig, warn: Callable[[str], None] | None = None):
    """Fold workers started first thing, before this process imports torch and reads the data, so
    that their start-up (importing torch, about 2 s) overlaps both: a pool when ``config`` would
    train folds in several processes on a dataset of :data:`EARLY_ROWS` fit rows on the CPU
    (``--device cpu``, or ``auto`` on a machine without an NVIDIA driver), else None.
    :func:`fold_workers` decides again on the real data and device."""
    if config.device != "cpu" and not (config.device == "auto" and not _gpu_likely()):
        return None
    return _pool(resolve_fold_processes(config, EARLY_ROWS), config.threads, warn)


def fold_workers(config: RunConfig, plan: FoldPlan | None, device: str, early=None,
                 warn: Callable[[str], None] | None = None):
    """The executor that trains folds beside this process for a run with ``plan`` on ``device``
    (``early``'s workers kept, as many as needed), or None (``early`` shut down): one process when
    not cross-fitted, not on the CPU, or too little work (:func:`resolve_fold_processes`). ``warn``:
    told when no worker can start."""
    processes = resolve_fold_processes(config, len(plan.folds[0][0])) if plan is not None and device == "cpu" else 1
    if processes < 2:
        if early is not None:
            early.shutdown()
        return None
    if early is None:
        return _pool(processes, config.threads, warn)
    early.shrink(processes - 1)
    return early
