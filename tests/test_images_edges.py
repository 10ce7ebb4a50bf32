"""Image tables at their edges, as a user meets them: a report path that names one of the table's
images, --image-size with the small CNN, signals sent to the whole process group while DataLoader
workers decode, MedMNIST archives whose arrays disagree."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from evalkit.errors import InputError  # noqa: E402
from evalkit.images.backbones import import_torchvision  # noqa: E402

try:
    import_torchvision()
except InputError:
    pytest.skip("torchvision is not installed (pip install 'evalkit[images]')", allow_module_level=True)

from test_images_cli import CXR, FAST, chestxray_folder  # noqa: E402


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def test_a_report_path_naming_an_image_of_the_table_is_refused_even_with_force(store, cli, tmp_path):
    """-o over an image the table lists: the input check before the data is read sees the table only,
    so `--force` overwrote the image with the report JSON (run and evaluate --model alike)."""
    import mlflow

    chestxray_folder(tmp_path / "cxr", n=30)
    table, root = tmp_path / "cxr" / "Data_Entry_2017.csv", tmp_path / "cxr" / "images"
    image = root / "00000005_000.png"
    before = image.read_bytes()
    res = cli("run", "--dataset", table, "--image-root", root, *CXR, *FAST, "--epochs", "1", "-o", image, "--force")
    assert res.exit_code == 2
    assert res.output.strip().splitlines()[-1] == (
        f"error: --output {image}: is the image of row 6 of {table}; write the output to another path "
        "(an input is never overwritten, even with --force)")
    assert image.read_bytes() == before
    assert mlflow.MlflowClient(store).search_runs(["1"]) == []  # refused before a run starts
    res = cli("run", "--dataset", table, "--image-root", root, *CXR, *FAST, "--epochs", "1", "-o", "r.json")
    assert res.exit_code == 0, res.output
    run_id = mlflow.MlflowClient(store).search_runs(["1"])[0].info.run_id
    # evaluate --model: a training row's image is an input of the table as much as a test row's
    train_image = root / "00000000_000.png"
    before = train_image.read_bytes()
    res = cli("evaluate", "--model", f"runs:/{run_id}/model", "--dataset", table, "--image-root", root,
              "--workers", "0", "-o", train_image, "--force")
    assert res.exit_code == 2
    assert f"error: --output {train_image}: is the image of row 1 of {table}" in res.output
    assert train_image.read_bytes() == before
    assert len(mlflow.MlflowClient(store).search_runs(["1"])) == 1


def test_image_size_sets_the_streamed_side_of_a_table_for_the_cnn_and_auto(cli, tmp_path):
    """--image-size on an image table is the side its images are streamed at (docs: Images, "Image
    files and tables"): it was refused as a backbone-only option once --model auto had taken the cnn."""
    chestxray_folder(tmp_path / "cxr", n=30)
    table, root = tmp_path / "cxr" / "Data_Entry_2017.csv", tmp_path / "cxr" / "images"
    for model in ("auto", "cnn"):
        res = cli("run", "--dataset", table, "--image-root", root, *CXR, "--model", model, "--epochs", "1",
                  "--workers", "0", "--device", "cpu", "--image-size", "24", "--no-track", "-o", f"{model}.json")
        assert res.exit_code == 0, res.output
        assert "only for torchvision backbones" not in res.output
        report = json.loads((tmp_path / f"{model}.json").read_text())
        assert report["dataset"]["n_samples"] > 0
        assert "│ train │" in res.output and "│      576 │" in res.output  # 1 x 24 x 24 features
    # in-memory images: the cnn takes them as they are, so --image-size is still a backbone option there
    res = cli("run", "--dataset", "digits-grid", "--model", "cnn", "--epochs", "1", "--image-size", "24", "--no-track")
    assert res.exit_code == 2
    assert "--image-size: only for torchvision backbones" in res.output


def test_sigterm_to_the_process_group_while_workers_decode_ends_the_run_killed_exit_143(store, tmp_path):
    """systemd stopping a service, `kill -- -PGID`: SIGTERM reaches the DataLoader workers too. A
    worker killed by it made torch raise "DataLoader worker ... is killed by signal" over the
    interrupt: exit 1, a traceback, the run FAILED. The workers leave the signal to the run now."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import mlflow

    chestxray_folder(tmp_path / "cxr", n=120)
    (tmp_path / "pickle.py").write_text("raise SystemExit('a stray pickle.py was imported')\n")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]), EVALKIT_CHECKPOINT_DIR=str(tmp_path / "ckpt"))
    log = tmp_path / "err.txt"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "evalkit", "run", "--dataset", "cxr/Data_Entry_2017.csv", "--image-root",
             "cxr/images", *CXR, "--model", "cnn", "--epochs", "1000", "--monitor", "none", "--folds", "1",
             "--workers", "1", "--device", "cpu", "--budget", "off", "--tracking-uri", store, "-o", "r.json"],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if list((tmp_path / "ckpt").glob("*/checkpoint.pt")):
            break  # an epoch is done: the workers are decoding the next one
        time.sleep(0.2)
    assert proc.poll() is None, log.read_text()
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=120) == 143, log.read_text()
    text = log.read_text()
    assert "Traceback" not in text and "stray" not in text, text
    assert text.strip().splitlines()[-1] == "interrupted (SIGTERM); MLflow run ended as KILLED", text
    assert [r.info.status for r in mlflow.MlflowClient(store).search_runs(["1"])] == ["KILLED"]
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("split, n_images, n_labels", [("test", 5, 30), ("val", 0, 0), ("train", 60, 59)])
def test_a_medmnist_split_whose_images_and_labels_disagree_names_its_arrays(tmp_path, split, n_images, n_labels):
    """The sizes of one split's arrays: the message named neither array ("5 feature rows but 30
    target rows"), and an empty split said "dataset has zero samples"."""
    from evalkit.data import load_dataset

    rng = np.random.default_rng(0)
    arrays = {}
    for s, n in (("train", 60), ("val", 20), ("test", 30)):
        arrays[f"{s}_images"] = rng.integers(0, 255, (n, 8, 8)).astype(np.uint8)
        arrays[f"{s}_labels"] = (rng.random((n, 14)) < 0.3).astype(np.uint8)
    arrays[f"{split}_images"] = arrays[f"{split}_images"][:n_images]
    arrays[f"{split}_labels"] = arrays[f"{split}_labels"][:n_labels]
    path = tmp_path / "chestmnist.npz"
    np.savez(path, **arrays)
    with pytest.raises(InputError) as e:
        load_dataset(str(path))
    assert str(e.value) == (f"{path}: {split}_images has {n_images} images but {split}_labels has {n_labels} rows; "
                            "expected the same N, at least 1")


def test_an_image_on_two_rows_or_in_both_tables_is_refused_naming_the_rows(cli, tmp_path):
    """A table that lists one image twice (or a --test-dataset sharing images with --dataset) was
    accepted: a copy could be trained on and then scored as a test image, inflating every metric."""
    chestxray_folder(tmp_path / "cxr", n=30)
    table, root = tmp_path / "cxr" / "Data_Entry_2017.csv", tmp_path / "cxr" / "images"
    lines = table.read_text().splitlines()
    twice = tmp_path / "cxr" / "twice.csv"
    twice.write_text("\n".join([*lines, lines[3]]) + "\n")  # row 3's image again, as row 31
    res = cli("run", "--dataset", twice, "--image-root", root, *CXR, *FAST, "--epochs", "1", "--no-track")
    assert res.exit_code == 2
    assert res.output.strip().splitlines()[-1] == (
        f"error: {twice}: rows 3 and 31 name the same image {root.resolve() / '00000002_000.png'}; expected one "
        "row per image (a copy could land in both the training and the test split)")
    train, test = tmp_path / "cxr" / "train.csv", tmp_path / "cxr" / "test.csv"
    train.write_text("\n".join(lines[:21]) + "\n")
    test.write_text("\n".join([lines[0], *lines[20:]]) + "\n")  # row 20 of train is row 1 of test
    res = cli("run", "--dataset", train, "--test-dataset", test, "--image-root", root, *CXR, *FAST, "--epochs", "1",
              "--no-track")
    assert res.exit_code == 2
    assert res.output.strip().splitlines()[-1] == (
        f"error: {test}: row 1: image {root.resolve() / '00000019_000.png'} is also row 20 of {train}; expected "
        "test images the training never saw")
    test.write_text("\n".join([lines[0], *lines[21:]]) + "\n")
    res = cli("run", "--dataset", train, "--test-dataset", test, "--image-root", root, *CXR, *FAST, "--epochs", "1",
              "--no-track")
    assert res.exit_code == 0, res.output
