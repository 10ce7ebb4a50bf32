"""iter_prediction_batches: .npz / .parquet / .csv batches, and clear errors naming the file."""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from evalkit.errors import InputError
from evalkit.metrics import MultilabelEngine, compute_metrics
from evalkit.metrics.io import iter_prediction_batches
from evalkit.report import metrics_block

RNG = np.random.default_rng(0)
Y = (RNG.random((103, 4)) < 0.3).astype(np.uint8)
P = RNG.random((103, 4)).astype(np.float32)
LABELS = ["cat", "dog", "a b", "x:y"]


def _frame(kind="prob"):
    cols = {"id": np.arange(103)}
    for j, name in enumerate(LABELS):
        cols[f"target:{name}"] = Y[:, j]
        cols[f"{kind}:{name}"] = P[:, j]
    return pd.DataFrame(cols)


def _collect(path, bs):
    batches = list(iter_prediction_batches(path, bs))
    t = np.concatenate([b[0] for b in batches])
    s = np.concatenate([b[1] for b in batches])
    return batches, t, s


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_batches(tmp_path, compressed):
    f = tmp_path / "p.npz"
    (np.savez_compressed if compressed else np.savez)(f, targets=Y, probabilities=P, labels=np.array(LABELS))
    batches, t, s = _collect(f, 10)
    assert [b[0].shape[0] for b in batches] == [10] * 10 + [3]
    assert np.array_equal(t, Y) and np.array_equal(s, P) and s.dtype == np.float32
    assert all(b[2] == "probabilities" and b[3] == LABELS for b in batches)
    g = tmp_path / "l.npz"
    np.savez(g, targets=Y.astype(bool), logits=P.astype(np.float64))
    batches, t, s = _collect(g, 1000)
    assert len(batches) == 1 and batches[0][2] == "logits" and batches[0][3] == [f"label_{i}" for i in range(4)]
    assert np.array_equal(t, Y.astype(bool)) and s.dtype == np.float64


def test_npz_fortran_order(tmp_path):
    f = tmp_path / "f.npz"
    np.savez(f, targets=np.asfortranarray(Y), probabilities=np.asfortranarray(P))
    _, t, s = _collect(f, 7)
    assert np.array_equal(t, Y) and np.array_equal(s, P)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize("kind", ["prob", "logit"])
def test_parquet_and_csv_batches(tmp_path, fmt, kind):
    df = _frame(kind)
    f = tmp_path / f"p.{fmt}"
    if fmt == "csv":
        df.to_csv(f, index=False)
    else:
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), f, row_group_size=25)
    batches, t, s = _collect(f, 20)
    assert sum(b[0].shape[0] for b in batches) == 103 and max(b[0].shape[0] for b in batches) <= 20
    assert np.array_equal(t, Y)
    np.testing.assert_allclose(s, P, rtol=1e-7)  # CSV round-trips float32 through text
    assert batches[0][3] == LABELS and batches[0][2] == ("probabilities" if kind == "prob" else "logits")


def test_file_through_engine_equals_in_memory(tmp_path):
    f = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pandas(_frame(), preserve_index=False), f, row_group_size=30)
    e = None
    for t, s, kind, labels in iter_prediction_batches(f, 16):
        e = e or MultilabelEngine(len(labels), scores=kind, label_names=labels)
        e.update(torch.from_numpy(s), torch.from_numpy(t))
    assert metrics_block(e.compute()) == metrics_block(compute_metrics(Y, P, scores_kind="probabilities",
                                                                       label_names=LABELS))


def _err(path, match, bs=10):
    with pytest.raises(InputError, match=match) as ei:
        list(iter_prediction_batches(path, bs))
    assert "\n" not in str(ei.value)


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "both.npz", targets=Y, probabilities=P, logits=P)
    _err(tmp_path / "both.npz", r"^both.npz: expected exactly one of arrays 'logits' or 'probabilities', found "
                                r"\['logits', 'probabilities'\]$")
    np.savez(tmp_path / "none.npz", targets=Y)
    _err(tmp_path / "none.npz", r"^none.npz: expected exactly one of arrays 'logits' or 'probabilities', found neither$")
    np.savez(tmp_path / "not.npz", y=Y, probabilities=P)
    _err(tmp_path / "not.npz", r"^not.npz: expected an array 'targets' \(N, C\)")
    np.savez(tmp_path / "shape.npz", targets=Y, probabilities=P[:, :3])
    _err(tmp_path / "shape.npz", r"^shape.npz: 'probabilities' has shape \(103, 3\) but 'targets' has \(103, 4\)$")
    np.savez(tmp_path / "lab.npz", targets=Y, probabilities=P, labels=np.array(["a"]))
    _err(tmp_path / "lab.npz", r"^lab.npz: 'labels' has 1 names for 4 columns$")
    np.savez(tmp_path / "int.npz", targets=Y, probabilities=Y)
    _err(tmp_path / "int.npz", r"^int.npz: 'probabilities' must be floating point, got dtype uint8$")
    np.savez(tmp_path / "1d.npz", targets=Y[:, 0], probabilities=P[:, 0])
    _err(tmp_path / "1d.npz", r"^1d.npz: 'targets' must have shape \(N, C\), got \(103,\)$")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    _err(tmp_path / "junk.npz", r"^junk.npz: not a readable .npz archive")
    _err(tmp_path / "missing.npz", r"missing.npz: file not found$")
    (tmp_path / "p.txt").write_text("x")
    _err(tmp_path / "p.txt", r"p.txt: unsupported predictions format '.txt'; expected .npz, .parquet or .csv$")
    np.savez(tmp_path / "ok.npz", targets=Y, probabilities=P)
    _err(tmp_path / "ok.npz", r"^batch_size: expected a positive integer, got 0$", bs=0)
    with zipfile.ZipFile(tmp_path / "trunc.npz", "w") as z:  # header says 103 rows, data has 2
        hdr = np.lib.format.header_data_from_array_1_0(Y)
        import io

        for name, arr in (("targets", Y), ("probabilities", P)):
            buf = io.BytesIO()
            np.lib.format.write_array_header_1_0(buf, np.lib.format.header_data_from_array_1_0(arr))
            buf.write(arr[:2].tobytes())
            z.writestr(f"{name}.npy", buf.getvalue())
        assert hdr["shape"] == (103, 4)
    # the declared size is checked against what the member holds before anything is read
    _err(tmp_path / "trunc.npz", r"^trunc.npz: array 'targets' declares shape \(103, 4\) uint8 \(412 B\) but its "
                                 r"archive member holds 8 B; refusing to load it$")


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_column_errors(tmp_path, fmt):
    def write(df, name):
        f = tmp_path / f"{name}.{fmt}"
        if fmt == "csv":
            df.to_csv(f, index=False)
        else:
            pq.write_table(pa.Table.from_pandas(df, preserve_index=False), f)
        return f

    df = _frame()
    _err(write(df.drop(columns=[c for c in df if c.startswith("target:")]), "not"),
         rf"^not.{fmt}: expected columns 'target:<label>' plus 'logit:<label>' or 'prob:<label>'")
    both = df.assign(**{"logit:cat": 0.0})
    _err(write(both, "both"), rf"^both.{fmt}: found both 'logit:' and 'prob:' columns; expected exactly one kind$")
    _err(write(df.drop(columns=["prob:dog"]), "miss"),
         rf"^miss.{fmt}: labels of target and prob columns differ \(no score for \['dog'\], no target for \[\]\)$")
    _err(write(df.drop(columns=[c for c in df if c.startswith("prob:")]), "noscore"),
         rf"^noscore.{fmt}: expected score columns 'logit:<label>' or 'prob:<label>'")
    _err(write(df.assign(**{"prob:cat": ["x"] * 103}), "text"), rf"^text.{fmt}: .*(non-numeric|floating point|must be numeric)")


def test_batches_are_writable_arrays(tmp_path):
    f = tmp_path / "p.npz"
    np.savez(f, targets=Y, probabilities=P)
    for t, s, _, _ in iter_prediction_batches(f, 50):
        assert t.flags.writeable and s.flags.writeable and s.flags.c_contiguous


def test_parquet_large_row_groups_are_sliced_and_nulls_rejected(tmp_path, monkeypatch):
    import evalkit.metrics.io as eio

    monkeypatch.setattr(eio, "_PARQUET_WHOLE_GROUP", 8)
    monkeypatch.setattr(eio, "_PARQUET_COLUMNS", 3)
    f = tmp_path / "big.parquet"
    pq.write_table(pa.Table.from_pandas(_frame(), preserve_index=False), f, row_group_size=60)
    batches, t, s = _collect(f, 16)
    assert [b[0].shape[0] for b in batches] == [16, 16, 16, 12, 16, 16, 11]
    assert np.array_equal(t, Y) and np.array_equal(s, P)
    df = _frame()
    df["prob:dog"] = df["prob:dog"].astype(object)
    df.loc[5, "prob:dog"] = None
    g = tmp_path / "null.parquet"
    pq.write_table(pa.Table.from_pandas(df.astype({"prob:dog": float}), preserve_index=False), g)
    _err(g, r"^null.parquet: column 'prob:dog' has missing values$")


def test_an_empty_target_cell_is_refused_by_name_without_runtime_warnings(tmp_path, cli):
    import warnings

    df = _frame()
    df["target:dog"] = df["target:dog"].astype(float)
    df.loc[57, "target:dog"] = np.nan
    df.to_csv(tmp_path / "p.csv", index=False)
    yn = Y.astype(np.float64)
    yn[12, 3] = np.nan
    np.savez(tmp_path / "p.npz", targets=yn, probabilities=P)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _err(tmp_path / "p.csv", r"p\.csv: target:dog is empty or not finite in data row 58; expected 0 or 1", bs=25)
        _err(tmp_path / "p.npz", r"p\.npz: 'targets' column 3 is empty or not finite in data row 13", bs=5)
        for name in ("p.csv", "p.npz"):
            result = cli("evaluate", "--predictions", tmp_path / name, "--no-track", "--output", tmp_path / "r.json")
            assert result.exit_code == 2
            assert "empty or not finite" in result.output and "Warning" not in result.output
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("fmt", ["npz", "csv", "parquet"])
def test_a_bad_score_cell_is_refused_by_file_column_and_row(tmp_path, fmt):
    """NaN / inf scores, and probabilities outside [0, 1], name the file, the column and the data row
    (counted over batches and Parquet row groups) instead of the engine's "scores: ..." without a file."""
    for kind, row, col, value, shown, expected in [
            ("logit", 70, 2, np.nan, "nan", "finite logits"),
            ("logit", 33, 0, -np.inf, "-inf", "finite logits"),
            ("prob", 101, 3, 1.25, r"1\.25", r"probabilities in \[0, 1\] \(declare logits for raw model outputs\)"),
            ("prob", 0, 1, -0.5, r"-0\.5", r"probabilities in \[0, 1\]")]:
        df = _frame(kind)
        name = f"{kind}:{LABELS[col]}"
        df[name] = df[name].astype(np.float64)
        df.loc[row, name] = value
        f = tmp_path / f"s.{fmt}"
        where = f"column '{name}'"
        if fmt == "npz":
            array = "logits" if kind == "logit" else "probabilities"
            np.savez(f, targets=Y, **{array: df[[f"{kind}:{n}" for n in LABELS]].to_numpy()})
            where = f"'{array}' column {col}"
        elif fmt == "csv":
            df.to_csv(f, index=False)
        else:  # NaN kept as a float NaN, not a null; 3 row groups
            pq.write_table(pa.table({c: df[c].to_numpy() for c in df.columns}), f, row_group_size=40)
        _err(f, rf"^s\.{fmt}: {where} is {shown} in data row {row + 1}; expected {expected}", bs=16)
