"""MedMNIST .npz archives: read as their given train / val / test splits; a ChestMNIST-format file
trains and evaluates end to end."""

from __future__ import annotations

import numpy as np
import pytest

from evalkit.errors import InputError


def _chestmnist(path, n=(60, 20, 30), size=8, seed=0):
    """A ChestMNIST-format archive: uint8 (N, size, size) images whose bright quadrant says the
    labels, (N, 14) 0/1 labels."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, k in zip(("train", "val", "test"), n):
        Y = (rng.random((k, 14)) < 0.3).astype(np.uint8)
        Y[:, 0] = rng.random(k) < 0.5
        X = rng.integers(0, 60, (k, size, size), dtype=np.uint8)
        X[Y[:, 0] == 1, : size // 2, : size // 2] += 180
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = X, Y
    np.savez_compressed(path, **arrays)
    return arrays


def test_chestmnist_archive_is_read_as_its_given_splits(tmp_path):
    from evalkit.data import load_dataset, make_splits

    path = tmp_path / "chestmnist.npz"
    a = _chestmnist(path)
    train, test = load_dataset(str(path))
    assert train.X.shape == (80, 1, 8, 8) and train.X.dtype == np.float32
    np.testing.assert_array_equal(train.X[:60, 0] * 255, a["train_images"])
    np.testing.assert_array_equal(test.Y, a["test_labels"])
    assert train.label_names[:3] == ["atelectasis", "cardiomegaly", "effusion"] and len(train.label_names) == 14
    splits = make_splits(train, test, seed=3)
    np.testing.assert_array_equal(splits.val.Y, a["val_labels"])  # the given validation rows, not a random carve
    np.testing.assert_array_equal(splits.train.Y, a["train_labels"])


def test_rgb_archives_become_channel_first_and_bad_layouts_are_refused(tmp_path):
    from evalkit.images.medmnist import read_medmnist

    rng = np.random.default_rng(0)
    arrays = {f"{s}_images": rng.integers(0, 256, (4, 6, 6, 3), dtype=np.uint8) for s in ("train", "val", "test")}
    arrays |= {f"{s}_labels": rng.integers(0, 2, (4, 3), dtype=np.uint8) for s in ("train", "val", "test")}
    np.savez(tmp_path / "rgb.npz", **arrays)
    train, _ = read_medmnist(tmp_path / "rgb.npz")
    np.testing.assert_allclose(train.X[0], arrays["train_images"][0].transpose(2, 0, 1) / 255.0, rtol=1e-6)
    assert train.label_names == ["label_0", "label_1", "label_2"]
    np.savez(tmp_path / "multiclass.npz", **(arrays | {"train_labels": np.array([[0], [3], [7], [1]], dtype=np.uint8)}))
    with pytest.raises(InputError, match=r"multiclass\.npz: train_labels must be 0/1 \(N, C\) multi-label"):
        read_medmnist(tmp_path / "multiclass.npz")
    np.savez(tmp_path / "partial.npz", **{k: v for k, v in arrays.items() if not k.startswith("val")})
    with pytest.raises(InputError, match=r"partial\.npz: MedMNIST archive without val_images, val_labels"):
        read_medmnist(tmp_path / "partial.npz")


def test_chestmnist_format_trains_and_evaluates_end_to_end(store, cli, tmp_path):
    import json

    import mlflow

    path = tmp_path / "chestmnist.npz"
    _chestmnist(path)
    res = cli("run", "--dataset", str(path), "--model", "cnn", "--epochs", "3", "--folds", "1", "-o", "r.json")
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["dataset"]["n_samples"] == 30 and report["dataset"]["n_labels"] == 14
    ap0 = next(c for c in report["per_class"] if c["label"] == "atelectasis")["average_precision"]
    assert ap0 > 0.9  # the label drawn into the image is learnt
    run = mlflow.MlflowClient(store).search_runs(["1"])[0]
    assert run.info.status == "FINISHED"
    res = cli("evaluate", "--model", f"runs:/{run.info.run_id}/model", "--dataset", str(path), "-o", "e.json")
    assert res.exit_code == 0, res.output
    again = json.loads((tmp_path / "e.json").read_text())
    for avg in ("micro", "macro"):
        assert again["summary"][avg]["f2"] == pytest.approx(report["summary"][avg]["f2"], abs=1e-6)
    assert again["summary"]["mean_average_precision"] == pytest.approx(report["summary"]["mean_average_precision"], abs=1e-6)


def test_auto_takes_the_small_cnn_for_small_images_with_its_own_defaults_and_says_why(tmp_path, cli, monkeypatch):
    import evalkit.workflows.training as training
    from evalkit.workflows.model_choice import image_choice

    assert image_choice((3000, 1, 16, 16))[0] == "cnn"
    arch, why = image_choice((50_000, 1, 28, 28))
    assert arch == "resnet18" and "50000 images of 28 px" in why
    assert image_choice((100, 3, 64, 64))[0] == "resnet18"
    path = tmp_path / "chestmnist.npz"
    _chestmnist(path)
    seen = []
    real_build = training.build
    monkeypatch.setattr(training, "build", lambda config, *a: (seen.append(config), real_build(config, *a))[1])
    res = cli("run", "--no-track", "--dataset", str(path), "--model", "auto", "--epochs", "1", "--folds", "1")
    assert res.exit_code == 0, res.output
    assert "--model auto: cnn (60 images of 8 px" in " ".join((res.stdout + res.stderr).split())
    assert [(c.model, c.lr, c.input_noise) for c in seen] == [("cnn", 3e-3, 0.0)]
