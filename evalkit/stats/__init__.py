"""Statistics for comparing and qualifying results.

Here: the paired t-test over matched seeds used by ``evalkit compare``. Submodules:
:mod:`evalkit.stats.bootstrap` (bootstrap confidence intervals over test rows),
:mod:`evalkit.stats.rowstats` (the per-row sufficient statistics they resample) and
:mod:`evalkit.stats.paired` (paired bootstrap differences and McNemar's test of two score sets).
"""

from __future__ import annotations

import math

import numpy as np

#: the test ``evalkit compare`` names in its output
PAIRED_TEST = "paired t-test over seeds (scipy.stats.ttest_rel, two-sided)"
ALPHA = 0.05


def p_text(p: float, alpha: float = 0.05) -> str:
    """``p`` with 3 significant digits, more when 3 would round it across ``alpha``: 50/1001 prints
    ``0.04995``, not ``0.05`` beside a mark that says p < 0.05."""
    for digits in (3, 4, 5, 6, 8):
        text = f"{p:.{digits}g}"
        if (float(text) < alpha) == (p < alpha):
            return text
    return repr(p)


def paired_pvalue(a, b) -> float | None:
    """Two-sided p-value of a paired t-test of ``a`` against ``b`` (matched samples, e.g. seeds).

    Returns ``None`` with fewer than 2 pairs. Degenerate cases are decided without scipy's NaN:
    identical differences that are all zero give p = 1; identical non-zero differences (a perfectly
    consistent lead, zero variance) give p = 0.
    """
    from scipy import stats

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size < 2:
        return None
    d = a - b
    if np.allclose(d, d[0], rtol=0, atol=1e-12):
        return 1.0 if abs(d[0]) <= 1e-12 else 0.0
    p = float(stats.ttest_rel(a, b).pvalue)
    return p if math.isfinite(p) else None


#: what the grouped ``evalkit compare`` says of its p-values
HOLM = "Holm-adjusted over the comparisons with the best group, per metric (Holm 1979)"


def holm(pvalues) -> list[float | None]:
    """Holm's step-down adjustment of ``m`` p-values (Holm 1979, "A simple sequentially rejective
    multiple test procedure"): sorted ascending, ``p_(i) * (m - i + 1)``, made monotone by a running
    maximum and capped at 1. Controls the family-wise error rate under any dependence.

    Args:
        pvalues: a sequence of p-values in [0, 1]; ``None`` / NaN entries are left as ``None`` and do
            not count in ``m``.
    Returns:
        The adjusted p-values, in the order given (same as ``statsmodels.stats.multitest.multipletests(
        p, method="holm")[1]``; neither scipy nor evalkit's dependencies ship Holm, hence these lines).
    """
    vals = [None if p is None or p != p else float(p) for p in pvalues]
    idx = sorted((i for i, p in enumerate(vals) if p is not None), key=lambda i: vals[i])
    out: list[float | None] = [None] * len(vals)
    running = 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, vals[i] * (len(idx) - rank)))
        out[i] = running
    return out
