"""``--model auto``: choose the architecture on validation data only, and the training budget.

Protocol (docs/concepts/training.md, "Model choice"): with ``--model auto`` and flat features, every candidate of
:data:`evalkit.config.AUTO_CANDIDATES` (a linear one-vs-rest model and the MLP) is trained on the
first fold of cross-fitting (``--folds 1``: on the training split) and scored by the mAP of its
held-out part (the first fold's out-of-fold rows; ``--folds 1``: the validation split). The test
split is never seen. The best mAP wins (a tie goes to the earlier, simpler candidate); its first-fold
model is kept, and the remaining folds train the winner only. Image tensors (N, c, H, W) go to
``cnn`` or ``resnet18`` by their size, without a contest (:func:`image_choice`).

When ``linear`` is trained with folds > 1 and without early stopping (the auto candidate), the
test split is scored by one linear model refitted on all train + validation rows
(:func:`_refit_linear`); the thresholds stay fitted on the out-of-fold scores.

The choice is logged as params ``model.chosen`` and ``model.candidates`` (``linear=0.4912,mlp=0.4321``),
an artifact table ``model_choice.json`` / ``model_choice.csv`` and a ``note`` event.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from evalkit.budget import ARCH_DEFAULTS, BACKBONE_DEFAULTS
from evalkit.config import AUTO_CANDIDATES, RunConfig


def resolve_budget(config: RunConfig, splits) -> RunConfig:
    """``config`` with the training budget applied (:meth:`RunConfig.with_budget`) for ``splits``
    and a named architecture's own defaults (:func:`arch_defaults`) for the fields not given."""
    n_train = splits.train.n_samples + splits.val.n_samples
    if len(splits.train.X.shape) == 4 and not isinstance(splits.train.X, np.ndarray) and "folds" not in config.model_fields_set:
        config = config.model_copy(update={"folds": 1})  # streamed images: one model (each fold would stream the table)
    config = config.with_budget(n_train, splits.train.n_features, splits.train.n_labels)
    return config if config.model == "auto" else config.model_copy(update=arch_defaults(config, config.model))


def data_defaults(config: RunConfig) -> RunConfig:
    """``config`` as the data is read: a backbone starting from ImageNet weights (``--pretrained``,
    ``--weights``) takes pixels in [0, 1] and normalises them inside the model, so the features are
    not standardised unless ``--standardize`` was given."""
    from evalkit.images.backbones import BACKBONES

    imagenet = config.model in BACKBONES and (config.pretrained or config.weights)
    return config.model_copy(update={"standardize": False}) if imagenet and "standardize" not in config.model_fields_set else config


def arch_defaults(config: RunConfig, arch: str) -> dict:
    """The settings of :data:`~evalkit.budget.ARCH_DEFAULTS` (a torchvision backbone:
    :data:`~evalkit.budget.BACKBONE_DEFAULTS`) for ``arch`` that ``config`` was not given explicitly."""
    from evalkit.images.backbones import BACKBONES

    own = BACKBONE_DEFAULTS if arch in BACKBONES else ARCH_DEFAULTS.get(arch, {})
    return {k: v for k, v in own.items() if k not in config.model_fields_set}


def candidates(config: RunConfig, splits) -> list[str]:
    """The architectures ``config.model`` stands for: ``auto`` -> ``["linear", "mlp"]`` (images:
    ``["cnn"]``); a named architecture -> itself."""
    if config.model != "auto":
        return [config.model]
    return [image_choice(splits.train.X.shape)[0]] if len(splits.train.X.shape) == 4 else list(AUTO_CANDIDATES)


#: ``--model auto`` on images: the small CNN up to this side (px) and this many training images;
#: beyond either, resnet18 (the smallest standard ImageNet backbone: 11 M parameters)
AUTO_CNN_SIDE, AUTO_CNN_IMAGES = 32, 20_000


def image_choice(shape) -> tuple[str, str]:
    """``(architecture, why)`` of ``--model auto`` for images of ``shape`` ``(N, c, H, W)``."""
    import importlib.util

    n, side = int(shape[0]), int(max(shape[2:]))
    small = side <= AUTO_CNN_SIDE and n <= AUTO_CNN_IMAGES
    if small or importlib.util.find_spec("torchvision") is None:
        why = (f"{n} images of {side} px: the small CNN (3 conv blocks, 0.1 M parameters) is enough and fast"
               if small else "torchvision is not installed (pip install 'evalkit[images]' for resnet18)")
        return "cnn", f"--model auto: cnn ({why})"
    return "resnet18", (f"--model auto: resnet18 ({n} images of {side} px: more than a "
                        f"{AUTO_CNN_SIDE} px / {AUTO_CNN_IMAGES:,}-image set calls for a deeper network; "
                        f"the smallest standard backbone, 11 M parameters)")


def auto_note(config: RunConfig, splits) -> str | None:
    """The one line that says which architecture ``--model auto`` takes for images, and why."""
    shape = splits.train.X.shape
    return image_choice(shape)[1] if config.model == "auto" and len(shape) == 4 else None


def candidate_config(config: RunConfig, arch: str) -> RunConfig:
    """The config a candidate trains with: ``model = arch`` plus its settings in :data:`AUTO_CANDIDATES`."""
    update = {"model": arch, **arch_defaults(config, arch), **AUTO_CANDIDATES.get(arch, {})}
    if "epochs" in update and "epochs" in config.model_fields_set:  # an explicit --epochs caps a candidate's
        update["epochs"] = min(update["epochs"], config.epochs)
    return config.model_copy(update=update)


def check_architectures(config: RunConfig, splits) -> None:
    """Build every candidate once (architecture errors before a run starts)."""
    from evalkit.models import build_model
    from evalkit.workflows.training import image_options

    from evalkit.images.backbones import check_backbone_options
    from evalkit.images.lazy import is_lazy

    for arch in candidates(config, splits):
        c = candidate_config(config, arch)
        check_backbone_options(arch, c, streamed=is_lazy(splits.train.X))  # a table's --image-size: its streamed side
        build_model(arch, splits.train.n_features, splits.train.n_labels, hidden=c.hidden, dropout=c.dropout,
                    activation=c.activation, batch_norm=c.batch_norm, input_shape=splits.train.X.shape[1:],
                    image=image_options(c))


def validation_map(Y: np.ndarray, probabilities: np.ndarray) -> float:
    """mAP (macro average precision over labels with a positive) of held-out scores: the selection score."""
    from evalkit.metrics.threshold_free import mean_average_precision

    return mean_average_precision(Y, probabilities)


def strategy(config: RunConfig, splits, *, device: str, run=None, executor=None, plan=None):
    """``(fit_fold, config)``: how a fold trains for ``config.model`` (a
    :class:`~evalkit.workflows.training.FitFold`) and the config to train with: :class:`ModelChoice`
    for ``auto`` with several candidates (``executor``: where the costly candidates train; with the
    fold ``plan``, fold 1's are submitted at once, :meth:`ModelChoice.start`), else
    :class:`~evalkit.workflows.training.NamedModel` with ``model`` set to the architecture."""
    from evalkit.workflows.training import NamedModel

    archs = candidates(config, splits)
    if len(archs) == 1:
        own = arch_defaults(config, archs[0]) if config.model == "auto" else {}
        return NamedModel(device), config.model_copy(update={"model": archs[0], **own})
    choice = ModelChoice(archs, device=device, run=run, executor=executor)
    if plan is not None:
        choice.start(plan.task(1, config))
    return choice, config


def scoring_model(trained, fit_fold, config: RunConfig, splits, *, device: str, emit):
    """``trained`` with its ``fold_info`` (``model``; for ``auto``, ``model_choice``) and, for a
    cross-fitted linear model trained without early stopping, the scoring model refitted on every
    train + validation row (:func:`_refit_linear`)."""
    from dataclasses import replace

    chosen = getattr(fit_fold, "chosen", None)
    info: dict[str, Any] = {"model": chosen or config.model}
    if chosen is not None:
        info["model_choice"] = fit_fold.table
    linear = candidate_config(config, "linear") if chosen is not None else config
    if info["model"] == "linear" and config.folds > 1 and linear.monitor == "none":
        trained = replace(trained, model=_refit_linear(splits, linear, device, emit))
        info["scoring_model"] = "linear refit on train + validation"
    trained.fold_info.update(info)
    return trained


def _refit_linear(splits, config: RunConfig, device: str, emit):
    """The linear model refitted on every train + validation row: the scoring model of a cross-fitted
    linear run whose training never looks at held-out rows (``--model auto``'s linear candidate:
    L-BFGS to convergence, ``monitor = none``; a linear model early-stopped on its held-out rows keeps
    the fold average), so nothing needs holding out, and one convex fit on all rows beats the average of fold
    models fitted on (k-1)/k of them, as scikit-learn's ``LogisticRegression`` is fitted. The
    thresholds stay fitted on the folds' out-of-fold scores: the refit model never scores a row it
    will be thresholded on. Returns the model (eval mode)."""
    from evalkit.workflows.training import FoldTask, train_and_val, train_task

    full = train_and_val(splits)
    emit("note", text=f"linear model: refitting on all {full.n_samples} train + validation rows for the test "
                      "scores (thresholds stay fitted on the out-of-fold scores)")
    return train_task(FoldTask(1, 1, config.seed, full, splits.val, config), emit, None, device).model


class ModelChoice:
    """The ``--model auto`` :class:`~evalkit.workflows.training.FitFold`: on fold 1 it trains every
    candidate (the costly ones on ``executor``'s workers meanwhile, when given) and keeps the best by
    held-out mAP; the other folds then train the winner (:meth:`fold_config`)."""

    chooses = True

    def __init__(self, archs: list[str], *, device: str, run=None, executor=None):
        self.archs, self.device, self.run, self.executor = archs, device, run, executor
        self.chosen: str | None = None
        self.table: list[dict] = []
        self._started: tuple[Any, dict] | None = None  # (task, {arch: RemoteFold}) of :meth:`start`

    def _tasks(self, task) -> dict:
        return {arch: task.with_config(candidate_config(task.config, arch)) for arch in self.archs}

    def start(self, task) -> None:
        """Submit ``task``'s costly candidates (all but the first, the cheap linear model) to the
        executor now, e.g. before the MLflow run is set up: fold 1 trains them whatever the choice,
        so nothing is speculative. :meth:`__call__` takes them for the same task."""
        if self.executor is not None and self._started is None:
            self._submit(task)

    def _submit(self, task) -> None:
        tasks = self._tasks(task)
        self._started = (task, {arch: _remote_fold(self.executor, tasks[arch]) for arch in self.archs[1:]})

    def _remote(self, task, logs: dict) -> dict:
        """The candidates of ``task`` training in the executor's workers (started now when
        :meth:`start` was not called for this task), their epochs logged with ``logs``."""
        if self.executor is None:
            return {}
        if self._started is None or _key(self._started[0]) != _key(task):
            self._submit(task)
        remote = self._started[1]
        for arch, fold in remote.items():
            fold.follow(logs[arch])
        return remote

    def fold_config(self, config: RunConfig) -> RunConfig:
        """The config folds after the first train with: the chosen candidate's."""
        return candidate_config(config, self.chosen)

    def _row(self, arch: str, res, task) -> dict:
        """A candidate's row of the choice table: its mAP on the held-out rows and its training."""
        score = validation_map(task.held.Y, _scores(res.model, task.held.X, self.device))
        return {"model": arch, "val_map": round(score, 6), "best_epoch": res.best_epoch,
                "epochs_run": len(res.history), "n_train": task.train.n_samples, "n_validation": task.held.n_samples}

    def __call__(self, task, emit, log_metrics):
        """Train every candidate on ``task``, choose, and return the winner's result."""
        from evalkit.workflows.training import train_task

        tasks = self._tasks(task)
        logs = {arch: _prefixed(log_metrics, f"auto/{arch}/") for arch in self.archs}
        remote = self._remote(task, logs)
        results = {}
        for arch in self.archs:
            emit("note", text=f"--model auto: training candidate {arch} on {task.train.n_samples} rows, "
                              f"scoring it on {task.held.n_samples} validation rows")
            here = lambda arch=arch: train_task(tasks[arch], emit, logs[arch], self.device)  # noqa: E731
            results[arch] = remote[arch].result(emit, here) if arch in remote else here()
            self.table.append(self._row(arch, results[arch], task))
        self.chosen = _winner(self.table)
        for row in self.table:
            row["chosen"] = row["model"] == self.chosen
        res = results[self.chosen]
        if log_metrics is not None:  # the winner's curves under the standard names, as for a named model
            from evalkit.workflows.training import epoch_metrics

            for row in res.history:
                log_metrics(epoch_metrics(row, tasks[self.chosen].config.monitor), step=row["epoch"])
        shown = ", ".join(f"{r['model']} {r['val_map']:.4f}" for r in self.table)
        emit("note", text=f"--model auto chose {self.chosen} (validation mAP: {shown}; the test split is not used)")
        if self.run is not None:
            self._log_choice()
        return res

    def _log_choice(self) -> None:
        self.run.log_params({"model.chosen": self.chosen,
                             "model.candidates": ",".join(f"{r['model']}={r['val_map']:.4f}" for r in self.table)})
        self.run.log_dict({"protocol": "each candidate trained on the first fold (folds 1: the training split), "
                           "scored by mAP on its held-out rows (folds 1: the validation split); test never used",
                           "chosen": self.chosen, "candidates": self.table}, "model_choice.json")
        _log_table(self.run, self.table)


def _key(task) -> tuple:
    """What makes two :class:`~evalkit.workflows.training.FoldTask` of one plan the same task."""
    return task.k, task.folds, task.seed, task.config


def _remote_fold(executor, task):
    from evalkit.workflows.training import RemoteFold

    return RemoteFold(executor, task)


def _winner(table: list[dict]) -> str:
    """The candidate with the best validation mAP (an undefined one counts as -1; a tie goes to the
    earlier, simpler candidate)."""
    return max(table, key=lambda r: (r["val_map"] if r["val_map"] == r["val_map"] else -1.0))["model"]


def _scores(model, X, device: str) -> np.ndarray:
    """Held-out logits of a candidate (monotone in its probabilities, so the same mAP), batch by batch.
    The scoring stage's own ``predict_logits`` call stays the one that feeds thresholds."""
    from evalkit.data.sparse import dense_rows
    from evalkit.model_io import predict

    return np.concatenate([predict(model, dense_rows(X, slice(i, i + 4096)), device=device)
                           for i in range(0, X.shape[0], 4096)])


def _log_table(run, table: list[dict]) -> None:
    import csv
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model_choice.csv"
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(table[0]))
            w.writeheader()
            w.writerows(table)
        run.log_artifact(path)


def _prefixed(log_metrics, prefix: str):
    """``log_metrics`` with every key under ``prefix`` (a candidate's curves: ``auto/<arch>/...``);
    None when ``log_metrics`` is None."""
    if log_metrics is None:
        return None

    def log(metrics: dict, step: int | None = None) -> None:
        log_metrics({prefix + key: v for key, v in metrics.items()}, step=step)

    return log
