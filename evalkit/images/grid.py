"""What people would rather look at: a grid of sample test images with their true and predicted labels.

Each tile shows one test image (as read, before standardisation) and, below it, its labels: a label
both true and predicted in black, a miss (true, not predicted) in red with a ``-``, a false alarm
(predicted, not true) in orange with a ``+``. Logged by ``evalkit run`` on image data as
``plots/test_samples.png``.
"""

from __future__ import annotations

import numpy as np

#: tiles of the grid (the first test images, in split order)
SAMPLES = 16
#: labels listed under a tile at most (the rest are counted)
MAX_TILE_LABELS = 4


def predicted(probabilities: np.ndarray, thresholds) -> np.ndarray:
    """bool ``(N, C)``: ``probability >= threshold`` per label, or the top K of a ``top-k:K`` strategy."""
    if thresholds.k is not None:
        top = np.argsort(-probabilities, axis=1, kind="stable")[:, : thresholds.k]
        out = np.zeros(probabilities.shape, dtype=bool)
        np.put_along_axis(out, top, True, axis=1)
        return out
    return probabilities >= thresholds.array()[None, :]


def tile_labels(truth: np.ndarray, pred: np.ndarray, names) -> list[tuple[str, str]]:
    """``(text, colour)`` per label shown under a tile: hits black, misses red ``-name``, false alarms
    orange ``+name``; at most :data:`MAX_TILE_LABELS`, then ``… N more``."""
    rows = [(names[j], "black") for j in np.flatnonzero(truth & pred)]
    rows += [(f"-{names[j]}", "tab:red") for j in np.flatnonzero(truth & ~pred)]
    rows += [(f"+{names[j]}", "tab:orange") for j in np.flatnonzero(~truth & pred)]
    if len(rows) > MAX_TILE_LABELS:
        rows = rows[:MAX_TILE_LABELS] + [(f"… {len(rows) - MAX_TILE_LABELS} more", "gray")]
    return rows or [("(no label)", "gray")]


def sample_grid(images: np.ndarray, probabilities: np.ndarray, targets: np.ndarray, thresholds, names, title: str = ""):
    """A matplotlib figure of the first :data:`SAMPLES` ``images`` ``(N, 1 or 3, H, W)`` with their
    true and predicted labels (:func:`tile_labels`); ``probabilities`` and ``targets`` ``(N, C)``."""
    from evalkit.plots import _plt

    plt = _plt()
    n = min(SAMPLES, len(images))
    cols = min(4, n)
    rows = -(-n // cols)
    pred = predicted(probabilities[:n], thresholds)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 3.1 * rows), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i >= n:
            continue
        img = np.asarray(images[i], dtype=np.float32)
        lo, hi = float(img.min()), float(img.max())
        img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
        ax.imshow(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0), cmap="gray" if img.shape[0] == 1 else None)
        for k, (text, colour) in enumerate(tile_labels(targets[i].astype(bool), pred[i], names)):
            ax.text(0.0, -0.06 - 0.11 * k, text, color=colour, fontsize=7, transform=ax.transAxes, va="top")
    fig.suptitle(title or "Test samples: labels (black hit, red -miss, orange +false alarm)", fontsize=9)
    fig.tight_layout()
    return fig


def log_sample_grid(run, test, probabilities: np.ndarray, thresholds) -> None:
    """Log :func:`sample_grid` of the test split ``test`` (a Dataset of images, as read) as
    ``plots/test_samples.png`` of ``run``; no-op for feature data."""
    if len(getattr(test.X, "shape", ())) != 4:
        return
    import matplotlib.pyplot as plt

    images = test.X[:SAMPLES].load() if hasattr(test.X, "load") else test.X  # an image table: the first few, decoded
    fig = sample_grid(images, probabilities, np.asarray(test.Y), thresholds, list(test.label_names))
    try:
        run.log_figure(fig, "plots/test_samples.png")
    finally:
        plt.close(fig)
