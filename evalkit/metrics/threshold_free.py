"""Threshold-free pieces of the engine: sort keys, streaming bins, and AP / AUROC from either.

* exact: every (score, target) pair is kept as one integer sort key (``bits(p) << 1 | t``, see
  :mod:`evalkit.metrics._kernels`); per-label and micro average precision / AUROC are computed from
  the sorted keys at the end (scikit-learn ``average_precision_score`` / ``roc_auc_score``).
* streaming: per label and bin, positive / negative counts and the smallest / largest probability
  seen; AP / AUROC from the ranked bins (:func:`evalkit.metrics._kernels.ranked_groups`).
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import torch

from evalkit.metrics import _kernels as K
from evalkit.metrics._parallel import submit

STREAM_LOGIT_RANGE = 16.0
"""Streaming bins are uniform in logit space on [-16, 16) (see :func:`stream_bin_index`)."""

_SORT_ELEMS = 1 << 21  # elements per block of the exact threshold-free computation
_MICRO_COPY = 1 << 26  # micro AP / AUROC: up to this many keys, sort one full copy (else buckets)


_LOGIT_BIAS = 767 << 52  # float64 bits of 2**-256: smaller magnitudes rank as 0
_LOGIT_MAX = (512 << 52) - 1  # largest magnitude code: |x| >= 2**256 ranks as 2**256
_LOGIT_ZERO = 1 << 61  # the code of a logit 0 (codes are offset to be non-negative)


def key_dtype(dtype: torch.dtype, scores_kind: str = "probabilities") -> torch.dtype:
    """Sort-key dtype: int64 for logits (any dtype, :func:`make_logit_keys`) and float64
    probabilities, int32 for float32 probabilities."""
    return torch.int64 if dtype == torch.float64 or scores_kind == "logits" else torch.int32


def make_logit_keys(x: torch.Tensor, t: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """int64 sort keys ``code(x) << 1 | t`` of ``(B, C)`` logits, ranked as the logits themselves.

    The sigmoid is monotone, so ranking on the logits gives the ranking of the exact probabilities,
    without float32 / float64 sigmoids saturating at 1.0 (above ~17 / ~37) into false ties.
    ``code`` is the float64 bit pattern of ``|x|`` restricted to magnitudes in [2**-256, 2**256)
    (61 bits), negated for negative ``x`` and offset by 2**61: non-negative and strictly
    monotone there, so every float32 logit and every float64 logit with 1e-77 < |x| < 1e77 keeps its
    exact rank (smaller magnitudes tie with 0, larger ones with each other; ``-0.0`` ties ``+0.0``).

    Args:
        x: float32 / float64 finite logits; t: bool or integer targets in {0, 1}, the shape of ``x``.
        out: optional preallocated int64 result.
    Returns:
        int64 keys in [0, 2**63), the shape of ``x``, monotone in ``x``.
    """
    bits = x.to(torch.float64).view(torch.int64)
    if out is None:
        out = torch.empty(x.shape, dtype=torch.int64, device=x.device)
    torch.bitwise_and(bits, 0x7FFF_FFFF_FFFF_FFFF, out=out)
    out.sub_(_LOGIT_BIAS).clamp_(0, _LOGIT_MAX)
    out.mul_((bits >> 63) | 1)  # sign: -1 for negative x, +1 otherwise
    out.add_(_LOGIT_ZERO)
    out <<= 1
    out |= t.to(torch.int64)
    return out


def make_keys(p: torch.Tensor, t: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Sort keys ``bits(p) << 1 | t`` of ``(B, C)`` probabilities and 0/1 targets.

    Args:
        p: float32 or float64 probabilities in [0, 1] (``-0.0`` is mapped to ``+0.0``).
        t: bool or integer targets in {0, 1}, the shape of ``p``.
        out: optional preallocated result (dtype :func:`key_dtype` of ``p``'s dtype).
    Returns:
        int32 (float32 ``p``) / int64 (float64 ``p``) keys, the shape of ``p``, monotone in ``p``.
    """
    itype = key_dtype(p.dtype)
    if out is None:
        out = torch.empty(p.shape, dtype=itype, device=p.device)
    torch.clamp(p.view(itype), min=0, out=out)  # -0.0 -> +0.0 (the only valid input with the sign bit)
    out <<= 1
    out |= t.to(itype)
    return out


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


def add_to_histogram(p: torch.Tensor, t: torch.Tensor, hist: torch.Tensor, bin_min: torch.Tensor,
                     bin_max: torch.Tensor, *, lock: threading.Lock | None = None) -> None:
    """Accumulate ``(b, C)`` probabilities / int targets into the streaming states, in place.

    Args:
        p: float32 / float64 probabilities in [0, 1]; t: integer targets in {0, 1}, shape of ``p``.
        hist: ``(2, C, bins)`` int64 counts (row 0 negatives, row 1 positives).
        bin_min, bin_max: ``(C, bins)`` float32 smallest / largest probability seen per bin.
        lock: held while the states are written (when several threads add chunks).
    """
    C, nb = bin_min.shape
    idx = stream_bin_index(p, nb).contiguous()  # p may be a column-major batch (CSV / Parquet readers)
    idx += torch.arange(C, device=p.device, dtype=idx.dtype) * nb
    flat = idx.view(-1)
    pf = p.reshape(-1).to(torch.float32)
    hidx = idx + t.to(idx.dtype) * (C * nb)
    ones = torch.ones(flat.numel(), dtype=torch.int64, device=p.device)
    with lock or contextlib.nullcontext():
        bin_min.view(-1).scatter_reduce_(0, flat, pf, reduce="amin")
        bin_max.view(-1).scatter_reduce_(0, flat, pf, reduce="amax")
        hist.view(-1).scatter_add_(0, hidx.view(-1), ones)


def exact_ap_auroc(pieces: list[np.ndarray], N: int, C: int, support: np.ndarray):
    """Exact per-label and micro AP / AUROC from key pieces (each ``(n_i, C)``, ``sum n_i = N``).

    Columns are transposed and sorted in blocks of ~``_SORT_ELEMS`` keys (on the private thread
    pool: numpy's sort and binary searches release the GIL); then the micro average sorts one copy
    of the N*C keys (above ``_MICRO_COPY`` keys: value buckets of ~N*C/4 keys, so the extra memory
    stays ~1/4 of the keys). Peak extra memory: one copy of the keys plus small per-positive arrays.

    Args:
        pieces: int32 or int64 key arrays (all one dtype); support: ``(C,)`` positives per label.
    Returns:
        ``(ap (C,), auroc (C,), micro_ap, micro_auroc)``: float64 arrays (AP 0 without positives,
        AUROC NaN when undefined) and floats (micro AUROC NaN when undefined).
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

    for f in [submit(block, j0) for j0 in range(0, C, cols)]:
        f.result()
    # micro: all N*C pairs as one sorted sequence, after the columns (lower peak memory)
    L, mP, map_sum, mgt, mlt = K.ranked_pieces(pieces, int(support.sum()),
                                               _MICRO_COPY if N * C <= _MICRO_COPY else -(-N * C // 4),
                                               submit=submit)
    ap, auroc = K.finish_ap_auroc(P, N - P, ap_sum, gt, lt)
    map_, mauc = K.finish_ap_auroc(mP, L - mP, map_sum, mgt, mlt)
    return ap, auroc, float(map_[()]), float(mauc[()])


def streaming_ap_auroc(hist: np.ndarray, bin_min: np.ndarray, bin_max: np.ndarray):
    """Per-label and micro AP / AUROC from the streaming states (see :func:`add_to_histogram`).

    A bin whose smallest and largest probability coincide is an exact tie group; other bins are
    ranked in expectation (:func:`evalkit.metrics._kernels.ranked_groups`).

    Returns:
        as :func:`exact_ap_auroc`.
    """
    neg, pos = hist[0], hist[1]
    ap, auroc = K.finish_ap_auroc(*K.ranked_groups(pos, neg, single=bin_min == bin_max))
    msingle = bin_min.min(axis=0, keepdims=True) == bin_max.max(axis=0, keepdims=True)
    map_, mauc = K.finish_ap_auroc(*K.ranked_groups(pos.sum(0, keepdims=True), neg.sum(0, keepdims=True),
                                                    single=msingle))
    return ap, auroc, float(map_[0]), float(mauc[0])


def mean_average_precision(Y: np.ndarray, scores: np.ndarray) -> float:
    """mAP of dense ``scores`` ``(N, C)`` against targets ``Y`` ``(N, C)`` in {0, 1}: the mean over the
    labels with at least one positive of the step-wise, tie-aware average precision (scikit-learn's
    ``average_precision_score`` per label; the engine's ``mean_average_precision``). Any monotone
    scores (logits or probabilities) give the same value. One vectorised pass over all labels, for the
    per-epoch early-stopping monitor and ``--model auto`` (the full engine costs seconds per call at
    1,000 labels). NaN when no label has a positive."""
    Y = np.asarray(Y)
    has = Y.sum(axis=0) > 0
    if not has.any():
        return float("nan")
    S = np.asarray(scores, dtype=np.float64)[:, has]
    Yp = Y[:, has]
    order = np.argsort(-S, axis=0, kind="stable")
    s = np.take_along_axis(S, order, axis=0)
    y = np.take_along_axis(Yp, order, axis=0).astype(np.float64)
    tp = np.cumsum(y, axis=0)
    n = S.shape[0]
    end = np.ones_like(s, dtype=bool)  # last row of each group of tied scores
    end[:-1] = s[:-1] != s[1:]
    tp_end = np.where(end, tp, 0.0)
    prev = np.zeros_like(tp_end)
    prev[1:] = np.maximum.accumulate(tp_end, axis=0)[:-1]  # tp at the previous group end (tp is non-decreasing)
    precision = tp / np.arange(1, n + 1)[:, None]
    ap = np.where(end, (tp - prev) * precision, 0.0).sum(axis=0) / tp[-1]
    return float(ap.mean())
