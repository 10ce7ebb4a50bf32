"""What a training run logs besides params: dataset inputs and summary, metrics, the report, the
per-class table, thresholds, the preprocessing record, the model and the plots.

Each function takes an open run (:class:`evalkit.tracking.RunLogger`) and prints nothing.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from evalkit.config import RunConfig
from evalkit.report import Report

#: tracked-metric prefix of the reference metrics at a fixed 0.5 cut (``test_at_0.5/micro_f2``)
REFERENCE_SPLIT = "test_at_0.5"

#: the co-occurrence heatmap (dataset/cooccurrence.png) is drawn up to this many labels (the CSV always)
MAX_HEATMAP_LABELS = 100


def log_dataset(run, splits, *, folds: int = 1) -> None:
    """Dataset inputs and the summary artifacts (``dataset/summary.json``, ``dataset/cooccurrence.csv``
    and ``dataset/cooccurrence.png``).

    ``splits``: as read, not standardised (the inputs' digests are ``Dataset.digest`` of these rows,
    as in ``evaluate --model``). The inputs state the rows really used: cross-fitting (``folds > 1``)
    trains on train + validation, one ``training`` input; ``folds = 1`` trains on train
    (``training``) and tunes on validation (``validation``). The test split is the ``evaluation`` input.
    """
    from evalkit.data.summary import cooccurrence, plot_cooccurrence, summarize

    from evalkit.data.sparse import shape_stub

    for ds, context in _inputs(splits, folds):
        run.log_dataset(shape_stub(ds.X), ds.Y, name=ds.name, digest=ds.digest, context=context,
                        source=ds.source or None)
    summary = summarize(splits)
    Y = np.concatenate([splits.train.Y, splits.val.Y, splits.test.Y])
    co = cooccurrence(Y, splits.label_names)
    run.log_dict({"name": splits.name, "digest": splits.digest, "splits": summary,
                  "cooccurrence": "dataset/cooccurrence.csv (all splits)"}, "dataset/summary.json")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cooccurrence.csv"
        co.to_csv(path)
        run.log_artifact(path, "dataset")
        label_counts(splits).to_csv(Path(tmp) / "label_counts.csv", index=False)
        run.log_artifact(Path(tmp) / "label_counts.csv", "dataset")
    if splits.train.n_labels <= MAX_HEATMAP_LABELS:  # a 1000 x 1000 heatmap costs seconds and shows nothing
        run.log_figure(plot_cooccurrence(co, title=f"Label co-occurrence: {splits.name} (all splits)"),
                       "dataset/cooccurrence.png")


def label_counts(splits):
    """Per-label example counts: a DataFrame ``label, train, val, test, total`` (positive rows of each
    split), logged as ``dataset/label_counts.csv``."""
    import pandas as pd

    counts = {name: getattr(splits, name).Y.sum(axis=0, dtype=np.int64) for name in ("train", "val", "test")}
    frame = pd.DataFrame({"label": list(splits.label_names), **counts})
    frame["total"] = frame[["train", "val", "test"]].sum(axis=1)
    return frame


def _inputs(splits, folds: int):
    """``[(Dataset, context)]`` of a training run (names: ``yeast-train+val``, ``yeast-test``)."""
    from evalkit.data.core import Dataset
    from evalkit.data.sparse import vstack

    tr, va, te = splits.train, splits.val, splits.test
    if folds > 1:  # vstack: sparse (CSR) features stay sparse
        used = Dataset(f"{splits.name}-train+val", vstack([tr.X, va.X]), np.concatenate([tr.Y, va.Y]),
                       tr.feature_names, tr.label_names, tr.source, dict(tr.meta))
        out = [(used, "training")]
    else:
        out = [(tr.subset(np.arange(tr.n_samples), f"{splits.name}-train"), "training"),
               (va.subset(np.arange(va.n_samples), f"{splits.name}-val"), "validation")]
    return out + [(te.subset(np.arange(te.n_samples), f"{splits.name}-test"), "evaluation")]


#: reader options naming a file or folder: recorded as absolute paths, as the dataset itself, so that
#: ``evaluate --model`` finds them from any working folder
_PATH_OPTIONS = ("image_root", "label_file")


def preprocess_for(config: RunConfig, splits, std_stats, thresholds) -> dict:
    """The ``preprocess.json`` record of a run: where the data came from, its train statistics, the
    thresholds and the architecture (what ``evaluate --model`` needs to reproduce the run)."""
    from evalkit.model_io import preprocess_record

    def where(spec):
        return str(Path(spec).resolve()) if spec and Path(spec).exists() else spec

    mean, std = std_stats if std_stats is not None else (None, None)
    record = preprocess_record(
        dataset={"spec": where(config.dataset), "test_dataset": where(config.test_dataset),
                 "reader_options": {k: where(v) if k in _PATH_OPTIONS else v for k, v in config.reader_options.items()},
                 "name": splits.name, "digest": splits.digest,
                 "test_size": config.test_size, "val_size": config.val_size, "seed": config.seed}
        | ({"one_hot": splits.train.meta["one_hot"]} if "one_hot" in splits.train.meta else {}),
        input_shape=splits.train.X.shape[1:], label_names=splits.label_names, standardize=std_stats is not None,
        mean=mean, std=std, threshold=thresholds.to_dict(),
        model={"arch": config.model, "hidden": list(config.hidden), "dropout": config.dropout,
               "activation": config.activation, "batch_norm": config.batch_norm},
    )
    from evalkit.images.lazy import image_record

    return record | image_record(splits.train.X, config)


def log_report(run, report: Report, extra_metrics: dict[str, float] | None = None, *, keys=(),
               class_metrics: bool = False) -> None:
    """The report's tracked metrics in one batch (:func:`evalkit.report.tracked_metrics`: the
    headline metrics, the ``keys`` gates name, per-class keys only with ``class_metrics``), tags of
    the degenerate labels, ``report.json``, and every label's row as the MLflow table
    ``per_class.json`` (rendered by the UI's artifact view) and as ``per_class.csv``
    (:func:`evalkit.report.per_class_table`: label, support, precision, recall, F-beta, AP, AUROC,
    threshold first)."""
    from evalkit.report import tracked_metrics, write_csv_atomic

    run.log_metrics(tracked_metrics(report, "test", keys=keys, class_metrics=class_metrics) | dict(extra_metrics or {}))
    tags = degenerate_tags(report)
    if tags:
        run.set_tags(tags)
    run.log_dict(dict(report), "report.json")
    frame = report.per_class_frame()
    run.log_table(frame, "per_class.json")
    with tempfile.TemporaryDirectory() as tmp:
        run.log_artifact(write_csv_atomic(frame, Path(tmp) / "per_class.csv"))


def degenerate_tags(report: Report) -> dict[str, str]:
    """The run tags ``evalkit.degenerate_labels.all`` / ``.none`` / ``.nearly_all`` / ``.nearly_none``
    (comma-separated labels, at most 5000 characters) of ``report["summary"]["degenerate_labels"]``; ``{}`` when there are none."""
    found = (report.get("summary") or {}).get("degenerate_labels") or {}
    return {f"evalkit.degenerate_labels.{kind}": ",".join(map(str, found[kind]))[:5000]
            for kind in ("all", "none", "nearly_all", "nearly_none") if found.get(kind)}


def log_run_results(run, report: Report, model, input_example: np.ndarray, *, config: RunConfig, preprocess: dict,
                    thresholds, val, test, test_digest: str | None = None) -> str | None:
    """Everything a training run logs after evaluation. Returns the registered model
    (``models:/NAME/VERSION``, with the alias when set) or ``None``.

    Args:
        val / test: ``(probabilities (N, C), targets (N, C))`` of the validation (out-of-fold) and test splits.
        test_digest: the test rows' digest (the ``evaluation`` input's), kept in ``scores.parquet``.
    """
    from evalkit.metrics.names import REFERENCE_SCALARS
    from evalkit.model_io import PREPROCESS_FILE
    from evalkit.report import headline_metrics

    ref = report.get("reference_at_0.5")
    # "test@0.5/..." would be the natural name, but MLflow rejects "@" in metric names
    extra = headline_metrics({"summary": ref["summary"], "beta": report["beta"]}, REFERENCE_SPLIT,
                             scalars=REFERENCE_SCALARS) if ref else {}
    log_report(run, report, extra, class_metrics=config.log_class_metrics)
    if "images" in report:  # --skip-bad-images: how many image rows were left out
        run.set_tags({"evalkit.skipped_images": str(report["images"]["skipped"])})
    run.log_dict(preprocess, PREPROCESS_FILE)
    registered = None
    if config.log_model:
        run.log_model(model, input_example, registered_model_name=config.register_model)
    if config.log_model and config.register_model:
        registered = run.registered_model(config.register_model, config.alias)
    log_thresholds(run, report, thresholds, config, val, test)
    if config.log_scores:
        log_scores(run, test[1], test[0], [r["label"] for r in report["per_class"]], thresholds, test_digest)
    return registered


def log_scores(run, targets, probabilities, labels, thresholds, digest: str | None) -> None:
    """``scores.parquet`` (:mod:`evalkit.scores_file`): row ids, targets and probabilities ``(N, C)``
    of the test rows, the thresholds and the rows' ``digest``, for ``evalkit compare RUN_A RUN_B``."""
    from evalkit.scores_file import SCORES_FILE, write_scores

    with tempfile.TemporaryDirectory() as tmp:
        run.log_artifact(write_scores(Path(tmp) / SCORES_FILE, targets, probabilities, labels, thresholds, digest))


def log_thresholds(run, report: Report, thresholds, config: RunConfig, val, test) -> None:
    """``thresholds.json``, ``thresholds.csv`` (label, threshold: readable by ``evaluate --threshold
    FILE``; not for top-k, which has no per-label cut) and the run's figures."""
    import pandas as pd

    from evalkit.plots import run_figures
    from evalkit.report import write_csv_atomic

    names = [r["label"] for r in report["per_class"]]
    run.log_dict(thresholds.to_dict() | {"labels": names}, "thresholds.json")
    if thresholds.values is not None:
        with tempfile.TemporaryDirectory() as tmp:
            frame = pd.DataFrame({"label": names, "threshold": list(thresholds.values)})
            run.log_artifact(write_csv_atomic(frame, Path(tmp) / "thresholds.csv"))
    import matplotlib.pyplot as plt

    for path, fig in run_figures(report, thresholds.strategy, val, test, beta=config.beta, objective=config.objective):
        try:
            run.log_figure(fig, path)
        finally:
            plt.close(fig)
