"""Dataset summary statistics, label co-occurrence and its heatmap."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from evalkit.data.core import Dataset, Splits
from evalkit.data.summary import cooccurrence, plot_cooccurrence, summarize
from evalkit.errors import InputError

LABELS = ["a", "b", "c"]


def ds(Y, name="d") -> Dataset:
    Y = np.asarray(Y, dtype=np.uint8)
    return Dataset(name, np.zeros((Y.shape[0], 2), np.float32), Y, ["f0", "f1"], LABELS)


def test_summarize_splits():
    train = ds([[1, 0, 1], [1, 1, 0], [1, 0, 0], [1, 0, 0]])
    val = ds([[1, 1, 0]])
    test = ds([[0, 0, 1], [1, 0, 1]])
    out = summarize(Splits(train, val, test, digest="x", name="d"))
    assert list(out) == ["train", "val", "test"]
    assert out["train"] == {
        "samples": 4,
        "features": 2,
        "labels": 3,
        "label_cardinality": 1.5,
        "label_density": 0.5,
        "distinct_labelsets": 3,
        "labels_without_positives": [],
        "labels_without_negatives": ["a"],
    }
    assert out["val"]["labels_without_positives"] == ["c"]
    assert out["test"]["labels_without_positives"] == ["b"] and out["test"]["label_cardinality"] == 1.5
    json.dumps(out)  # JSON-serialisable (plain Python types)


def test_summarize_mapping_and_single_dataset():
    d = ds([[0, 0, 0], [0, 1, 1]])
    assert list(summarize({"x": d, "y": d})) == ["x", "y"]
    assert summarize(d)["all"]["labels_without_positives"] == ["a"]
    with pytest.raises(InputError, match="expected Splits"):
        summarize([d])


def test_cooccurrence_counts():
    Y = np.array([[1, 1, 0], [1, 1, 1], [0, 0, 1], [1, 0, 0]])
    df = cooccurrence(Y, LABELS)
    assert list(df.index) == list(df.columns) == LABELS
    np.testing.assert_array_equal(df.to_numpy(), [[3, 2, 1], [2, 2, 1], [1, 1, 2]])
    assert (df.to_numpy() == df.to_numpy().T).all()
    with pytest.raises(InputError, match="2 label names for 3 label columns"):
        cooccurrence(Y, ["a", "b"])
    with pytest.raises(InputError, match="must hold 0 or 1"):
        cooccurrence(Y * 2, LABELS)


def test_plot_cooccurrence_returns_agg_figure(tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    had_pyplot = "matplotlib.pyplot" in sys.modules
    df = cooccurrence(np.array([[1, 1, 0], [0, 1, 1]]), LABELS)
    fig = plot_cooccurrence(df, title="t")
    assert isinstance(fig, Figure) and isinstance(fig.canvas, FigureCanvasAgg)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == LABELS
    assert ax.get_title() == "t"
    fig.savefig(tmp_path / "co.png")
    assert (tmp_path / "co.png").stat().st_size > 0
    assert ("matplotlib.pyplot" in sys.modules) == had_pyplot  # no pyplot / global backend side effects
    with pytest.raises(InputError, match="square"):
        plot_cooccurrence(df.iloc[:2])
