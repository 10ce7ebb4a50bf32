"""`evalkit datasets download` against a local file:// mirror (test machines have no network): files
land verified, a second call keeps them, a corrupted mirror file is refused with exit 3 and leaves
nothing behind."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import MULAN

pytestmark = pytest.mark.skipif(not MULAN.is_dir(), reason="../shared/datasets/mulan is absent (a user's fresh clone)")


def _mirror(tmp_path: Path) -> Path:
    mirror = tmp_path / "mirror"
    for name in ("emotions", "medical"):
        shutil.copytree(MULAN / name, mirror / name)
    return mirror


def test_download_from_a_file_mirror_verifies_and_is_idempotent(cli, tmp_path):
    mirror = _mirror(tmp_path)
    dest = tmp_path / "data"
    res = cli("datasets", "download", "emotions", "medical", "--dir", dest, "--mirror", mirror.as_uri())
    assert res.exit_code == 0, res.output
    assert "6 file(s) verified (SHA-256)" in res.output
    for name in ("emotions", "medical"):
        for f in (f"{name}-train.arff", f"{name}-test.arff", f"{name}.xml"):
            assert (dest / name / f).read_bytes() == (MULAN / name / f).read_bytes()
    assert not list(dest.rglob("*.part"))
    before = (dest / "emotions" / "emotions.xml").stat().st_mtime_ns
    (mirror / "emotions" / "emotions.xml").unlink()  # a verified copy is kept: the mirror is not read again
    assert cli("datasets", "download", "emotions", "--dir", dest, "--mirror", mirror.as_uri()).exit_code == 0
    assert (dest / "emotions" / "emotions.xml").stat().st_mtime_ns == before
    # the downloaded files are what `evalkit run` reads
    from evalkit.data import load_dataset

    train, test = load_dataset(str(dest / "medical" / "medical-train.arff"), str(dest / "medical" / "medical-test.arff"))
    assert train.n_labels == test.n_labels == 45


def test_checksum_mismatch_and_unknown_names(cli, tmp_path):
    mirror = _mirror(tmp_path)
    with open(mirror / "emotions" / "emotions-test.arff", "ab") as f:
        f.write(b"% tampered\n")
    dest = tmp_path / "data"
    res = cli("datasets", "download", "emotions", "--dir", dest, "--mirror", mirror.as_uri())
    assert res.exit_code == 3
    assert "emotions-test.arff: SHA-256 mismatch" in res.output and "discarded" in res.output
    assert not (dest / "emotions" / "emotions-test.arff").exists() and not list(dest.rglob("*.part"))
    res = cli("datasets", "download", "nope", "--dir", dest, "--mirror", mirror.as_uri())
    assert res.exit_code == 2 and "unknown dataset(s) nope; expected some of: emotions, scene, medical" in res.output
    res = cli("datasets", "download", "scene", "--dir", dest, "--mirror", mirror.as_uri())  # not in this mirror
    assert res.exit_code == 3 and "scene-train.arff: cannot download" in res.output
