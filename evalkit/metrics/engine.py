"""The metric engine: every multi-label metric evalkit reports, from one streaming pass.

:class:`MultilabelEngine` is a thin ``torchmetrics.Metric``: its states (``add_state``) and short
``update`` / ``compute`` methods composing the functional pieces of
:mod:`evalkit.metrics.functional`, where the definitions of every metric and their sources are
listed; :func:`compute_metrics` is the one-call entry point.

Why one ``torchmetrics.Metric`` with its own states (and not torchmetrics' multilabel metrics):
those apply a sigmoid per batch whenever a value lies outside [0, 1] (torchmetrics issues #1604,
#3269), so a batch of probabilities and a batch of logits are silently mixed; and
``MetricCollection`` compute groups can merge metrics that only look alike (#2596). Here the caller
declares logits or probabilities, and every number comes from one pass over each batch.

Performance: each batch is split into chunks of ~2^18 values that run on a private 2-thread pool
(:mod:`evalkit.metrics._parallel`). Inside a chunk, torch ops work on row blocks of at most 2^15
values, below torch's parallel grain, so they run single-threaded in the pool thread (parallel over
chunks, no OpenMP barriers, which stall badly when other processes share the cores, and no change
to torch's process-wide thread count); the per-row ranking, sorting and binary searches use numpy
(SIMD sort of int32 keys), which releases the GIL.

Distributed: states are synced by torchmetrics' public machinery (``dist_reduce_fx`` "sum", "min",
"max", "cat"); :meth:`MultilabelEngine.sync` only gives an empty key list a ``(0, C)`` piece of its
dtype first, so ranks without data gather like the others, and the synced result equals the
single-process one bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from evalkit.torch_compat import declare_torchvision_ops

declare_torchvision_ops()  # torchmetrics imports torchvision when installed (a CUDA build fails beside CPU torch)
from torchmetrics import Metric  # noqa: E402

from evalkit.config import DEFAULT_BETA
from evalkit.errors import InputError
from evalkit.metrics import _kernels as K
from evalkit.metrics.functional import (
    ScoresKind,
    ThresholdFree,
    _as_tensor,
    _comparable_threshold,
    _multilabel_engine_arg_validation,
    _multilabel_engine_compute,
    _multilabel_engine_format,
    _multilabel_engine_sample_sums,
    _multilabel_engine_tensor_validation,
    _multilabel_engine_update,
    _threshold_vector,
)
from evalkit.metrics.extra import DEFAULT_KS, extras_block, row_values, weighted_row_sums
from evalkit.metrics.names import SAMPLE_SUMS, row_keys
from evalkit.metrics.threshold_free import exact_ap_auroc, key_dtype, streaming_ap_auroc
from evalkit.metrics.values import MetricValues
from evalkit.metrics.weighted import (MIN_LARGEST_WEIGHT, check_sample_weight, row_means, weighted_ap_auroc,
                                      weighted_counts, weighted_values)

DEFAULT_BINS = 4096
"""Default number of streaming bins (see :class:`MultilabelEngine`)."""


class MultilabelEngine(Metric):
    """All multi-label metrics of evalkit in one ``torchmetrics.Metric`` (one pass per batch).

    Args:
        num_labels: C >= 1 (C = 1 is accepted; ranking metrics are then trivial: LRAP 1,
            ranking loss 0, coverage = 1 for a positive sample else 0).
        scores: ``"logits"`` (raw outputs: the threshold rule applies ``torch.sigmoid`` in the
            input dtype, so decisions equal those of ``torch.sigmoid(logits)`` passed as
            probabilities; exact threshold-free metrics rank the logits themselves, so scaling the
            logits or float32 sigmoid saturation above ~17 never ties scores) or
            ``"probabilities"`` (must lie in [0, 1]). Declared by the caller, never guessed.
        threshold: scalar or ``(C,)``; a label is predicted iff probability >= threshold
            (:func:`~evalkit.metrics.functional.binarize`). Applies to probabilities also when ``scores="logits"``.
        beta: the F-beta reported besides F1, key ``f{beta:g}`` (``"f2"``, ``"f0.5"``).
        zero_division: value of a 0/0 precision / recall / F (0.0, 1.0 or NaN, as scikit-learn; NaN
            ratios are left out of the averages).
        threshold_free:
            ``"exact"``: keeps one int32 sort key per (sample, label) (int64 for float64
            probabilities and for logits), i.e. 4 (8) bytes x N x C, and computes AP / AUROC exactly at ``compute()``, matching
            scikit-learn to ~1e-12.
            ``"streaming"``: memory O(C x bins), independent of N: per label and bin, the counts
            of positive and negative probabilities and the smallest / largest probability seen
            (as float32; 24 bytes per label and bin: 96 KiB per label at the default 4096 bins). Bins are
            uniform in logit space on [-16, 16] (:func:`~evalkit.metrics.threshold_free.stream_bin_index`; beyond: two end bins).
            A bin holding one distinct value is an exact tie group; in a bin holding several
            values the positives get their expected precision under a random order inside the
            bin (closed form, see :func:`evalkit.metrics._kernels.ranked_groups`) and pos/neg pairs
            count 1/2 for AUROC. So AP / AUROC are exact whenever no two distinct scores share a
            bin, and otherwise the error vs exact is second order in the bin width (logit width
            32 / (bins - 2) = 0.0078 at 4096 bins): measured <= 4e-5 per label (AP and AUROC) on
            N = 100,000 with 0.5%..50% prevalence, and tested <= 1e-3 (per label, macro and
            micro). Ranking metrics (LRAP, coverage, ranking loss) are per-sample and stay exact.
            ``"none"``: threshold-free values are ``None``; nothing is kept but O(C) counters.
        bins: number of streaming bins (>= 16, default 4096).
        label_names: C names (``MetricValues.label_names``; default ``label_0 ..``).
        ks: cut-offs of precision@k and nDCG@k (:mod:`evalkit.metrics.extra`; default 1, 3, 5).
        **kwargs: passed to ``torchmetrics.Metric`` (e.g. ``process_group``, ``sync_on_compute``,
            ``dist_sync_fn``).

    States (:meth:`_create_state`; synced by torchmetrics with ``sum`` / ``min`` / ``max``, the
    exact keys with ``cat``): int64 tp/fp/fn/tn ``(C,)``, sample count, exact-match count,
    fixed-point per-sample sums ``(2, 6)``, coverage sum; exact: lists of int32 keys ``keys32``
    (float32 probabilities) and int64 keys ``keys64`` (float64 probabilities, logits), each ``(B, C)`` per batch;
    streaming: histograms ``(2, C, bins)`` int64 and per-bin min / max ``(C, bins)`` float32;
    always: weighted tp/fp/fn/tn ``wcounts`` ``(4, C)`` float64, fixed-point per-sample sums of
    :func:`evalkit.metrics.extra.row_values` ``wrows`` ``(2, 4, K)`` int64 and ``n_weighted`` (rows
    given with ``sample_weight``); exact: the rows' weights beside the keys (``weights32`` /
    ``weights64``, 8 bytes per row). Without weights and with ``zero_division`` 0 / 1 the values
    are those of the integer states (bit for bit as before); with weights or ``zero_division=nan``
    they come from the weighted states (:mod:`evalkit.metrics.weighted`). ``MetricValues.extra``
    holds the metrics of :mod:`evalkit.metrics.extra` (Jaccard, specificity, NPV, MCC, one-error,
    P@k, nDCG@k, weighted / samples AP and AUROC).
    States live on the device of the inputs; the threshold-free computations run on CPU.
    :meth:`compute` returns :class:`~evalkit.metrics.values.MetricValues` (numpy arrays; JSON
    shaping: :func:`evalkit.report.metrics_block`), cached until the next ``update`` / ``reset``.

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
        beta: float = DEFAULT_BETA,
        zero_division: float = 0.0,
        threshold_free: ThresholdFree = "exact",
        bins: int = DEFAULT_BINS,
        label_names: Sequence[str] | None = None,
        ks: Sequence[int] = DEFAULT_KS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        C, beta, label_names = _multilabel_engine_arg_validation(num_labels, scores, threshold_free, beta,
                                                                 zero_division, bins, label_names)
        self.num_labels = C
        self.scores_kind = scores
        self.thresholds = _threshold_vector(threshold, C)
        self.beta = beta
        self.zero_division = float(zero_division)
        self.threshold_free = threshold_free
        self.bins = int(bins)
        self.label_names = label_names
        self.ks = _check_ks(ks)
        self._cmp_cache: dict = {}
        self.row_weight_scale = 1.0
        """Power of two the weights are multiplied by in the fixed-point per-sample sums only (their
        resolution is 2^-62 absolute): :func:`compute_metrics` sets it from all N weights so the largest
        is in [0.5, 1); the sums' ratios, the reported means, do not change. Keep it 1.0 (every rank
        alike) when batches come from several processes."""
        self._create_state(C, threshold_free, self.bins)

    def _create_state(self, num_labels: int, threshold_free: ThresholdFree, bins: int) -> None:
        """Every state of the engine (see the class docstring)."""
        for name in ("tp", "fp", "fn", "tn"):
            self.add_state(name, default=torch.zeros(num_labels, dtype=torch.int64), dist_reduce_fx="sum")
        for name in ("n_samples", "exact_match", "coverage_sum"):
            self.add_state(name, default=torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")
        # fixed-point per-sample sums: rows = (hi, lo) limbs, columns = names.SAMPLE_SUMS
        self.add_state("sample_fx", default=torch.zeros((2, len(SAMPLE_SUMS)), dtype=torch.int64),
                       dist_reduce_fx="sum")
        # weighted sums (evalkit.metrics.weighted): tp/fp/fn/tn, per-sample sums, rows given weights
        self.add_state("wcounts", default=torch.zeros((4, num_labels), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("wrows", default=torch.zeros((2, 4, len(row_keys(self.ks))), dtype=torch.int64),
                       dist_reduce_fx="sum")
        self.add_state("n_weighted", default=torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")
        if threshold_free == "exact":  # one dtype per state, so every rank gathers alike
            self.add_state("keys32", default=[], dist_reduce_fx="cat")
            self.add_state("keys64", default=[], dist_reduce_fx="cat")
            self.add_state("weights32", default=[], dist_reduce_fx="cat")  # row weights beside the keys
            self.add_state("weights64", default=[], dist_reduce_fx="cat")
        elif threshold_free == "streaming":
            self.add_state("hist", default=torch.zeros((2, num_labels, bins), dtype=torch.int64),
                           dist_reduce_fx="sum")
            # smallest / largest probability seen in each bin: a bin holding one distinct value is a
            # true tie group (treated exactly as scikit-learn does)
            self.add_state("bin_min", default=torch.full((num_labels, bins), math.inf, dtype=torch.float32),
                           dist_reduce_fx="min")
            self.add_state("bin_max", default=torch.full((num_labels, bins), -math.inf, dtype=torch.float32),
                           dist_reduce_fx="max")

    @property
    def keys(self) -> list[torch.Tensor]:
        """The exact mode's key pieces: the int32 ones, then the int64 ones (each ``(B_i, C)``)."""
        return [k for name in ("keys32", "keys64") for k in _pieces(getattr(self, name, []))]

    def update(self, scores: torch.Tensor, targets: torch.Tensor, sample_weight=None) -> None:
        """Add a batch.

        Args:
            scores: ``(B, C)`` floating tensor (float16/bfloat16 are upcast to float32): logits
                (any finite value) or probabilities in [0, 1], as declared at construction.
            targets: ``(B, C)`` tensor (bool, integer or float) with values in {0, 1}. B may be 0.
            sample_weight: optional ``(B,)`` finite non-negative weights (array / tensor); a batch
                without weights counts each row 1. Not with ``threshold_free="streaming"``.
        Raises:
            InputError: wrong type / shape / dtype, NaN or inf scores, probabilities outside
                [0, 1], targets not in {0, 1}, bad weights. The engine's state is unchanged on error.
        """
        _multilabel_engine_tensor_validation(scores, targets, self.num_labels, self.scores_kind)
        scores, targets = _multilabel_engine_format(scores, targets)
        B = scores.shape[0]
        w = None if sample_weight is None else check_sample_weight(sample_weight, B)
        if w is not None and self.threshold_free == "streaming":
            raise InputError("sample_weight: not supported with threshold_free='streaming' (use 'exact' or 'none')")
        if B == 0:
            return
        keys = None
        if self.threshold_free == "exact":
            keys = torch.empty(scores.shape, dtype=key_dtype(scores.dtype, self.scores_kind), device=scores.device)
        streaming = (self.hist, self.bin_min, self.bin_max) if self.threshold_free == "streaming" else None
        counts, rows, ranked = _multilabel_engine_update(
            scores, targets, self._cmp_thresholds(scores.dtype, scores.device), self.scores_kind,
            ranking=self.threshold_free != "none", keys_out=keys, streaming=streaming)
        tp, pred, true = counts
        self.tp += tp
        self.fp += pred - tp
        self.fn += true - tp
        self.tn += B - pred - true + tp
        self.n_samples += B
        zd = 0.0 if math.isnan(self.zero_division) else self.zero_division  # NaN: the weighted path's sums
        fx, exact, cov = _multilabel_engine_sample_sums(rows, ranked, self.num_labels, self.beta, zd)
        self.sample_fx += torch.from_numpy(fx).to(scores.device)
        self.exact_match += exact
        self.coverage_sum += cov
        self._update_weighted(scores, targets, counts, rows, ranked, w)
        if keys is not None:
            wide = keys.dtype == torch.int64
            (self.keys64 if wide else self.keys32).append(keys)
            (self.weights64 if wide else self.weights32).append(
                torch.ones(B, dtype=torch.float64, device=scores.device) if w is None else torch.from_numpy(w))

    def _update_weighted(self, scores, targets, counts, rows, ranked, w) -> None:
        """The weighted sums of a batch (``w`` None: unit weights, counts taken from ``counts``)."""
        B = scores.shape[0]
        if w is None:
            tp, pred, true = counts.to(torch.float64)
            self.wcounts += torch.stack([tp, pred - tp, true - tp, B - pred - true + tp])
        else:
            p = torch.sigmoid(scores) if self.scores_kind == "logits" else scores
            self.wcounts += weighted_counts(p >= self._cmp_thresholds(scores.dtype, scores.device), targets != 0, w)
            self.n_weighted += B
        vals = row_values(scores.cpu().numpy(), targets.cpu().numpy(), rows, ranked, beta=self.beta,
                          zero_division=self.zero_division, ks=self.ks)
        scaled = None if w is None or self.row_weight_scale == 1.0 else w * self.row_weight_scale
        self.wrows += torch.from_numpy(weighted_row_sums(vals, w if scaled is None else scaled)).to(scores.device)

    def _cmp_thresholds(self, dtype: torch.dtype, device) -> torch.Tensor:
        key = (dtype, str(device))
        if key not in self._cmp_cache:
            self._cmp_cache[key] = _comparable_threshold(self.thresholds, dtype, device)
        return self._cmp_cache[key]

    def compute(self) -> MetricValues:
        """All metrics (synced across processes by torchmetrics, cached until the next update).

        Returns:
            :class:`~evalkit.metrics.values.MetricValues` (immutable; read-only numpy arrays).
        Raises:
            InputError: when no sample was seen (on any process).
        """
        N = int(self.n_samples)
        if N == 0:
            raise InputError("metrics: no samples were given (update() was never called with data)")
        tp, fp, fn, tn = (getattr(self, a).cpu().numpy().astype(np.int64) for a in ("tp", "fp", "fn", "tn"))
        weighted = int(self.n_weighted) > 0
        ranked = None
        if self.threshold_free == "exact" and weighted:
            ranked = weighted_ap_auroc(np.concatenate(self._key_arrays()), self._weight_array())
        elif self.threshold_free == "exact":
            ranked = exact_ap_auroc(self._key_arrays(), N, self.num_labels, tp + fn)
        elif self.threshold_free == "streaming":
            ranked = streaming_ap_auroc(self.hist.cpu().numpy(), self.bin_min.cpu().numpy(),
                                        self.bin_max.cpu().numpy())
        wrows = self.wrows.cpu().numpy()
        if weighted or math.isnan(self.zero_division):
            return weighted_values(self.wcounts.cpu().numpy(), wrows, N, ranked, beta=self.beta,
                                   zero_division=self.zero_division, thresholds=self.thresholds.numpy(),
                                   label_names=self.label_names, ks=self.ks)
        values = _multilabel_engine_compute(
            tp, fp, fn, tn, N, int(self.exact_match), int(self.coverage_sum), self.sample_fx.cpu().numpy(), ranked,
            beta=self.beta, zero_division=self.zero_division, thresholds=self.thresholds.numpy(),
            label_names=self.label_names)
        return values._replace(extra=extras_block((tp, fp, fn, tn), row_means(wrows, self.ks), values.average_precision,
                                                  values.auroc, zero_division=self.zero_division, ks=self.ks))

    def _weight_array(self) -> np.ndarray:
        """The row weights, aligned with :meth:`_key_arrays` (int32-key rows first)."""
        pieces = [w.reshape(-1).cpu().numpy() for name in ("weights32", "weights64") for w in _pieces(getattr(self, name))]
        return np.concatenate(pieces) if pieces else np.zeros(0)

    def _key_arrays(self) -> list[np.ndarray]:
        """Non-empty key pieces as ``(n_i, C)`` numpy arrays, int32 ones widened when any is int64."""
        pieces = [k.reshape(-1, self.num_labels).cpu().numpy() for k in self.keys if k.numel() > 0]
        if any(k.dtype == np.int64 for k in pieces):
            pieces = [K.widen_keys(k) for k in pieces]
        return pieces

    def sync(self, dist_sync_fn=None, process_group=None, should_sync: bool = True,
             distributed_available=None) -> None:
        """torchmetrics' ``Metric.sync``, after giving each empty key list a ``(0, C)`` piece of its dtype.

        torchmetrics replaces an empty ``cat`` state by a 1-D float tensor, which cannot be gathered
        with the other ranks' 2-D integer keys; an empty piece of the right dtype and shape can.
        """
        available = distributed_available or self.distributed_available_fn
        if should_sync and self.threshold_free == "exact" and callable(available) and available():
            for name, dtype, shape in (("keys32", torch.int32, (0, self.num_labels)), ("weights32", torch.float64, (0,)),
                                       ("keys64", torch.int64, (0, self.num_labels)), ("weights64", torch.float64, (0,))):
                if isinstance(getattr(self, name), list) and not getattr(self, name):
                    getattr(self, name).append(torch.zeros(shape, dtype=dtype, device=self.device))
        super().sync(dist_sync_fn, process_group, should_sync, distributed_available)


def _check_ks(ks) -> tuple[int, ...]:
    """The precision@k / nDCG@k cut-offs as a sorted tuple of distinct ints >= 1 (InputError otherwise)."""
    try:
        out = tuple(sorted({int(k) for k in ks}))
    except (TypeError, ValueError):
        raise InputError(f"ks: expected positive integers (e.g. 1,3,5), got {ks!r}") from None
    if not out or out[0] < 1 or any(isinstance(k, bool) or float(k) != int(k) for k in ks):
        raise InputError(f"ks: expected positive integers (e.g. 1,3,5), got {ks!r}")
    return out


def _pieces(state) -> list[torch.Tensor]:
    return [state] if isinstance(state, torch.Tensor) else list(state)


def compute_metrics(
    targets,
    scores,
    *,
    scores_kind: ScoresKind,
    threshold: float | Sequence[float] | torch.Tensor = 0.5,
    beta: float = DEFAULT_BETA,
    zero_division: float = 0.0,
    label_names: Sequence[str] | None = None,
    threshold_free: ThresholdFree = "exact",
    batch_size: int | None = None,
    sample_weight=None,
    ks: Sequence[int] = DEFAULT_KS,
) -> MetricValues:
    """Compute every evalkit metric for ``(N, C)`` targets and scores in one call.

    Args:
        targets: ``(N, C)`` numpy array or tensor (bool / integer / float) with values in {0, 1}.
        scores: ``(N, C)`` floating numpy array or tensor: logits or probabilities in [0, 1].
        scores_kind: ``"logits"`` or ``"probabilities"`` (declared, never guessed).
        threshold, beta, zero_division, label_names, threshold_free: as :class:`MultilabelEngine`.
        batch_size: feed the engine in batches of this many rows (default: one update).
        sample_weight: optional ``(N,)`` finite non-negative weights (scikit-learn's ``sample_weight``).
        ks: cut-offs of precision@k / nDCG@k (default 1, 3, 5).
    Returns:
        :class:`~evalkit.metrics.values.MetricValues`; :func:`evalkit.report.metrics_block` turns it
        into the report's ``{"summary": {...}, "per_class": [...]}``.
    Raises:
        InputError: invalid arguments or inputs (see :class:`MultilabelEngine`), N = 0, weights that are
            all 0, above 1e30, or all below 1e-30.
    """
    t = _as_tensor(targets, "targets")
    s = _as_tensor(scores, "scores")
    if t.ndim != 2:
        raise InputError(f"targets: expected shape (N, C), got {tuple(t.shape)}")
    if s.shape != t.shape:
        raise InputError(f"scores: expected shape {tuple(t.shape)} (same as targets), got {tuple(s.shape)}")
    if t.shape[0] == 0:
        raise InputError("targets: expected at least one sample (N >= 1), got N = 0")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                   or batch_size < 1):
        raise InputError(f"batch_size: expected a positive integer, got {batch_size!r}")
    engine = MultilabelEngine(t.shape[1], scores=scores_kind, threshold=threshold, beta=beta, ks=ks,
                              zero_division=zero_division, threshold_free=threshold_free, label_names=label_names)
    w = None if sample_weight is None else check_sample_weight(sample_weight, t.shape[0])
    if w is not None and not w.max() > 0:
        raise InputError(f"sample_weight: all {w.size} weights are 0; expected at least one positive weight")
    if w is not None and w.max() < MIN_LARGEST_WEIGHT:
        raise InputError(f"sample_weight: the largest weight is {float(w.max()):g}; expected at least 1e-30 "
                         "(multiply them by a common factor: no metric changes)")
    if w is not None:  # per-sample means keep full precision for any weight scale (1e-18 .. 1e18)
        engine.row_weight_scale = math.ldexp(1.0, min(1000, -math.frexp(float(w.max()))[1]))
    step = int(batch_size or t.shape[0])
    for i in range(0, t.shape[0], step):
        engine.update(s[i:i + step], t[i:i + step], None if w is None else w[i:i + step])
    return engine.compute()
