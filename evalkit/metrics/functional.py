"""The functional pieces of the metric engine, as torchmetrics splits a metric: argument and tensor
validation, ``_format``, ``_update`` (per-batch statistics) and ``_compute`` (the metric values).
:class:`evalkit.metrics.MultilabelEngine` composes them with its states.

Definitions (N samples, C labels, tp/fp/fn/tn per label at the decision rule ``p >= threshold``)
------------------------------------------------------------------------------------------------
* precision = tp / (tp + fp), recall = tp / (tp + fn),
  F-beta = (1 + b^2) tp / ((1 + b^2) tp + b^2 fn + fp) - scikit-learn's definition
  (``precision_recall_fscore_support``, van Rijsbergen 1979). A 0/0 ratio takes ``zero_division``
  (0 or 1) exactly as scikit-learn does, per label / per sample before averaging.
* micro: the ratios of the counts summed over labels; macro: unweighted mean over labels;
  weighted: mean over labels weighted by support tp + fn (unweighted mean when every support is 0,
  as scikit-learn's ``_nanaverage``); samples: mean over samples of the per-sample ratios
  (Godbole & Sarawagi 2004; scikit-learn ``average="samples"``).
* accuracy (not in scikit-learn's averages; defined here): per label (tp + tn) / N.
  micro = (sum tp + sum tn) / (N C) = 1 - Hamming loss; macro = mean of the per-label accuracies
  (also = 1 - Hamming loss); weighted = support-weighted mean of per-label accuracies (unweighted
  when all supports are 0); samples = mean over samples of (tp_i + tn_i) / C (= 1 - Hamming loss).
* subset_accuracy: fraction of samples whose predicted label set equals the true set
  (scikit-learn ``accuracy_score`` on multilabel input); hamming_loss = (sum fp + sum fn) / (N C)
  (``hamming_loss``).
* threshold-free (from the scores, no threshold): per-label average precision (step-wise,
  ``average_precision_score``; 0 for a label without positives, as scikit-learn); mAP = the mean AP
  over the labels with at least one positive (an AP without positives is undefined), and beside it
  scikit-learn's all-label macro AP (``mean_average_precision_all_labels``); AUROC
  (``roc_auc_score``, ties counted 1/2; undefined - NaN, ``null`` in the report - when a label has
  only one class, excluded from the macro mean), their micro versions over all N*C (score, target) pairs, label ranking average
  precision, coverage error and label ranking loss (Tsoumakas et al. 2010; scikit-learn
  ``label_ranking_average_precision_score``, ``coverage_error``, ``label_ranking_loss``, with their
  edge cases: a sample with no or all labels relevant has LRAP 1 and ranking loss 0; a sample with
  no relevant label has coverage 0).

Exactness: counts are int64, ratios float64; per-sample means are accumulated as exact
fixed-point integer sums (2^-62 resolution), and threshold-free metrics are computed from sorted
integer keys, so results are bit-identical for any batching, row order and number of processes.
Exact threshold-free metrics match scikit-learn to ~1e-12.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from evalkit.errors import InputError
from evalkit.metrics import _kernels as K
from evalkit.metrics._parallel import submit
from evalkit.metrics.extra import prf
from evalkit.metrics.names import SAMPLE_SUMS
from evalkit.metrics.threshold_free import add_to_histogram, key_dtype, make_keys, make_logit_keys
from evalkit.metrics.values import Averages, MetricValues, frozen

ScoresKind = Literal["logits", "probabilities"]
ThresholdFree = Literal["exact", "streaming", "none"]

_CHUNK_ELEMS = 1 << 18  # values per task of the private pool (cache-sized key blocks for the numpy kernels)
_OP_ELEMS = 1 << 15
"""Values per torch op. torch parallelises an op (OpenMP) only above 32768 elements
(``at::internal::GRAIN_SIZE``), so the engine's torch ops run single-threaded in the pool thread
that handles the chunk: parallel over chunks, without OpenMP barriers (which stall badly when other
processes share the cores) and without touching torch's process-wide thread setting."""

# ---------------------------------------------------------------------------------------------
# the threshold rule


def _threshold_vector(threshold, num_labels: int) -> torch.Tensor:
    """``threshold`` (scalar, sequence or tensor) -> float64 CPU tensor (C,). Raises InputError."""
    try:
        if isinstance(threshold, torch.Tensor):
            t = threshold.detach().to("cpu", torch.float64).reshape(-1)
        else:
            t = torch.from_numpy(np.array(threshold, dtype=np.float64)).reshape(-1)  # a writable copy
    except (TypeError, ValueError):
        raise InputError(f"threshold: expected a number or {num_labels} numbers, got {threshold!r}") from None
    if t.numel() == 1:
        t = t.expand(num_labels).clone()
    if t.numel() != num_labels:
        raise InputError(f"threshold: expected a scalar or {num_labels} values (one per label), got {t.numel()}")
    if torch.isnan(t).any():
        raise InputError("threshold: expected numbers, got NaN")
    return t


def _comparable_threshold(thr64: torch.Tensor, dtype: torch.dtype, device) -> torch.Tensor:
    """Thresholds in ``dtype`` such that ``p >= out`` <=> ``float64(p) >= thr64`` for every p of ``dtype``.

    For float32 this is the smallest float32 >= the float64 threshold, so the comparison is exact
    (as if done in real numbers) yet runs at float32 speed.
    """
    if dtype == torch.float64:
        return thr64.to(device)
    t = thr64.to(dtype)
    below = t.to(torch.float64) < thr64
    t = torch.where(below, torch.nextafter(t, torch.full_like(t, math.inf)), t)
    return t.to(device)


def binarize(probabilities: torch.Tensor, threshold: float | torch.Tensor) -> torch.Tensor:
    """THE decision rule of evalkit: a label is predicted positive iff ``probability >= threshold``.

    Args:
        probabilities: ``(N, C)`` (or ``(C,)``) floating tensor, values in [0, 1].
        threshold: a scalar, or ``(C,)`` per-label thresholds (broadcast over the last dim). The
            comparison is exact in real numbers (a float32 probability is compared with the float64
            threshold without rounding the threshold).
    Returns:
        bool tensor of the shape of ``probabilities``, on its device.
    Raises:
        InputError: non-floating probabilities, or thresholds that do not match the last dimension.
    """
    if not isinstance(probabilities, torch.Tensor) or not probabilities.is_floating_point():
        raise InputError("probabilities: expected a floating torch.Tensor")
    C = probabilities.shape[-1] if probabilities.ndim else 1
    thr = _threshold_vector(threshold, C)
    p = probabilities if probabilities.dtype in (torch.float32, torch.float64) else probabilities.float()
    return p >= _comparable_threshold(thr, p.dtype, p.device)


# ---------------------------------------------------------------------------------------------
# validation


def _multilabel_engine_arg_validation(num_labels, scores, threshold_free, beta, zero_division, bins,
                                      label_names) -> tuple[int, float, list[str]]:
    """Validate the engine's arguments (see :class:`~evalkit.metrics.MultilabelEngine`).

    Returns:
        ``(C, beta as float, C label names)`` (default names ``label_0 ..``).
    Raises:
        InputError: ``num_labels`` not an integer >= 1, ``scores`` not logits / probabilities,
            unknown ``threshold_free``, ``beta`` not a number >= 0 (``inf`` allowed), ``zero_division`` not 0, 1
            or NaN (the float; the text ``"nan"`` is refused, as scikit-learn does),
            ``bins`` not an integer >= 16, ``label_names`` not C distinct names.
    """
    if isinstance(num_labels, bool) or not isinstance(num_labels, (int, np.integer)) or num_labels < 1:
        raise InputError(f"num_labels: expected an integer >= 1, got {num_labels!r}")
    C = int(num_labels)
    if scores not in ("logits", "probabilities"):
        raise InputError(f"scores: expected 'logits' or 'probabilities', got {scores!r}")
    if threshold_free not in ("exact", "streaming", "none"):
        raise InputError(f"threshold_free: expected 'exact', 'streaming' or 'none', got {threshold_free!r}")
    try:
        beta = float(beta)
    except (TypeError, ValueError):
        raise InputError(f"beta: expected a positive number, got {beta!r}") from None
    if not beta >= 0:
        raise InputError(f"beta: expected a number >= 0 (inf = recall, 0 = precision), got {beta!r}")
    if isinstance(zero_division, bool) or not (zero_division in (0, 1) or _is_nan(zero_division)):
        raise InputError(f"zero_division: expected 0.0, 1.0 or float('nan'), got {zero_division!r}")
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 16:
        raise InputError(f"bins: expected an integer >= 16, got {bins!r}")
    return C, beta, check_label_names(label_names, C)


def check_label_names(label_names, num_labels: int) -> list[str]:
    """``label_names`` as C distinct ``str`` (default ``label_0 ..`` for ``None``).

    Raises:
        InputError: not a sequence (a plain string is not one), not C names, a name given twice (per-class
            rows and metric keys are keyed by name: one label would hide the other).
    """
    C = num_labels
    if label_names is None:
        return [f"label_{i}" for i in range(C)]
    if isinstance(label_names, (str, bytes)) or not hasattr(label_names, "__iter__"):
        raise InputError(f"label_names: expected a sequence of {C} names, got {type(label_names).__name__}")
    names = [str(n) for n in label_names]
    if len(names) != C:
        raise InputError(f"label_names: expected {C} names, got {len(names)}")
    seen: set[str] = set()
    dupes = list(dict.fromkeys(n for n in names if n in seen or seen.add(n)))
    if dupes:
        raise InputError(f"label_names: {', '.join(map(repr, dupes[:5]))} given twice; expected distinct names")
    return names


def _as_tensor(x, name: str) -> torch.Tensor:
    """A numpy array / tensor / nested sequence as a tensor (no copy for native, contiguous arrays).

    Raises:
        InputError: non-numeric dtype or an object that is not array-like.
    """
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        if not (x.dtype == np.bool_ or x.dtype.kind in "uif"):
            raise InputError(f"{name}: expected a numeric array, got dtype {x.dtype}")
        if not x.dtype.isnative:
            x = x.astype(x.dtype.newbyteorder("="))
        with warnings.catch_warnings():  # read-only arrays (memmaps) are fine: inputs are never written
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(np.ascontiguousarray(x))
    try:
        return torch.as_tensor(np.asarray(x))
    except (TypeError, ValueError, RuntimeError):
        raise InputError(f"{name}: expected an (N, C) numeric array or tensor, got {type(x).__name__}") from None


def _multilabel_engine_tensor_validation(scores, targets, num_labels: int, scores_kind: ScoresKind) -> None:
    """Check one batch: types, shapes, dtypes, then values (chunk by chunk, bounded temporaries).

    Args:
        scores: ``(B, C)`` floating tensor: finite logits, or probabilities in [0, 1].
        targets: ``(B, C)`` bool / integer / floating tensor with values in {0, 1}.
    Raises:
        InputError: not tensors, wrong shape, non-floating scores, complex targets, NaN / inf
            scores, probabilities outside [0, 1], targets not in {0, 1}.
    """
    C = num_labels
    if not isinstance(scores, torch.Tensor):
        raise InputError(f"scores: expected a torch.Tensor of shape (B, {C}), got {type(scores).__name__}")
    if not isinstance(targets, torch.Tensor):
        raise InputError(f"targets: expected a torch.Tensor of shape (B, {C}), got {type(targets).__name__}")
    if scores.ndim != 2 or scores.shape[1] != C:
        raise InputError(f"scores: expected shape (B, {C}), got {tuple(scores.shape)}")
    if targets.shape != scores.shape:
        raise InputError(f"targets: expected shape {tuple(scores.shape)} (same as scores), got {tuple(targets.shape)}")
    if not scores.is_floating_point():
        raise InputError(f"scores: expected a floating dtype ({scores_kind}), got {scores.dtype}")
    if targets.is_complex():
        raise InputError(f"targets: expected values in {{0, 1}}, got dtype {targets.dtype}")
    scores, targets = _multilabel_engine_format(scores, targets)
    step = _rows_per_chunk(C)
    for f in [submit(_check_values, scores[s:s + step], targets[s:s + step], scores_kind)
              for s in range(0, scores.shape[0], step)]:
        f.result()  # in chunk order: the first bad chunk's error


def _rows_per_chunk(num_labels: int, elems: int = _CHUNK_ELEMS) -> int:
    return max(1, elems // num_labels)


def _op_slices(rows: int, num_labels: int):
    """Row slices of a chunk with at most :data:`_OP_ELEMS` values each (at least one row)."""
    step = _rows_per_chunk(num_labels, _OP_ELEMS)
    return [slice(r, r + step) for r in range(0, rows, step)]


def _check_values(s: torch.Tensor, t: torch.Tensor, scores_kind: ScoresKind) -> None:
    for sl in _op_slices(*s.shape):
        _check_scores(s[sl], scores_kind)
        _check_targets(t[sl])


def _check_scores(s: torch.Tensor, scores_kind: ScoresKind) -> None:
    if scores_kind == "logits":
        if not bool(torch.isfinite(s).all()):
            raise InputError("scores: expected finite logits, found NaN or inf")
        return
    lo, hi = torch.aminmax(s)
    if not (bool(lo >= 0) and bool(hi <= 1)):
        if not bool(torch.isfinite(s).all()):
            raise InputError("scores: expected finite probabilities in [0, 1], found NaN or inf")
        raise InputError(
            f"scores: expected probabilities in [0, 1], got values in [{lo.item():.6g}, {hi.item():.6g}]"
            " (declare scores='logits' for raw model outputs)")


def _check_targets(t: torch.Tensor) -> None:
    if t.dtype == torch.bool:
        return
    if t.dtype == torch.uint8:
        ok = bool(t.max() <= 1)
    elif not t.is_floating_point():
        lo, hi = torch.aminmax(t)
        ok = bool(lo >= 0) and bool(hi <= 1)
    else:
        ok = bool(((t == 0) | (t == 1)).all())
    if not ok:
        bad = t[(t != 0) & (t != 1)]
        raise InputError(f"targets: expected values in {{0, 1}}, found {bad.reshape(-1)[0].item()!r}")


# ---------------------------------------------------------------------------------------------
# format / update


def _multilabel_engine_format(scores: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Detach both (no autograd graph is kept) and upcast float16 / bfloat16 scores to float32.

    The sigmoid of logits is applied chunk by chunk in :func:`_multilabel_engine_update`, in the
    scores' dtype, for the threshold rule (and streaming bins) only; exact threshold-free metrics rank
    the logits themselves (:func:`~evalkit.metrics.threshold_free.make_logit_keys`).
    """
    scores, targets = scores.detach(), targets.detach()
    if scores.dtype not in (torch.float32, torch.float64):
        scores = scores.float()
    return scores, targets


def _multilabel_engine_update(scores: torch.Tensor, targets: torch.Tensor, thresholds: torch.Tensor,
                              scores_kind: ScoresKind, *, ranking: bool, keys_out: torch.Tensor | None = None,
                              streaming: tuple[torch.Tensor, ...] | None = None):
    """Statistics of one validated, formatted batch, in chunks of ~2^18 values on the private pool.

    Args:
        scores: ``(B, C)`` float32 / float64 logits or probabilities; targets: ``(B, C)`` in {0, 1}.
        thresholds: ``(C,)`` thresholds comparable in the scores' dtype (:func:`_comparable_threshold`).
        ranking: also compute the per-row ranking statistics (LRAP, ranking loss, coverage).
        keys_out: optional ``(B, C)`` int32 / int64 tensor filled with the sort keys (exact mode).
        streaming: optional ``(hist, bin_min, bin_max)`` states updated in place (streaming mode).
    Returns:
        ``(counts, rows, ranked)``: ``counts`` int64 tensor ``(3, C)`` = (tp, predicted, true)
        per label; ``rows`` int64 array ``(3, B)`` = the same per sample; ``ranked`` = ``(P,
        ap_sum, gt, min_a)`` arrays ``(B,)`` of :func:`evalkit.metrics._kernels.ranked_rows`, or
        ``None`` without ``ranking``. Results are combined in chunk order (deterministic).
    """
    B, C = scores.shape
    step = _rows_per_chunk(C)
    lock = threading.Lock()
    parts = [f.result() for f in [
        submit(_chunk_stats, scores[s:s + step], targets[s:s + step], thresholds, scores_kind, ranking,
               None if keys_out is None else keys_out[s:s + step], streaming, lock) for s in range(0, B, step)]]
    counts = parts[0][0]
    for c, _, _ in parts[1:]:
        counts = counts + c
    rows = np.concatenate([r for _, r, _ in parts], axis=1)
    ranked = tuple(np.concatenate(z) for z in zip(*(rk for _, _, rk in parts))) if ranking else None
    return counts, rows, ranked


def _chunk_stats(sc, tg, thr, scores_kind: ScoresKind, ranking: bool, keys_out, streaming, lock):
    """One chunk of :func:`_multilabel_engine_update`: ``(counts (3, C), rows (3, b), ranked | None)``.

    Row blocks of ``x = (tp, predicted, true)`` as float32 0/1 (exact sums below 2^24), each block
    within :data:`_OP_ELEMS` values, so every torch op runs single-threaded.
    """
    b, C = sc.shape
    keys = None
    if ranking:
        keys = keys_out if keys_out is not None else torch.empty(sc.shape, dtype=key_dtype(sc.dtype, scores_kind),
                                                                   device=sc.device)
    r = max(1, _OP_ELEMS // (3 * C))
    x = torch.empty((3, min(r, b), C), dtype=torch.float32, device=sc.device)
    cols = torch.zeros((3, C), dtype=torch.float32, device=sc.device)
    rows = torch.empty((3, b), dtype=torch.float32, device=sc.device)
    for s in range(0, b, r):
        p = torch.sigmoid(sc[s:s + r]) if scores_kind == "logits" else sc[s:s + r]
        xx = x[:, :p.shape[0]]
        torch.ge(p, thr, out=xx[1])  # predicted
        xx[2].copy_(tg[s:s + r])  # true
        torch.mul(xx[1], xx[2], out=xx[0])  # tp
        cols += xx.sum(dim=1)
        torch.sum(xx, dim=2, out=rows[:, s:s + r])
        if ranking:  # logits are ranked as logits (no sigmoid saturation ties)
            (make_logit_keys(sc[s:s + r], xx[2], keys[s:s + r]) if scores_kind == "logits"
             else make_keys(p, xx[2], keys[s:s + r]))
        if streaming is not None:
            add_to_histogram(p, xx[2], *streaming, lock=lock)
    ranked = K.ranked_rows(keys.cpu().numpy()) if ranking else None
    return cols.to(torch.int64), rows.to(torch.int64).cpu().numpy(), ranked


def _is_nan(x) -> bool:
    return isinstance(x, (float, np.floating)) and math.isnan(x)


def _multilabel_engine_sample_sums(rows: np.ndarray, ranked, num_labels: int, beta: float, zero_division: float):
    """Per-sample sums of one batch, from :func:`_multilabel_engine_update`'s ``rows`` / ``ranked``.

    Returns:
        ``(sample_fx, exact_match, coverage_sum)``: int64 array ``(2, 6)`` of fixed-point sums
        (:func:`evalkit.metrics._kernels.to_fixed`) of the per-sample precision, recall, F1,
        F-beta, LRAP and ranking loss (columns :data:`evalkit.metrics.names.SAMPLE_SUMS`; the last
        two 0 without ``ranked``), the number of exactly matched samples and the coverage sum.
    """
    C = num_labels
    tpi, predi, truei = rows
    exact = int(((tpi == predi) & (tpi == truei)).sum())
    vals = prf(*(r.astype(np.float64) for r in rows), beta, zero_division)
    cov = 0
    if ranked is not None:
        Pr, ap, gt, min_a = ranked[:4]
        pairs = Pr * (C - Pr)
        informative = pairs > 0
        vals.append(np.where(informative, ap / np.maximum(Pr, 1), 1.0))  # LRAP
        vals.append(np.where(informative, (pairs - gt) / np.maximum(pairs, 1), 0.0))  # ranking loss
        cov = int(np.where(Pr > 0, C - min_a, 0).sum())
    fx = np.zeros((2, len(SAMPLE_SUMS)), dtype=np.int64)
    for j, v in enumerate(vals):
        fx[:, j] = K.to_fixed(v)
    return fx, exact, cov


# ---------------------------------------------------------------------------------------------
# compute


def _multilabel_engine_compute(tp, fp, fn, tn, n_samples: int, exact_match: int, coverage_sum: int,
                               sample_fx: np.ndarray, ranked, *, beta: float, zero_division: float,
                               thresholds: np.ndarray, label_names: Sequence[str]) -> MetricValues:
    """All metric values from the accumulated statistics (definitions: module docstring).

    Args:
        tp, fp, fn, tn: int64 arrays ``(C,)``; n_samples: N >= 1; exact_match / coverage_sum: ints;
        sample_fx: int64 ``(2, 6)`` fixed-point per-sample sums (:func:`_multilabel_engine_sample_sums`);
        ranked: ``None`` (threshold_free="none") or ``(ap (C,), auroc (C,), micro_ap, micro_auroc)``
            from :mod:`evalkit.metrics.threshold_free`.
        thresholds: float64 ``(C,)``; label_names: C names.
    Returns:
        :class:`~evalkit.metrics.values.MetricValues`.
    Raises:
        InputError: ``n_samples == 0``.
    """
    N, C = int(n_samples), len(tp)
    if N == 0:
        raise InputError("metrics: no samples were given (update() was never called with data)")
    zd = float(zero_division)
    support = tp + fn
    pred = tp + fp
    per = prf(tp, pred, support, beta, zd)
    per_acc = (tp + tn) / float(N)
    w = support.astype(np.float64)

    def avg(x):
        return float(np.average(x, weights=w)) if w.sum() > 0 else float(np.mean(x))

    micro_acc = float((tp.sum() + tn.sum()) / (N * C))
    micro = Averages(micro_acc, *(float(v[0]) for v in prf(tp.sum(keepdims=True), pred.sum(keepdims=True),
                                                             support.sum(keepdims=True), beta, zd)))
    macro = Averages(float(np.mean(per_acc)), *(float(np.mean(v)) for v in per))
    weighted = Averages(avg(per_acc), *(avg(v) for v in per))
    smean = {k: K.from_fixed(int(sample_fx[0, j]), int(sample_fx[1, j])) / N for j, k in enumerate(SAMPLE_SUMS)}
    samples = Averages(micro_acc, smean["precision"], smean["recall"], smean["f1"], smean["fbeta"])
    ap = auroc = None
    tf = [None] * 9
    if ranked is not None:
        ap, auroc, micro_ap, micro_auc = ranked
        valid = ~np.isnan(auroc)
        positive = support > 0  # AP is defined only for labels with a positive (scikit-learn scores 0)
        tf = [float(np.mean(ap[positive])) if positive.any() else math.nan,
              float(np.mean(auroc[valid])) if valid.any() else math.nan, micro_ap, micro_auc,
              smean["lrap"], coverage_sum / N, smean["rloss"], float(np.mean(ap)), int(C - positive.sum())]
        ap, auroc = frozen(ap), frozen(auroc)
    return MetricValues(
        tuple(label_names), float(beta), N, frozen(np.asarray(thresholds, dtype=np.float64)),
        *(frozen(a) for a in (tp, fp, fn, tn, support, per_acc, *per)), ap, auroc,
        micro, macro, weighted, samples, exact_match / N, float((fp.sum() + fn.sum()) / (N * C)), *tf)
