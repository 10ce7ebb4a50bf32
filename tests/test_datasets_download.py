"""`evalkit datasets download` against a local file:// mirror (test machines have no network): files
land verified, a second call keeps them, a corrupted mirror file is refused with exit 3 and leaves
nothing behind. A local HTTP server on 127.0.0.1 plays a misbehaving mirror: an oversized body, a
trickle that outlives --timeout, a SIGTERM mid-download."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import MULAN

from evalkit.errors import InputError

needs_mulan = pytest.mark.skipif(not MULAN.is_dir(), reason="../shared/datasets/mulan is absent (a user's fresh clone)")


def _mirror(tmp_path: Path) -> Path:
    mirror = tmp_path / "mirror"
    for name in ("emotions", "medical"):
        shutil.copytree(MULAN / name, mirror / name)
    return mirror


@needs_mulan
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


@needs_mulan
def test_checksum_mismatch_and_unknown_names(cli, tmp_path):
    mirror = _mirror(tmp_path)
    with open(mirror / "emotions" / "emotions-test.arff", "r+b") as f:  # same size, other bytes
        f.seek(-11, os.SEEK_END)
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


@pytest.mark.parametrize("timeout", ["-1", "0", "nan", "inf"])
def test_a_timeout_that_is_not_a_positive_number_is_bad_input(cli, tmp_path, timeout):
    dest = tmp_path / "data"
    res = cli("datasets", "download", "emotions", "--dir", dest, "--mirror", (tmp_path / "m").as_uri(),
              "--timeout", timeout)
    assert res.exit_code == 2
    assert res.output == f"error: --timeout: expected a positive number of seconds (got {timeout})\n"
    assert not dest.exists()  # nothing started
    from evalkit.data.download import download

    with pytest.raises(InputError, match=r"^--timeout: expected a positive number of seconds \(got -1\)$"):
        download(["emotions"], dest, timeout=-1)


class _Mirror(BaseHTTPRequestHandler):
    """Answers every GET per ``server.mode``: "big" (more than emotions.xml's 323 bytes, no Content-Length),
    "lying" (Content-Length 10 MB), "trickle" (1 byte every 2 s, never ending)."""

    def do_GET(self):
        mode = self.server.mode
        self.send_response(200)
        self.send_header("Content-Length", str(10**7)) if mode == "lying" else None
        self.end_headers()
        try:
            if mode in ("big", "lying"):
                for _ in range(100):
                    self.wfile.write(b"x" * 65536)
            while mode == "trickle" and not self.server.stopping.is_set():
                self.wfile.write(b"x")
                self.wfile.flush()
                self.server.stopping.wait(2)
        except OSError:  # the client hung up, as it should
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def http_mirror():
    """Start a mirror on 127.0.0.1 in ``mode``; returns its base URL."""
    servers = []

    def start(mode: str) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Mirror)
        server.daemon_threads = True
        server.mode, server.stopping = mode, threading.Event()
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.stopping.set()
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("mode", ["big", "lying"])
def test_a_body_larger_than_the_recorded_size_is_stopped_and_discarded(cli, tmp_path, http_mirror, mode):
    res = cli("datasets", "download", "emotions", "--dir", tmp_path / "data", "--mirror", http_mirror(mode))
    assert res.exit_code == 3, res.output
    expected = "the mirror declares 10000000 bytes, expected 252080" if mode == "lying" else \
        "more than the expected 252080 bytes arrived; the download was discarded"
    assert "emotions/emotions-train.arff: " + expected in res.output
    assert "Traceback" not in res.output
    assert not [p for p in (tmp_path / "data").rglob("*") if p.is_file()]  # nothing kept, no .part


def test_timeout_bounds_the_whole_download_not_each_read(cli, tmp_path, http_mirror):
    url = http_mirror("trickle")  # a byte every 2 s: every single read is well within --timeout 2
    res = cli("datasets", "download", "emotions", "--dir", tmp_path / "data", "--mirror", url, "--timeout", "2")
    assert res.exit_code == 3, res.output
    assert "emotions-train.arff: not complete within --timeout 2 s; the download was discarded" in res.output
    assert not list((tmp_path / "data").rglob("*.part"))


def test_sigterm_mid_download_removes_the_part_file_and_exits_143(tmp_path, http_mirror):
    url = http_mirror("trickle")
    dest = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-P", "-c", "from evalkit.cli import main; main()", "datasets", "download", "emotions",
                             "--dir", str(dest), "--mirror", url, "--timeout", "120"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):  # until the download has started (its .part file exists)
            if list(dest.rglob("*.part")) or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert list(dest.rglob("*.part")), proc.communicate(timeout=5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill() if proc.poll() is None else None
    assert proc.returncode == 143, err
    assert "interrupted (SIGTERM)" in err and "Traceback" not in err
    assert not list(dest.rglob("*.part"))


@pytest.mark.parametrize("where", ["file", "folder", "dir"])
def test_a_fifo_at_the_destination_is_refused_without_opening_it(cli, tmp_path, http_mirror, where):
    dest = tmp_path / "data"
    fifo = {"file": dest / "emotions" / "emotions-train.arff", "folder": dest / "emotions", "dir": dest}[where]
    fifo.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(fifo)
    res = cli("datasets", "download", "emotions", "--dir", dest, "--mirror", http_mirror("big"))
    assert res.exit_code == 2, res.output
    kind = "a regular file" if where == "file" else "a folder"
    assert f"{fifo}: exists and is not {kind}" in res.output and "Traceback" not in res.output
    assert fifo.exists() and not list(tmp_path.rglob("*.part"))
