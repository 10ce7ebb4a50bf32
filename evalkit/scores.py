"""Scores: the one place logits become probabilities.

evalkit never guesses whether scores are logits or probabilities: callers declare it. Where logits
are turned into probabilities, this is the function, so ``run``, ``evaluate --model`` and
cross-fitting agree to the bit. It computes in float64: a float32 sigmoid returns exactly 1.0 above
a logit of ~17 (0.0 below ~-88), so confident scores would tie and ranking metrics and fitted
thresholds would depend on the scale of the logits. (float64 saturates only above ~37; ranking
metrics computed by the engine from logits rank the logits themselves, see
:func:`evalkit.metrics.threshold_free.make_logit_keys`.)
"""

from __future__ import annotations

import numpy as np


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Probabilities ``(N, C)`` float64 in [0, 1] from logits ``(N, C)`` (any real dtype; float32
    logits are widened exactly), computed as ``torch.sigmoid`` in float64. Never raises for finite
    input; NaN stays NaN."""
    import torch

    return torch.sigmoid(torch.from_numpy(np.array(logits, dtype=np.float64))).numpy()
