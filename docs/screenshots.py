"""Refresh the MLflow UI screenshots in docs/img/ (headless Chromium on `evalkit ui`, 127.0.0.1 only).

    python -P docs/screenshots.py [--epochs N] [--workdir DIR] [--out docs/img]

In a fresh working folder (a temporary one unless --workdir) it runs what a user runs: a default yeast
run registered as ``yeast-mlp@champion`` (``--epochs N`` shortens it), the nightly job of
``experiments/nightly_yeast.toml`` twice (as shipped, then with a gate it fails), a small loss grid
(``experiments/yeast_losses.toml`` on the linear model, 3 epochs) whose parent run holds the grouped
comparison, then starts
``evalkit ui`` there and saves four PNGs:

* ``run_page.png``: the run's page (overview: headline metrics without searching),
* ``per_class_table.png``: the run's ``per_class.json`` artifact rendered as a table by the UI,
* ``nightly_runs.png``: the nightly experiment's runs list with the ``evalkit.gates`` pass/fail column,
* ``compare_report.png``: the grid parent run's ``plots/compare.png`` (the loss comparison) in the UI.

The manual's own pages are captured by ``docs/site_screenshots.py``.

Needs ``chromium`` on PATH (``apt-get install chromium``). MLflow's UI is a JavaScript app: Chromium
gets a virtual-time budget and a large window so that it renders before the capture.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--run-all-compositor-stages-before-draw", "--virtual-time-budget=15000"]


def evalkit(cwd: Path, *args: str, ok=(0,)) -> subprocess.CompletedProcess:
    """Run the CLI of this checkout (``-P``: PYTHONPATH, not the script's folder, comes first)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    res = subprocess.run([sys.executable, "-P", "-m", "evalkit", *args], cwd=cwd, env=env, text=True,
                         capture_output=True)
    print(f"$ evalkit {' '.join(args)}  -> exit {res.returncode}", flush=True)
    if res.returncode not in ok:
        sys.exit(f"evalkit {args[0]} failed (exit {res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return res


def make_runs(work: Path, epochs: int | None) -> None:
    """The training run (registered champion), two nightly jobs (pass, then a failing gate) and a loss
    grid; steps already done in ``work`` (a ``--workdir`` reused) are not repeated."""
    extra = ["--epochs", str(epochs)] if epochs else []
    if not (work / "run.json").exists():
        evalkit(work, "run", "--register", "yeast-mlp", "--alias", "champion", "-o", "run.json", *extra)
    spec = str(ROOT / "experiments" / "nightly_yeast.toml")
    if not (work / "nightly.done").exists():  # --force: the job rewrites its report, as a nightly job does
        evalkit(work, "evaluate", "--spec", spec, "--force", ok=(0, 1))
        evalkit(work, "evaluate", "--spec", spec, "--force", "--gate", "test/macro_f2>=0.99", ok=(1,))
        (work / "nightly.done").touch()
    if not (work / "grid.done").exists():  # the shipped loss grid on the linear model: seconds per cell
        evalkit(work, "run", str(ROOT / "experiments" / "yeast_losses.toml"), "--model", "linear", "--epochs", "3",
                "--experiment", "losses-demo")
        (work / "grid.done").touch()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ui(work: Path, port: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen([sys.executable, "-P", "-m", "evalkit", "ui", "--port", str(port)], cwd=work, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(120):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(1)
    proc.terminate()
    sys.exit("evalkit ui did not answer within 120 s")


def shoot(url: str, png: Path, size: str = "1600,1100") -> None:
    """One headless Chromium capture of ``url`` (a private, throw-away profile)."""
    profile = tempfile.mkdtemp(prefix="evalkit-chromium-")
    try:
        subprocess.run(["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={size}",
                        f"--screenshot={png}", url], check=True, capture_output=True, timeout=180)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    print(f"{png}  <- {url}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=None, help="shorten the training run (default: evalkit's)")
    ap.add_argument("--workdir", type=Path, default=None, help="working folder (default: a temporary one)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = ap.parse_args()
    if shutil.which("chromium") is None:
        sys.exit("chromium not found on PATH (apt-get install chromium)")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="evalkit-screens-"))
    work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    make_runs(work, args.epochs)
    sys.path.insert(0, str(ROOT))
    from evalkit.tracking.view import run_url, runs_view_url

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{work / 'mlruns' / 'mlflow.db'}")
    run_exp = client.get_experiment_by_name("evalkit").experiment_id
    run_id = client.search_runs([run_exp], order_by=["attributes.start_time DESC"], max_results=1)[0].info.run_id
    nightly = client.get_experiment_by_name("nightly").experiment_id
    grid_exp = client.get_experiment_by_name("losses-demo").experiment_id
    parent = client.search_runs([grid_exp], "tags.`evalkit.grid` = 'parent'", max_results=1)[0].info.run_id
    port = free_port()
    ui = start_ui(work, port)
    base = f"http://127.0.0.1:{port}"
    try:
        shoot(run_url(base, run_exp, run_id), args.out / "run_page.png", "1600,2000")
        # the machine-learning view, as the run page (without it the UI shows its GenAI sidebar)
        artifact = f"{base}/#/experiments/{run_exp}/runs/{run_id}/artifacts/per_class.json"
        artifact += "?workflowType=machine_learning"
        shoot(artifact, args.out / "per_class_table.png", "2200,1100")
        shoot(runs_view_url(base, nightly), args.out / "nightly_runs.png")
        compare = f"{base}/#/experiments/{grid_exp}/runs/{parent}/artifacts/plots/compare.png"
        shoot(compare, args.out / "compare_report.png", "1600,1100")
    finally:
        ui.terminate()
        ui.wait(timeout=30)


if __name__ == "__main__":
    main()
