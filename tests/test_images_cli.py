"""Image tables from the command line: a ChestX-ray14-style CSV (``Image Index``, ``Finding Labels``
with ``|``, ``No Finding``) of PNG files trains, evaluates and is scored again by ``evaluate --model``
to 1e-6; bad images and paths leaving --image-root stop with one line (exit 2) or are skipped and
counted; the CLI streams through the same loader as the library."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")
from PIL import Image  # noqa: E402

from evalkit.errors import InputError  # noqa: E402
from evalkit.images.backbones import import_torchvision  # noqa: E402

try:
    import_torchvision()
except InputError:
    pytest.skip("torchvision is not installed (pip install 'evalkit[images]')", allow_module_level=True)

FINDINGS = ("Atelectasis", "Effusion", "Mass", "Nodule")
#: the ChestX-ray14 reader options (Data_Entry_2017.csv)
CXR = ("--image-column", "Image Index", "--label-list-column", "Finding Labels", "--label-sep", "|",
       "--empty-label", "No Finding")
FAST = ("--model", "cnn", "--epochs", "2", "--folds", "1", "--workers", "0", "--device", "cpu")


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # report files and the default store land in the test's folder


def chestxray_folder(folder, n: int = 48, side: int = 16, seed: int = 0, bit16: bool = False):
    """``folder/Data_Entry_2017.csv`` and ``folder/images/*.png``: each finding brightens one quadrant
    (learnable); about one row in five has ``No Finding``. Returns the label matrix ``(n, 4)``."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines, Y = ["Image Index,Finding Labels,Patient Age"], np.zeros((n, len(FINDINGS)), dtype=np.uint8)
    for i in range(n):
        Y[i] = rng.random(len(FINDINGS)) < 0.35
        img = rng.integers(0, 60, (side, side)).astype(np.uint16 if bit16 else np.uint8)
        h = side // 2
        for j in np.flatnonzero(Y[i]):
            r, c = divmod(int(j), 2)
            img[r * h:(r + 1) * h, c * h:(c + 1) * h] += 150
        Image.fromarray(img * (257 if bit16 else 1)).save(folder / "images" / f"{i:08d}_000.png")
        found = "|".join(f for f, on in zip(FINDINGS, Y[i]) if on) or "No Finding"
        lines.append(f"{i:08d}_000.png,{found},{40 + i % 30}")
    (folder / "Data_Entry_2017.csv").write_text("\n".join(lines) + "\n")
    return Y


def test_chestxray14_table_trains_and_evaluate_model_gives_the_run_test_metrics(store, cli, tmp_path):
    import mlflow

    Y = chestxray_folder(tmp_path / "cxr")
    table, root = tmp_path / "cxr" / "Data_Entry_2017.csv", tmp_path / "cxr" / "images"
    res = cli("run", "--dataset", table, "--image-root", root, *CXR, *FAST, "--epochs", "4", "-o", "r.json")
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["dataset"]["n_labels"] == 4 and [c["label"] for c in report["per_class"]] == sorted(FINDINGS)
    # "No Finding" is no label: the support of the test split sums the real findings only
    assert sum(c["support"] for c in report["per_class"]) <= int(Y.sum())
    assert report["summary"]["mean_average_precision"] > 0.6  # the quadrants are learnt (chance is ~0.35)
    run = mlflow.MlflowClient(store).search_runs(["1"])[0]
    assert run.info.status == "FINISHED"
    record = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/preprocess.json")
    assert record["image"]["size"] == 16 and record["image"]["channels"] == 1 and record["standardize"] is False
    assert record["dataset"]["reader_options"]["label_sep"] == "|"
    counts = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/dataset/label_counts.csv").splitlines()
    assert counts[0] == "label,train,val,test,total"
    assert [(r.split(",")[0], int(r.split(",")[-1])) for r in counts[1:]] == list(zip(FINDINGS, map(int, Y.sum(axis=0))))
    test_support = {c["label"]: c["support"] for c in report["per_class"]}
    assert all(int(r.split(",")[3]) == test_support[r.split(",")[0]] for r in counts[1:])
    # a new shell: the run's model, the same table; label options come from preprocess.json
    res = cli("evaluate", "--model", f"runs:/{run.info.run_id}/model", "--dataset", table, "--image-root", root,
              "--workers", "0", "--no-track", "-o", "e.json")
    assert res.exit_code == 0, res.output
    again = json.loads((tmp_path / "e.json").read_text())
    assert again["dataset"]["n_samples"] == report["dataset"]["n_samples"]
    for avg in ("micro", "macro", "samples"):
        for m in ("f2", "precision", "recall"):
            assert again["summary"][avg][m] == pytest.approx(report["summary"][avg][m], abs=1e-6)
    assert again["summary"]["mean_average_precision"] == pytest.approx(report["summary"]["mean_average_precision"],
                                                                       abs=1e-6)
    for a, b in zip(report["per_class"], again["per_class"]):
        assert a["label"] == b["label"] and b["average_precision"] == pytest.approx(a["average_precision"], abs=1e-6)


def test_evaluate_model_alone_reads_the_recorded_table_with_its_image_root_from_any_folder(store, cli, tmp_path,
                                                                                             monkeypatch):
    """Without --dataset, evaluate --model evaluates the recorded table's test split: with the run's
    --image-root (it was dropped: images were looked for beside the table), given relative at training
    and recorded absolute, so another working folder finds them too."""
    import mlflow

    chestxray_folder(tmp_path / "cxr")
    res = cli("run", "--dataset", "cxr/Data_Entry_2017.csv", "--image-root", "cxr/images", *CXR, *FAST, "-o", "r.json")
    assert res.exit_code == 0, res.output
    run = mlflow.MlflowClient(store).search_runs(["1"])[0]
    record = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/preprocess.json")
    assert record["dataset"]["reader_options"]["image_root"] == str((tmp_path / "cxr" / "images").resolve())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    res = cli("evaluate", "--model", f"runs:/{run.info.run_id}/model", "--tracking-uri", store, "--workers", "0",
              "--no-track", "-o", "e.json")
    assert res.exit_code == 0, res.output
    report, again = (json.loads(p.read_text()) for p in (tmp_path / "r.json", elsewhere / "e.json"))
    assert again["dataset"]["n_samples"] == report["dataset"]["n_samples"]
    assert again["summary"]["macro"]["f2"] == pytest.approx(report["summary"]["macro"]["f2"], abs=1e-6)


def test_a_test_table_is_streamed_at_the_training_size_and_16_bit_pngs_read(cli, tmp_path):
    for name, n, side, bit16 in (("tr", 40, 16, False), ("te", 20, 24, True)):  # the test set: 24 px, 16-bit
        chestxray_folder(tmp_path / name, n=n, side=side, seed=n, bit16=bit16)
        table = tmp_path / name / "Data_Entry_2017.csv"  # paths relative to the table's folder (the default root)
        table.write_text(table.read_text().replace("\n0000", "\nimages/0000"))
    res = cli("run", "--dataset", tmp_path / "tr" / "Data_Entry_2017.csv", "--test-dataset",
              tmp_path / "te" / "Data_Entry_2017.csv", *CXR, *FAST, "--no-track", "-o", "r.json")
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["dataset"]["n_samples"] == 20
    assert report["summary"]["mean_average_precision"] > 0.5


def test_a_path_path_column_needs_no_image_option_and_augment_none_is_accepted(cli, tmp_path):
    rng = np.random.default_rng(0)
    lines = ["path,a,b"]
    for i in range(30):
        Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(tmp_path / f"{i}.jpg")
        lines.append(f"{i}.jpg,{i % 2},{(i // 2) % 2}")
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    res = cli("run", "--dataset", tmp_path / "t.csv", "--label-columns", "a,b", *FAST, "--augment", "none",
              "--no-track", "-o", "r.json")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "r.json").read_text())["dataset"]["n_labels"] == 2


def test_a_bad_image_names_file_and_row_exit_2_or_is_skipped_and_counted(store, cli, tmp_path):
    import mlflow

    chestxray_folder(tmp_path / "cxr", n=40)
    bad = tmp_path / "cxr" / "images" / "00000007_000.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    table, root = tmp_path / "cxr" / "Data_Entry_2017.csv", tmp_path / "cxr" / "images"
    res = cli("run", "--dataset", table, "--image-root", root, *CXR, *FAST, "-o", "r.json")
    assert res.exit_code == 2
    lines = [x for x in res.output.strip().splitlines() if x.strip()]
    assert "00000007_000.png: row 8: unreadable image" in lines[-1] and "Traceback" not in res.output
    assert not (tmp_path / "r.json").exists()
    assert all(r.info.status != "RUNNING" for r in mlflow.MlflowClient(store).search_runs(["1"]))
    res = cli("run", "--dataset", table, "--image-root", root, *CXR, *FAST, "--skip-bad-images", "-o", "r.json")
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["images"] == {"skipped": 1}
    run = mlflow.MlflowClient(store).search_runs(["1"], order_by=["attributes.start_time DESC"])[0]
    assert run.data.tags["evalkit.skipped_images"] == "1"


def test_paths_leaving_the_image_root_are_refused(cli, tmp_path):
    chestxray_folder(tmp_path / "cxr", n=20)
    (tmp_path / "secret.png").write_bytes((tmp_path / "cxr" / "images" / "00000000_000.png").read_bytes())
    table = tmp_path / "cxr" / "Data_Entry_2017.csv"
    text = table.read_text().splitlines()
    text[3] = "../../secret.png" + text[3][text[3].index(","):]
    table.write_text("\n".join(text) + "\n")
    res = cli("run", "--dataset", table, "--image-root", tmp_path / "cxr" / "images", *CXR, *FAST, "--no-track")
    assert res.exit_code == 2
    assert "row 3: image path '../../secret.png' is outside --image-root" in res.output
    (tmp_path / "cxr" / "images" / "link.png").symlink_to(tmp_path / "secret.png")
    text[3] = "link.png" + text[3][text[3].index(","):]
    table.write_text("\n".join(text) + "\n")
    res = cli("run", "--dataset", table, "--image-root", tmp_path / "cxr" / "images", *CXR, *FAST, "--no-track")
    assert res.exit_code == 2 and "row 3: image path 'link.png' is outside --image-root" in res.output


def test_the_cli_path_streams_through_the_library_loader_reading_each_image_once_per_epoch(cli, tmp_path, monkeypatch):
    """What `evalkit run` reads: no image before training starts, each training image once per epoch
    (validation and test images once per scoring pass), all through evalkit.images.loader.read_image."""
    import evalkit.images.loader as loader

    chestxray_folder(tmp_path / "cxr", n=30)
    calls: list[str] = []
    real = loader.read_image
    monkeypatch.setattr(loader, "read_image", lambda path, row, channels: (calls.append(path), real(path, row, channels))[1])
    res = cli("run", "--dataset", tmp_path / "cxr" / "Data_Entry_2017.csv", "--image-root", tmp_path / "cxr" / "images",
              *CXR, *FAST, "--epochs", "3", "--monitor", "none", "--no-track", "-o", "r.json")
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "r.json").read_text())
    n_test = report["dataset"]["n_samples"]
    counts = {p: calls.count(p) for p in set(calls)}
    # train images: 3 epochs; validation images: 3 epoch scorings + the final scoring; test: 1 (+ the sample grid: not tracked)
    assert sorted(set(counts.values())) == [1, 3, 4]
    assert sum(1 for c in counts.values() if c == 1) == n_test
    assert len(counts) == 30


def test_image_options_are_refused_on_a_feature_table(cli, tmp_path):
    (tmp_path / "f.csv").write_text("x,a,b\n" + "\n".join(f"{i},{i % 2},{i // 2 % 2}" for i in range(20)) + "\n")
    res = cli("run", "--dataset", tmp_path / "f.csv", "--label-columns", "a,b", "--empty-label", "none", "--no-track")
    assert res.exit_code == 2 and "which column holds the image paths" in res.output


@pytest.mark.parametrize("flag", [("--workers", "2"), ("--augment", "none"), ("--skip-bad-images",)])
def test_image_table_options_are_refused_for_other_data(cli, flag):
    res = cli("run", "--dataset", "digits-grid", "--model", "cnn", "--epochs", "1", *flag, "--no-track")
    assert res.exit_code == 2
    assert f"{flag[0]}: applies to image tables (a CSV / Parquet of image paths), not to" in res.output
