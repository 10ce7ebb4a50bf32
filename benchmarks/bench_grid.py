"""What the Ray executor costs, in CPU-seconds per cell: the 18-cell yeast loss grid
(``experiments/yeast_losses.toml``: 6 losses x 3 seeds) run with the sequential executor and with
the Ray executor (a local instance), in one run::

    python benchmarks/bench_grid.py                         # full grid, --max-concurrent 2
    python benchmarks/bench_grid.py --cells 6 --epochs 1    # the first 6 cells, 1 epoch (a quick look)

Each executor runs in a fresh ``python -m evalkit run`` process in its own temporary folder (a fresh
SQLite store), so interpreter start, imports and (for Ray) starting and stopping the local instance
are included: what a user's machine spends.

CPU time is counted for every process involved: this script makes itself the *child subreaper* of
everything it starts (Linux ``prctl(PR_SET_CHILD_SUBREAPER)``), so a process whose parent exits first
(a Ray worker when its raylet stops) is reparented here instead of to init; every process is reaped
(waited for) by its parent or by this script, so ``getrusage(RUSAGE_CHILDREN)`` before and after a
run gives the user + system CPU-seconds of the evalkit process and all its descendants (GCS server,
raylet, dashboard agent, runtime-env agent, log monitor, Ray workers, MLflow, ...).

Reported, per executor: wall seconds, CPU-seconds in all and per cell (means over ``--repeat`` runs);
then Ray's overhead = (Ray CPU-seconds - sequential CPU-seconds) / cells. It includes the fixed cost of starting the local
instance spread over the cells: fewer cells (``--cells``) give a larger overhead per cell. The
wall-time speed-up is printed for information only (no target: on a shared 2-core machine it is
decided by whatever else runs there). Both runs
must log the same test metrics (every run checked against the first, within 1e-6).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "experiments" / "yeast_losses.toml"
PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


def become_subreaper() -> None:
    """Orphaned descendants are reparented to this process (so their CPU time is counted here)."""
    if not sys.platform.startswith("linux"):
        sys.exit("bench_grid.py counts CPU time through a Linux child subreaper: run it on Linux")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit(f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}")


def reap_all(grace: float = 60.0) -> int:
    """Wait for every remaining child (orphans reparented here); after ``grace`` seconds SIGKILL the
    ones still running (a process of the run that did not stop). Returns how many were killed."""
    import signal

    deadline, killed = time.monotonic() + grace, 0
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return killed
        if pid:
            continue
        if time.monotonic() > deadline:
            for child in _children():
                os.kill(child, signal.SIGKILL)
                killed += 1
            deadline = time.monotonic() + grace
        time.sleep(0.1)


def _children() -> list[int]:
    """The pids whose parent is this process (from /proc)."""
    me, out = os.getpid(), []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                out.append(int(entry))
    return out


def mean(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """The mean (wall seconds, CPU-seconds) of ``runs``."""
    return sum(w for w, _ in runs) / len(runs), sum(c for _, c in runs) / len(runs)


def cpu_seconds() -> float:
    """User + system CPU-seconds of all reaped descendants so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(executor: list[str], spec: Path, folder: Path) -> tuple[float, float]:
    """``evalkit run SPEC`` in ``folder``: (wall seconds, CPU-seconds of it and all its descendants)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("MLFLOW_TRACKING_URI", None)
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    out = subprocess.run([sys.executable, "-P", "-m", "evalkit", "run", str(spec), *executor], cwd=folder, env=env,
                         capture_output=True, text=True, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    if killed := reap_all():
        print(f"warning: {killed} process(es) of `evalkit run {' '.join(executor)}` still ran 60 s after it "
              "exited; killed (their CPU time is counted)", file=sys.stderr)
    if out.returncode != 0:
        sys.exit(f"evalkit run {' '.join(executor)} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return wall, cpu_seconds() - cpu0


def cells(folder: Path) -> dict[str, dict]:
    """cell label -> its test metrics."""
    import mlflow

    c = mlflow.MlflowClient(f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}")
    exp = c.get_experiment_by_name("yeast-losses")
    runs = c.search_runs([exp.experiment_id], filter_string="tags.`evalkit.grid` = 'child'")
    return {r.data.tags["evalkit.cell"]: {k: v for k, v in r.data.metrics.items() if k.startswith("test/")}
            for r in runs}


def grid_spec(tmp: Path, n_cells: int | None, epochs: int | None) -> Path:
    """The spec, cut to the first ``n_cells`` cells (fewer losses, same 3 seeds) and ``epochs``."""
    spec = tmp / "grid.toml"
    text = SPEC.read_text()
    if n_cells:
        import tomllib

        losses = tomllib.loads(text)["grid"]["loss"][: max(1, n_cells // 3)]
        text = text.replace(text[text.index("loss = ["):].splitlines()[0], f"loss = {losses!r}".replace("'", '"'))
    if epochs:
        text = text.replace("[grid]", f"epochs = {epochs}\n\n[grid]")
    spec.write_text(text)
    return spec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max-concurrent", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=None, help="override the spec's epochs (default: the spec's)")
    ap.add_argument("--cells", type=int, default=None, help="only the first N cells (seed 0 first)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs of each executor, alternating; their means are compared (default 1; the CPU time of "
                         "a Ray run varied by up to 24 CPU-s on a loaded 2-core VM: use 3 or more there)")
    args = ap.parse_args()
    become_subreaper()
    ray = ["--executor", "ray", "--max-concurrent", str(args.max_concurrent)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spec = grid_spec(tmp, args.cells, args.epochs)
        seqs, rays = [], []
        for i in range(max(1, args.repeat)):
            for name, executor, out in (("seq", [], seqs), ("ray", ray, rays)):
                (tmp / f"{name}{i}").mkdir()
                out.append(run(executor, spec, tmp / f"{name}{i}"))
        a = cells(tmp / "seq0")
        others = [cells(tmp / f"{name}{i}") for name in ("seq", "ray") for i in range(len(seqs))]
    for b in others:  # every run, sequential or Ray, logs the same metrics as the first
        assert a.keys() == b.keys(), (sorted(a), sorted(b))
    worst = max(abs(a[k][m] - b[k][m]) for b in others for k in a for m in a[k] if a[k][m] == a[k][m])
    n = len(a)
    (w_seq, c_seq), (w_ray, c_ray) = mean(seqs), mean(rays)
    print(f"grid: {n} cells of {SPEC.name}" + (f", epochs {args.epochs}" if args.epochs else "")
          + f" (cpus: {os.cpu_count()}, ray --max-concurrent {args.max_concurrent})")
    for name, (w, c), rs in (("sequential", (w_seq, c_seq), seqs), ("ray", (w_ray, c_ray), rays)):
        each = ", ".join(f"{cpu:.1f}" for _, cpu in rs)
        print(f"{name:<11} wall {w:7.1f} s   CPU {c:8.1f} s = {c / n:6.2f} CPU-s per cell"
              f"   (mean of {len(rs)} run(s); CPU-s of each: {each})")
    print(f"ray overhead {(c_ray - c_seq) / n:+.2f} CPU-s per cell ({c_ray - c_seq:+.1f} CPU-s in all, "
          f"{(c_ray - c_seq) / c_seq:+.0%} of the sequential CPU time); wall-time ratio sequential / ray "
          f"{w_seq / w_ray:.2f} (information only)")
    print(f"metrics: largest |difference| over {n} cells x test metrics = {worst:.2e} (must be <= 1e-6)")
    if worst > 1e-6:
        sys.exit("the Ray executor's metrics differ from the sequential ones")


if __name__ == "__main__":
    main()
