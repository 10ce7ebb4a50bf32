"""File readers: ARFF (MULAN / MEKA, dense / sparse), CSV, Parquet, NPZ, and their error messages."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalkit.data import load_dataset
from evalkit.data.readers import FORMATS, read
from evalkit.errors import InputError

DATA = Path(__file__).resolve().parent / "data"

# tests/data/tiny*.arff all hold this data set
TINY_X = np.array(
    [
        [5.1, 0.5, 1, 0, 0, 1],
        [0, 2.25, 0, 0, 1, 0],
        [4.0, 0, 0, 1, 0, 0],
        [0, 0, 1, 0, 0, 0],
        [-1.5, 3, 0, 0, 1, 1],
        [0, 0, 1, 0, 0, 0],
    ],
    dtype=np.float32,
)
TINY_Y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 1], [0, 0, 0], [0, 0, 1], [0, 0, 1]], dtype=np.uint8)
TINY_FEATURES = ["sepal length", "width (cm)%", "colour=red", "colour=green", "colour=blue", "flag"]
TINY_LABELS = ["label one", "lab2", "lab3"]


def same(a, b) -> None:
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.Y, b.Y)
    assert a.feature_names == b.feature_names and a.label_names == b.label_names
    assert a.digest == b.digest


def error(path, **options) -> str:
    with pytest.raises(InputError) as info:
        read(path, **options)
    message = str(info.value)
    assert "\n" not in message, "user-facing errors are one line"
    return message


ARFF_HEADER = """@relation t
@attribute a numeric
@attribute b numeric
@attribute y1 {0,1}
@attribute y2 {0,1}
@data
"""


def write_arff(tmp_path: Path, body: str, name: str = "t.arff", header: str = ARFF_HEADER, xml=("y1", "y2")) -> Path:
    path = tmp_path / name
    path.write_text(header + body)
    if xml is not None:
        labels = "".join(f'<label name="{n}"/>' for n in xml)
        (tmp_path / "t.xml").write_text(f'<labels xmlns="http://mulan.sourceforge.net/labels">{labels}</labels>')
    return path


# --- ARFF ---------------------------------------------------------------------------------------------


def test_mulan_tiny_quoted_names_comments_nominal_one_hot():
    ds = read(DATA / "tiny.arff")
    np.testing.assert_array_equal(ds.X, TINY_X)
    np.testing.assert_array_equal(ds.Y, TINY_Y)
    assert ds.feature_names == TINY_FEATURES  # quoted names keep spaces and symbols; nominal -> attr=value
    assert ds.label_names == TINY_LABELS  # nested (hierarchical) XML labels included, ARFF order
    assert ds.X.dtype == np.float32 and ds.Y.dtype == np.uint8
    assert ds.name == "tiny" and ds.source == str(DATA / "tiny.arff")
    assert ds.meta["label_convention"] == "mulan" and ds.meta["sparse"] is False


def test_meka_and_mulan_versions_load_identically():
    mulan = read(DATA / "tiny.arff")
    meka = read(DATA / "tiny_meka.arff")
    assert meka.meta["label_convention"] == "meka"
    same(mulan, meka)


def test_sparse_and_dense_versions_load_identically():
    """Sparse omitted values are 0; for nominal attributes that is the FIRST declared value (lab3 {1,0} -> 1)."""
    sparse = read(DATA / "tiny_sparse.arff", label_file=DATA / "tiny.xml")
    assert sparse.meta["sparse"] is True
    same(read(DATA / "tiny.arff"), sparse)


def test_meka_negative_count_means_last_attributes(tmp_path):
    text = (DATA / "tiny.arff").read_text().replace("@relation tiny", "@relation 'tiny: -C -3 -split 2'")
    (tmp_path / "tiny_last.arff").write_text(text)
    ds = read(tmp_path / "tiny_last.arff")
    assert ds.meta["label_convention"] == "meka"
    same(read(DATA / "tiny.arff"), ds)


def test_meka_labels_option_overrides_relation(tmp_path):
    ds = read(DATA / "tiny.arff", meka_labels=-3)  # the XML next to it is not consulted
    assert ds.meta["label_convention"] == "meka"
    same(read(DATA / "tiny.arff"), ds)


def test_xml_found_next_to_train_and_test_files(tmp_path):
    for split in ("train", "test"):
        shutil.copy(DATA / "tiny.arff", tmp_path / f"tiny-{split}.arff")
    shutil.copy(DATA / "tiny.xml", tmp_path / "tiny.xml")
    train, test = load_dataset(str(tmp_path / "tiny-train.arff"), str(tmp_path / "tiny-test.arff"))
    assert train.meta["label_file"] == str(tmp_path / "tiny.xml")
    assert train.name == test.name == "tiny"
    same(train, read(DATA / "tiny.arff"))


def test_gzip_arff(tmp_path):
    with gzip.open(tmp_path / "tiny.arff.gz", "wt") as f:
        f.write((DATA / "tiny.arff").read_text())
    shutil.copy(DATA / "tiny.xml", tmp_path / "tiny.xml")
    same(read(tmp_path / "tiny.arff.gz"), read(DATA / "tiny.arff"))


def test_crlf_bom_and_tabs(tmp_path):
    text = (DATA / "tiny.arff").read_text()
    text = text.replace("@attribute lab2 numeric", "@ATTRIBUTE\tlab2\tNUMERIC").replace("@relation tiny", "@relation\ttiny")
    (tmp_path / "tiny.arff").write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    shutil.copy(DATA / "tiny.xml", tmp_path / "tiny.xml")
    same(read(tmp_path / "tiny.arff"), read(DATA / "tiny.arff"))


def test_numeric_labels_and_binary_nominal_features(tmp_path):
    header = "@relation t\n@attribute f {1,0}\n@attribute g {a,b}\n@attribute y1 numeric\n@attribute y2 INTEGER\n@data\n"
    path = write_arff(tmp_path, "1,b,1,0\n0,a,0,1.0\n", header=header)
    ds = read(path)
    np.testing.assert_array_equal(ds.X, [[1, 0, 1], [0, 1, 0]])  # {1,0} -> value, {a,b} -> one-hot
    assert ds.feature_names == ["f", "g=a", "g=b"]
    np.testing.assert_array_equal(ds.Y, [[1, 0], [0, 1]])


def test_arff_missing_xml(tmp_path):
    path = write_arff(tmp_path, "1,2,0,1\n", xml=None)
    message = error(path)
    assert message.startswith(f"{path}: cannot tell which attributes are labels: no MULAN label file (t.xml)")
    assert "pass label_file XML (MULAN label file) or meka_labels N" in message  # read()'s keyword arguments


def test_arff_label_file_not_found(tmp_path):
    path = write_arff(tmp_path, "1,2,0,1\n")
    assert error(path, label_file=tmp_path / "nope.xml") == f"{tmp_path / 'nope.xml'}: MULAN label file not found"


def test_arff_xml_names_unknown_attribute(tmp_path):
    path = write_arff(tmp_path, "1,2,0,1\n", xml=("y1", "y2", "nope"))
    message = error(path)
    assert message.startswith(f"{tmp_path / 't.xml'}: label(s) 'nope' are not attributes of t.arff")


def test_arff_invalid_xml(tmp_path):
    path = write_arff(tmp_path, "1,2,0,1\n")
    (tmp_path / "t.xml").write_text("<labels><label name='y1'>")
    assert error(path).startswith(f"{tmp_path / 't.xml'}: not a valid MULAN label file (XML error:")
    (tmp_path / "t.xml").write_text("<classes/>")
    assert "expected a MULAN <labels> root element, found <classes>" in error(path)


def test_arff_label_not_binary(tmp_path):
    header = ARFF_HEADER.replace("@attribute y2 {0,1}", "@attribute y2 numeric")
    path = write_arff(tmp_path, "1,2,0,1\n1,2,0,2\n", header=header)
    assert error(path) == f"{path}: label attribute 'y2' must be 0 or 1, found '2' (data row 2)"
    header = ARFF_HEADER.replace("@attribute y2 {0,1}", "@attribute y2 {no,yes}")
    path = write_arff(tmp_path, "1,2,0,yes\n", header=header)
    assert error(path) == f"{path}: label attribute 'y2' must be 0 or 1, found 'yes' (data row 1)"


def test_arff_missing_values(tmp_path):
    path = write_arff(tmp_path, "1,2,0,1\n1,?,0,1\n")
    assert error(path).startswith(f"{path}: attribute 'b' has missing values '?' or NaN (1 rows, first at data row 2)")
    path = write_arff(tmp_path, "1,2,?,1\n")
    assert "label attribute 'y1' has a missing value '?' (data row 1)" in error(path)


def test_arff_malformed_reports_line(tmp_path):
    path = write_arff(tmp_path, "1,2,0,1\n1,2,0\n")  # row 2 of @data is file line 8
    assert error(path).startswith(f"{path}: not a valid ARFF file: Bad @DATA instance format in line 8")
    path = write_arff(tmp_path, "1,2,0,7\n")
    assert error(path) == f"{path}: not a valid ARFF file: Data value 7 not found in nominal declaration, at line 7."
    path = write_arff(tmp_path, "1,2,0,1\n", header=ARFF_HEADER.replace("b numeric", "b date"))
    assert error(path) == f"{path}: not a valid ARFF file: Bad @ATTRIBUTE type, at line 3."
    path = write_arff(tmp_path, "1,abc,0,1\n")
    assert error(path) == f"{path}: not a valid ARFF file: Invalid numerical value, at line 7."
    (tmp_path / "empty.arff").write_text("")
    assert error(tmp_path / "empty.arff").startswith(f"{tmp_path / 'empty.arff'}: not a valid ARFF file: Invalid layout")


def test_arff_string_attribute_unsupported(tmp_path):
    path = write_arff(tmp_path, "1,'some text',0,1\n", header=ARFF_HEADER.replace("b numeric", "b string"))
    assert error(path) == (
        f"{path}: attribute 'b' is a string attribute; only numeric and nominal attributes are supported"
    )


def test_arff_meka_count_impossible(tmp_path):
    path = write_arff(tmp_path, "1,2,0,1\n", header=ARFF_HEADER.replace("@relation t", "@relation 't: -C 4'"), xml=None)
    assert "MEKA label count -C 4 (from @relation) is impossible for 4 attributes" in error(path)
    assert error(DATA / "tiny.arff", meka_labels="x") == "meka_labels: expected an integer number of labels, got 'x'"
    assert "not both" in error(DATA / "tiny.arff", meka_labels=3, label_file=DATA / "tiny.xml")


# --- CSV / Parquet ------------------------------------------------------------------------------------

CSV = "x1,x2,lab_a,lab_b\n1.5,2,1,0\n0,1,0,1\n3,4,1,1\n"


def test_csv_label_columns_list_and_string(tmp_path):
    (tmp_path / "d.csv").write_text(CSV)
    for option in (["lab_a", "lab_b"], "lab_a, lab_b"):
        ds = read(tmp_path / "d.csv", label_columns=option)
        np.testing.assert_array_equal(ds.X, [[1.5, 2], [0, 1], [3, 4]])
        np.testing.assert_array_equal(ds.Y, [[1, 0], [0, 1], [1, 1]])
        assert ds.feature_names == ["x1", "x2"] and ds.label_names == ["lab_a", "lab_b"]
        assert ds.name == "d" and ds.meta["format"] == ".csv"


def test_csv_label_prefix_and_tsv(tmp_path):
    (tmp_path / "d.csv").write_text(CSV)
    (tmp_path / "d.tsv").write_text(CSV.replace(",", "\t"))
    a = read(tmp_path / "d.csv", label_prefix="lab_")
    same(a, read(tmp_path / "d.csv", label_columns="lab_a,lab_b"))
    same(a, read(tmp_path / "d.tsv", label_prefix="lab_"))


def test_csv_label_list_column(tmp_path):
    (tmp_path / "d.csv").write_text("x1,tags,x2\n1,dog; cat,2\n2,,3\n3,dog,4\n4,bird|x,5\n")
    ds = read(tmp_path / "d.csv", label_list_column="tags")
    assert ds.label_names == ["bird|x", "cat", "dog"]  # sorted
    np.testing.assert_array_equal(ds.Y, [[0, 1, 1], [0, 0, 0], [0, 0, 1], [1, 0, 0]])
    assert ds.feature_names == ["x1", "x2"]
    ds = read(tmp_path / "d.csv", label_list_column="tags", label_sep="|")
    assert ds.label_names == ["bird", "dog", "dog; cat", "x"]


def test_parquet_matches_csv_and_one_hot_categoricals(tmp_path):
    (tmp_path / "d.csv").write_text(CSV)
    pd.read_csv(tmp_path / "d.csv").to_parquet(tmp_path / "d.parquet")
    same(read(tmp_path / "d.csv", label_prefix="lab_"), read(tmp_path / "d.parquet", label_prefix="lab_"))

    df = pd.DataFrame(
        {
            "f": [1.0, 2.0, 3.0],
            "colour": pd.Categorical(["red", "blue", "red"], categories=["red", "green", "blue"]),
            "flag": [True, False, True],
            "tags": [["a", "b"], [], ["b"]],
        }
    )
    df.to_parquet(tmp_path / "c.parquet")
    ds = read(tmp_path / "c.parquet", label_list_column="tags")
    assert ds.feature_names == ["f", "colour=red", "colour=green", "colour=blue", "flag"]  # declared categories
    np.testing.assert_array_equal(ds.X, [[1, 1, 0, 0, 1], [2, 0, 0, 1, 0], [3, 1, 0, 0, 1]])
    assert ds.label_names == ["a", "b"]
    np.testing.assert_array_equal(ds.Y, [[1, 1], [0, 0], [0, 1]])


def test_csv_no_label_columns(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(CSV)
    assert error(path, label_prefix="y_") == (
        f"{path}: no label columns: no column name starts with 'y_'; columns are: x1, x2, lab_a, lab_b"
    )
    assert error(path) == f"{path}: which columns are the labels? pass label_columns, label_prefix or label_list_column"
    assert error(path, label_columns="lab_a,nope") == (
        f"{path}: label column(s) 'nope' not found; columns are: x1, x2, lab_a, lab_b"
    )
    assert error(path, label_columns="lab_a", label_prefix="lab_") == f"{path}: pass only one of label_columns, label_prefix"
    path.write_text("x1,tags\n1,\n2,\n")
    assert error(path, label_list_column="tags").startswith(f"{path}: no label columns: label list column 'tags' holds no labels")


def test_csv_targets_not_binary(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("x1,y\n1,0\n2,2\n")
    assert error(path, label_columns="y") == f"{path}: label column 'y' must hold 0 or 1, found 2 (data row 2)"
    path.write_text("x1,y\n1,yes\n")
    assert error(path, label_columns="y") == f"{path}: label column 'y' must hold 0 or 1, found 'yes' (data row 1)"
    path.write_text("x1,y\n1,\n")
    assert "label column 'y' must hold 0 or 1, found a missing value (data row 1)" in error(path, label_columns="y")


def test_csv_nan_and_non_numeric_features(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("x1,x2,y\n1,2,0\n,3,1\n4,nan,1\n")
    assert error(path, label_columns="y") == (
        f"{path}: feature column 'x1' has 1 missing/NaN value(s) (first at data row 2); expected finite numbers"
    )
    path.write_text("id,x,y\nA7,2,0\nB8,3,1\nA7,4,1\n")  # text is one-hot encoded (tests/test_text_columns.py)
    ds = read(path, label_columns="y")
    assert ds.feature_names == ["id=A7", "id=B8", "x"] and ds.X.tolist() == [[1, 0, 2], [0, 1, 3], [1, 0, 4]]
    path.write_text("id,x,y\nA7,2,0\n5,3,1\nA7,4,1\n")
    assert error(path, label_columns="y") == (
        f"{path}: feature column 'id' mixes numbers and text (e.g. '5' at data row 2); expected numbers, "
        "or text values to one-hot encode"
    )
    path.write_text("y\n1\n")
    assert error(path, label_columns="y") == f"{path}: every column is a label; expected at least one feature column"
    path.write_text("")
    assert error(path, label_columns="y") == f"{path}: empty file; expected a header row followed by samples"


def test_option_not_for_this_format(tmp_path):
    assert error(DATA / "tiny.arff", label_prefix="lab") == (
        f"{DATA / 'tiny.arff'}: option label_prefix does not apply to .arff files (only to .csv, .csv.gz, .tsv, .parquet, .pq)"
    )
    (tmp_path / "d.csv").write_text(CSV)
    assert "option label_file does not apply to .csv files (only to .arff, .arff.gz)" in error(
        tmp_path / "d.csv", label_file="x.xml"
    )


# --- NPZ ----------------------------------------------------------------------------------------------


def test_npz_features_and_names(tmp_path):
    X = np.arange(12, dtype=np.float64).reshape(4, 3)
    Y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], dtype=bool)
    np.savez(tmp_path / "d.npz", X=X, Y=Y, labels=np.array(["cat", "dog"]), feature_names=np.array(["a", "b", "c"]))
    ds = read(tmp_path / "d.npz")
    np.testing.assert_array_equal(ds.X, X.astype(np.float32))
    np.testing.assert_array_equal(ds.Y, Y.astype(np.uint8))
    assert ds.label_names == ["cat", "dog"] and ds.feature_names == ["a", "b", "c"]
    np.savez_compressed(tmp_path / "e.npz", X=X, Y=Y.astype(np.int64))
    ds = read(tmp_path / "e.npz")
    assert ds.label_names == ["label_0", "label_1"] and ds.feature_names == ["f0", "f1", "f2"]


def test_npz_images(tmp_path):
    X = np.random.default_rng(0).integers(0, 255, size=(5, 3, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "img.npz", X=X, Y=np.eye(5, 4, dtype=np.uint8))
    ds = read(tmp_path / "img.npz")
    assert ds.X.shape == (5, 3, 8, 8) and ds.X.dtype == np.float32 and ds.feature_names == []
    assert ds.n_features == 3 * 8 * 8
    np.savez(tmp_path / "hwc.npz", X=X.transpose(0, 2, 3, 1), Y=np.eye(5, 4))
    assert "looks channel-last; expected images as (N, 3, H, W)" in error(tmp_path / "hwc.npz")


def test_npz_errors(tmp_path):
    p = tmp_path / "d.npz"
    np.savez(p, X=np.ones((3, 2)))
    assert error(p) == f"{p}: array 'Y' missing; expected arrays X (N, F), Y (N, C) [labels (C,), feature_names (F,)], found: X"
    np.savez(p, X=np.ones((3, 2)), Y=np.array([[0, 1], [2, 0], [1, 1]]))
    assert error(p) == f"{p}: Y must hold 0 or 1, found 2 at row 1, column 0"
    np.savez(p, X=np.array([[1.0, np.nan]]), Y=np.array([[1]]))
    assert error(p) == f"{p}: X has 1 NaN or infinite values; expected finite numbers"
    np.savez(p, X=np.ones((2, 2)), Y=np.ones((3, 1)))
    assert error(p) == f"{p}: X has 2 rows but Y has 3; expected the same N"
    np.savez(p, X=np.ones((2, 2)), Y=np.ones((2, 1)), labels=np.array(["a", 1], dtype=object))
    assert "contains object arrays, which are not loaded (allow_pickle=False)" in error(p)
    np.savez(p, X=np.ones((2, 2)), Y=np.ones((2, 1)), labels=np.array(["a", "b"]))
    assert error(p) == f"{p}: labels has 2 names; expected 1"
    p.write_text("not a zip")
    assert error(p).startswith(f"{p}: not a readable .npz archive")


def test_npz_without_a_feature_column_is_refused(tmp_path):
    p, Y = tmp_path / "d.npz", np.eye(6, 2, dtype=np.uint8)
    np.savez(p, X=np.zeros((6, 0), np.float32), Y=Y)
    assert error(p) == f"{p}: array 'X' has shape (6, 0); expected at least one feature column"
    np.savez(p, X_data=np.zeros(0, np.float32), X_indices=np.zeros(0, np.int32), X_indptr=np.zeros(7, np.int32),
             X_shape=np.array([6, 0]), Y=Y)
    assert error(p) == f"{p}: array 'X_shape' holds [6, 0]; expected at least one feature column"
    np.savez(p, X=np.zeros((6, 3, 0, 0), np.float32), Y=Y)
    assert error(p) == f"{p}: array 'X' has shape (6, 3, 0, 0); expected images of at least 1x1 pixel and 1 channel"


def test_npz_without_a_feature_column_exits_2_before_anything_runs(cli, tmp_path):
    p = tmp_path / "d.npz"
    np.savez(p, X=np.zeros((30, 0), np.float32), Y=np.eye(30, 2, dtype=np.uint8))
    res = cli("run", "--dataset", p, "--model", "linear", "--folds", "1", "--epochs", "1", "--ci", "0", "--no-track")
    assert res.exit_code == 2
    assert res.output == f"error: {p}: array 'X' has shape (30, 0); expected at least one feature column\n"


# --- dispatch -----------------------------------------------------------------------------------------


def test_unknown_extension_lists_formats(tmp_path):
    path = tmp_path / "d.xlsx"
    path.write_text("")
    assert error(path) == (
        f"{path}: unsupported file type '.xlsx'; expected one of: .arff, .arff.gz, .csv, .csv.gz, .tsv, .parquet, .pq, .npz"
    )
    assert set(FORMATS) >= {".arff", ".csv", ".parquet", ".npz"}
    assert all(isinstance(v, str) and v for v in FORMATS.values())


def test_missing_file_through_load_dataset(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_dataset(str(tmp_path / "absent.arff"))


def test_load_dataset_passes_reader_options(tmp_path):
    (tmp_path / "tr.csv").write_text(CSV)
    (tmp_path / "te.csv").write_text(CSV)
    train, test = load_dataset(str(tmp_path / "tr.csv"), str(tmp_path / "te.csv"), label_prefix="lab_")
    assert train.label_names == test.label_names == ["lab_a", "lab_b"]


# --- repeated header names and header-only tables: data files and prediction CSVs ------------------------


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("a,a,y_1,y_2\n1,2,0,1\n3,4,1,0\n", {"label_prefix": "y_"}, "duplicate column names 'a'; expected distinct names"),
        ("a,b,y_1,y_1\n1,2,0,1\n3,4,1,0\n", {"label_prefix": "y_"}, "duplicate label names 'y_1'; expected distinct names"),
        ("a,b,y_1\n", {"label_prefix": "y_"}, "no data rows; expected a header row followed by samples"),
    ],
)
def test_data_csv_with_a_repeated_header_name_or_no_rows_is_refused(tmp_path, text, kwargs, message):
    path = tmp_path / "d.csv"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        read(path, **kwargs)
    assert str(err.value) == f"{path}: {message}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("target:a,target:a,prob:a,prob:a\n1,0,0.5,0.2\n",
         "duplicate column names 'target:a', 'prob:a'; expected distinct names"),
        ("target:a,target:b,prob:a,prob:b,prob:b\n1,0,0.5,0.2,0.3\n",
         "duplicate column names 'prob:b'; expected distinct names"),
        ("target:a,target:b,prob:a,prob:b\n", "no data rows; expected a header row followed by one row per sample"),
    ],
)
def test_prediction_csv_with_a_repeated_header_name_or_no_rows_is_refused(cli, tmp_path, text, message):
    path = tmp_path / "preds.csv"
    path.write_text(text)
    res = cli("evaluate", "--predictions", path)
    assert res.exit_code == 2, res.output
    assert f"preds.csv: {message}" in res.output
    assert "a.1" not in res.output and "b.1" not in res.output and "non-numeric" not in res.output
    assert "Traceback" not in res.output
