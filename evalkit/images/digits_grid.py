"""``digits-grid``: a small, offline, real-handwriting multi-label image set for demos and tests.

Each image is a 2 x 2 grid of scikit-learn's shipped handwritten digits (``load_digits``: 1,797
8 x 8 scans of 43 writers, UCI "Optical Recognition of Handwritten Digits"), 16 x 16 grayscale
in [0, 1]; a grid cell is blank with probability :data:`BLANK` (never all four). The labels are
which of the 10 digits appear (1 to 4 per image, label cardinality about 2.6). Deterministic for a
seed; the train and test grids are composed from disjoint digit scans (a fixed split of the
1,797), so no test scan was seen in training.

A demo set, not a benchmark of record: it exercises image models, multi-label metrics and the
image paths of evalkit in seconds on a CPU.
"""

from __future__ import annotations

import numpy as np

#: probability that a grid cell is left blank
BLANK = 0.3
#: images composed for the train and test splits
N_TRAIN, N_TEST = 3000, 1000
#: digit scans (of 1,797) that train images are composed from; the rest compose the test images
N_TRAIN_SCANS = 1200


def digits_grid(seed: int = 0):
    """``(train, test)`` :class:`~evalkit.data.core.Dataset` pair: ``X`` float32 ``(N, 1, 16, 16)`` in
    [0, 1], ``Y`` uint8 ``(N, 10)`` (labels ``digit_0`` .. ``digit_9``), N = 3000 / 1000."""
    from sklearn.datasets import load_digits

    from evalkit.data.core import Dataset

    digits = load_digits()
    scans = (digits.images / 16.0).astype(np.float32)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(scans))
    names = [f"digit_{d}" for d in range(10)]
    out = []
    for pool, n in ((order[:N_TRAIN_SCANS], N_TRAIN), (order[N_TRAIN_SCANS:], N_TEST)):
        X, Y = _compose(scans, digits.target, pool, n, rng)
        out.append(Dataset("digits-grid", X, Y, [], names, source="builtin:digits-grid"))
    return out[0], out[1]


def _compose(scans: np.ndarray, target: np.ndarray, pool: np.ndarray, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    picks = rng.choice(pool, size=(n, 4))
    blank = rng.random((n, 4)) < BLANK
    blank[blank.all(axis=1), rng.integers(0, 4)] = False  # at least one digit per image
    cells = np.where(blank[:, :, None, None], 0.0, scans[picks])
    top = np.concatenate([cells[:, 0], cells[:, 1]], axis=2)
    bottom = np.concatenate([cells[:, 2], cells[:, 3]], axis=2)
    X = np.concatenate([top, bottom], axis=1)[:, None].astype(np.float32)
    Y = np.zeros((n, 10), dtype=np.uint8)
    rows = np.repeat(np.arange(n), 4)[~blank.ravel()]
    Y[rows, target[picks].ravel()[~blank.ravel()]] = 1
    return X, Y
