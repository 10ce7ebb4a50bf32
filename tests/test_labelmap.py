"""Label maps: parsing, validation, reductions, and evaluate --label-map against hand-computed metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evalkit.errors import InputError
from evalkit.labelmap import apply_label_map, parse_label_map, read_label_map, reduce_scores, reduce_targets

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit is deprecated in torch 2.13

LABELS = ["cat", "dog", "bird", "car", "bus", "tree"]
MAP = {"cat": "animal", "dog": "animal", "bird": "animal", "car": "vehicle", "bus": "vehicle"}  # tree: unmapped

# probabilities per sample (cat, dog, bird, car, bus, tree) and fine targets
P = np.array([
    [0.9, 0.1, 0.1, 0.1, 0.1, 0.9],
    [0.2, 0.3, 0.1, 0.8, 0.1, 0.1],
    [0.1, 0.1, 0.1, 0.1, 0.2, 0.1],
    [0.1, 0.6, 0.1, 0.1, 0.1, 0.1],
    [0.7, 0.1, 0.1, 0.1, 0.9, 0.1],
])
Y = np.array([
    [1, 0, 0, 0, 0, 0],
    [0, 1, 0, 0, 1, 0],
    [0, 0, 0, 0, 0, 1],
    [0, 0, 0, 1, 0, 0],
    [1, 0, 0, 0, 1, 0],
], dtype=np.uint8)
# Mapped by hand (max): animal targets [1,1,0,0,1], predictions at 0.5 [1,0,0,1,1] -> tp 2 fp 1 fn 1 tn 1
#                       vehicle targets [0,1,0,1,1], predictions        [0,1,0,0,1] -> tp 2 fp 0 fn 1 tn 2
HAND = {
    "animal": {"tp": 2, "fp": 1, "fn": 1, "tn": 1, "precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "f2": 2 / 3},
    "vehicle": {"tp": 2, "fp": 0, "fn": 1, "tn": 2, "precision": 1.0, "recall": 2 / 3, "f1": 0.8, "f2": 5 / 7},
    "micro_precision": 4 / 5, "micro_recall": 4 / 6, "micro_f1": 8 / 11,
    "macro_f1": (2 / 3 + 0.8) / 2, "macro_f2": (2 / 3 + 5 / 7) / 2,
    "subset_accuracy": 3 / 5,  # samples 1, 3, 5 exactly right
    "hamming_loss": 3 / 10,  # sample 2: one wrong, sample 4: two wrong
}


def test_reductions_by_hand():
    lm = parse_label_map(MAP)
    M = lm.matrix(LABELS)
    assert lm.targets == ["animal", "vehicle"]
    np.testing.assert_allclose(reduce_scores(P, M, "max")[:, 0], [0.9, 0.3, 0.1, 0.6, 0.7])
    np.testing.assert_allclose(reduce_scores(P, M, "sum")[:, 0], [1.0, 0.6, 0.3, 0.8, 0.9])  # 1.1 clipped to 1
    np.testing.assert_allclose(reduce_scores(P, M, "mean")[:, 1], [0.1, 0.45, 0.15, 0.1, 0.5])
    np.testing.assert_array_equal(reduce_targets(Y, M), [[1, 0], [1, 1], [0, 0], [0, 1], [1, 1]])
    Ym, Pm, names, unmapped = apply_label_map(lm, LABELS, Y, P, "max")
    assert names == ["animal", "vehicle"] and unmapped == ["tree"]


@pytest.mark.parametrize(
    "pairs, match",
    [
        ({}, "empty label map"),
        ({"cat": "animal", "animal": "thing"}, "also sources"),
        ({"cat": ""}, "empty label name"),
    ],
)
def test_invalid_maps(pairs, match):
    with pytest.raises(InputError, match=match):
        parse_label_map(pairs)


def test_unknown_source_label():
    with pytest.raises(InputError, match="unknown source label.*'lion'"):
        parse_label_map({"lion": "animal"}).matrix(LABELS)


def test_read_csv_and_json(tmp_path):
    csv = tmp_path / "map.csv"
    csv.write_text("source,target\n" + "".join(f"{s},{t}\n" for s, t in MAP.items()))
    js = tmp_path / "map.json"
    js.write_text(json.dumps(MAP))
    assert read_label_map(csv).pairs == read_label_map(js).pairs == MAP
    bad = tmp_path / "bad.csv"
    bad.write_text("from,to\ncat,animal\n")
    with pytest.raises(InputError, match="expected CSV columns source,target"):
        read_label_map(bad)
    twice = tmp_path / "twice.csv"
    twice.write_text("source,target\ncat,animal\ncat,pet\n")
    with pytest.raises(InputError, match="maps to both"):
        read_label_map(twice)
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    with pytest.raises(InputError, match="empty label map"):
        read_label_map(empty)


def _identity_model(tmp_path):
    """A TorchScript model whose logits are its input: the data file carries the logits."""
    import torch

    path = tmp_path / "identity.ts"
    torch.jit.save(torch.jit.script(torch.nn.Identity()), str(path))
    return path


def test_evaluate_label_map_6_to_2_matches_hand_computed(tmp_path, cli):
    logits = np.log(P / (1 - P)).astype(np.float32)
    data = tmp_path / "fine.npz"
    np.savez(data, X=logits, Y=Y, labels=np.array(LABELS))
    lm = tmp_path / "map.csv"
    lm.write_text("source,target\n" + "".join(f"{s},{t}\n" for s, t in MAP.items()))
    model = _identity_model(tmp_path)
    out = tmp_path / "report.json"
    r = cli("evaluate", "--model", model, "--test-dataset", data, "--label-map", lm, "--no-track", "-o", out)
    assert r.exit_code == 0, r.output
    rep = json.loads(out.read_text())
    assert [c["label"] for c in rep["per_class"]] == ["animal", "vehicle"]
    assert rep["label_map"]["unmapped"] == ["tree"] and rep["label_map"]["reduce"] == "max"
    for row in rep["per_class"]:
        for k, v in HAND[row["label"]].items():
            assert row[k] == pytest.approx(v, abs=1e-9), (row["label"], k)
    s = rep["summary"]
    assert s["micro"]["precision"] == pytest.approx(HAND["micro_precision"])
    assert s["micro"]["recall"] == pytest.approx(HAND["micro_recall"])
    assert s["micro"]["f1"] == pytest.approx(HAND["micro_f1"])
    assert s["macro"]["f1"] == pytest.approx(HAND["macro_f1"])
    assert s["macro"]["f2"] == pytest.approx(HAND["macro_f2"])
    assert s["subset_accuracy"] == pytest.approx(HAND["subset_accuracy"])
    assert s["hamming_loss"] == pytest.approx(HAND["hamming_loss"])


def test_evaluate_label_map_errors_exit_2(tmp_path, cli):
    data = tmp_path / "fine.npz"
    np.savez(data, X=np.zeros((5, 6), np.float32), Y=Y, labels=np.array(LABELS))
    model = _identity_model(tmp_path)
    lm = tmp_path / "map.json"
    lm.write_text(json.dumps({"cat": "animal", "lion": "animal"}))
    r = cli("evaluate", "--model", model, "--test-dataset", data, "--label-map", lm, "--no-track")
    assert r.exit_code == 2
    assert "unknown source label" in r.stderr and "'lion'" in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2  # one message (rich may wrap a long line)
