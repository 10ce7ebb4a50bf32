"""The 18-cell yeast loss grid (``experiments/yeast_losses.toml``: 6 losses x 3 seeds) with the
sequential executor and with the Ray executor, in one run::

    python benchmarks/bench_grid.py                         # full grid, --max-concurrent 2
    python benchmarks/bench_grid.py --epochs 20 --max-concurrent 2
    python benchmarks/bench_grid.py --cells 6               # the first 6 cells only (a quick look)

Each executor runs in a fresh ``python -m evalkit run`` process in its own temporary folder (a fresh
SQLite store), so interpreter start, imports and (for Ray) starting the local instance are included:
this is what a user sees. Each runs ``--repeat`` times (default 2, alternating) and the best wall time
of each is compared. Reported: wall time of each, the speed-up (sequential / Ray), the cells'
mean own time (from the runs: MLflow start to end), and the per-cell overhead of the Ray executor:
(Ray wall - sequential wall / concurrency) / cells, i.e. what running a cell as a Ray task costs
on top of the work itself when the work divides perfectly. Both runs must log the same metrics
(checked, within 1e-6). Target: a speed-up of at least 1.6x on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "experiments" / "yeast_losses.toml"


def run(executor: list[str], spec: Path, folder: Path) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("MLFLOW_TRACKING_URI", None)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "evalkit", "run", str(spec), *executor], cwd=folder, env=env,
                         capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit(f"evalkit run {' '.join(executor)} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return seconds


def cells(folder: Path) -> dict[str, tuple[dict, float]]:
    """cell label -> (test metrics, seconds from run start to end)."""
    import mlflow

    c = mlflow.MlflowClient(f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}")
    exp = c.get_experiment_by_name("yeast-losses")
    out = {}
    for r in c.search_runs([exp.experiment_id], filter_string="tags.`evalkit.grid` = 'child'"):
        m = {k: v for k, v in r.data.metrics.items() if k.startswith("test/")}
        out[r.data.tags["evalkit.cell"]] = (m, (r.info.end_time - r.info.start_time) / 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max-concurrent", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=None, help="override the spec's epochs (default: the spec's)")
    ap.add_argument("--cells", type=int, default=None, help="only the first N cells (seed 0 first)")
    ap.add_argument("--repeat", type=int, default=2,
                    help="runs of each executor, alternating; the best wall time of each is compared (default 2: "
                         "a shared machine's passing slowdowns then hit one run, not the ratio)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spec = tmp / "grid.toml"
        text = SPEC.read_text()
        if args.cells:  # fewer losses, same 3 seeds
            import tomllib

            losses = tomllib.loads(text)["grid"]["loss"][: max(1, args.cells // 3)]
            text = text.replace(text[text.index("loss = ["):].splitlines()[0], f"loss = {losses!r}".replace("'", '"'))
        if args.epochs:
            text = text.replace("[grid]", f"epochs = {args.epochs}\n\n[grid]")
        spec.write_text(text)
        seqs, rays = [], []
        for i in range(max(1, args.repeat)):
            (tmp / f"seq{i}").mkdir()
            (tmp / f"ray{i}").mkdir()
            seqs.append(run([], spec, tmp / f"seq{i}"))
            rays.append(run(["--executor", "ray", "--max-concurrent", str(args.max_concurrent)], spec, tmp / f"ray{i}"))
        t_seq, t_ray = min(seqs), min(rays)
        a, b = cells(tmp / f"seq{seqs.index(t_seq)}"), cells(tmp / f"ray{rays.index(t_ray)}")
    assert a.keys() == b.keys(), (sorted(a), sorted(b))
    worst = max(abs(a[k][0][m] - b[k][0][m]) for k in a for m in a[k][0] if a[k][0][m] == a[k][0][m])
    n = len(a)
    own_seq = sum(v[1] for v in a.values()) / n
    own_ray = sum(v[1] for v in b.values()) / n
    overhead = (t_ray - t_seq / args.max_concurrent) / n
    print(f"grid: {n} cells of {SPEC.name} (cpus: {os.cpu_count()}, max-concurrent {args.max_concurrent})")
    runs = lambda ts: ", ".join(f"{t:.1f}" for t in ts)  # noqa: E731
    print(f"sequential  {t_seq:8.1f} s   mean cell run {own_seq:6.2f} s   (best of {len(seqs)}: {runs(seqs)})")
    print(f"ray         {t_ray:8.1f} s   mean cell run {own_ray:6.2f} s   (best of {len(rays)}: {runs(rays)})")
    print(f"speed-up    {t_seq / t_ray:8.2f} x   (target >= 1.6x on 2 cores)")
    print(f"ray overhead per cell {overhead:+.2f} s  ((ray wall - sequential wall / {args.max_concurrent}) / cells)")
    print(f"metrics: largest |difference| over {n} cells x test metrics = {worst:.2e} (must be <= 1e-6)")
    if worst > 1e-6:
        sys.exit("the Ray executor's metrics differ from the sequential ones")


if __name__ == "__main__":
    main()
