"""Memory of `evalkit evaluate --model` on a large image table, and its metrics against the in-memory path.

Writes ``--images`` grayscale PNGs (28 px, ChestMNIST-like: 14 labels ``y_*``, one bright quadrant per
label 0..3) and a ``table.csv``, a TorchScript CNN (evalkit's ``cnn``, seeded, untrained: the
check is memory and equality, not skill), then runs, as a user would, in a child process::

    evalkit evaluate --model model.ts --test-dataset table.csv --label-prefix y_ --no-track -o big.json

and samples the resident memory of that process and all its descendants (DataLoader workers) every
0.1 s from /proc: the peak of their sum is printed beside the process's own peak (``ru_maxrss``).
Then the first ``--subset`` rows are evaluated twice: as an image table (streamed) and as an ``.npz``
of the same pixels ``(N, 1, 28, 28)`` held in memory; their metrics must agree to 1e-6::

    python benchmarks/bench_images_table.py                     # 20,000 PNGs, 1 worker
    python benchmarks/bench_images_table.py --images 2000 --workers 0
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LABELS = 14
SIDE = 28


def make_table(folder: Path, n: int, seed: int = 0) -> Path:
    """``n`` grayscale PNGs (``SIDE`` px) in ``folder/png/`` and ``folder/table.csv`` (path, y_0..y_13)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    (folder / "png").mkdir(parents=True, exist_ok=True)
    lines = ["path," + ",".join(f"y_{j}" for j in range(LABELS))]
    Y = (rng.random((n, LABELS)) < 0.2).astype(np.uint8)
    h = SIDE // 2
    for i in range(n):
        img = rng.integers(0, 60, (SIDE, SIDE), dtype=np.uint8)
        for j in np.flatnonzero(Y[i, :4]):
            r, c = divmod(int(j), 2)
            img[r * h:(r + 1) * h, c * h:(c + 1) * h] += 150
        Image.fromarray(img).save(folder / "png" / f"{i:06d}.png")
        lines.append(f"png/{i:06d}.png," + ",".join(map(str, Y[i])))
    (folder / "table.csv").write_text("\n".join(lines) + "\n")
    return folder / "table.csv"


def make_model(path: Path) -> Path:
    """evalkit's ``cnn`` for (1, SIDE, SIDE) images and 14 labels, seeded, as TorchScript."""
    import torch

    from evalkit.models import build_model

    torch.manual_seed(0)
    model = build_model("cnn", SIDE * SIDE, LABELS, input_shape=(1, SIDE, SIDE)).eval()
    torch.jit.save(torch.jit.trace(model, torch.rand(2, 1, SIDE, SIDE)), path)
    return path


def subset(table: Path, n: int) -> tuple[Path, Path]:
    """The first ``n`` rows of ``table`` as an image table and as an in-memory ``.npz`` (X (n, 1, S, S), Y)."""
    from evalkit.images.loader import read_image

    lines = table.read_text().splitlines()
    small = table.with_name("subset.csv")
    small.write_text("\n".join(lines[: n + 1]) + "\n")
    rows = [line.split(",") for line in lines[1: n + 1]]
    X = np.stack([read_image(str(table.parent / r[0]), i + 1, 1) for i, r in enumerate(rows)])
    Y = np.array([[int(v) for v in r[1:]] for r in rows], dtype=np.uint8)
    npz = table.with_name("subset.npz")
    np.savez(npz, X=X, Y=Y, labels=np.array(lines[0].split(",")[1:], dtype=str))
    return small, npz


def tree_rss_mb(pid: int) -> float:
    """Resident memory (MB) of ``pid`` and its descendants, from /proc."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            parents[int(d)] = int(stat.rsplit(")", 1)[1].split()[1])
            rss[int(d)] = int(stat.rsplit(")", 1)[1].split()[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
    tree, frontier = {pid}, [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p and c not in tree]
        tree.update(kids)
        frontier.extend(kids)
    return sum(rss.get(p, 0) for p in tree) / 2**20


def evaluate(model: Path, data: Path, out: Path, workers: int, *extra: str) -> tuple[dict, float, float]:
    """``evalkit evaluate`` in a child process: ``(report, peak tree RSS MB, seconds)``."""
    cmd = [sys.executable, "-P", "-m", "evalkit", "evaluate", "--model", str(model), "--test-dataset", str(data),
           "--no-track", "-o", str(out), "--force", *extra]
    if data.suffix == ".csv":
        cmd += ["--label-prefix", "y_", "--workers", str(workers)]
    start, peak = time.perf_counter(), 0.0
    proc = subprocess.Popen(cmd, cwd=data.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while proc.poll() is None:
        peak = max(peak, tree_rss_mb(proc.pid))
        time.sleep(0.1)
    output = proc.stdout.read()
    if proc.returncode != 0:
        raise RuntimeError(f"evalkit evaluate failed ({proc.returncode}):\n{output}")
    return json.loads(out.read_text()), peak, time.perf_counter() - start


def same_metrics(a: dict, b: dict, tol: float = 1e-6) -> float:
    """The largest difference between the summary numbers and per-class APs of two reports."""
    diffs = []
    for avg in ("micro", "macro", "weighted", "samples"):
        diffs += [abs(a["summary"][avg][k] - b["summary"][avg][k]) for k in a["summary"][avg]
                  if isinstance(a["summary"][avg][k], float)]
    diffs += [abs((x["average_precision"] or 0) - (y["average_precision"] or 0)) for x, y in zip(a["per_class"], b["per_class"])]
    return max(diffs)


def run(n: int, n_subset: int, workers: int, folder: Path) -> dict:
    """Everything above; returns the numbers the benchmark prints (and the test asserts)."""
    t0 = time.perf_counter()
    table = make_table(folder, n)
    written = time.perf_counter() - t0
    model = make_model(folder / "model.ts")
    big, peak, seconds = evaluate(model, table, folder / "big.json", workers)
    small_csv, small_npz = subset(table, n_subset)
    streamed, _, _ = evaluate(model, small_csv, folder / "streamed.json", workers)
    in_memory, _, _ = evaluate(model, small_npz, folder / "in_memory.json", workers)
    return {"images": n, "written_s": written, "evaluated_rows": big["dataset"]["n_samples"], "peak_rss_mb": peak,
            "seconds": seconds, "images_per_s": n / seconds, "subset": n_subset,
            "max_difference": same_metrics(streamed, in_memory)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=20_000)
    ap.add_argument("--subset", type=int, default=500)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        r = run(args.images, args.subset, args.workers, Path(tmp))
    print(f"{r['images']} PNGs written in {r['written_s']:.1f} s; `evalkit evaluate` of the table: {r['evaluated_rows']} "
          f"rows in {r['seconds']:.1f} s ({r['images_per_s']:.0f} images/s, process start included), peak RSS "
          f"{r['peak_rss_mb']:.0f} MB (the process and its {args.workers} worker(s))")
    print(f"first {r['subset']} rows, streamed table vs in-memory .npz: largest metric difference {r['max_difference']:.2e}")


if __name__ == "__main__":
    main()
