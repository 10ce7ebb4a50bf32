"""Data reading edge cases: ARFF name quoting, label-file discovery, messages, ID-like and
dropped columns, declared sizes checked before allocation, duplicate label names, the built-in yeast."""

from __future__ import annotations

import gzip
import io
import os
import zipfile
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np
import pandas as pd
import pytest

import evalkit.data.common as common
from evalkit.data.readers import dataset_name, read
from evalkit.errors import InputError

XMLNS = "http://mulan.sourceforge.net/labels"


def error(path, **options) -> str:
    with pytest.raises(InputError) as info:
        read(path, **options)
    message = str(info.value)
    assert "\n" not in message, "user-facing errors are one line"
    assert info.value.exit_code == 2
    return message


def mulan_xml(path: Path, labels) -> Path:
    body = "".join(f"<label name={quoteattr(n, {chr(9): '&#9;', chr(10): '&#10;'})}/>" for n in labels)
    path.write_text(f'<?xml version="1.0" encoding="utf-8"?>\n<labels xmlns="{XMLNS}">{body}</labels>',
                    encoding="utf-8")
    return path


# --- ARFF names: quoting and escapes (issue 11) --------------------------------------------------------

# (as written in the @attribute line, the name it stands for)
QUOTED = [
    ("plain", "plain"),
    ("'single quoted'", "single quoted"),
    ('"double quoted"', "double quoted"),
    (r"'Swainson\'s Thrush'", "Swainson's Thrush"),
    (r'"say \"hi\""', 'say "hi"'),
    (r"'back\\slash'", "back\\slash"),
    ("'50% off'", "50% off"),
    (r"'escaped \% too'", "escaped % too"),
    ("'{braces}'", "{braces}"),
    ("'a, b'", "a, b"),
    ("\"it's\"", "it's"),
    ("'say \"x\"'", 'say "x"'),
    ("'Grive à dos roux – 北'", "Grive à dos roux – 北"),
    ("'tab\there'", "tab\there"),
    (r"'escaped\ttab'", "escaped\ttab"),
    (r"'\u00e9t\u00e9'", "été"),
    ("unquoted-ünïcode_(x)", "unquoted-ünïcode_(x)"),
]


@pytest.mark.parametrize("sparse", [False, True])
def test_arff_quoted_and_escaped_names_match_the_xml(tmp_path, sparse):
    features = ["'x 1'", '"x{2}"']
    lines = ["% every quoting form of the ARFF definition", "@relation 'birds: \\'quoted\\' relation'", ""]
    lines += [f"@attribute {f} numeric" for f in features]
    lines += [f"@attribute\t{raw} {{0,1}}" for raw, _ in QUOTED]
    lines += ["", "@data"]
    n_lab = len(QUOTED)
    rows = [[1.5, -2.0] + [(i + k) % 2 for k in range(n_lab)] for i in range(3)]
    for r in rows:
        if sparse:
            lines.append("{" + ", ".join(f"{j} {v:g}" for j, v in enumerate(r) if v != 0) + "}")
        else:
            lines.append(",".join(f"{v:g}" for v in r))
    path = tmp_path / "birds-train.arff"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    names = [name for _, name in QUOTED]
    mulan_xml(tmp_path / "birds.xml", names)

    ds = read(path)
    assert ds.label_names == names
    assert ds.feature_names == ["x 1", "x{2}"]
    assert ds.meta["relation"] == "birds: 'quoted' relation" and ds.meta["sparse"] is sparse
    np.testing.assert_array_equal(ds.Y, np.array([r[2:] for r in rows], dtype=np.uint8))
    X = ds.X.toarray() if sparse else ds.X  # sparse ARFF stays CSR
    np.testing.assert_array_equal(X, np.array([r[:2] for r in rows], dtype=np.float32))


def test_arff_nominal_values_with_quotes_one_hot_names(tmp_path):
    path = tmp_path / "t.arff"
    path.write_text("@relation 't: -C -2'\n@attribute 'colour name' {'dark red',\"it's\",plain}\n"
                    "@attribute y1 {0,1}\n@attribute y2 {0,1}\n@data\n'dark red',1,0\n\"it's\",0,1\nplain,1,1\n")
    ds = read(path)
    assert ds.feature_names == ["colour name=dark red", "colour name=it's", "colour name=plain"]
    np.testing.assert_array_equal(ds.X, np.eye(3, dtype=np.float32))


def test_arff_duplicate_attribute_and_label_names(tmp_path):
    path = tmp_path / "t.arff"
    path.write_text("@relation t\n@attribute a numeric\n@attribute 'y 1' {0,1}\n@attribute \"y 1\" {0,1}\n@data\n1,0,1\n")
    mulan_xml(tmp_path / "t.xml", ["y 1"])
    assert error(path) == f"{path}: duplicate attribute names 'y 1'; expected distinct names"
    path.write_text("@relation t\n@attribute a numeric\n@attribute y1 {0,1}\n@attribute y2 {0,1}\n@data\n1,0,1\n")
    xml = mulan_xml(tmp_path / "t.xml", ["y1", "y2", "y1"])
    assert error(path) == f"{xml}: duplicate label names 'y1'; expected distinct names"


# --- label files, messages ---------------------------------------------------------------------------

ARFF = "@relation t\n@attribute a numeric\n@attribute b numeric\n@attribute y1 {0,1}\n@attribute y2 {0,1}\n@data\n1,2,0,1\n3,4,1,1\n"


@pytest.mark.parametrize("stem", ["bibtex-train-sparse", "bibtex-test-sparse", "bibtex_train_sparse", "bibtex-sparse"])
def test_label_xml_found_for_sparse_split_files(tmp_path, stem):
    path = tmp_path / f"{stem}.arff"
    path.write_text(ARFF)
    mulan_xml(tmp_path / "bibtex.xml", ["y1", "y2"])
    ds = read(path)
    assert ds.label_names == ["y1", "y2"] and ds.meta["label_file"] == str(tmp_path / "bibtex.xml")
    if stem != "bibtex-sparse":
        assert ds.name == "bibtex"
    assert dataset_name("bibtex-train-sparse.arff.gz") == "bibtex" and dataset_name("x.txt") == "x"


def test_no_label_source_names_the_flags(tmp_path):
    path = tmp_path / "d-train-sparse.arff"
    path.write_text(ARFF)
    from evalkit.cli.options import FieldNames

    message = error(path)
    assert "no MULAN label file (d.xml, d-train.xml, d-train-sparse.xml)" in message
    assert "pass label_file XML (MULAN label file) or meka_labels N" in message  # read()'s keyword arguments
    with pytest.raises(InputError) as info:
        read(path)
    assert "pass --label-file XML (MULAN label file) or --meka-labels N" in info.value.named(FieldNames())  # the CLI's
    with pytest.raises(InputError) as info:
        read(path, label_file=path, meka_labels=1)
    assert info.value.named(FieldNames()).endswith("pass either --label-file (MULAN) or --meka-labels (MEKA), not both")


@pytest.mark.parametrize("content", ["", "\n\n  \n", "% only a comment\n%\n"])
def test_empty_arff_says_empty_file(tmp_path, content):
    path = tmp_path / "e.arff"
    path.write_text(content)
    message = error(path)
    assert "empty file" in message and "line 0" not in message


def test_label_mismatch_shows_the_names_found(tmp_path):
    path = tmp_path / "t.arff"
    path.write_text(ARFF.replace("y2", "'Swainson\\'s'"))
    xml = mulan_xml(tmp_path / "t.xml", ["y1", "Swainsons"])
    message = error(path)
    assert message.startswith(f"{xml}: label(s) 'Swainsons' are not attributes of t.arff")
    assert "(closest: \"Swainson's\")" in message
    assert "its other attributes are: 'a', 'b', \"Swainson's\"" in message


def test_malformed_arff_line_number_without_private_api(tmp_path):
    path = tmp_path / "t.arff"
    path.write_text(ARFF + "5,6,0,'\\q'\n")  # an escape liac-arff refuses with a bare ValueError
    message = error(path)
    assert message.startswith(f"{path}: not a valid ARFF file: ") and "line 9" in message


# --- ID-like attributes and drop_columns ---------------------------------------------------------------


def _id_arff(tmp_path: Path, n: int, kind: str = "nominal") -> Path:
    ids = [f"P{i:04d}" for i in range(n)]
    type_ = "{" + ",".join(ids) + "}" if kind == "nominal" else "string"
    lines = ["@relation 'proteins: -C -2'", f"@attribute protein {type_}", "@attribute x numeric",
             "@attribute y1 {0,1}", "@attribute y2 {0,1}", "@data"]
    lines += [f"{p},{i * 0.5},{i % 2},{(i // 2) % 2}" for i, p in enumerate(ids)]
    path = tmp_path / f"{kind}.arff"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("kind", ["nominal", "string"])
def test_arff_id_like_attribute_dropped_with_a_note(tmp_path, kind):
    ds = read(_id_arff(tmp_path, 30, kind))
    assert ds.feature_names == ["x"] and ds.X.shape == (30, 1)
    assert ds.meta["dropped"] == ["protein"]
    assert any("dropped 'protein': an ID-like attribute" in n for n in ds.meta["notes"])


def test_arff_few_rows_are_not_id_like(tmp_path):
    ds = read(_id_arff(tmp_path, 5))
    assert len(ds.feature_names) == 6 and ds.meta["notes"] == []
    assert "'protein' is a string attribute" in error(_id_arff(tmp_path, 5, "string"))


def test_arff_drop_columns(tmp_path):
    path = _id_arff(tmp_path, 5)
    ds = read(path, drop_columns="protein")
    assert ds.feature_names == ["x"] and ds.meta["dropped"] == ["protein"] and ds.meta["notes"] == []
    assert read(path, drop_columns=["protein", "protein"]).feature_names == ["x"]
    assert error(path, drop_columns="nope, x") == (
        f"{path}: --drop-columns 'nope': no such attribute; attributes are: protein, x")
    assert "'y1' is a label" in error(path, drop_columns="y1")
    assert "no feature attribute left after dropping ['protein', 'x']" in error(path, drop_columns="protein,x")
    string_path = _id_arff(tmp_path, 5, "string")
    assert read(string_path, drop_columns="protein").feature_names == ["x"]


def test_csv_id_column_dropped_and_drop_columns(tmp_path):
    n = 25
    df = pd.DataFrame({"gene": [f"G{i}" for i in range(n)], "x": np.arange(n) * 0.5, "note": ["a"] * n,
                       "lab_a": np.arange(n) % 2, "lab_b": (np.arange(n) // 2) % 2})
    path = tmp_path / "d.csv"
    df.to_csv(path, index=False)
    ds = read(path, label_prefix="lab_", drop_columns="note")
    assert ds.feature_names == ["x"] and ds.meta["dropped"] == ["gene", "note"]
    assert ds.meta["notes"] == [common.id_note("gene", n)]
    assert read(path, label_prefix="lab_").feature_names == ["x", "note=a"]  # text: one-hot (gene: ID-like, dropped)
    assert error(path, label_prefix="lab_", drop_columns="zz") == (
        f"{path}: --drop-columns 'zz': no such column; columns are: gene, x, note")
    df.astype({"gene": "category"}).to_parquet(tmp_path / "d.parquet")
    assert read(tmp_path / "d.parquet", label_prefix="lab_", drop_columns="note").feature_names == ["x"]


def test_npz_drop_columns(tmp_path):
    np.savez(tmp_path / "d.npz", X=np.arange(6.0).reshape(2, 3), Y=np.eye(2), feature_names=np.array(["a", "b", "c"]))
    ds = read(tmp_path / "d.npz", drop_columns="b")
    assert ds.feature_names == ["a", "c"] and ds.X.tolist() == [[0, 2], [3, 5]]
    assert "no such column; columns are: a, b, c" in error(tmp_path / "d.npz", drop_columns="z")


# --- duplicate label names in every reader ---------------------------------------------------------------


def test_duplicate_label_names_tables_and_npz(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("x,lab_a,lab_a\n1,0,1\n2,1,0\n")
    assert error(path, label_prefix="lab_") == f"{path}: duplicate label names 'lab_a'; expected distinct names"
    path.write_text("x,x,lab_a\n1,0,1\n2,1,0\n")
    assert error(path, label_prefix="lab_") == f"{path}: duplicate column names 'x'; expected distinct names"
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table([[1.0, 2.0], [0, 1], [1, 0]], names=["x", "lab", "lab"]), tmp_path / "d.parquet")
    assert "duplicate column names 'lab'" in error(tmp_path / "d.parquet", label_columns="lab")
    np.savez(tmp_path / "d.npz", X=np.ones((2, 2)), Y=np.eye(2), labels=np.array(["cat", "cat"]))
    assert error(tmp_path / "d.npz") == f"{tmp_path / 'd.npz'}: duplicate label names 'cat'; expected distinct names"


# --- declared sizes before allocation (issue 10) --------------------------------------------------------


def _npy_header(shape, descr="<f8") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_npz_declared_shape_beyond_member_is_refused_before_loading(tmp_path):
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("X.npy", _npy_header((1, 10**11)) + b"\0" * 8)
        z.writestr("Y.npy", _npy_header((1, 2), "|u1") + b"\0\1")
    assert path.stat().st_size < 1024
    message = error(path)
    assert message.startswith(f"{path}: array 'X' declares shape (1, 100000000000) float64")
    assert "refusing to load it" in message


def test_npz_label_names_declared_shape_checked_before_loading(tmp_path):
    path = tmp_path / "names.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("X.npy", _npy_header((1, 1)) + b"\0" * 8)
        z.writestr("Y.npy", _npy_header((1, 2), "|u1") + b"\0\1")
        z.writestr("labels.npy", _npy_header((10**9,), "<U1000") + b"\0" * 16)
    assert "array 'labels' declares shape (1000000000,) <U1000" in error(path)
    with zipfile.ZipFile(path, "w") as z:
        np.lib.format.write_array(z.open("X.npy", "w"), np.ones((1, 1)))
        np.lib.format.write_array(z.open("Y.npy", "w"), np.ones((1, 2)))
        np.lib.format.write_array(z.open("labels.npy", "w"), np.array(["a", "b", "c"]))
    assert error(path) == f"{path}: labels has 3 names; expected 2"


def test_size_limit_refuses_before_allocating(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "MAX_BYTES", 10_000)
    np.savez(tmp_path / "d.npz", X=np.zeros((100, 20)), Y=np.eye(100, 2))
    assert "array 'X' of shape (100, 20) would take 15.6 KiB, more than the 9.8 KiB limit" in error(tmp_path / "d.npz")
    # a sparse ARFF: 7 kB of text that declares a 1500 x 102 matrix (1.2 MB dense) is read as CSR,
    # allocating only its non-zeros (evalkit.data.sparse), so the dense limit does not apply
    lines = ["@relation 's: -C -2'"] + [f"@attribute f{j} numeric" for j in range(100)]
    lines += ["@attribute y1 {0,1}", "@attribute y2 {0,1}", "@data"] + ["{}"] * 1500
    (tmp_path / "s.arff").write_text("\n".join(lines))
    from evalkit.data.arff_reader import read_arff

    ds = read_arff(tmp_path / "s.arff")
    assert ds.X.format == "csr" and ds.X.shape == (1500, 100) and ds.X.nnz == 0
    # gzip bombs are cut at the limit while decompressing
    with gzip.open(tmp_path / "z.arff.gz", "wb") as f:
        f.write(b"%" * 50_000)
    assert "decompresses to more than the 9.8 KiB limit" in error(tmp_path / "z.arff.gz")
    with gzip.open(tmp_path / "z.csv.gz", "wb") as f:
        f.write(b"x,y\n" + b"1,0\n" * 10_000)
    assert "decompresses to more than" in error(tmp_path / "z.csv.gz", label_columns="y")


def test_one_hot_width_checked_before_allocating(tmp_path, monkeypatch):
    """A nominal attribute declaring 1000 values (two used) one-hot encodes to N x 1000: checked first."""
    monkeypatch.setattr(common, "MAX_BYTES", 200_000)
    values = "{" + ",".join(f"v{k}" for k in range(1000)) + "}"
    lines = ["@relation 'w: -C -2'", f"@attribute code {values}", "@attribute x numeric",
             "@attribute y1 {0,1}", "@attribute y2 {0,1}", "@data"] + [f"v{i % 2},{i},0,1" for i in range(300)]
    (tmp_path / "w.arff").write_text("\n".join(lines))
    assert "feature matrix (after one-hot encoding) of shape (300, 1001)" in error(tmp_path / "w.arff")
    assert read(tmp_path / "w.arff", drop_columns="code").feature_names == ["x"]


# --- built-in yeast, shipped in the package ----------------------------------------------------------------

YEAST_FULL_DIGEST = "cf82e5b3614b8796"  # computed with the river-based loader before the change
YEAST_TRAIN_DIGEST = "a6b91b021349c154"
YEAST_TEST_DIGEST = "2299913a6083b202"


def test_builtin_yeast_from_package_data():
    import sys

    from evalkit.data.builtin import load_builtin

    train, test = load_builtin("yeast")
    assert train.n_samples + test.n_samples == 2417 and (train.n_samples, test.n_samples) == (1500, 917)
    assert train.X.shape[1] == test.X.shape[1] == 103 and train.n_labels == test.n_labels == 14
    assert train.label_names == [f"Class{i}" for i in range(1, 15)]
    assert train.feature_names == [f"Att{i}" for i in range(1, 104)]
    assert train.meta["full_digest"] == YEAST_FULL_DIGEST
    assert (train.digest, test.digest) == (YEAST_TRAIN_DIGEST, YEAST_TEST_DIGEST)
    assert "river" not in sys.modules


def test_train_test_label_mismatch_lists_the_differences():
    from evalkit.data.core import Dataset
    from evalkit.data.split import make_splits

    def ds(labels):
        return Dataset("d", np.zeros((10, 2)), np.eye(10, 3, dtype=np.uint8), ["f", "g"], labels, source="d.arff")

    with pytest.raises(InputError) as info:
        make_splits(ds(["x", "y", "z"]), ds(["x", "y", "w"]))
    assert str(info.value) == ("d.arff: test labels differ from train labels: only in test: ['w']; "
                               "only in train: ['z'] (train has 3, test 3 labels)")
    with pytest.raises(InputError, match=r"same 3 names in another order"):
        make_splits(ds(["x", "y", "z"]), ds(["y", "x", "z"]))


# --- a file name with undecodable bytes -------------------------------------------------------------------


def _csv_named(tmp_path: Path, raw_name: bytes) -> Path:
    """A small 3-label CSV whose file name holds ``raw_name`` as bytes (not valid UTF-8)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 4))
    Y = (rng.random((80, 3)) < 0.4).astype(int)
    Y[:3] = np.eye(3, dtype=int)
    lines = ["f1,f2,f3,f4,a,b,c"] + [",".join([*(f"{v:.4f}" for v in x), *map(str, y)]) for x, y in zip(X, Y)]
    path = Path(os.fsdecode(os.fsencode(tmp_path) + b"/" + raw_name))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_file_name_with_undecodable_bytes_gives_a_printable_dataset_name(tmp_path):
    path = _csv_named(tmp_path, b"bad\xffname.csv")
    data = read(path, label_columns="a,b,c")
    assert data.name == "bad\ufffdname" and data.source.endswith("bad\ufffdname.csv")
    data.name.encode("utf-8")  # no surrogate left: MLflow, matplotlib and the console can take it
    assert dataset_name(os.fsdecode(b"/x/raw\xff\n-train.csv")) == "raw\ufffd\ufffd"


def test_a_run_on_a_file_named_with_undecodable_bytes_is_logged_not_spooled(store, cli, tmp_path):
    import mlflow

    path = _csv_named(tmp_path, b"bad\xffname.csv")
    res = cli("run", "--dataset", path.name, "--label-columns", "a,b,c", "--test-size", "0.25", "--epochs", "1",
              "--no-log-model", "-o", "r.json")
    assert res.exit_code == 0, res.output
    assert "unreachable" not in res.output and "spool" not in res.output
    assert not (tmp_path / "mlruns" / "spool").exists()
    [run] = mlflow.MlflowClient(store).search_runs(mlflow.MlflowClient(store).search_experiments()[0].experiment_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["dataset"] == "bad\ufffdname.csv"
    assert "dataset/cooccurrence.png" in {a.path for a in mlflow.MlflowClient(store).list_artifacts(run.info.run_id,
                                                                                                    "dataset")}


@pytest.mark.parametrize("columns,message", [
    (["f1", "f2", "f3", "f4"], r"only in test: \['f4'\] \(train has 3, test 4 features\)"),
    (["f3", "f2", "f1"], r"same 3 names in another order \(train \['f1', 'f2', 'f3'\], test \['f3', 'f2', 'f1'\]\)"),
])
def test_a_test_file_with_other_feature_columns_is_refused(tmp_path, columns, message):
    """A test file with another set, or another order, of feature columns was read by position: extra
    columns crashed in the standardisation, reordered ones were silently misread."""
    from evalkit.data.load import read_file
    from evalkit.data.split import make_splits
    from evalkit.errors import InputError

    rng = np.random.default_rng(0)

    def write(path, names, n):
        frame = pd.DataFrame(rng.normal(size=(n, len(names))), columns=names)
        frame["y_a"], frame["y_b"] = np.arange(n) % 2, (np.arange(n) // 2) % 2
        frame.to_csv(path, index=False)

    write(tmp_path / "train.csv", ["f1", "f2", "f3"], 40)
    write(tmp_path / "test.csv", columns, 20)
    train = read_file(str(tmp_path / "train.csv"), label_prefix="y_")
    test = read_file(str(tmp_path / "test.csv"), label_prefix="y_")
    with pytest.raises(InputError, match=rf"test\.csv: test feature columns differ from train's: {message}; "
                                         r"expected the training file's feature columns, in its order$"):
        make_splits(train, test)
    same = read_file(str(tmp_path / "train.csv"), label_prefix="y_")
    assert make_splits(train, same).test.n_samples == 40  # the same columns: accepted


def test_a_numeric_column_with_one_typo_is_refused_not_dropped_as_an_id(tmp_path):
    """60 numbers and one 'abc': the column was dropped as 'ID-like' (every value distinct) instead of
    refused as numbers mixed with text, so a feature vanished with a note."""
    from evalkit.data.readers import read
    from evalkit.errors import InputError

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"f1": rng.normal(size=60).round(6).astype(str), "f2": rng.normal(size=60),
                          "y_a": np.arange(60) % 2, "y_b": (np.arange(60) // 2) % 2})
    frame.loc[3, "f1"] = "abc"
    frame.to_csv(tmp_path / "typo.csv", index=False)
    with pytest.raises(InputError, match=r"typo\.csv: feature column 'f1' mixes numbers and text \(e\.g\. 'abc' at "
                                         r"data row 4\); expected numbers, or text values to one-hot encode$"):
        read(tmp_path / "typo.csv", label_prefix="y_")
    frame["f1"] = [f"id-{i}" for i in range(60)]  # a real ID column is still dropped, with a note
    frame.to_csv(tmp_path / "ids.csv", index=False)
    ds = read(tmp_path / "ids.csv", label_prefix="y_")
    assert ds.feature_names == ["f2"]


def test_rows_with_more_fields_than_the_header_are_refused_and_a_trailing_separator_is_read(tmp_path):
    """pandas took each row's first field as an index when rows held one field more than the header:
    every column shifted by one (a label read as a feature); a trailing comma made a label look missing."""
    from evalkit.data.readers import read
    from evalkit.errors import InputError

    (tmp_path / "d.csv").write_text("f1,f2,y_a,y_b\n" + "".join(f"{i},0.5,{i % 2},1,0\n" for i in range(30)))
    with pytest.raises(InputError, match=r"d\.csv: not a readable CSV file: its data rows hold more fields than the "
                                         r"header's 4 names; expected one value per header column$"):
        read(tmp_path / "d.csv", label_prefix="y_")
    (tmp_path / "t.csv").write_text("f1,f2,y_a,y_b\n" + "".join(f"{i},0.5,{i % 2},{1 - i % 2},\n" for i in range(30)))
    ds = read(tmp_path / "t.csv", label_prefix="y_")
    assert ds.feature_names == ["f1", "f2"] and ds.X[:3, 0].tolist() == [0.0, 1.0, 2.0]
    assert ds.Y[:3].tolist() == [[0, 1], [1, 0], [0, 1]]
