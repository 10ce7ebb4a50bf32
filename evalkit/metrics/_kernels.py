"""Numeric kernels of the metric engine (numpy, CPU). Private: use :class:`~evalkit.metrics.MultilabelEngine`.

Sort keys
---------
A probability ``p`` in [0, 1] and its 0/1 target ``t`` are packed into one integer
``key = bits(p) << 1 | t`` where ``bits`` is the IEEE-754 bit pattern (float32 -> int32,
float64 -> int64). For non-negative floats the bit pattern is monotone in the value, so sorting
the keys sorts by probability (ties broken by the target, which is irrelevant because tied scores
are always grouped). One in-place ``np.sort`` of integer keys (SIMD sort in numpy >= 2) replaces an
argsort + gather, and the sorted array is a pure function of the *multiset* of (score, target)
pairs: results do not depend on row order, batching or the number of processes. Logits get
int64 keys of the logit itself (:func:`evalkit.metrics.threshold_free.make_logit_keys`), also
non-negative and monotone, so no sigmoid saturation ties them.

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
* ``lt = #pairs with s_pos < s_neg = sum over positives of #negatives with a higher score``.
  AUROC = ``(P*Nn + gt - lt) / (2 P Nn)`` is the Mann-Whitney statistic with ties counted 1/2, identical to
  the trapezoidal area under scikit-learn's ROC curve (``roc_auc_score``; Hanley & McNeil 1982).
  Label ranking loss (``label_ranking_loss``) of a row is ``(P*Nn - gt) / (P*Nn)``: the fraction of
  pairs where the true label does not score strictly higher (ties count as mis-ordered).
* ``min_a = min over positives of a``: coverage error (``coverage_error``) of a row is ``L - min_a``.

All quantities are evaluated at the positives only, by binary searches in the sorted keys (no
per-element temporaries), in chunks of positives: memory stays bounded even for the micro average
over all N*C values.
"""

from __future__ import annotations

import numpy as np

# ---------------------------------------------------------------------------------------------
# keys


def widen_keys(keys: np.ndarray) -> np.ndarray:
    """int32 (float32-based) keys -> int64 (float64-based) keys, exactly (float32 -> float64 is exact)."""
    if keys.dtype == np.int64:
        return keys
    p64 = ((keys >> 1).view(np.float32)).astype(np.float64)
    return (p64.view(np.int64) << 1) | (keys & 1).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# ranked statistics


def _positives(s: np.ndarray, chunk: int = 1 << 20) -> np.ndarray:
    """Positions (ascending; int32 when they fit, else int64) of the keys with target 1, with
    bounded temporaries."""
    itype = np.int32 if s.size < 2**31 - 1 else np.int64
    if s.size <= chunk:
        return np.flatnonzero(s & 1).astype(itype)
    return np.concatenate([(np.flatnonzero(s[i:i + chunk] & 1) + i).astype(itype) for i in range(0, s.size, chunk)])


_WALK = 8  # tie groups are usually tiny: walk this many steps before falling back to binary search


def _walk(arr, start, target, step: int, limit: int, fallback):
    """For each query, move ``start`` by ``step`` while ``target(arr[start + step], query)`` holds,
    at most :data:`_WALK` times (vectorised); unresolved queries use ``fallback(indices)``."""
    out = start.copy()
    active = np.arange(out.size)
    for _ in range(_WALK):
        cand = out[active] + step
        inside = (cand >= 0) & (cand < limit)
        ok = inside.copy()
        ok[inside] = target(arr[cand[inside]], active[inside])
        out[active[ok]] = cand[ok]
        active = active[ok]
        if active.size == 0:
            return out
    out[active] = fallback(active)
    return out


def _groups_at(s: np.ndarray, pos: np.ndarray, lo: int, hi: int):
    """Tie-group bounds of the positives ``pos[lo:hi]`` in the sorted keys ``s``.

    Returns ``(a, e, bp, pe)``: first index of the group, one past its last index, and the index
    in ``pos`` of the first positive at or after ``a`` / ``e``. Untied positives (the common case)
    need no search: ``a = i, e = i + 1, bp = k, pe = k + 1``; tied ones walk to their group's
    ends (binary search for large groups).
    """
    L = s.size
    pk = pos[lo:hi]
    v = s[pk] >> 1
    prev = s[np.maximum(pk - 1, 0)] >> 1
    nxt = s[np.minimum(pk + 1, L - 1)] >> 1
    tied = ((prev == v) & (pk > 0)) | ((nxt == v) & (pk < L - 1))
    del prev, nxt
    a = pk.astype(np.int64)
    e = a + 1
    bp = np.arange(lo, hi, dtype=np.int64)
    pe = bp + 1
    if tied.any():
        t = np.flatnonzero(tied)
        vt = v[t]
        kt = bp[t]
        one = s.dtype.type(1)
        at = _walk(s, a[t], lambda x, i: (x >> one) == vt[i], -1, L,
                   lambda i: np.searchsorted(s, (vt[i] << one).astype(s.dtype), side="left"))
        et = _walk(s, e[t] - 1, lambda x, i: (x >> one) == vt[i], 1, L,
                   lambda i: np.searchsorted(s, (vt[i] << one | one).astype(s.dtype), side="right") - 1) + 1
        P = pos.size
        bt = _walk(pos, kt, lambda x, i: x >= at[i], -1, P, lambda i: np.searchsorted(pos, at[i], side="left"))
        pt = _walk(pos, kt, lambda x, i: x < et[i], 1, P, lambda i: np.searchsorted(pos, et[i], side="left") - 1) + 1
        a[t], e[t], bp[t], pe[t] = at, et, bt, pt
    return a, e, bp, pe


def ranked_1d(s: np.ndarray, chunk: int = 1 << 17, *, offset: int = 0, pos_offset: int = 0,
              P_total: int | None = None, L_total: int | None = None, submit=None) -> tuple[int, float, int, int, int]:
    """Ranked statistics of one ascending-sorted key sequence, working on its positives only.

    For each positive (position ``i`` in ``s``): ``a`` (first element with the same score), ``e``
    (one past the last), ``bp`` (#positives before ``a``) and ``pe`` (#positives before ``e``);
    then precision at its score = (P - bp) / (L - a), #negatives strictly below = a - bp,
    #negatives strictly above = Nn - (e - pe).

    ``s`` may also be one bucket of a longer sorted sequence (a range of scores containing whole
    tie groups): ``offset`` / ``pos_offset`` are the elements / positives before the bucket and
    ``P_total`` / ``L_total`` those of the whole sequence. ``submit(fn, *args) -> future`` runs
    chunks of positives concurrently (results are combined in chunk order).

    Args:
        s: ``(l,)`` int32/int64 keys sorted ascending.
    Returns:
        ``(P, ap_sum, gt, lt, min_a)``: positives (in ``s``), sum of precisions at the positives,
        #(pos, neg) pairs with s_pos > s_neg, #pairs with s_pos < s_neg, group start of the lowest
        positive (``L`` when there is no positive); positions are global.
    """
    pos = _positives(s)
    P = int(pos.size)
    L = s.size if L_total is None else L_total
    Pt = P if P_total is None else P_total
    Nn = L - Pt
    def part(c0: int):
        a, e, bp, pe = _groups_at(s, pos, c0, min(P, c0 + chunk))
        a += offset
        e += offset
        bp += pos_offset
        pe += pos_offset
        return (int(a[0]), float(((Pt - bp) / (L - a).astype(np.float64)).sum()), int((a - bp).sum()),
                int((Nn - (e - pe)).sum()))

    starts = range(0, P, chunk)
    if submit is not None and len(starts) > 1:  # chunks of positives on a thread pool
        parts = [f.result() for f in [submit(part, c0) for c0 in starts]]
    else:
        parts = [part(c0) for c0 in starts]
    min_a = parts[0][0] if parts else L
    ap_sum = 0.0
    gt = lt = 0
    for _, ap, g, t in parts:  # summed in chunk order: deterministic
        ap_sum += ap
        gt += g
        lt += t
    return P, ap_sum, gt, lt, min_a


def ranked_pieces(pieces: list[np.ndarray], P_total: int, bucket: int, chunk: int = 1 << 22, submit=None):
    """:func:`ranked_1d` of all keys of ``pieces`` (any shapes) without one sorted copy of them all.

    A histogram of the top 12 key bits splits the value range into buckets of about ``bucket``
    keys (a bucket never splits a tie group); each bucket is gathered, sorted and scanned in turn
    with global offsets. Extra memory ~ one bucket plus one byte per key (bucket ids), for about
    one additional pass over the keys per bucket.

    Returns:
        ``(L, P, ap_sum, gt, lt)``.
    """
    flats = [k.reshape(-1) for k in pieces if k.size]
    L = sum(f.size for f in flats)
    dtype = flats[0].dtype if flats else np.int32
    bucket = max(bucket, -(-L // 200))  # at most ~200 buckets (ids are uint8)
    if L <= bucket:
        s = np.concatenate(flats) if len(flats) > 1 else (flats[0].copy() if flats else np.zeros(0, dtype))
        s.sort()
        P, ap, gt, lt, _ = ranked_1d(s, submit=submit)
        return L, P, ap, gt, lt
    shift = (31 if dtype == np.int32 else 63) - 12
    counts = np.zeros(1 << 12, dtype=np.int64)
    for f in flats:
        for c0 in range(0, f.size, chunk):
            counts += np.bincount(f[c0:c0 + chunk] >> shift, minlength=1 << 12)
    cum = np.cumsum(counts)
    edges = [0]
    while edges[-1] < counts.size:
        done = cum[edges[-1] - 1] if edges[-1] else 0
        nxt = int(np.searchsorted(cum, done + bucket, side="right"))
        edges.append(min(counts.size, max(nxt, edges[-1] + 1)))
    lut = np.zeros(counts.size, dtype=np.uint8)  # histogram bin -> bucket
    for b, (lo_bin, hi_bin) in enumerate(zip(edges[:-1], edges[1:])):
        lut[lo_bin:hi_bin] = b
    ids = [[lut[f[c0:c0 + chunk] >> shift] for c0 in range(0, f.size, chunk)] for f in flats]  # 1 byte / key
    offset = pos_offset = 0
    ap_sum, gt, lt = 0.0, 0, 0
    for b, (lo_bin, hi_bin) in enumerate(zip(edges[:-1], edges[1:])):
        n = int(counts[lo_bin:hi_bin].sum())
        if n == 0:
            continue
        s = np.empty(n, dtype=dtype)
        w = 0
        for f, fids in zip(flats, ids):
            for c0, cid in zip(range(0, f.size, chunk), fids):
                sel = f[c0:c0 + chunk][cid == b]
                s[w:w + sel.size] = sel
                w += sel.size
        s.sort()
        P, ap, g, t, _ = ranked_1d(s, offset=offset, pos_offset=pos_offset, P_total=P_total, L_total=L,
                                   submit=submit)
        ap_sum += ap
        gt += g
        lt += t
        offset += n
        pos_offset += P
        del s
    return L, pos_offset, ap_sum, gt, lt


def ranked_rows(keys: np.ndarray, chunk_elems: int = 1 << 21):
    """Ranked statistics of whole rows (the C labels of each sample); rows are sorted here.

    Args:
        keys: ``(B, C)`` int32/int64 keys (not modified).
    Returns:
        ``(P, ap_sum, gt, min_a)``, each ``(B,)`` (``min_a = C`` for rows without positives).
    """
    B, C = keys.shape
    out_P = np.empty(B, dtype=np.int64)
    out_ap = np.empty(B)
    out_gt = np.empty(B, dtype=np.int64)
    out_min = np.empty(B, dtype=np.int64)
    step = max(1, chunk_elems // max(C, 1))
    for r0 in range(0, B, step):
        k = np.sort(keys[r0:r0 + step], axis=1)
        R = k.shape[0]
        sl = slice(r0, r0 + R)
        if k.dtype != np.int32:  # float64 scores: replace scores by their dense rank within the row
            v = k >> 1
            dense = np.zeros(k.shape, dtype=np.int32)
            np.cumsum(v[:, 1:] != v[:, :-1], axis=1, out=dense[:, 1:])
            k = (dense << 1) | (k & 1).astype(np.int32)  # same order and ties, 32 bits
        _ranked_rows_int32(k, out_P[sl], out_ap[sl], out_gt[sl], out_min[sl])
    return out_P, out_ap, out_gt, out_min


def _ranked_rows_int32(k: np.ndarray, out_P, out_ap, out_gt, out_min) -> None:
    """Vectorised :func:`ranked_1d` over rows: keys get the row index in their high 32 bits, so the
    whole block is one sorted int64 sequence and every group / search stays within its row."""
    R, C = k.shape
    comp = k.astype(np.int64)
    comp += (np.arange(R, dtype=np.int64) << 32)[:, None]
    comp = comp.reshape(-1)
    pos = np.flatnonzero(comp & 1)
    row = pos // C
    Pr = np.bincount(row, minlength=R)
    first = np.cumsum(Pr) - Pr  # index in pos of each row's first positive
    a, _, bp, _ = _groups_at(comp, pos, 0, pos.size)
    bp -= first[row]
    a -= row * C
    out_P[:] = Pr
    out_ap[:] = np.bincount(row, weights=(Pr[row] - bp) / (C - a).astype(np.float64), minlength=R)
    out_gt[:] = np.bincount(row, weights=a - bp, minlength=R).astype(np.int64)
    mins = np.full(R, C, dtype=np.int64)
    has = Pr > 0
    mins[has] = a[first[has]]
    out_min[:] = mins


def ranked_groups(pos: np.ndarray, neg: np.ndarray, single: np.ndarray | None = None):
    """Ranked statistics from per-bin counts (bins in ascending score order).

    A bin flagged ``single`` holds one distinct score: a true tie group, treated exactly as
    scikit-learn does (all its positives share the precision at the bin's lower edge). Other bins
    hold several distinct scores in an unknown order; their positives get the expected precision
    under a random order inside the bin (k-th positive at expected position k (T+1)/(m+1) of the
    bin's T elements, m positives), summed in closed form with the digamma function:
    ``sum_k (PA + k) / (A + c k) = m/c + (c PA - A)/c^2 (psi(A/c + m + 1) - psi(A/c + 1))``,
    ``c = (T+1)/(m+1)``, A / PA = elements / positives in higher bins. This removes the
    first-order binning bias of AP. Pairs inside a bin count 1/2 for AUROC (their expected value).

    Args:
        pos, neg: ``(R, G)`` int64 positives / negatives per bin.
        single: ``(R, G)`` bool, bins known to hold a single distinct score (default: all).
    Returns:
        ``(P, Nn, ap_sum, gt, lt)`` each ``(R,)``.
    """
    from scipy.special import digamma

    pos = pos.astype(np.int64)
    neg = neg.astype(np.int64)
    tot = pos + neg
    P = pos.sum(axis=1)
    Nn = neg.sum(axis=1)
    L = P + Nn
    bp = np.cumsum(pos, axis=1) - pos
    a = np.cumsum(tot, axis=1) - tot
    neg_above = Nn[:, None] - np.cumsum(neg, axis=1)
    # tie-group precision (single-valued bins): m (PA + m) / (A + T), PA = P - bp, A + T = L - a
    den = (L[:, None] - a).astype(np.float64)
    ap_bins = pos * ((P[:, None] - bp) / np.where(den > 0, den, 1.0))
    if single is not None:
        multi = ~single & (pos > 0)
        if multi.any():
            m = pos[multi].astype(np.float64)
            T = tot[multi].astype(np.float64)
            A = (L[:, None] - a - tot)[multi].astype(np.float64)  # elements in higher bins
            PA = (P[:, None] - bp - pos)[multi].astype(np.float64)
            c = (T + 1.0) / (m + 1.0)
            x = A / c
            ap_bins[multi] = m / c + (c * PA - A) / (c * c) * (digamma(x + m + 1.0) - digamma(x + 1.0))
    ap = ap_bins.sum(axis=1)
    gt = (pos * (a - bp)).sum(axis=1)
    lt = (pos * neg_above).sum(axis=1)
    return P, Nn, ap, gt, lt


def finish_ap_auroc(P, Nn, ap_sum, gt, lt):
    """Per-sequence AP (0 where no positive, as scikit-learn) and AUROC (NaN where undefined).

    AUROC = (#pairs pos > neg + 1/2 #tied pairs) / (P Nn) = (P Nn + gt - lt) / (2 P Nn).
    """
    P = np.asarray(P, dtype=np.float64)
    Nn = np.asarray(Nn, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    lt = np.asarray(lt, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ap = np.where(P > 0, np.asarray(ap_sum) / np.where(P > 0, P, 1.0), 0.0)
        pairs = P * Nn
        auroc = np.where(pairs > 0, (pairs + gt - lt) / (2.0 * np.where(pairs > 0, pairs, 1.0)), np.nan)
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
