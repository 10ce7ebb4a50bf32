"""Nothing in the folder evalkit runs in is imported by the processes it starts: fold workers,
Ray's workers, image DataLoader workers and the ``evalkit ui`` server (with its uvicorn) ignore a stray
``evalkit/`` package, ``typing_extensions.py``, ``uvicorn.py`` or ``pickle.py`` there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import free_port, healthy

ROOT = Path(__file__).resolve().parents[1]
TRAPS = ("evalkit/__init__.py", "typing_extensions.py", "uvicorn.py", "pickle.py")


@pytest.fixture
def trapped(tmp_path) -> Path:
    """A working folder whose modules, if imported, each write a marker file under ``tmp_path/markers``."""
    folder, markers = tmp_path / "work", tmp_path / "markers"
    markers.mkdir()
    for name in TRAPS:
        f = folder / name
        f.parent.mkdir(parents=True, exist_ok=True)
        marker = markers / name.replace("/", "_")
        f.write_text(f"open({str(marker)!r}, 'w').write('imported')\n")
    return folder


def _markers(folder: Path) -> list[str]:
    return sorted(p.name for p in (folder.parent / "markers").iterdir())


def _evalkit(*args: str) -> list[str]:
    """The CLI as a user starts it (its own sys.path never holds the working folder: ``-P``)."""
    return [sys.executable, "-P", "-m", "evalkit", *args]


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PYTHONSAFEPATH"))}
    return dict(env, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", **extra)


def test_fold_workers_import_nothing_from_the_working_folder(trapped):
    out = subprocess.run(_evalkit("run", "--no-track", "--epochs", "2", "--hidden", "16", "--folds", "3",
                                  "--fold-processes", "2", "--device", "cpu", "--output", "r.json"),
                         cwd=trapped, env=_env(), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "1 worker process(es)" in out.stdout + out.stderr  # the folds did train in a worker
    assert _markers(trapped) == []
    assert (trapped / "r.json").is_file()


def test_image_loader_workers_import_nothing_from_the_working_folder(trapped):
    """DataLoader workers are spawned ``python -c`` interpreters: without PYTHONSAFEPATH they imported
    a ``pickle.py`` of the working folder (the first module a spawned worker loads)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    images = trapped.parent / "images"
    images.mkdir()
    lines = ["path,y_a,y_b"]
    for i in range(24):
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(images / f"{i}.png")
        lines.append(f"{i}.png,{i % 2},{(i // 2) % 2}")
    table = trapped.parent / "t.csv"
    table.write_text("\n".join(lines) + "\n")
    # the installed ``evalkit`` script, as a user starts it: not ``python -P``, whose flag spawned workers inherit
    script = Path(sys.executable).parent / "evalkit"
    if not script.is_file():
        pytest.skip(f"no installed evalkit script beside {sys.executable}")
    out = subprocess.run([str(script), "run", "--dataset", str(table), "--image-root", str(images), "--label-prefix",
                          "y_", "--model", "cnn", "--epochs", "1", "--folds", "1", "--workers", "1", "--no-track",
                          "--ci", "0", "--device", "cpu", "--output", "r.json"],
                         cwd=trapped, env=_env(), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert _markers(trapped) == []
    assert (trapped / "r.json").is_file()


@pytest.mark.slow
def test_ray_workers_import_nothing_from_the_working_folder(trapped):
    pytest.importorskip("ray")
    spec = trapped / "grid.toml"
    spec.write_text('experiment = "trap"\ndataset = "yeast"\nhidden = [8]\nepochs = 2\npatience = 2\nfolds = 1\n'
                    'log_model = false\n[executor]\nkind = "ray"\n[grid]\nseed = [0, 1]\n')
    db = trapped.parent / "store" / "mlflow.db"
    db.parent.mkdir()
    out = subprocess.run(_evalkit("run", str(spec), "--tracking-uri", f"sqlite:///{db}"), cwd=trapped, env=_env(),
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "2 cells on local Ray instance" in out.stdout + out.stderr
    assert _markers(trapped) == []


def test_ui_server_imports_nothing_from_the_working_folder(trapped):
    port = free_port()
    db = trapped.parent / "store" / "mlflow.db"
    db.parent.mkdir()
    # SIGINT at its default in the child: a shell's background job (a CI script started with `&`) ignores
    # SIGINT, Python keeps an inherited SIG_IGN, and the Ctrl-C below would never arrive (the test hung)
    proc = subprocess.Popen(_evalkit("ui", "--tracking-uri", f"sqlite:///{db}", "--port", str(port)), cwd=trapped,
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        lines = []
        for line in proc.stdout:  # until the link is printed: the server answered /health
            lines.append(line)
            if "Ctrl-C stops it" in line:
                break
        assert healthy(f"http://127.0.0.1:{port}"), "".join(lines) + proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=300)  # a guard against a hang: a loaded machine stops the server slowly
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert f"Runs of experiment 'evalkit': http://127.0.0.1:{port}/" in "".join(lines)
    assert not healthy(f"http://127.0.0.1:{port}")  # the server stopped with it
    assert _markers(trapped) == []
