"""What the Ray executor costs, in CPU-seconds per cell: the 18-cell yeast loss grid
(``experiments/yeast_losses.toml``: 6 losses x 3 seeds) run with the sequential executor and with
the Ray executor (a local instance), in one run::

    python benchmarks/bench_grid.py                         # full grid, --max-concurrent 2
    python benchmarks/bench_grid.py --cells 6 --epochs 1    # the first 6 cells, 1 epoch (a quick look)

Each executor runs in a fresh ``python -m evalkit run`` process in its own temporary folder (a fresh
SQLite store), so interpreter start, imports and (for Ray) starting and stopping the local instance
are included: what a user's machine spends.

CPU time is counted for every process involved: the ``evalkit run`` process starts a session of its
own, which all its descendants keep (GCS server, raylet, dashboard agent, runtime-env agent, log
monitor, every Ray worker, ...); every 0.1 s this script reads the user + system CPU time of each
process of that session from ``/proc/PID/stat`` and keeps the last value seen per process, until the
last one has exited (a process still running 60 s after the driver is killed and reported). The sum
misses at most the last 0.1 s of each process (and processes that live less than 0.1 s).
``getrusage(RUSAGE_CHILDREN)`` cannot do this: the raylet ignores SIGCHLD (``SigIgn: 0000000000010000``
in its ``/proc/PID/status``), so the kernel reaps its exited workers and drops their CPU time instead
of passing it up; whether a worker ended before or after its raylet decided whether it was counted
(the same Ray run measured 10 to 33 CPU-s that way). Linux only.

Reported, per executor: wall seconds, CPU-seconds in all and per cell (means over ``--repeat`` runs);
then Ray's overhead = (Ray CPU-seconds - sequential CPU-seconds) / cells. It includes the fixed
cost of starting the local instance spread over the cells: fewer cells (``--cells``) give a larger
overhead per cell. The wall-time speed-up is printed for information only (no target: on a shared
2-core machine it is decided by whatever else runs there). Every run must log the same test metrics
(every run checked against the first, within 1e-6).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "experiments" / "yeast_losses.toml"
TICK = os.sysconf("SC_CLK_TCK")
#: seconds between two looks at the run's processes
POLL = 0.1


def session_cpu(session: int) -> dict[tuple[int, int], float]:
    """(pid, start time) -> user + system CPU-seconds of each live process of ``session`` (/proc)."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session:  # field 6: session id
            out[(int(entry), int(fields[19]))] = (int(fields[11]) + int(fields[12])) / TICK  # utime + stime
    return out


def run(executor: list[str], spec: Path, folder: Path) -> tuple[float, float]:
    """``evalkit run SPEC`` in ``folder``: (wall seconds, CPU-seconds of it and all its descendants)."""
    if not sys.platform.startswith("linux"):
        sys.exit("bench_grid.py reads CPU time from /proc: run it on Linux")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("MLFLOW_TRACKING_URI", None)
    seen: dict[tuple[int, int], float] = {}
    t0 = time.perf_counter()
    with open(folder / "evalkit.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-P", "-m", "evalkit", "run", str(spec), *executor], cwd=folder,
                                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        while proc.poll() is None:
            seen.update(session_cpu(proc.pid))
            time.sleep(POLL)
    wall = time.perf_counter() - t0
    deadline = time.monotonic() + 60
    while live := session_cpu(proc.pid):  # Ray's processes may outlive the driver a little
        seen.update(live)
        if time.monotonic() > deadline:
            print(f"warning: {len(live)} process(es) of `evalkit run {' '.join(executor)}` still ran 60 s after "
                  "it exited; killed", file=sys.stderr)
            for pid, _ in live:
                os.kill(pid, signal.SIGKILL)
        time.sleep(POLL)
    if proc.returncode != 0:
        sys.exit(f"evalkit run {' '.join(executor)} failed ({proc.returncode}):\n"
                 f"{(folder / 'evalkit.log').read_text()[-2000:]}")
    return wall, sum(seen.values())


def mean(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """The mean (wall seconds, CPU-seconds) of ``runs``."""
    return sum(w for w, _ in runs) / len(runs), sum(c for _, c in runs) / len(runs)


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
                    help="runs of each executor, alternating; their means are compared (default 1)")
    args = ap.parse_args()
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
