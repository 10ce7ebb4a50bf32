"""Scores: the one place logits become probabilities.

evalkit never guesses whether scores are logits or probabilities: callers declare it. Where logits
are turned into probabilities, this is the function (the same float32 ``torch.sigmoid`` as in
training), so ``run``, ``evaluate --model`` and cross-fitting agree to the bit.
"""

from __future__ import annotations

import numpy as np


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Probabilities ``(N, C)`` float32 in [0, 1] from logits ``(N, C)`` (any real dtype), computed
    as ``torch.sigmoid`` on float32, exactly as in training."""
    import torch

    return torch.sigmoid(torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32))).numpy()
