"""Evaluation of a predictions file (``evalkit evaluate --predictions``): one streaming pass over its
batches through the metric engine, with bootstrap intervals and the kept test scores in the same pass,
and label maps applied batch by batch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from evalkit.config import DEFAULT_BETA
from evalkit.errors import InputError
from evalkit.report import Report, build_report, metrics_block


def evaluate_predictions(
    path: str,
    *,
    threshold: str | float | Sequence[float] = "0.5",
    beta: float = DEFAULT_BETA,
    threshold_free: str = "exact",
    batch_size: int = 65536,
    zero_division: float = 0.0,
    label_map: str | None = None,
    map_reduce: str = "max",
    scores_sink=None,
    ci: float | None = None,
    ci_resamples: int = 1000,
    ci_method: str = "percentile",
    seed: int = 0,
) -> Report:
    """Evaluate a predictions file (``.npz``, ``.parquet`` or ``.csv``; see :mod:`evalkit.metrics.io`)
    in batches, so a file larger than memory still evaluates (use ``threshold_free="streaming"``
    to keep threshold-free metrics in O(C x bins) memory).

    Args:
        path: the predictions file (targets ``(N, C)`` plus logits or probabilities ``(N, C)``).
        threshold: a cut in (0, 1) for every label, a sequence of one per label, or ``evaluate
            --threshold`` text (:func:`evalkit.thresholds.read_thresholds`: ``"0.3"``, ``"top-k:2"``, a
            JSON / CSV file), for the mapped labels when ``label_map`` is given.
        label_map: a label map file (:mod:`evalkit.labelmap`): the file's labels are mapped onto its
            targets (scores as probabilities, combined with ``map_reduce``: max, sum or mean), as
            ``evaluate --model --label-map`` does; the digest stays that of the file's targets.
            The report's ``dataset.digest`` is that of the file's targets, or, for a run's kept
            ``scores.parquet`` still holding its rows, the digest the file declares
            (:func:`evalkit.scores_file.declared_digest`: the run's own test rows).
        scores_sink: e.g. a :class:`~evalkit.scores_file.ScoresWriter`: ``add(targets, scores,
            labels, kind)`` gets every batch as evaluated.
        ci, ci_resamples, ci_method, seed: bootstrap intervals as :func:`evaluate_scores`'s, computed
            in the same pass in bounded memory (:class:`evalkit.stats.blocked.StreamingIntervals`:
            every label resampled exactly); mAP / macro AUROC from the engine's sort keys after the pass
            in the exact threshold-free mode, without an interval in the streaming mode.
    Raises:
        InputError: missing file, malformed content, thresholds that do not fit the labels, a bad
            label map.
    """
    from evalkit.stats.bootstrap import spec_or_none

    mapping = _PredictionsMap(label_map, map_reduce) if label_map else None
    stream = _PredictionsPass(threshold, beta, zero_division, threshold_free,
                              spec_or_none(ci or 0, ci_resamples, ci_method, seed))
    for t, scores, kind, labels in _batches(path, batch_size, mapping, stream.digest, scores_sink):
        stream.add(t, scores, kind, labels)
    if stream.engine is None or stream.n == 0:
        raise InputError(f"{path}: no samples")
    from evalkit.scores_file import declared_digest

    declared = None if mapping is not None else declared_digest(path, stream.n, stream.names)
    dataset = {"name": Path(path).stem, "n_samples": stream.n, "n_labels": len(stream.names),
               "digest": declared or stream.digest.hexdigest()[:16]}
    extra = mapping.report_blocks() if mapping is not None else {}
    metrics = stream.metrics(extra)
    return build_report(metrics, dataset=dataset, scores=stream.kind, thresholds=stream.thresholds, beta=beta, **extra)


class _PredictionsPass:
    """The one pass over a predictions file's batches: the metric engine and, with a bootstrap
    ``spec``, the streaming intervals (:class:`~evalkit.stats.blocked.StreamingIntervals`)."""

    def __init__(self, threshold, beta: float, zero_division: float, threshold_free: str, spec) -> None:
        import hashlib

        self.threshold, self.beta, self.zd, self.threshold_free, self.spec = threshold, beta, zero_division, \
            threshold_free, spec
        self.engine = self.thresholds = self.intervals = None
        self.kind, self.names, self.n, self.digest = "probabilities", [], 0, hashlib.sha256()

    def add(self, t, scores, kind: str, labels) -> None:
        """One batch: targets ``t`` ``(B, C)``, ``scores`` of ``kind``, the label names."""
        import torch

        from evalkit.metrics import MultilabelEngine
        from evalkit.thresholds.value import given_thresholds

        self.kind = kind
        if self.engine is None:
            self.names = [str(x) for x in labels]
            self.thresholds = given_thresholds(self.threshold, self.names)
            if self.thresholds.strategy.per_sample:
                raise InputError("--threshold: top-k:K needs every sample's scores at once; use --model, or "
                                 "evaluate_scores in Python")
            self.engine = MultilabelEngine(len(self.names), scores=kind, threshold=self.thresholds.array(),
                                           beta=self.beta, zero_division=self.zd, threshold_free=self.threshold_free,
                                           label_names=self.names)
            self.intervals = _streaming_intervals(self.spec, self.thresholds, kind, self.beta, self.zd,
                                                  self.threshold_free)
        self.engine.update(torch.as_tensor(np.asarray(scores)), torch.as_tensor(t))
        if self.intervals is not None:
            self.intervals.update(t, np.asarray(scores))
        self.n += t.shape[0]

    def metrics(self, extra: dict) -> dict:
        """The engine's metrics block, with the intervals (and their report blocks added to ``extra``)."""
        from evalkit.metrics.names import fbeta_key
        from evalkit.stats.bootstrap import report_block

        metrics = metrics_block(self.engine.compute())
        if self.intervals is not None:
            keys = sort_keys(self.engine)
            metrics["summary"] = self.intervals.add_to(metrics["summary"], fbeta_key(self.beta), self.names, keys)
            extra["confidence_interval"] = report_block(self.spec, (self.n, len(self.names)), keys is not None)
            if keys is None and self.threshold_free != "none":
                extra["confidence_interval"] |= {"without_interval": STREAMING_WITHOUT_CI, "why": STREAMING_CI_NOTE}
        return metrics


def sort_keys(engine) -> np.ndarray | None:
    """The engine's exact-mode sort keys as one ``(N, C)`` array in row order (``None`` in the
    streaming / no threshold-free modes, or when int32 and int64 pieces were mixed: row order lost)."""
    if engine.threshold_free != "exact":
        return None
    pieces = [k.reshape(-1, engine.num_labels).cpu().numpy() for k in engine.keys if k.numel() > 0]
    if not pieces or len({p.dtype for p in pieces}) > 1:
        return None
    return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)


STREAMING_CI_NOTE = ("mAP and macro AUROC have no confidence interval with --threshold-free streaming (they need every "
                     "row's score; the default exact mode, or evaluate_scores in Python, gives them)")
#: the report's ``confidence_interval.without_interval`` of a predictions file (summary keys)
STREAMING_WITHOUT_CI = ["mean_average_precision", "macro_auroc"]


def _streaming_intervals(spec, thresholds, kind: str, beta: float, zero_division: float, threshold_free: str):
    """The :class:`~evalkit.stats.blocked.StreamingIntervals` of ``spec`` (``None``: intervals off)."""
    if spec is None:
        return None
    from evalkit.stats.blocked import StreamingIntervals

    return StreamingIntervals(spec, thresholds.array(), scores_kind=kind, beta=beta, zero_division=zero_division,
                              ranking=threshold_free != "none")


def _batches(path: str, batch_size: int, mapping, h, sink):
    """The batches of a predictions file as evaluated: targets hashed into ``h`` as read, then the
    label map applied, then each batch given to ``sink`` (``add(targets, scores, labels, kind)``)."""
    from evalkit.metrics.io import iter_prediction_batches

    for targets, scores, kind, labels in iter_prediction_batches(path, batch_size):
        t = np.ascontiguousarray(targets)
        h.update(memoryview(np.ascontiguousarray(t, dtype=np.uint8)).cast("B"))
        if mapping is not None:
            t, scores, kind, labels = mapping(t, scores, kind, labels)
        if sink is not None:
            sink.add(t, scores, labels, kind)
        yield t, scores, kind, labels


class _PredictionsMap:
    """A label map applied to batches of a predictions file: ``(targets, scores, kind, labels)`` ->
    mapped targets ``(N, C_t)`` uint8, probabilities ``(N, C_t)``, ``"probabilities"``, target names."""

    def __init__(self, path: str, reduce: str):
        from evalkit.labelmap import read_label_map

        self.path, self.reduce, self.map, self.unmapped = path, reduce, read_label_map(path), []

    def __call__(self, targets, scores, kind: str, labels):
        from evalkit.labelmap import apply_label_map
        from evalkit.scores import sigmoid

        probabilities = sigmoid(np.asarray(scores)) if kind == "logits" else np.asarray(scores)
        Y, P, names, self.unmapped = apply_label_map(self.map, [str(x) for x in labels], targets, probabilities,
                                                     self.reduce)
        return Y, P.astype(np.float32), "probabilities", names

    def report_blocks(self) -> dict:
        """The report's ``label_map`` block and, when labels are left out, its ``notes``."""
        out: dict = {"label_map": {"file": str(self.path), "reduce": self.reduce, "targets": list(self.map.targets),
                                   "unmapped": self.unmapped}}
        if self.unmapped:
            out["notes"] = [unmapped_note(self.unmapped)]
        return out


def unmapped_note(unmapped: list[str]) -> str:
    """The note listing the labels a label map leaves out (at most 8 named)."""
    return (f"{len(unmapped)} label(s) not in the label map are left out: " + ", ".join(unmapped[:8])
            + (" ..." if len(unmapped) > 8 else ""))


# -- a trained model --------------------------------------------------------------------------------
