"""Numeric kernels of the metric engine (numpy, CPU). Private: use :class:`MultilabelEngine`.

Sort keys
---------
A probability ``p`` in [0, 1] and its 0/1 target ``t`` are packed into one integer
``key = bits(p) << 1 | t`` where ``bits`` is the IEEE-754 bit pattern (float32 -> int32,
float64 -> int64). For non-negative floats the bit pattern is monotone in the value, so sorting
the keys sorts by probability (ties broken by the target, which is irrelevant because tied scores
are always grouped). One in-place ``np.sort`` of integer keys (SIMD sort in numpy >= 2) replaces an
argsort + gather, and the sorted array is a pure function of the *multiset* of (score, target)
pairs: results do not depend on row order, batching or the number of processes.

Ranked statistics
-----------------
For one sorted sequence (a column, a row, or all N*C values for micro averages) of length ``L``
with ``P`` positives and ``Nn = L - P`` negatives, every element ``i`` gets ``a(i)``, the start index
of its tie group in ascending order, and ``bp(i)``, the number of positives strictly below its
score. From these:

* ``ap_sum = sum over positives of (P - bp) / (L - a)``: precision at the threshold equal to the
  element's score, i.e. ``#positives with score >= s / #elements with score >= s``.
  ``AP = ap_sum / P`` is scikit-learn's step-wise average precision
  ``sum_n (R_n - R_{n-1}) P_n`` with one point per distinct score (``average_precision_score``);
  for a row it is scikit-learn's label ranking average precision
  (``label_ranking_average_precision_score``: ``L_ij / rank_ij`` with ``rank`` = max-rank of ties).
* ``gt = #(positive, negative) pairs with s_pos > s_neg = sum over positives of (a - bp)``;
* ``neg_bp = sum over negatives of bp`` so that ``ge = #pairs with s_pos >= s_neg = P*Nn - neg_bp``.
  AUROC = ``(gt + ge) / (2 P Nn)`` is the Mann-Whitney statistic with ties counted 1/2, identical to
  the trapezoidal area under scikit-learn's ROC curve (``roc_auc_score``; Hanley & McNeil 1982).
  Label ranking loss (``label_ranking_loss``) of a row is ``(P*Nn - gt) / (P*Nn)``: the fraction of
  pairs where the true label does not score strictly higher (ties count as mis-ordered).
* ``min_a = min over positives of a``: coverage error (``coverage_error``) of a row is ``L - min_a``.

Only a forward scan is needed, so long sequences are processed in segments with a small carry
(bounded memory for the micro average over N*C values).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# ---------------------------------------------------------------------------------------------
# keys


def keys_to_probabilities(keys: np.ndarray) -> np.ndarray:
    """Inverse of the key packing: int32 keys -> float32, int64 keys -> float64 probabilities."""
    ftype = np.float32 if keys.dtype == np.int32 else np.float64
    return (keys >> 1).view(ftype)


def widen_keys(keys: np.ndarray) -> np.ndarray:
    """int32 (float32-based) keys -> int64 (float64-based) keys, exactly (float32 -> float64 is exact)."""
    if keys.dtype == np.int64:
        return keys
    p64 = ((keys >> 1).view(np.float32)).astype(np.float64)
    return (p64.view(np.int64) << 1) | (keys & 1).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# ranked statistics


@dataclass
class RankedCarry:
    """State between segments of the same sorted rows (shape (R,) each)."""

    offset: int
    last_v: np.ndarray
    a: np.ndarray
    bp: np.ndarray
    cum: np.ndarray

    @classmethod
    def start(cls, rows: int) -> "RankedCarry":
        z = np.zeros(rows, dtype=np.int64)
        return cls(0, np.full(rows, -1, dtype=np.int64), z.copy(), z.copy(), z.copy())


@dataclass
class RankedSums:
    """Per-row accumulators of :func:`ranked_segment` (shape (R,) each)."""

    ap_sum: np.ndarray  # float64
    gt: np.ndarray  # int64
    neg_bp: np.ndarray  # int64
    min_a: np.ndarray  # int64 (L if no positive)

    @classmethod
    def zeros(cls, rows: int, length) -> "RankedSums":
        return cls(np.zeros(rows), np.zeros(rows, dtype=np.int64), np.zeros(rows, dtype=np.int64),
                   np.broadcast_to(np.asarray(length, dtype=np.int64), (rows,)).copy())


def ranked_segment(keys: np.ndarray, P: np.ndarray, L, carry: RankedCarry, sums: RankedSums) -> None:
    """Accumulate ranked statistics of one segment of ascending-sorted key rows (in place).

    Args:
        keys: ``(R, l)`` int32/int64 sort keys, each row sorted ascending; the segment covers
            positions ``carry.offset .. carry.offset + l`` of rows of total length ``L``.
        P: ``(R,)`` int64 total positives of each full row.
        L: total row length (int or ``(R,)``).
        carry, sums: updated in place.
    """
    R, l = keys.shape
    if l == 0:
        return
    idx_t = np.int32 if l < 2**31 - 1 else np.int64
    y = (keys & 1).astype(bool)
    v = keys >> 1
    st = np.empty((R, l), dtype=bool)
    np.not_equal(v[:, 0], carry.last_v, out=st[:, 0])
    np.not_equal(v[:, 1:], v[:, :-1], out=st[:, 1:])
    del v
    ar = np.arange(l, dtype=idx_t)
    cum = np.cumsum(y, axis=1, dtype=np.int64)
    last_cum = cum[:, -1].copy()
    cum -= y  # exclusive, local
    cum += carry.cum[:, None]  # exclusive, global: positives before position i
    if st.all():
        a = ar[None, :] + np.int64(carry.offset)
        bp = cum
    else:
        al = np.where(st, ar, idx_t(-1))
        np.maximum.accumulate(al, axis=1, out=al)
        inside = al >= 0
        bp = np.take_along_axis(cum, np.maximum(al, 0), axis=1)
        a = al.astype(np.int64)
        a += carry.offset
        if not inside.all():
            a = np.where(inside, a, carry.a[:, None])
            bp = np.where(inside, bp, carry.bp[:, None])
        del al, inside
    del st
    Pc = np.asarray(P, dtype=np.int64)[:, None]
    Lc = np.asarray(L, dtype=np.int64)
    Lc = Lc[:, None] if Lc.ndim else Lc
    num = np.where(y, Pc - bp, 0).astype(np.float64)
    den = (Lc - a).astype(np.float64)
    sums.ap_sum += (num / den).sum(axis=1)
    del num, den
    sums.gt += np.where(y, a - bp, 0).sum(axis=1)
    sums.neg_bp += np.where(y, 0, bp).sum(axis=1)
    sums.min_a = np.minimum(sums.min_a, np.where(y, a, np.iinfo(np.int64).max).min(axis=1))
    carry.last_v = (keys[:, -1] >> 1).astype(np.int64)
    carry.a = np.broadcast_to(a[:, -1], (R,)).astype(np.int64)
    carry.bp = np.broadcast_to(bp[:, -1], (R,)).astype(np.int64)
    carry.cum = carry.cum + last_cum
    carry.offset += l


def ranked_rows(keys: np.ndarray, chunk_elems: int = 1 << 21):
    """Ranked statistics of whole rows (e.g. the C labels of each sample), rows sorted here.

    Args:
        keys: ``(B, C)`` int32/int64 keys (not modified).
    Returns:
        ``(P, ap_sum, gt, min_a)`` each ``(B,)``.
    """
    B, C = keys.shape
    out_P = np.empty(B, dtype=np.int64)
    out_ap = np.empty(B)
    out_gt = np.empty(B, dtype=np.int64)
    out_min = np.empty(B, dtype=np.int64)
    step = max(1, chunk_elems // max(C, 1))
    for s in range(0, B, step):
        k = np.sort(keys[s:s + step], axis=1)
        R = k.shape[0]
        P = (k & 1).sum(axis=1, dtype=np.int64)
        sums = RankedSums.zeros(R, C)
        ranked_segment(k, P, C, RankedCarry.start(R), sums)
        out_P[s:s + R] = P
        out_ap[s:s + R] = sums.ap_sum
        out_gt[s:s + R] = sums.gt
        out_min[s:s + R] = sums.min_a
    return out_P, out_ap, out_gt, out_min


def ranked_groups(pos: np.ndarray, neg: np.ndarray):
    """Ranked statistics from per-group counts (histogram bins in ascending score order).

    Args:
        pos, neg: ``(R, G)`` int64 positives / negatives per group (each group = one tie group).
    Returns:
        ``(P, Nn, ap_sum, gt, neg_bp)`` each ``(R,)``.
    """
    pos = pos.astype(np.int64)
    neg = neg.astype(np.int64)
    tot = pos + neg
    P = pos.sum(axis=1)
    L = tot.sum(axis=1)
    bp = np.cumsum(pos, axis=1) - pos
    a = np.cumsum(tot, axis=1) - tot
    den = (L[:, None] - a).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ap = np.where(pos > 0, pos * (P[:, None] - bp) / np.where(den > 0, den, 1.0), 0.0).sum(axis=1)
    gt = (pos * (a - bp)).sum(axis=1)
    neg_bp = (neg * bp).sum(axis=1)
    return P, L - P, ap, gt, neg_bp


def finish_ap_auroc(P: np.ndarray, Nn: np.ndarray, ap_sum: np.ndarray, gt: np.ndarray, neg_bp: np.ndarray):
    """Per-sequence AP (0 where no positive, as scikit-learn) and AUROC (NaN where undefined)."""
    P = P.astype(np.float64)
    Nn = Nn.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ap = np.where(P > 0, ap_sum / np.where(P > 0, P, 1.0), 0.0)
        pairs = P * Nn
        ge = pairs - neg_bp
        auroc = np.where(pairs > 0, (gt + ge) / (2.0 * np.where(pairs > 0, pairs, 1.0)), np.nan)
    return np.clip(ap, 0.0, 1.0), auroc


# ---------------------------------------------------------------------------------------------
# order-independent exact sums of floats in [0, 1]

FX_SCALE = 2.0**31


def to_fixed(values) -> tuple:
    """Split float64 values in [0, 1] into two 31-bit integer limbs (``v ~= hi/2^31 + lo/2^62``).

    Sums of the limbs are exact integers, so a mean accumulated over batches or processes is
    identical whatever the split (rounding error <= 2^-63 per value). Works on numpy arrays or
    torch tensors; returns the two limb sums (python ints for numpy, int64 0-d tensors for torch).
    """
    if isinstance(values, np.ndarray):
        x = values * FX_SCALE
        hi = np.floor(x)
        lo = np.rint((x - hi) * FX_SCALE)
        return int(hi.astype(np.int64).sum()), int(lo.astype(np.int64).sum())
    import torch

    x = values.to(torch.float64) * FX_SCALE
    hi = torch.floor(x)
    lo = torch.round((x - hi) * FX_SCALE)
    return hi.to(torch.int64).sum(), lo.to(torch.int64).sum()


def from_fixed(hi: int, lo: int) -> float:
    """Inverse of :func:`to_fixed` for a sum: ``hi / 2^31 + lo / 2^62`` as float64."""
    return float(np.float64(hi) / FX_SCALE + np.float64(lo) / (FX_SCALE * FX_SCALE))
