"""Metric direction: which metrics are better when lower (losses, error rates, ranking costs).

Used by ``compare`` (which value to highlight / rank first) and by the gates (a relative gate on a
lower-is-better metric fails when the value rises). The one place that knows this.
"""

from __future__ import annotations

# metric names (or name suffixes, e.g. ``test/hamming_loss``) where lower is better
LOWER_IS_BETTER = ("hamming_loss", "coverage_error", "label_ranking_loss", "loss", "one_error")


def lower_is_better(metric: str) -> bool:
    """True when lower values of ``metric`` (a name such as ``test/hamming_loss``) are better.

    Args:
        metric: a metric name; matched by suffix against :data:`LOWER_IS_BETTER`.
    Returns:
        bool. Never raises.
    """
    return any(str(metric).endswith(k) for k in LOWER_IS_BETTER)
