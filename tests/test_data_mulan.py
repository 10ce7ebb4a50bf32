"""The MULAN benchmark files as the community ships them (skipped when ../shared/datasets is absent)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from evalkit.data import load_dataset
from evalkit.data.readers import read

MULAN = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mulan"

# name: (train rows, test rows, features, labels) -- counted from the files' @data sections / XML
EXPECTED = {
    "emotions": (391, 202, 72, 6),
    "scene": (1211, 1196, 294, 6),
    "medical": (333, 645, 1449, 45),
}


def _files(name: str) -> tuple[Path, Path, Path]:
    d = MULAN / name
    files = (d / f"{name}-train.arff", d / f"{name}-test.arff", d / f"{name}.xml")
    if not all(f.is_file() for f in files):
        pytest.skip(f"MULAN {name} not available under {d}")
    return files


def _xml_labels(xml: Path) -> list[str]:
    return [el.get("name") for el in ET.parse(xml).getroot().iter() if el.tag.endswith("label")]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_mulan_train_test_shapes_and_labels(name):
    train_file, test_file, xml = _files(name)
    n_train, n_test, n_features, n_labels = EXPECTED[name]
    train, test = load_dataset(str(train_file), str(test_file))  # reading time: benchmarks/bench_cli.py

    assert train.X.shape == (n_train, n_features) and test.X.shape == (n_test, n_features)
    assert train.Y.shape == (n_train, n_labels) and test.Y.shape == (n_test, n_labels)
    assert train.X.dtype == np.float32 and train.Y.dtype == np.uint8
    assert train.label_names == test.label_names == _xml_labels(xml)
    assert train.feature_names == test.feature_names
    assert len(set(train.feature_names)) == n_features
    assert not set(train.feature_names) & set(train.label_names)
    assert train.name == test.name == name
    assert train.meta["label_convention"] == "mulan" and train.meta["label_file"] == str(xml)
    assert train.Y.sum() > 0 and test.Y.sum() > 0


def test_medical_stale_meka_relation_is_ignored():
    """medical's @relation says '-C 45' (first 45 attributes) but the XML labels are the LAST 45."""
    train_file, _, _ = _files("medical")
    ds = read(train_file)
    assert "-C 45" in ds.meta["relation"]
    assert ds.label_names[0] == "Class-0-593_70" and ds.feature_names[:3] == ["-", "/", "0"]
    assert any("ignored MEKA '-C 45'" in note for note in ds.meta["notes"])
    assert ds.meta["sparse"] is True
    assert ds.X.format == "csr"  # sparse ARFF stays sparse (evalkit.data.sparse)
    assert set(np.unique(ds.X.data)) <= {0.0, 1.0}  # bag-of-words presence features
    # the MEKA reading of the same file would take word features as labels: it is a different dataset
    meka = read(train_file, meka_labels=45)
    assert meka.label_names[:3] == ["-", "/", "0"]


def test_emotions_full_file_is_train_then_test():
    d = MULAN / "emotions"
    if not (d / "emotions.arff").is_file():
        pytest.skip("emotions.arff not available")
    full = read(d / "emotions.arff")
    train, test = read(d / "emotions-train.arff"), read(d / "emotions-test.arff")
    np.testing.assert_array_equal(full.X, np.vstack([train.X, test.X]))
    np.testing.assert_array_equal(full.Y, np.vstack([train.Y, test.Y]))
