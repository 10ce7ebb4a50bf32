"""Screenshots of the manual itself (headless Chromium): its home page and the `evalkit run` CLI reference.

    python -P docs/site_screenshots.py [--out docs/img] [--site DIR]

Builds the site with ``mkdocs build --strict`` into a temporary folder (or uses ``--site DIR``, an
already built one), serves it with ``python -m http.server`` on 127.0.0.1 and a free port, and saves

* ``site_home.png``: the home page,
* ``site_cli_run.png``: the generated reference of ``evalkit run`` (its example and the start of its option table).

Needs the docs extra (``pip install -e '.[docs]'``) and ``chromium`` on PATH. The MLflow UI
screenshots are made by ``docs/screenshots.py``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from screenshots import ROOT, free_port, shoot  # noqa: E402


def build(site: Path) -> None:
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)], cwd=ROOT,
                   check=True, env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"})


def serve(site: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)], cwd=site,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(60):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1):
                return proc
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    sys.exit("http.server did not answer within 30 s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    ap.add_argument("--site", type=Path, default=None, help="an already built site (default: build one)")
    args = ap.parse_args()
    if shutil.which("chromium") is None:
        sys.exit("chromium not found on PATH (apt-get install chromium)")
    tmp = None
    site = args.site
    if site is None:
        tmp = Path(tempfile.mkdtemp(prefix="evalkit-site-"))
        site = tmp / "site"
        build(site)
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = serve(site, port)
    base = f"http://127.0.0.1:{port}"
    try:
        shoot(f"{base}/", args.out / "site_home.png", "1400,1000")
        shoot(f"{base}/reference/cli/run/", args.out / "site_cli_run.png", "1400,2400")
    finally:
        server.terminate()
        server.wait(timeout=30)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
