"""The built-in digits-grid image set: composition, determinism, split, and the CNN beating the MLP."""

from __future__ import annotations

import numpy as np
import pytest


def test_digits_grid_images_show_exactly_the_labelled_digits():
    from sklearn.datasets import load_digits

    from evalkit.data.builtin import load_builtin

    train, test = load_builtin("digits-grid")
    assert train.X.shape == (3000, 1, 16, 16) and test.X.shape == (1000, 1, 16, 16)
    assert train.X.dtype == np.float32 and 0.0 <= train.X.min() and train.X.max() <= 1.0
    assert train.label_names == [f"digit_{d}" for d in range(10)]
    counts = train.Y.sum(axis=1)
    assert counts.min() >= 1 and counts.max() <= 4
    digits = load_digits()
    scans = {tuple((img / 16.0).astype(np.float32).ravel()): int(t) for img, t in zip(digits.images, digits.target)}
    for i in range(50):  # every non-blank cell is a scan of a digit its labels name, and every label is shown
        cells = [train.X[i, 0, r:r + 8, c:c + 8] for r in (0, 8) for c in (0, 8)]
        shown = {scans[tuple(cell.ravel())] for cell in cells if cell.any()}
        assert shown == set(np.flatnonzero(train.Y[i]).tolist())


def test_digits_grid_is_the_same_every_time_and_train_and_test_share_no_scan():
    from evalkit.images.digits_grid import digits_grid

    a_train, a_test = digits_grid()
    b_train, b_test = digits_grid()
    assert np.array_equal(a_train.X, b_train.X) and np.array_equal(a_test.Y, b_test.Y)
    cells = lambda X: {c.tobytes() for img in X[:, 0] for c in (img[:8, :8], img[:8, 8:], img[8:, :8], img[8:, 8:]) if c.any()}  # noqa: E731
    assert not cells(a_train.X) & cells(a_test.X)
    other, _ = digits_grid(seed=1)
    assert not np.array_equal(other.X, a_train.X)


@pytest.mark.slow
def test_cnn_beats_the_mlp_on_digits_grid_with_default_settings():
    """Measured (5 epochs, --folds 1, CPU): cnn micro-F2 0.961 / mAP 0.988, mlp 0.840 / 0.865."""
    from evalkit import run_experiment
    from evalkit.config import RunConfig

    summary = {m: run_experiment(RunConfig(dataset="digits-grid", model=m, epochs=5, folds=1), track=False).report["summary"]
               for m in ("mlp", "cnn")}
    assert summary["cnn"]["micro"]["f2"] > summary["mlp"]["micro"]["f2"] + 0.05, summary
    assert summary["cnn"]["mean_average_precision"] > summary["mlp"]["mean_average_precision"] + 0.05, summary
    assert summary["cnn"]["micro"]["f2"] > 0.9 and summary["cnn"]["mean_average_precision"] > 0.95


def test_tiles_mark_hits_misses_and_false_alarms():
    from evalkit.images.grid import predicted, tile_labels
    from evalkit.thresholds import parse_strategy
    from evalkit.thresholds.value import Thresholds

    names = ["cat", "dog", "owl"]
    rows = tile_labels(np.array([1, 1, 0], bool), np.array([1, 0, 1], bool), names)
    assert rows == [("cat", "black"), ("-dog", "tab:red"), ("+owl", "tab:orange")]
    p = np.array([[0.9, 0.2, 0.6], [0.1, 0.8, 0.3]])
    cut = Thresholds(parse_strategy("fixed:0.5"), (0.5, 0.5, 0.5))
    np.testing.assert_array_equal(predicted(p, cut), [[1, 0, 1], [0, 1, 0]])
    top1 = Thresholds(parse_strategy("top-k:1"), None, n_labels=3)
    np.testing.assert_array_equal(predicted(p, top1), [[1, 0, 0], [0, 1, 0]])


def test_a_run_on_images_logs_a_grid_of_labelled_test_samples(store, tmp_path):
    import mlflow
    from PIL import Image

    from evalkit import run_experiment
    from evalkit.config import RunConfig

    res = run_experiment(RunConfig(dataset="digits-grid", model="linear", epochs=1, folds=1, log_model=False))
    path = mlflow.MlflowClient(store).download_artifacts(res.run_id, "plots/test_samples.png", str(tmp_path))
    with Image.open(path) as img:
        assert img.size[0] > 400 and img.size[1] > 400


def test_amp_on_the_cpu_is_a_note_and_training_stays_exact_float32(tmp_path, cli):
    import json

    common = ("run", "--no-track", "--dataset", "digits-grid", "--model", "cnn", "--epochs", "1", "--folds", "1",
              "--batch-size", "256")
    plain = cli(*common, "-o", str(tmp_path / "off.json"))
    mixed = cli(*common, "--amp", "bf16", "-o", str(tmp_path / "bf16.json"))
    assert plain.exit_code == 0 and mixed.exit_code == 0, mixed.output
    assert "--amp bf16: CUDA only; training on cpu stays exact float32" in " ".join((mixed.stdout + mixed.stderr).split())
    off, bf16 = (json.loads((tmp_path / f).read_text()) for f in ("off.json", "bf16.json"))
    assert off["summary"] == bf16["summary"] and off["per_class"] == bf16["per_class"]
