"""Warm-ups: imports done ahead of time so that a later step starts at once. The only place for them.

Every profile only imports modules (and a fold worker sets its torch settings); none changes what
a run computes. Profiles:

* :func:`fold_worker`: a fold worker process (:mod:`.fold_pool`) before its first call: torch,
  the training modules and what ``torch.optim``'s first step imports (about 3 s in all, while the
  parent reads the data and sets up tracking).
* :func:`result_logging`: what logging a run's results imports that training did not (plots; with
  ``log_model`` also ``mlflow.pytorch`` and torch.export's tracer, about 0.7 s); run in a background
  thread while the run trains (:func:`in_background`).
* :func:`ray_cell`: a Ray worker before its first grid cell (:mod:`.executors`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable


def fold_worker(threads: int) -> None:
    """A fold worker's start (:class:`~evalkit.workflows.fold_pool.FoldPool`'s ``initializer``):
    training's torch settings (:func:`evalkit.train.apply_torch_settings`, ``threads`` on the CPU)
    and everything a training fold imports, before the first fold arrives."""
    import evalkit.losses  # noqa: F401
    import evalkit.metrics.threshold_free  # noqa: F401
    import evalkit.models  # noqa: F401
    from evalkit.torch_compat import import_optimizer_step_modules
    from evalkit.train import apply_torch_settings

    apply_torch_settings(threads, "cpu")
    import_optimizer_step_modules()


def result_logging(log_model: bool = True) -> None:
    """What :func:`evalkit.workflows.artifacts.log_run_results` imports that a run has not loaded yet."""
    if log_model:
        import mlflow.pytorch  # noqa: F401

        from evalkit.torch_compat import import_export_tracer

        import_export_tracer()
    from evalkit.plots import _plt

    _plt()  # matplotlib.pyplot on the Agg backend


def ray_cell(config: dict, tracking_uri: str | None) -> None:
    """A Ray worker before its first grid cell: the imports a cell needs (torch with what
    torch.optim's first step loads, MLflow, scikit-learn, pandas, torchmetrics, matplotlib: ~6 s in a
    fresh worker process), the dataset's reader and, when tracking, the connection to the store
    (:func:`~evalkit.tracking.ensure_store`, which waits under the store's lock while the driver
    creates a new one). Any failure is left for the cell itself to report (with its context)."""
    try:
        import mlflow  # noqa: F401

        from evalkit import losses, models, train  # noqa: F401
        from evalkit.config import RunConfig
        from evalkit.metrics import engine  # noqa: F401  (torchmetrics)
        from evalkit.plots import _plt
        from evalkit.torch_compat import import_optimizer_step_modules
        from evalkit.data import load_dataset

        import_optimizer_step_modules()
        _plt()  # matplotlib (Agg): the run's figures
        cfg = RunConfig(**config)
        load_dataset(cfg.dataset, cfg.test_dataset, **cfg.reader_options)  # the reader's imports and caches
        import iterstrat.ml_stratifiers  # noqa: F401  (the folds)
        if tracking_uri:
            from evalkit.tracking import ensure_store

            ensure_store(tracking_uri)
    except Exception:  # the cell reports it, with its context
        return


def in_background(fn: Callable[..., None], *args) -> threading.Thread | None:
    """Run the warm-up ``fn(*args)`` in a daemon thread; a failure there is ignored (the step that
    needs the import imports it again and reports any error itself). None when no thread can start."""

    def call() -> None:
        try:
            fn(*args)
        except Exception:  # an import error resurfaces, reported, where the module is really needed
            return

    try:
        t = threading.Thread(target=call, daemon=True, name=f"evalkit-warmup-{fn.__name__}")
        t.start()
    except RuntimeError:  # a thread limit: the step imports on its own
        return None
    return t
