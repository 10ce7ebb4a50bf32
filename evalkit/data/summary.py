"""Dataset statistics: per-split summary, label co-occurrence counts and their heatmap.

Label cardinality and density as defined by Tsoumakas & Katakis, "Multi-label classification: an
overview" (IJDWM 3(3), 2007): cardinality = mean number of positive labels per sample, density =
cardinality / number of labels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from evalkit.data.core import Dataset, Splits
from evalkit.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure


def summarize(splits: Splits | Mapping[str, Dataset] | Dataset) -> dict[str, dict]:
    """Per-split statistics, JSON-serialisable.

    Args:
        splits: a :class:`Splits` (``train`` / ``val`` / ``test``), a mapping split name -> Dataset, or a
            single Dataset (reported as ``"all"``).

    Returns:
        ``{split: {"samples": int, "features": int, "labels": int, "label_cardinality": float,
        "label_density": float, "distinct_labelsets": int, "labels_without_positives": [names],
        "labels_without_negatives": [names]}}`` in split order. Labels without positives (or without
        negatives) in a split make per-label ROC-AUC / average precision undefined there.

    Raises:
        InputError: ``splits`` is none of the accepted types.
    """
    if isinstance(splits, Splits):
        parts: Mapping[str, Dataset] = {"train": splits.train, "val": splits.val, "test": splits.test}
    elif isinstance(splits, Dataset):
        parts = {"all": splits}
    elif isinstance(splits, Mapping):
        parts = splits
    else:
        raise InputError(f"summarize: expected Splits, a mapping of Datasets or a Dataset, got {type(splits).__name__}")
    out: dict[str, dict] = {}
    for split, ds in parts.items():
        if not isinstance(ds, Dataset):
            raise InputError(f"summarize: split {split!r} is a {type(ds).__name__}, expected a Dataset")
        Y = ds.Y
        positives = Y.sum(axis=0, dtype=np.int64)
        n = ds.n_samples
        out[str(split)] = {
            "samples": n,
            "features": ds.n_features,
            "labels": ds.n_labels,
            "label_cardinality": ds.label_cardinality,
            "label_density": ds.label_density,
            "distinct_labelsets": int(np.unique(np.packbits(Y, axis=1), axis=0).shape[0]),
            "labels_without_positives": [ds.label_names[k] for k in np.flatnonzero(positives == 0)],
            "labels_without_negatives": [ds.label_names[k] for k in np.flatnonzero(positives == n)],
        }
    return out


def cooccurrence(Y: np.ndarray, label_names: Sequence[str]) -> "pd.DataFrame":
    """Label co-occurrence counts.

    Args:
        Y: multi-hot targets ``(N, C)``, values 0/1 (any integer / boolean dtype).
        label_names: ``C`` names.

    Returns:
        ``C x C`` int64 DataFrame indexed and columned by ``label_names``; entry ``(i, j)`` is the number
        of samples with both labels ``i`` and ``j``; the diagonal holds each label's positive count.
        Symmetric.

    Raises:
        InputError: ``Y`` not 2-D, not 0/1, or ``label_names`` of the wrong length.
    """
    import pandas as pd

    Y = np.asarray(Y)
    if Y.ndim != 2:
        raise InputError(f"cooccurrence: Y must have shape (N, C), got {Y.shape}")
    if len(label_names) != Y.shape[1]:
        raise InputError(f"cooccurrence: {len(label_names)} label names for {Y.shape[1]} label columns")
    if not np.isin(Y, (0, 1)).all():
        raise InputError("cooccurrence: Y must hold 0 or 1")
    Yf = Y.astype(np.float64)  # BLAS: exact for counts below 2**53; int64 matmul took 100 s at 16k x 1000
    counts = np.rint(Yf.T @ Yf).astype(np.int64)
    names = [str(n) for n in label_names]
    return pd.DataFrame(counts, index=pd.Index(names, name="label"), columns=pd.Index(names, name="label"))


def plot_cooccurrence(df: "pd.DataFrame", *, title: str | None = None, annotate: bool | None = None) -> "Figure":
    """Heatmap of a :func:`cooccurrence` table.

    Rendered with matplotlib's Agg canvas (no display, no global pyplot state; matplotlib is imported
    only when this is called). Save with ``fig.savefig(path)``.

    Args:
        df: square counts table (``C x C``) as returned by :func:`cooccurrence`.
        title: figure title (default ``"Label co-occurrence"``).
        annotate: write counts into the cells; default: when ``C <= 20``.

    Returns:
        A ``matplotlib.figure.Figure`` (size grows with ``C``, capped).

    Raises:
        InputError: ``df`` is not square.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if df.shape[0] != df.shape[1]:
        raise InputError(f"plot_cooccurrence: expected a square C x C table, got {df.shape}")
    C = df.shape[0]
    values = df.to_numpy(dtype=np.float64)
    side = float(min(max(4.0, 0.35 * C + 2.5), 24.0))
    fig = Figure(figsize=(side + 1.0, side), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=ax, label="samples with both labels", shrink=0.8)
    show_names = C <= 60
    ax.set_xticks(range(C) if show_names else [])
    ax.set_yticks(range(C) if show_names else [])
    if show_names:
        fontsize = 8 if C <= 30 else 6
        ax.set_xticklabels([str(c) for c in df.columns], rotation=90, fontsize=fontsize)
        ax.set_yticklabels([str(i) for i in df.index], fontsize=fontsize)
    if annotate if annotate is not None else C <= 20:
        top = values.max() if values.size else 0.0
        for i in range(C):
            for j in range(C):
                v = values[i, j]
                ax.text(
                    j, i, f"{v:g}", ha="center", va="center", fontsize=7,
                    color="black" if top and v > 0.6 * top else "white",
                )
    ax.set_title(title or "Label co-occurrence")
    return fig
