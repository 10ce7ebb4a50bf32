"""The metric engine: every multi-label metric evalkit reports, from one streaming pass.

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
  ``average_precision_score``; 0 for a label without positives, as scikit-learn), AUROC
  (``roc_auc_score``, ties counted 1/2; ``None`` when a label has only one class, excluded from the
  macro mean), their micro versions over all N*C (score, target) pairs, label ranking average
  precision, coverage error and label ranking loss (Tsoumakas et al. 2010; scikit-learn
  ``label_ranking_average_precision_score``, ``coverage_error``, ``label_ranking_loss``, with their
  edge cases: a sample with no or all labels relevant has LRAP 1 and ranking loss 0; a sample with
  no relevant label has coverage 0).

Exactness: counts are int64, ratios float64; per-sample means are accumulated as exact
fixed-point integer sums (2^-62 resolution), and threshold-free metrics are computed from sorted
integer keys, so results are bit-identical for any batching, row order and number of processes.
Exact threshold-free metrics match scikit-learn to ~1e-12.

Why one ``torchmetrics.Metric`` with its own states (and not torchmetrics' multilabel metrics):
those apply a sigmoid per batch whenever a value lies outside [0, 1] (torchmetrics issues #1604,
#3269), so a batch of probabilities and a batch of logits are silently mixed; and
``MetricCollection`` compute groups can merge metrics that only look alike (#2596). Here the caller
declares logits or probabilities, and every number comes from one pass over each batch.

Performance: the per-batch work runs in chunks of ~2^18 values on a 2-thread pool with
single-threaded torch ops (OpenMP barriers stall badly when other processes share the cores);
sorting and binary searches use numpy (SIMD sort of int32 keys), also on the pool.
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from contextlib import contextmanager
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from torchmetrics import Metric

from evalkit.errors import InputError
from evalkit.metrics import _kernels as K

ScoresKind = Literal["logits", "probabilities"]
ThresholdFree = Literal["exact", "streaming", "none"]

DEFAULT_BINS = 4096
"""Default number of streaming bins (see :class:`MultilabelEngine`)."""
STREAM_LOGIT_RANGE = 16.0
"""Streaming bins are uniform in logit space on [-16, 16) (see :func:`stream_bin_index`)."""

_CHUNK_ELEMS = 1 << 18  # elements per internal update chunk (cache-sized temporaries, exact float32 sums)
_SORT_ELEMS = 1 << 21  # elements per block of the exact threshold-free computation
_MICRO_COPY = 1 << 26  # micro AP / AUROC: up to this many keys, sort one full copy (else buckets)
_THREADS = max(1, min(2, torch.get_num_threads(), os.cpu_count() or 1))
_SAMPLE_KEYS = ("precision", "recall", "f1", "fbeta", "lrap", "rloss")


def _fbeta_key(beta: float) -> str:
    return f"f{beta:g}"


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


def _as_tensor(x, name: str) -> torch.Tensor:
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


def _describe_bad_targets(t: torch.Tensor) -> str:
    bad = t[(t != 0) & (t != 1)]
    return f"{bad.reshape(-1)[0].item()!r}"


# ---------------------------------------------------------------------------------------------
# the engine


class MultilabelEngine(Metric):
    """All multi-label metrics of evalkit in one ``torchmetrics.Metric`` (one pass per batch).

    Args:
        num_labels: C >= 1 (C = 1 is accepted; ranking metrics are then trivial: LRAP 1,
            ranking loss 0, coverage = 1 for a positive sample else 0).
        scores: ``"logits"`` (raw outputs; the engine applies ``torch.sigmoid`` in the input dtype,
            so passing ``torch.sigmoid(logits)`` as probabilities gives identical results) or
            ``"probabilities"`` (must lie in [0, 1]). Declared by the caller, never guessed.
        threshold: scalar or ``(C,)``; a label is predicted iff probability >= threshold
            (:func:`binarize`). Applies to probabilities also when ``scores="logits"``.
        beta: the F-beta reported besides F1, key ``f{beta:g}`` (``"f2"``, ``"f0.5"``).
        zero_division: value of a 0/0 precision / recall / F (0.0 or 1.0, as scikit-learn).
        threshold_free:
            ``"exact"``: keeps one int32 sort key per (sample, label) (int64 for float64 scores), i.e.
            4 bytes x N x C, and computes AP / AUROC exactly at ``compute()``, matching
            scikit-learn to ~1e-12.
            ``"streaming"``: memory O(C x bins), independent of N: per label and bin, the counts
            of positive and negative probabilities and the smallest / largest probability seen
            (as float32; 24 bytes per label and bin: 96 KiB per label at the default 4096 bins). Bins are
            uniform in logit space on [-16, 16] (:func:`stream_bin_index`; beyond: two end bins).
            A bin holding one distinct value is an exact tie group; in a bin holding several
            values the positives get their expected precision under a random order inside the
            bin (closed form, see :func:`evalkit.metrics._kernels.ranked_groups`) and pos/neg pairs
            count 1/2 for AUROC. So AP / AUROC are exact whenever no two distinct scores share a
            bin, and otherwise the error vs exact is second order in the bin width (logit width
            32 / (bins - 2) = 0.0078 at 4096 bins): measured <= 4e-5 per label (AP and AUROC) on
            N = 100,000 with 0.5%..50% prevalence, and tested <= 1e-3 (per label, macro and
            micro). Ranking metrics (LRAP, coverage, ranking loss) are per-sample and stay exact.
            ``"none"``: threshold-free keys are ``None``; nothing is kept but O(C) counters.
        bins: number of streaming bins (>= 16, default 4096).
        label_names: C names for ``per_class[i]["label"]`` (default ``label_0 ..``).
        **kwargs: passed to ``torchmetrics.Metric`` (e.g. ``process_group``, ``sync_on_compute``).

    States (``add_state``, synced by torchmetrics with ``sum``; exact keys with ``cat``): int64
    tp/fp/fn/tn ``(C,)``, sample count, exact-match count, fixed-point per-sample sums, coverage
    sum; streaming: histograms ``(2, C, bins)`` int64 and per-bin min / max ``(C, bins)`` float32. States live on the device of the inputs; the
    threshold-free computations run on CPU.

    Raises:
        InputError: bad arguments here, bad inputs in :meth:`update` (shape, dtype, NaN/inf,
            probabilities outside [0, 1], targets not in {0, 1}), ``compute()`` with no samples.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = None

    def __init__(
        self,
        num_labels: int,
        *,
        scores: ScoresKind,
        threshold: float | Sequence[float] | torch.Tensor = 0.5,
        beta: float = 2.0,
        zero_division: float = 0.0,
        threshold_free: ThresholdFree = "exact",
        bins: int = DEFAULT_BINS,
        label_names: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
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
        if not (beta > 0 and math.isfinite(beta)):
            raise InputError(f"beta: expected a positive finite number, got {beta!r}")
        if zero_division not in (0, 1) or isinstance(zero_division, bool):
            raise InputError(f"zero_division: expected 0.0 or 1.0, got {zero_division!r}")
        if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 16:
            raise InputError(f"bins: expected an integer >= 16, got {bins!r}")
        if label_names is not None:
            label_names = [str(n) for n in label_names]
            if len(label_names) != C:
                raise InputError(f"label_names: expected {C} names, got {len(label_names)}")
        self.num_labels = C
        self.scores_kind = scores
        self.thresholds = _threshold_vector(threshold, C)
        self.beta = beta
        self.zero_division = float(zero_division)
        self.threshold_free = threshold_free
        self.bins = int(bins)
        self.label_names = label_names or [f"label_{i}" for i in range(C)]
        self._cmp_cache: dict = {}

        zc = torch.zeros(C, dtype=torch.int64)
        for name in ("tp", "fp", "fn", "tn"):
            self.add_state(name, default=zc.clone(), dist_reduce_fx="sum")
        z = torch.zeros((), dtype=torch.int64)
        self.add_state("n_samples", default=z.clone(), dist_reduce_fx="sum")
        self.add_state("exact_match", default=z.clone(), dist_reduce_fx="sum")
        self.add_state("coverage_sum", default=z.clone(), dist_reduce_fx="sum")
        # fixed-point per-sample sums: rows = (hi, lo) limbs, columns = _SAMPLE_KEYS
        self.add_state("sample_fx", default=torch.zeros((2, len(_SAMPLE_KEYS)), dtype=torch.int64),
                       dist_reduce_fx="sum")
        if threshold_free == "exact":
            self.add_state("keys", default=[], dist_reduce_fx="cat")
        elif threshold_free == "streaming":
            self.add_state("hist", default=torch.zeros((2, C, self.bins), dtype=torch.int64), dist_reduce_fx="sum")
            # smallest / largest probability seen in each bin: a bin holding one distinct value is a
            # true tie group (treated exactly as scikit-learn does)
            self.add_state("bin_min", default=torch.full((C, self.bins), math.inf, dtype=torch.float32),
                           dist_reduce_fx="min")
            self.add_state("bin_max", default=torch.full((C, self.bins), -math.inf, dtype=torch.float32),
                           dist_reduce_fx="max")

    # ------------------------------------------------------------------ update

    def _cmp_thresholds(self, dtype, device) -> torch.Tensor:
        key = (dtype, str(device))
        if key not in self._cmp_cache:
            self._cmp_cache[key] = _comparable_threshold(self.thresholds, dtype, device)
        return self._cmp_cache[key]

    def _check(self, scores, targets) -> tuple[torch.Tensor, torch.Tensor]:
        C = self.num_labels
        if not isinstance(scores, torch.Tensor):
            raise InputError(f"scores: expected a torch.Tensor of shape (B, {C}), got {type(scores).__name__}")
        if not isinstance(targets, torch.Tensor):
            raise InputError(f"targets: expected a torch.Tensor of shape (B, {C}), got {type(targets).__name__}")
        if scores.ndim != 2 or scores.shape[1] != C:
            raise InputError(f"scores: expected shape (B, {C}), got {tuple(scores.shape)}")
        if targets.shape != scores.shape:
            raise InputError(f"targets: expected shape {tuple(scores.shape)} (same as scores), got {tuple(targets.shape)}")
        if not scores.is_floating_point():
            raise InputError(f"scores: expected a floating dtype ({self.scores_kind}), got {scores.dtype}")
        if targets.is_complex():
            raise InputError(f"targets: expected values in {{0, 1}}, got dtype {targets.dtype}")
        scores, targets = scores.detach(), targets.detach()  # worker threads have their own grad mode
        if scores.dtype not in (torch.float32, torch.float64):
            scores = scores.float()
        return scores, targets

    def update(self, scores: torch.Tensor, targets: torch.Tensor) -> None:
        """Add a batch.

        Args:
            scores: ``(B, C)`` floating tensor (float16/bfloat16 are upcast to float32): logits
                (any finite value) or probabilities in [0, 1], as declared at construction.
            targets: ``(B, C)`` tensor (bool, integer or float) with values in {0, 1}. B may be 0.
        Raises:
            InputError: wrong type / shape / dtype, NaN or inf scores, probabilities outside
                [0, 1], targets not in {0, 1}. The engine's state is unchanged on error.
        """
        scores, targets = self._check(scores, targets)
        B, C = scores.shape
        if B == 0:
            return
        step = max(1, _CHUNK_ELEMS // C)
        with _torch_threads(1):
            # validate everything first so that a bad batch leaves the state untouched
            for f in [_submit(self._validate, scores[s:s + step], targets[s:s + step]) for s in range(0, B, step)]:
                f.result()
            dev = scores.device
            keys = None
            if self.threshold_free == "exact":
                keys = torch.empty((B, C), dtype=_key_dtype(scores.dtype), device=dev)
            thr = self._cmp_thresholds(scores.dtype, dev)
            lock = threading.Lock()
            # chunks run on the engine's thread pool with single-threaded torch ops: parallel
            # without OpenMP barriers, which stall badly when other processes share the cores
            futs = [_submit(self._chunk, scores[s:s + step], targets[s:s + step], thr,
                            None if keys is None else keys[s:s + step], lock) for s in range(0, B, step)]
            parts = [f.result() for f in futs]
            col = torch.stack([c for c, _, _ in parts]).sum(dim=0)
            tp, pred, true = col
            self.tp += tp
            self.fp += pred - tp
            self.fn += true - tp
            self.tn += B - pred - true + tp
            self.n_samples += B
            rows = np.concatenate([r for _, r, _ in parts], axis=1)
            ranked = [rk for _, _, rk in parts if rk is not None]
            self._add_samples(rows, ranked, dev)
            if keys is not None:
                self.keys.append(keys)

    def _chunk(self, sc: torch.Tensor, tg: torch.Tensor, thr: torch.Tensor, keys_out, lock):
        """One row chunk: counts (3, C), per-row counts (3, b), row ranking stats; keys / histograms."""
        b, C = sc.shape
        p = torch.sigmoid(sc) if self.scores_kind == "logits" else sc
        x = torch.empty((3, b, C), dtype=torch.float32, device=sc.device)
        torch.ge(p, thr, out=x[1])  # predicted (0/1 as float32: sums are exact below 2^24)
        x[2].copy_(tg)  # true
        torch.mul(x[1], x[2], out=x[0])  # tp
        col = x.sum(dim=1).to(torch.int64)
        rows = x.sum(dim=2).to(torch.int64).cpu().numpy()
        ranked = None
        if self.threshold_free != "none":
            tint = tg if (tg.dtype == torch.bool or not tg.is_floating_point()) else x[2].to(torch.int32)
            del x
            k = _make_keys(p, tint, keys_out)
            ranked = K.ranked_rows(k.cpu().numpy())
            if self.threshold_free == "streaming":
                self._add_histogram(p, tint, lock)
        return col, rows, ranked

    def _add_samples(self, rows: np.ndarray, ranked: list, dev) -> None:  # rows: (3, B) numpy
        """Per-sample sums (samples average, exact match, ranking metrics) from per-row counts."""
        C = self.num_labels
        tpi, predi, truei = rows
        exact = int(((tpi == predi) & (tpi == truei)).sum())
        zd = self.zero_division
        b2 = self.beta**2
        tpf, predf, truef = (r.astype(np.float64) for r in rows)
        vals = [
            _np_div(tpf, predf, zd),
            _np_div(tpf, truef, zd),
            _np_div(2.0 * tpf, truef + predf, zd),
            _np_div((1 + b2) * tpf, b2 * truef + predf, zd),
        ]
        cov = 0
        if ranked:
            Pr, ap, gt, min_a = (np.concatenate(z) for z in zip(*ranked))
            pairs = Pr * (C - Pr)
            informative = pairs > 0
            vals.append(np.where(informative, ap / np.maximum(Pr, 1), 1.0))  # LRAP
            vals.append(np.where(informative, (pairs - gt) / np.maximum(pairs, 1), 0.0))  # ranking loss
            cov = int(np.where(Pr > 0, C - min_a, 0).sum())
        fx = np.zeros((2, len(_SAMPLE_KEYS)), dtype=np.int64)
        for j, v in enumerate(vals):
            fx[:, j] = K.to_fixed(v)
        self.sample_fx += torch.from_numpy(fx).to(dev)
        self.exact_match += exact
        self.coverage_sum += cov

    def _add_histogram(self, p: torch.Tensor, tint: torch.Tensor, lock) -> None:
        C, nb = self.num_labels, self.bins
        idx = stream_bin_index(p, nb)
        idx += torch.arange(C, device=p.device, dtype=idx.dtype) * nb
        flat = idx.view(-1)
        pf = p.reshape(-1).to(torch.float32)
        hidx = idx + tint.to(idx.dtype) * (C * nb)
        ones = torch.ones(flat.numel(), dtype=torch.int64, device=p.device)
        with lock:  # the states are shared by the chunk threads
            self.bin_min.view(-1).scatter_reduce_(0, flat, pf, reduce="amin")
            self.bin_max.view(-1).scatter_reduce_(0, flat, pf, reduce="amax")
            self.hist.view(-1).scatter_add_(0, hidx.view(-1), ones)

    def _validate(self, s: torch.Tensor, t: torch.Tensor) -> None:
        if self.scores_kind == "logits":
            if not bool(torch.isfinite(s).all()):
                raise InputError("scores: expected finite logits, found NaN or inf")
        else:
            lo, hi = torch.aminmax(s)
            if not (bool(lo >= 0) and bool(hi <= 1)):
                if not bool(torch.isfinite(s).all()):
                    raise InputError("scores: expected finite probabilities in [0, 1], found NaN or inf")
                raise InputError(
                    f"scores: expected probabilities in [0, 1], got values in [{lo.item():.6g}, {hi.item():.6g}]"
                    " (declare scores='logits' for raw model outputs)")
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
            raise InputError(f"targets: expected values in {{0, 1}}, found {_describe_bad_targets(t)}")

    def _wrap_compute(self, compute):
        """torchmetrics' compute wrapper (sync states across processes, cache the result), minus
        its tensor post-processing (our result is plain Python) and its "compute before update"
        warning (an empty rank is legitimate; no samples at all raises InputError). Each call
        returns a fresh copy, so callers may modify the result."""

        def wrapped_func(*args: Any, **kwargs: Any) -> Any:
            if self._computed is None:
                with self.sync_context(dist_sync_fn=self.dist_sync_fn, should_sync=self._to_sync,
                                       should_unsync=self._should_unsync):
                    value = compute(*args, **kwargs)
                if not self.compute_with_cache:
                    return value
                self._computed = value
            return _copy_plain(self._computed)

        wrapped_func.__doc__ = compute.__doc__
        return wrapped_func

    # ------------------------------------------------------------------ distributed

    def _sync_dist(self, dist_sync_fn=None, process_group=None) -> None:
        """Make the ``keys`` cat-state gatherable on every rank (same dtype, 2-D even when empty)."""
        if self.threshold_free == "exact":
            group = process_group or self.process_group
            local = list(self.keys) if isinstance(self.keys, list) else [self.keys]
            local = [k for k in local if k.numel() > 0 or k.ndim == 2]
            wide = torch.tensor([int(any(k.dtype == torch.int64 for k in local))], device=self.device)
            torch.distributed.all_reduce(wide, op=torch.distributed.ReduceOp.MAX, group=group)
            dtype = torch.int64 if int(wide.item()) else torch.int32
            local = [_widen_keys_t(k) if k.dtype != dtype else k for k in local]
            if not local:
                local = [torch.zeros((0, self.num_labels), dtype=dtype, device=self.device)]
            self.keys = local
        super()._sync_dist(dist_sync_fn, process_group)

    # ------------------------------------------------------------------ compute

    def compute(self) -> dict:
        """All metrics as plain Python (JSON-serialisable). See :func:`compute_metrics` for the layout.

        Raises:
            InputError: when no sample was seen (on any process).
        """
        N = int(self.n_samples)
        C = self.num_labels
        if N == 0:
            raise InputError("metrics: no samples were given (update() was never called with data)")
        tp, fp, fn, tn = (getattr(self, a).cpu().numpy().astype(np.int64) for a in ("tp", "fp", "fn", "tn"))
        zd = self.zero_division
        b2 = self.beta**2
        fkey = _fbeta_key(self.beta)
        support = tp + fn
        pred = tp + fp

        def prf(tp_, pred_, true_):
            return {
                "precision": _np_div(tp_, pred_, zd),
                "recall": _np_div(tp_, true_, zd),
                "f1": _np_div(2.0 * tp_, true_ + pred_, zd),
                fkey: _np_div((1 + b2) * tp_, b2 * true_ + pred_, zd),
            }

        per = prf(tp, pred, support)
        per_acc = (tp + tn) / float(N)
        w = support.astype(np.float64)

        def avg(x):
            return float(np.average(x, weights=w)) if w.sum() > 0 else float(np.mean(x))

        micro = {"accuracy": float((tp.sum() + tn.sum()) / (N * C))}
        micro.update({k: float(v[0]) for k, v in prf(tp.sum(keepdims=True), pred.sum(keepdims=True),
                                                    support.sum(keepdims=True)).items()})
        macro = {"accuracy": float(np.mean(per_acc))} | {k: float(np.mean(v)) for k, v in per.items()}
        weighted = {"accuracy": avg(per_acc)} | {k: avg(v) for k, v in per.items()}
        fx = self.sample_fx.cpu().numpy()
        smean = {k: K.from_fixed(int(fx[0, j]), int(fx[1, j])) / N for j, k in enumerate(_SAMPLE_KEYS)}
        samples = {"accuracy": micro["accuracy"], "precision": smean["precision"], "recall": smean["recall"],
                   "f1": smean["f1"], fkey: smean["fbeta"]}
        hamming = float((fp.sum() + fn.sum()) / (N * C))

        ap = auroc = None
        tf: dict[str, Any] = dict.fromkeys(
            ("mean_average_precision", "macro_auroc", "micro_average_precision", "micro_auroc",
             "label_ranking_average_precision", "coverage_error", "label_ranking_loss"))
        if self.threshold_free != "none":
            if self.threshold_free == "exact":
                ap, auroc, micro_ap, micro_auc = self._exact_threshold_free(support, N)
            else:
                ap, auroc, micro_ap, micro_auc = self._streaming_threshold_free()
            valid = ~np.isnan(auroc)
            tf = {
                "mean_average_precision": float(np.mean(ap)),
                "macro_auroc": float(np.mean(auroc[valid])) if valid.any() else None,
                "micro_average_precision": micro_ap,
                "micro_auroc": micro_auc,
                "label_ranking_average_precision": smean["lrap"],
                "coverage_error": int(self.coverage_sum) / N,
                "label_ranking_loss": smean["rloss"],
            }
        summary = {"micro": micro, "macro": macro, "weighted": weighted, "samples": samples,
                   "subset_accuracy": int(self.exact_match) / N, "hamming_loss": hamming} | tf
        thr = self.thresholds.numpy()
        per_class = []
        for j in range(C):
            row = {"label": self.label_names[j], "support": int(support[j]), "tp": int(tp[j]), "fp": int(fp[j]),
                   "fn": int(fn[j]), "tn": int(tn[j]), "accuracy": float(per_acc[j])}
            row |= {k: float(v[j]) for k, v in per.items()}
            row["average_precision"] = float(ap[j]) if ap is not None else None
            row["auroc"] = (None if np.isnan(auroc[j]) else float(auroc[j])) if auroc is not None else None
            row["threshold"] = float(thr[j])
            per_class.append(row)
        return {"summary": summary, "per_class": per_class}

    def _key_pieces(self) -> list[np.ndarray]:
        keys = self.keys
        pieces = [keys] if isinstance(keys, torch.Tensor) else list(keys)
        pieces = [k.reshape(-1, self.num_labels).cpu().numpy() for k in pieces]
        pieces = [k for k in pieces if k.shape[0] > 0]
        if any(k.dtype == np.int64 for k in pieces):
            pieces = [K.widen_keys(k) for k in pieces]
        return pieces

    def _exact_threshold_free(self, support: np.ndarray, N: int):
        pieces = self._key_pieces()
        C = self.num_labels
        return _exact_from_pieces(pieces, N, C, support)

    def _streaming_threshold_free(self):
        h = self.hist.cpu().numpy()
        neg, pos = h[0], h[1]
        lo, hi = self.bin_min.cpu().numpy(), self.bin_max.cpu().numpy()
        ap, auroc = K.finish_ap_auroc(*K.ranked_groups(pos, neg, single=lo == hi))
        msingle = lo.min(axis=0, keepdims=True) == hi.max(axis=0, keepdims=True)
        map_, mauc = K.finish_ap_auroc(*K.ranked_groups(pos.sum(0, keepdims=True), neg.sum(0, keepdims=True),
                                                        single=msingle))
        return ap, auroc, float(map_[0]), (None if np.isnan(mauc[0]) else float(mauc[0]))


# ---------------------------------------------------------------------------------------------
# helpers


def stream_bin_index(p: torch.Tensor, bins: int) -> torch.Tensor:
    """Streaming bin of each probability: ``bins - 2`` uniform bins of logit(p) on [-16, 16), plus
    bin 0 for logit < -16 (including p = 0) and bin ``bins - 1`` for logit >= 16 (including p = 1).

    ``bin = clamp(floor((logit(p) + 16) (bins - 2) / 32) + 1, 0, bins - 1)`` with
    ``logit(p) = log(p / (1 - p))`` computed in p's dtype. Returns int64, the shape of ``p``.
    """
    scale = (bins - 2) / (2 * STREAM_LOGIT_RANGE)
    z = torch.log(p / (1 - p))
    z.mul_(scale).add_(STREAM_LOGIT_RANGE * scale + 1).clamp_(0, bins - 1)  # >= 0: truncation = floor
    return z.to(torch.int64)


def _copy_plain(x):
    """Copy of a structure of dicts / lists / scalars (much faster than copy.deepcopy)."""
    if isinstance(x, dict):
        return {k: _copy_plain(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_copy_plain(v) for v in x]
    return x


def _np_div(num, den, zd: float) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, zd, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _key_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.int64 if dtype == torch.float64 else torch.int32


def _make_keys(p: torch.Tensor, tb: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """(B, C) probabilities + bool targets -> int32 (float32) / int64 (float64) sort keys."""
    itype = _key_dtype(p.dtype)
    if out is None:
        out = torch.empty(p.shape, dtype=itype, device=p.device)
    torch.clamp(p.view(itype), min=0, out=out)  # -0.0 -> +0.0 (the only valid input with the sign bit)
    out <<= 1
    out |= tb.to(itype)
    return out


def _widen_keys_t(k: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(K.widen_keys(k.cpu().numpy())).to(k.device)


def _exact_from_pieces(pieces: list[np.ndarray], N: int, C: int, support: np.ndarray):
    """Exact per-label and micro AP / AUROC from key pieces (each (n_i, C), sum n_i = N).

    Columns are transposed and sorted in blocks of ~``_SORT_ELEMS`` keys (on the engine's thread
    pool: numpy's sort and binary searches release the GIL); then the micro average sorts one
    copy of the N*C keys (above ``_MICRO_COPY`` keys: value buckets of ~N*C/4 keys, so the extra
    memory stays ~1/4 of the keys). Peak extra memory: one copy of the keys (<= 256 MiB) plus
    small per-positive arrays.
    """
    ap_sum = np.zeros(C)
    gt = np.zeros(C, dtype=np.int64)
    lt = np.zeros(C, dtype=np.int64)
    P = np.zeros(C, dtype=np.int64)
    cols = max(1, _SORT_ELEMS // max(N, 1))

    def block(j0: int) -> None:
        j1 = min(C, j0 + cols)
        if len(pieces) == 1:
            blk = np.ascontiguousarray(pieces[0][:, j0:j1].T)
        else:
            blk = np.concatenate([k[:, j0:j1].T for k in pieces], axis=1)
        blk.sort(axis=1)
        for r in range(j1 - j0):
            P[j0 + r], ap_sum[j0 + r], gt[j0 + r], lt[j0 + r], _ = K.ranked_1d(blk[r])

    for f in [_submit(block, j0) for j0 in range(0, C, cols)]:
        f.result()
    # micro: all N*C pairs as one sorted sequence, after the columns (lower peak memory); one
    # sorted copy up to _MICRO_COPY keys, beyond in value buckets of ~N*C/4 keys
    L, mP, map_sum, mgt, mlt = K.ranked_pieces(pieces, int(support.sum()),
                                               _MICRO_COPY if N * C <= _MICRO_COPY else -(-N * C // 4),
                                               submit=_submit)
    ap, auroc = K.finish_ap_auroc(P, N - P, ap_sum, gt, lt)
    map_, mauc = K.finish_ap_auroc(mP, L - mP, map_sum, mgt, mlt)
    return ap, auroc, float(map_[()]), (None if np.isnan(mauc[()]) else float(mauc[()]))


_POOL = None


@contextmanager
def _torch_threads(n: int):
    """Temporarily limit torch's intra-op threads (the engine parallelises over chunks itself)."""
    old = torch.get_num_threads()
    if old == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _forget_pool() -> None:  # a forked child does not inherit the pool's threads
    global _POOL
    _POOL = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


class _Done:
    def __init__(self, value) -> None:
        self.value = value

    def result(self):
        return self.value


def _submit(fn, *args):
    """Run ``fn(*args)`` on a small shared thread pool (numpy sorts / searches release the GIL);
    inline when only one CPU thread is allowed."""
    global _POOL
    if _THREADS <= 1:
        return _Done(fn(*args))
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="evalkit-metrics")
    return _POOL.submit(fn, *args)


# ---------------------------------------------------------------------------------------------
# convenience


def compute_metrics(
    targets,
    scores,
    *,
    scores_kind: ScoresKind,
    threshold: float | Sequence[float] | torch.Tensor = 0.5,
    beta: float = 2.0,
    zero_division: float = 0.0,
    label_names: Sequence[str] | None = None,
    threshold_free: ThresholdFree = "exact",
    batch_size: int | None = None,
) -> dict:
    """Compute every evalkit metric for ``(N, C)`` targets and scores in one call.

    Args:
        targets: ``(N, C)`` numpy array or tensor (bool / integer / float) with values in {0, 1}.
        scores: ``(N, C)`` floating numpy array or tensor: logits or probabilities in [0, 1].
        scores_kind: ``"logits"`` or ``"probabilities"`` (declared, never guessed).
        threshold, beta, zero_division, label_names, threshold_free: as :class:`MultilabelEngine`.
        batch_size: feed the engine in batches of this many rows (default: one update).
    Returns:
        ``{"summary": {...}, "per_class": [...]}``, plain Python (float / int / None)::

            summary: micro / macro / weighted / samples -> {accuracy, precision, recall, f1, f<beta>},
                     subset_accuracy, hamming_loss, mean_average_precision, macro_auroc,
                     micro_average_precision, micro_auroc, label_ranking_average_precision,
                     coverage_error, label_ranking_loss
            per_class: [{label, support, tp, fp, fn, tn, accuracy, precision, recall, f1, f<beta>,
                         average_precision, auroc, threshold}, ...]   (C entries, column order)
    Raises:
        InputError: invalid arguments or inputs (see :class:`MultilabelEngine`).
    """
    t = _as_tensor(targets, "targets")
    s = _as_tensor(scores, "scores")
    if t.ndim != 2:
        raise InputError(f"targets: expected shape (N, C), got {tuple(t.shape)}")
    if s.shape != t.shape:
        raise InputError(f"scores: expected shape {tuple(t.shape)} (same as targets), got {tuple(s.shape)}")
    if t.shape[0] == 0:
        raise InputError("targets: expected at least one sample (N >= 1), got N = 0")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise InputError(f"batch_size: expected a positive integer, got {batch_size!r}")
    engine = MultilabelEngine(t.shape[1], scores=scores_kind, threshold=threshold, beta=beta,
                              zero_division=zero_division, threshold_free=threshold_free, label_names=label_names)
    step = batch_size or t.shape[0]
    for i in range(0, t.shape[0], step):
        engine.update(s[i:i + step], t[i:i + step])
    return engine.compute()
