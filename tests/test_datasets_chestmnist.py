"""`evalkit datasets download chestmnist`: the MedMNIST archive of the chosen side from a local
mirror, checked against the MD5 MedMNIST publishes (its only checksum), kept when already verified,
refused (exit 3, nothing left behind) when the bytes differ; an unknown side is exit 2."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from evalkit.data import download as dl


def _archive(path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 30), ("val", 10), ("test", 12)):
        arrays[f"{split}_images"] = rng.integers(0, 255, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (rng.random((n, 14)) < 0.3).astype(np.uint8)
    np.savez_compressed(path, **arrays)
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_the_catalog_has_the_four_published_sides_with_md5_only():
    files = dl.MEDMNIST["chestmnist"]
    assert sorted(files) == [28, 64, 128, 224]
    assert files[28].name == "chestmnist.npz" and files[224].name == "chestmnist_224.npz"
    assert all(len(f.md5) == 32 and f.check[0] == "md5" and f.size is None for f in files.values())
    assert dl._urls("chestmnist", None, 64)[0][0] == \
        "https://zenodo.org/records/10519652/files/chestmnist_64.npz?download=1"


def test_download_from_a_local_mirror_checks_the_md5(cli, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    md5 = _archive(mirror / "chestmnist_64.npz")
    monkeypatch.setitem(dl.MEDMNIST["chestmnist"], 64, dl.RemoteFile("chestmnist_64.npz", "", None, md5=md5))
    dest = tmp_path / "data"
    res = cli("datasets", "download", "chestmnist", "--size", "64", "--dir", dest, "--mirror", mirror.as_uri())
    assert res.exit_code == 0, res.output
    assert "1 file(s) verified (SHA-256; MedMNIST: its published MD5)" in res.output
    got = dest / "chestmnist" / "chestmnist_64.npz"
    assert hashlib.md5(got.read_bytes()).hexdigest() == md5
    (mirror / "chestmnist_64.npz").unlink()  # a verified copy is kept: the mirror is not read again
    assert cli("datasets", "download", "chestmnist", "--size", "64", "--dir", dest, "--mirror", mirror.as_uri()).exit_code == 0
    from evalkit.data import load_dataset

    train, test = load_dataset(str(got))  # the MedMNIST reader takes it as its given splits
    assert train.n_samples == 40 and test.n_samples == 12 and train.label_names[0] == "atelectasis"


def test_a_corrupted_mirror_file_is_refused_and_an_unknown_side_is_exit_2(cli, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    md5 = _archive(mirror / "chestmnist.npz")
    monkeypatch.setitem(dl.MEDMNIST["chestmnist"], 28, dl.RemoteFile("chestmnist.npz", "", None, md5=md5))
    with open(mirror / "chestmnist.npz", "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    dest = tmp_path / "data"
    res = cli("datasets", "download", "chestmnist", "--dir", dest, "--mirror", mirror.as_uri())
    assert res.exit_code == 3 and "MD5 mismatch" in res.output
    assert list((dest / "chestmnist").iterdir()) == []  # no .part file, no bad copy
    res = cli("datasets", "download", "chestmnist", "--size", "50", "--dir", dest, "--mirror", mirror.as_uri())
    assert res.exit_code == 2 and "--size 50: MedMNIST files come in 28, 64, 128, 224 px" in res.output
