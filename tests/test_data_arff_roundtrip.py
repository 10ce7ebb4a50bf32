"""Property: an ARFF data set written dense and sparse (by liac-arff's encoder) reads back identically."""

from __future__ import annotations

import arff
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from evalkit.data.readers import read

COLOURS = ["red", "green", "blue"]


@st.composite
def tables(draw):
    n = draw(st.integers(1, 6))
    n_num = draw(st.integers(1, 3))
    n_lab = draw(st.integers(1, 3))
    reversed_labels = draw(st.lists(st.booleans(), min_size=n_lab, max_size=n_lab))
    num = draw(st.lists(st.lists(st.sampled_from([0.0, 1.0, -2.5, 0.125]), min_size=n_num, max_size=n_num), min_size=n, max_size=n))
    colour = draw(st.lists(st.sampled_from(COLOURS), min_size=n, max_size=n))
    labels = draw(st.lists(st.lists(st.sampled_from(["0", "1"]), min_size=n_lab, max_size=n_lab), min_size=n, max_size=n))
    return num, colour, labels, reversed_labels


@settings(max_examples=40, deadline=None)
@given(tables())
def test_dense_and_sparse_arff_agree(tmp_path_factory, table):
    num, colour, labels, reversed_labels = table
    n_num, n_lab = len(num[0]), len(labels[0])
    attributes = [(f"x {k}", "NUMERIC") for k in range(n_num)] + [("colour", COLOURS)]
    attributes += [(f"y{k}", ["1", "0"] if rev else ["0", "1"]) for k, rev in enumerate(reversed_labels)]
    rows = [r + [c] + y for r, c, y in zip(num, colour, labels)]

    def first_value(j):
        t = attributes[j][1]
        return t[0] if isinstance(t, list) else 0.0

    sparse_rows = [{j: v for j, v in enumerate(r) if v != first_value(j)} for r in rows]
    relation = f"roundtrip: -C -{n_lab}"  # MEKA: labels are the last n_lab attributes
    d = tmp_path_factory.mktemp("arff")
    (d / "dense.arff").write_text(arff.dumps({"relation": relation, "attributes": attributes, "data": rows}))
    (d / "sparse.arff").write_text(arff.dumps({"relation": relation, "attributes": attributes, "data": sparse_rows}))

    dense, sparse = read(d / "dense.arff"), read(d / "sparse.arff")
    assert sparse.meta["sparse"] is True and dense.meta["sparse"] is False
    np.testing.assert_array_equal(dense.X, sparse.X)
    np.testing.assert_array_equal(dense.Y, sparse.Y)
    np.testing.assert_array_equal(dense.Y, np.array(labels, dtype=np.uint8))
    np.testing.assert_array_equal(dense.X[:, :n_num], np.array(num, dtype=np.float32))
    np.testing.assert_array_equal(dense.X[:, n_num:].argmax(axis=1), [COLOURS.index(c) for c in colour])
    assert dense.feature_names == sparse.feature_names == [f"x {k}" for k in range(n_num)] + [f"colour={c}" for c in COLOURS]
