"""Wall time of the default ``evalkit run`` on yeast (tracked), folds one after another against
folds in several processes (``--fold-processes``), in one run::

    python benchmarks/bench_run.py                 # best of 2 each, alternating
    python benchmarks/bench_run.py --repeat 3 --dataset emotions.arff

Each run is a fresh ``python -m evalkit run`` process (interpreter start, imports, store, training,
evaluation, model export, figures: what a user waits for) in one temporary folder whose SQLite
store was created by a warm-up run (so schema migrations are not counted). Printed: the best and
median wall time of each setting, the ratio, and that both gave the same test metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(folder: Path, args: list[str], out: str) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("MLFLOW_TRACKING_URI", None)
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "evalkit", "run", *args, "-o", out], cwd=folder, env=env,
                         capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit(f"evalkit run {' '.join(args)} failed ({res.returncode}):\n{res.stderr[-2000:]}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--dataset", default="yeast")
    args = ap.parse_args()
    settings = {"one after another (--fold-processes 1)": ["--fold-processes", "1"],
                "auto (--fold-processes 0)": []}
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        base = ["--dataset", args.dataset]
        run(folder, base + ["--epochs", "1", "--folds", "1", "--no-log-model"], "warm.json")  # creates the store
        times: dict[str, list[float]] = {k: [] for k in settings}
        for i in range(args.repeat):
            for name, extra in settings.items():
                times[name].append(run(folder, base + extra, f"{len(times[name])}-{extra[-1] if extra else 'auto'}.json"))
                print(f"  {name}: {times[name][-1]:.1f} s", flush=True)
        reports = [json.loads(p.read_text()) for p in sorted(folder.glob("0-*.json"))]
        same = all(r["summary"] == reports[0]["summary"] for r in reports)
    print(f"\nevalkit run --dataset {args.dataset} (defaults, tracked, existing store), {os.cpu_count()} CPUs, "
          f"best / median of {args.repeat}:")
    for name, t in times.items():
        print(f"  {name:40s} {min(t):6.1f} s  {statistics.median(t):6.1f} s")
    one, auto = (min(t) for t in times.values())
    print(f"  speed-up (best): {one / auto:.2f}x; identical test metrics: {same}")


if __name__ == "__main__":
    main()
