"""``--model auto``: choose the architecture on validation data only, and the training budget.

Protocol (README "Model choice"): with ``--model auto`` and flat features, every candidate of
:data:`evalkit.config.AUTO_CANDIDATES` (a linear one-vs-rest model and the MLP) is trained on the
first fold of cross-fitting (``--folds 1``: on the training split) and scored by the mAP of its
held-out part (the first fold's out-of-fold rows; ``--folds 1``: the validation split). The test
split is never seen. The best mAP wins (a tie goes to the earlier, simpler candidate); its first-fold
model is kept, and the remaining folds train the winner only. Image tensors (N, 3, H, W) go to
``cnn`` without a choice.

When ``linear`` is trained with folds > 1 and without early stopping (the auto candidate), the
test split is scored by one linear model refitted on all train + validation rows
(:func:`_refit_linear`); the thresholds stay fitted on the out-of-fold scores.

The choice is logged as params ``model.chosen`` and ``model.candidates`` (``linear=0.4912,mlp=0.4321``),
an artifact table ``model_choice.json`` / ``model_choice.csv`` and a ``note`` event.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from evalkit.config import AUTO_CANDIDATES, RunConfig


def resolve_budget(config: RunConfig, splits) -> RunConfig:
    """``config`` with the training budget applied (:meth:`RunConfig.with_budget`) for ``splits``."""
    n_train = splits.train.n_samples + splits.val.n_samples
    return config.with_budget(n_train, splits.train.n_features, splits.train.n_labels)


def candidates(config: RunConfig, splits) -> list[str]:
    """The architectures ``config.model`` stands for: ``auto`` -> ``["linear", "mlp"]`` (images:
    ``["cnn"]``); a named architecture -> itself."""
    if config.model != "auto":
        return [config.model]
    return ["cnn"] if len(splits.train.X.shape) == 4 else list(AUTO_CANDIDATES)


def candidate_config(config: RunConfig, arch: str) -> RunConfig:
    """The config a candidate trains with: ``model = arch`` plus its settings in :data:`AUTO_CANDIDATES`."""
    update = {"model": arch, **AUTO_CANDIDATES.get(arch, {})}
    if "epochs" in update and "epochs" in config.model_fields_set:  # an explicit --epochs caps a candidate's
        update["epochs"] = min(update["epochs"], config.epochs)
    return config.model_copy(update=update)


def check_architectures(config: RunConfig, splits) -> None:
    """Build every candidate once (architecture errors before a run starts)."""
    from evalkit.models import build_model

    for arch in candidates(config, splits):
        c = candidate_config(config, arch)
        build_model(arch, splits.train.n_features, splits.train.n_labels, hidden=c.hidden, dropout=c.dropout,
                    activation=c.activation, batch_norm=c.batch_norm, input_shape=splits.train.X.shape[1:])


def validation_map(Y: np.ndarray, probabilities: np.ndarray) -> float:
    """mAP (macro average precision over labels with a positive) of held-out scores: the selection score."""
    from evalkit.metrics.threshold_free import mean_average_precision

    return mean_average_precision(Y, probabilities)


def train(splits, config: RunConfig, device: str, emit, run, plan=None, pool=None):
    """The training stage of :func:`evalkit.workflows.experiment.run_experiment`: cross-fitting (or
    one model) of ``config.model``, choosing among the candidates first when it is ``auto``.
    Returns :class:`~evalkit.workflows.experiment.Trained` whose ``fold_info`` holds ``model`` (the
    architecture trained) and, for ``auto``, ``model_choice`` (each candidate's validation mAP)."""
    from evalkit.workflows import experiment as ex

    archs = candidates(config, splits)
    chooser = None if len(archs) == 1 else _Chooser(archs, config, device, emit, run, pool)
    cfg = config.model_copy(update={"model": archs[0]}) if chooser is None else config
    fit_fold = chooser.fit_fold if chooser is not None else None
    if config.folds > 1:
        trained = ex._cross_fit(splits, cfg, device, emit, run, fit_fold=fit_fold,
                                fold_config=chooser.fold_config if chooser is not None else None, plan=plan, pool=pool)
    else:
        trained = ex._train_once(splits, cfg, device, emit, run, fit_fold=fit_fold)
    info: dict[str, Any] = {"model": archs[0] if chooser is None else chooser.chosen}
    if chooser is not None:
        info["model_choice"] = chooser.table
    linear = candidate_config(config, "linear") if chooser is not None else cfg
    if info["model"] == "linear" and config.folds > 1 and linear.monitor == "none":
        from dataclasses import replace

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
    from evalkit.data.core import Dataset
    from evalkit.data.sparse import vstack
    from evalkit.train import seed_everything
    from evalkit.workflows.experiment import _build, _fit

    tr, va = splits.train, splits.val
    full = Dataset(tr.name, vstack([tr.X, va.X]), np.concatenate([tr.Y, va.Y]), tr.feature_names,
                   tr.label_names, tr.source, dict(tr.meta))
    emit("note", text=f"linear model: refitting on all {full.n_samples} train + validation rows for the test "
                      "scores (thresholds stay fitted on the out-of-fold scores)")
    seed_everything(config.seed)
    model, loss_fn = _build(config, full, full.Y)
    return _fit(model, loss_fn, full, va, config, device, emit, None).model


def prefetch_candidates(pool, plan, config: RunConfig, splits) -> list[str]:
    """Start fold 1's costly candidates (all but the first, the cheap linear model; a named model:
    fold 1 itself) on ``pool``'s workers, so that they train while this process sets up tracking; the chooser takes them
    (:meth:`FoldPool.take`) with the same seed, rows and config it would train them with. Returns the
    candidates started."""
    if config.folds < 2:
        return []
    started = []
    seed, train, held = plan.data(1, config)
    archs = candidates(config, splits)
    for arch in archs[1:] if len(archs) > 1 else archs:  # a named model: fold 1 itself
        if pool.prefetch((1, arch), (seed, train, held, candidate_config(config.model_copy(update={"seed": seed}), arch))):
            started.append(arch)
    return started


class _Chooser:
    """``fit_fold`` of the cross-fitting loop: on fold 1 it trains every candidate and keeps the best
    by held-out mAP; on later folds it trains the winner."""

    def __init__(self, archs: list[str], config: RunConfig, device: str, emit, run, pool=None):
        self.archs, self.config, self.device, self.emit, self.run = archs, config, device, emit, run
        self.pool = pool  # a FoldPool whose workers may hold fold 1's candidates (prefetch_candidates)
        self.chosen: str | None = None
        self.table: list[dict] = []

    def _row(self, arch: str, res, train, held) -> dict:
        """A candidate's row of the choice table: its mAP on ``held`` and its training."""
        score = validation_map(held.Y, _scores(res.model, held.X, self.device))
        return {"model": arch, "val_map": round(score, 6), "best_epoch": res.best_epoch,
                "epochs_run": len(res.history), "n_train": train.n_samples, "n_validation": held.n_samples}

    def fold_config(self, config: RunConfig) -> RunConfig:
        """The config folds after the first train with: the chosen candidate's (after fold 1)."""
        return candidate_config(config, self.chosen)

    def fit_fold(self, k: int, train, held, config: RunConfig, log_metrics, while_waiting=None):
        """Train fold ``k`` on ``train``; ``held`` (validation rows) scores the candidates on fold 1.

        ``while_waiting(config_for, verdict, sure)``: called on fold 1 when the last candidate is
        still training in a worker process (:func:`prefetch_candidates`), to train fold 2 meanwhile
        in case it wins (``config_for(config)``: that candidate's config; ``verdict()``: None while
        unknown, then whether it won; ``sure``: False, it may lose)."""
        from evalkit.train import seed_everything
        from evalkit.workflows.experiment import _build, _fit, row_logger, worker_result

        if self.chosen is not None:
            c = self.fold_config(config)
            model, loss_fn = _build(c, train, train.Y)
            return _fit(model, loss_fn, train, held, c, self.device, self.emit, log_metrics)
        results = {}
        for i, arch in enumerate(self.archs):
            seed_everything(config.seed)
            c = candidate_config(config, arch)
            self.emit("note", text=f"--model auto: training candidate {arch} on {train.n_samples} rows, "
                                   f"scoring it on {held.n_samples} validation rows")
            log = _prefixed(log_metrics, f"auto/{arch}/") if log_metrics is not None else None
            key = (1, arch)
            got: dict[str, Any] = {}

            def collect(c=c, key=key, got=got) -> None:
                """The worker's model of this candidate (None: its worker died), once."""
                if "out" not in got:
                    out = self.pool.take(key)
                    got["out"] = None if out is None else worker_result(out, c, train, self.emit)

            def verdict(arch=arch, got=got, collect=collect, key=key) -> bool | None:
                if "won" not in got:
                    if self.pool.pending(key):
                        return None
                    collect()
                    res = got["out"]
                    if res is not None:
                        got["row"] = self._row(arch, res, train, held)
                    got["won"] = res is not None and _winner(self.table + [got["row"]]) == arch
                return got["won"]

            if self.pool is not None and k == 1:
                self.pool.follow(key, row_logger(log, c.monitor))  # its curve, live
                if while_waiting is not None and i == len(self.archs) - 1 and self.pool.pending(key):
                    while_waiting(lambda cfg, arch=arch: candidate_config(cfg, arch), verdict, False)
                collect()
            res = got.get("out")
            if res is None:  # trained here (no pool, or its worker died)
                seed_everything(config.seed)
                model, loss_fn = _build(c, train, train.Y)
                res = _fit(model, loss_fn, train, held, c, self.device, self.emit, log)
            results[arch] = res
            self.table.append(got["row"] if "row" in got else self._row(arch, res, train, held))  # scored once
        self.chosen = _winner(self.table)
        for row in self.table:
            row["chosen"] = row["model"] == self.chosen
        res = results[self.chosen]
        if log_metrics is not None:  # the winner's curves under the standard names, as for a named model
            for row in res.history:
                m = {"train/loss": row["train_loss"], "val/loss": row["val_loss"]}
                if "val_metric" in row:
                    m[f"val/{config.monitor.removeprefix('val_')}"] = row["val_metric"]
                log_metrics(m, step=row["epoch"])
        shown = ", ".join(f"{r['model']} {r['val_map']:.4f}" for r in self.table)
        self.emit("note", text=f"--model auto chose {self.chosen} (validation mAP: {shown}; the test split is not used)")
        if self.run is not None:
            self.run.log_params({"model.chosen": self.chosen,
                                 "model.candidates": ",".join(f"{r['model']}={r['val_map']:.4f}" for r in self.table)})
            self.run.log_dict({"protocol": "each candidate trained on the first fold (folds 1: the training split), "
                               "scored by mAP on its held-out rows (folds 1: the validation split); test never used",
                               "chosen": self.chosen, "candidates": self.table}, "model_choice.json")
            _log_table(self.run, self.table)
        return res


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
    """``log_metrics`` with every key under ``prefix`` (a candidate's curves: ``auto/<arch>/...``)."""

    def log(metrics: dict, step: int | None = None) -> None:
        log_metrics({prefix + key: v for key, v in metrics.items()}, step=step)

    return log
