"""Time each disk / store fault class end to end (``python -m evalkit`` subprocesses): exit code,
seconds, the error line, and what was kept on disk. Run: ``python benchmarks/bench_faults.py``."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(HERE), str(HERE / "tests")]

from test_gates import write_predictions  # noqa: E402

EVALKIT = [sys.executable, "-m", "evalkit"]


def case(name, args, cwd, prepare=None, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(PYTHONPATH=str(HERE), EVALKIT_SPOOL_FALLBACK=str(cwd / "fallback"), **(env_extra or {}))
    if prepare:
        prepare(cwd)
    t0 = time.perf_counter()
    p = subprocess.run([*EVALKIT, *args], cwd=cwd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    err = [line for line in (p.stderr + p.stdout).splitlines() if line.startswith("error:")]
    kept = sorted(str(x.relative_to(cwd)) for x in cwd.rglob("*") if x.is_file() and x.name in
                  ("r.json", "run.json") or x.name.startswith("mlflow.db"))
    print(f"## {name}\nexit {p.returncode}, {dt:.1f} s, stderr lines {len(p.stderr.splitlines())}\n"
          f"{err[0] if err else '(no error line)'}\nkept: {kept}\n", flush=True)


def main() -> None:
    base = Path(tempfile.mkdtemp(prefix="evalkit-bench-faults-"))
    pred = write_predictions(base / "p.npz")
    common = ["evaluate", "--predictions", str(pred), "--no-per-class", "-o", "r.json"]

    def d(n):
        p = base / n
        p.mkdir()
        return p

    case("store path is a directory", [*common, "--tracking-uri", f"sqlite:///{base}/dbdir"], d("dir"),
         lambda c: (base / "dbdir").mkdir())
    case("store folder unwritable (/proc)", [*common, "--tracking-uri", "sqlite:////proc/x/mlflow.db"], d("proc"))
    case("report location unwritable (/proc), store up", [*common[:-1], "/proc/r.json"], d("rep"))
    case("spool location blocked (mlruns is a file), store down",
         [*common, "--tracking-uri", "http://127.0.0.1:9"], d("spool"), lambda c: (c / "mlruns").write_text("x"))

    def half(c):
        from test_faults_disk import _half_migrated

        (c / "mlruns").mkdir()
        _half_migrated(c / "mlruns" / "mlflow.db")

    case("half-migrated store (creation failed), next command", common, d("half"), half)
    case("missing driver", [*common, "--tracking-uri", "postgresql+pg8000://u@127.0.0.1:1/db"], d("driver"))
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
