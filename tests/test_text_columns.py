"""Text columns of CSV / Parquet feature tables are one-hot encoded like ARFF nominal attributes
(pandas.get_dummies is the reference), capped at MAX_TEXT_VALUES, and a separate test file or the
data of ``evaluate --model`` is laid out as in training (issue 22)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evalkit.data import load_dataset
from evalkit.data.readers import read
from evalkit.data.tabular import MAX_TEXT_VALUES, align_one_hot
from evalkit.errors import InputError


def _table(n: int, colours, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(size=n).round(3), "colour": rng.choice(colours, n),
                         "size": rng.choice(["S", "M", "L"], n), "lab_a": rng.integers(0, 2, n),
                         "lab_b": rng.integers(0, 2, n)})


@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_text_columns_match_pandas_get_dummies(tmp_path, ext):
    df = _table(30, ["red", "green", "blue"])
    path = tmp_path / f"d.{ext}"
    df.to_csv(path, index=False) if ext == "csv" else df.to_parquet(path)
    ds = read(path, label_prefix="lab_")
    expected = pd.get_dummies(df.drop(columns=["lab_a", "lab_b"]), prefix_sep="=", dtype=np.float32)
    assert ds.feature_names == list(expected.columns)  # x, colour=blue, colour=green, colour=red, size=L, ...
    np.testing.assert_array_equal(ds.X, expected.to_numpy(np.float32))
    assert ds.meta["one_hot"] == {"colour": ["blue", "green", "red"], "size": ["L", "M", "S"]}
    np.testing.assert_array_equal(ds.Y, df[["lab_a", "lab_b"]].to_numpy())


def test_same_encoding_as_an_arff_nominal_attribute(tmp_path):
    (tmp_path / "d.csv").write_text("colour,x,lab_a,lab_b\nred,1,0,1\nblue,2,1,0\nred,3,1,1\n")
    (tmp_path / "d.arff").write_text("@relation d\n@attribute colour {blue,red}\n@attribute x numeric\n"
                                     "@attribute lab_a {0,1}\n@attribute lab_b {0,1}\n@data\n"
                                     "red,1,0,1\nblue,2,1,0\nred,3,1,1\n")
    (tmp_path / "d.xml").write_text('<labels xmlns="http://mulan.sourceforge.net/labels">'
                                    '<label name="lab_a"></label><label name="lab_b"></label></labels>')
    csv, arff = read(tmp_path / "d.csv", label_prefix="lab_"), read(tmp_path / "d.arff")
    assert csv.feature_names == arff.feature_names == ["colour=blue", "colour=red", "x"]
    np.testing.assert_array_equal(csv.X, arff.X)


def test_cap_mixed_missing_and_numbers_as_text(tmp_path):
    n = MAX_TEXT_VALUES + 50
    df = pd.DataFrame({"x": np.arange(n), "code": [f"c{i % (MAX_TEXT_VALUES + 1)}" for i in range(n)],
                       "lab_a": np.arange(n) % 2, "lab_b": np.arange(n) % 3 == 0}).astype({"lab_b": int})
    df.to_csv(tmp_path / "wide.csv", index=False)
    with pytest.raises(InputError) as e:
        read(tmp_path / "wide.csv", label_prefix="lab_")
    assert str(e.value) == (f"{tmp_path / 'wide.csv'}: feature column 'code' has 1001 distinct text values, more than "
                            "1000 to one-hot encode; drop it (--drop-columns code) or encode it first")
    assert read(tmp_path / "wide.csv", label_prefix="lab_", drop_columns="code").feature_names == ["x"]
    (tmp_path / "mixed.csv").write_text("x,size,lab_a,lab_b\n1,3,0,1\n2,4,1,0\n3,big,1,1\n")
    with pytest.raises(InputError, match=r"mixed\.csv: feature column 'size' mixes numbers and text "
                                         r"\(e\.g\. 'big' at data row 3\)"):
        read(tmp_path / "mixed.csv", label_prefix="lab_")
    (tmp_path / "gap.csv").write_text("x,colour,lab_a,lab_b\n1,red,0,1\n2,,1,0\n")
    with pytest.raises(InputError, match=r"gap\.csv: feature column 'colour' has missing values \(first at data row 2\)"):
        read(tmp_path / "gap.csv", label_prefix="lab_")
    pd.DataFrame({"x": [1.0, 2.0], "num": ["1", "2.5"], "lab_a": [0, 1], "lab_b": [1, 0]}).to_parquet(tmp_path / "n.parquet")
    ds = read(tmp_path / "n.parquet", label_prefix="lab_")  # numbers stored as text stay numbers
    assert ds.feature_names == ["x", "num"] and ds.X[:, 1].tolist() == [1.0, 2.5]


def test_a_separate_test_file_gets_the_training_layout(tmp_path):
    _table(60, ["red", "green", "blue"]).to_csv(tmp_path / "train.csv", index=False)
    test_df = _table(40, ["red", "purple"], seed=1)
    test_df.to_csv(tmp_path / "test.csv", index=False)
    train, test = load_dataset(str(tmp_path / "train.csv"), str(tmp_path / "test.csv"), label_prefix="lab_")
    assert test.feature_names == train.feature_names == ["x", "colour=blue", "colour=green", "colour=red",
                                                         "size=L", "size=M", "size=S"]
    np.testing.assert_array_equal(test.X[:, 3], (test_df.colour == "red").to_numpy())
    np.testing.assert_array_equal(test.X[:, 1:3], 0)  # blue / green: absent; purple: all zeros
    np.testing.assert_array_equal(test.X[:, 0], test_df.x.to_numpy(np.float32))
    assert test.meta["notes"] == [f"{tmp_path / 'test.csv'}: column 'colour' has 1 value(s) the training file "
                                  f"{tmp_path / 'train.csv'} lacks ('purple'): encoded as all zeros"]
    _table(40, ["red"]).drop(columns="size").to_csv(tmp_path / "other.csv", index=False)
    with pytest.raises(InputError, match=r"other\.csv: text feature columns \['colour'\] differ from those of the "
                                         r"training file .*train\.csv \['colour', 'size'\]"):
        load_dataset(str(tmp_path / "train.csv"), str(tmp_path / "other.csv"), label_prefix="lab_")


def test_align_is_the_identity_when_the_encodings_agree(tmp_path):
    _table(20, ["red", "blue"]).to_csv(tmp_path / "d.csv", index=False)
    ds = read(tmp_path / "d.csv", label_prefix="lab_")
    assert align_one_hot(ds, dict(ds.meta["one_hot"])) is ds


def test_run_and_evaluate_model_on_a_text_test_file_agree(store, cli, tmp_path):
    """The run records the training encoding (preprocess.json ``one_hot``); ``evaluate --model`` on the
    separate test file lays it out the same way and reproduces the run's test metrics."""
    import json

    import mlflow

    _table(120, ["red", "green", "blue"]).to_csv(tmp_path / "train.csv", index=False)
    _table(60, ["red", "purple"], seed=1).to_csv(tmp_path / "test.csv", index=False)
    common = ["--label-prefix", "lab_", "--test-dataset", "test.csv"]
    r = cli("run", "--dataset", "train.csv", *common, "--epochs", "2", "--folds", "1", "--model", "linear",
            "-o", "run.json")
    assert r.exit_code == 0, r.output
    assert "'purple'): encoded as all zeros" in r.output
    run_id = mlflow.search_runs(experiment_names=["evalkit"]).run_id[0]
    record = mlflow.artifacts.load_dict(f"runs:/{run_id}/preprocess.json")
    assert record["dataset"]["one_hot"] == {"colour": ["blue", "green", "red"], "size": ["L", "M", "S"]}
    r = cli("evaluate", "--model", f"runs:/{run_id}/model", *common, "--no-track", "-o", "ev.json")
    assert r.exit_code == 0, r.output
    ran, ev = (json.loads((tmp_path / f).read_text())["summary"] for f in ("run.json", "ev.json"))
    assert ev["micro"]["f2"] == pytest.approx(ran["micro"]["f2"]) and ev["macro_auroc"] == pytest.approx(ran["macro_auroc"])
