"""How fast evalkit gives up on a broken tracking store, and how fast it reads the MULAN files.

These timings used to be ``assert elapsed < 10`` / ``< 5`` lines in the test suite, where a loaded
machine made good work fail at random. The tests now check the behaviour (exit code, message, report
written, run spooled, nothing trained); the time it takes is measured here, on a quiet machine::

    python benchmarks/bench_cli.py                  # every scenario, best of 3
    python benchmarks/bench_cli.py --repeat 5 --only unreachable,never-answers
    python benchmarks/bench_cli.py --skip-mulan

Scenarios (each a fresh ``python -m evalkit`` process in a temporary directory, so interpreter start
and imports are included -- this is what a cron job sees):

* ``unreachable``: ``evaluate --predictions`` against a refused port (exit 3, report + spool);
* ``never-answers``: a server that accepts connections and never answers, ``--tracking-timeout 4``;
* ``run-unreachable``: ``run`` against a refused port (exit 3 before any training);
* ``no-track``: the same ``evaluate --predictions`` without tracking, as the baseline.

Each row shows the best and the median wall time, the budget that the tests used to assert and the
ratio best / budget (< 1 is within budget).

``--bad-input`` times, in one run, ``evalkit --version`` and five bad inputs (a missing data file, a
missing predictions file, a bad flag value, an unknown loss, an unreadable spec): each is answered
before torch / MLflow load, so each must take at most 1.5x the time of ``--version`` (the ratio column)::

    python benchmarks/bench_cli.py --bad-input --repeat 5 ``--skip-mulan`` skips timing ``load_dataset`` on the
MULAN train + test files (budget 5 s each; skipped when ../shared/datasets/mulan is absent).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MULAN = ROOT.parent / "shared" / "datasets" / "mulan"
DEAD = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused


def _predictions(path: Path, n: int = 120, c: int = 4, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < 0.35).astype(np.uint8)
    y[0], y[1] = 1, 0
    p = 1 / (1 + np.exp(-(2.0 * (2 * y - 1) + rng.normal(0, 1.5, (n, c)))))
    np.savez(path, targets=y, probabilities=p, labels=np.array([f"L{i}" for i in range(c)]))
    return path


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _time_cli(args: list[str], expect: int, cwd: Path) -> float:
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "evalkit", *args], cwd=cwd, env=_env(),
                         capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if res.returncode != expect:
        raise SystemExit(f"evalkit {' '.join(args)}: exit {res.returncode}, expected {expect}\n"
                         f"{res.stdout[-2000:]}{res.stderr[-2000:]}")
    return seconds


def scenario(name: str, work: Path) -> tuple[list[str], int, float]:
    """(CLI args, expected exit code, budget in seconds) of a scenario, its files made in ``work``."""
    pred = str(_predictions(work / "p.npz"))
    common = ["--no-per-class", "-o", str(work / "r.json")]
    if name == "unreachable":
        return ["evaluate", "--predictions", pred, "--tracking-uri", DEAD, *common], 3, 10.0
    if name == "never-answers":
        return ["evaluate", "--predictions", pred, "--tracking-uri", "{SILENT}", "--tracking-timeout", "4",
                *common], 3, 10.0
    if name == "run-unreachable":
        return ["run", "--epochs", "50", "--hidden", "16", "--no-log-model", "--tracking-uri", DEAD], 3, 10.0
    if name == "no-track":
        return ["evaluate", "--predictions", pred, "--no-track", *common], 0, 10.0
    raise SystemExit(f"unknown scenario {name!r}")


SCENARIOS = ("unreachable", "never-answers", "run-unreachable", "no-track")

#: ``--bad-input``: name -> (CLI args, files to make in the work folder); each exits 2
BAD_INPUTS = {
    "run --dataset /nope.arff": (["run", "--dataset", "{work}/nope.arff", "--no-track"], {}),
    "evaluate --predictions /nope.npz": (["evaluate", "--predictions", "{work}/nope.npz", "--no-track"], {}),
    "run --lr -1": (["run", "--lr", "-1", "--no-track"], {}),
    "run --loss hinge": (["run", "--loss", "hinge", "--no-track"], {}),
    "run bad.toml (not TOML)": (["run", "{work}/bad.toml", "--no-track"], {"bad.toml": "epochs = 1\nlr = [\n"}),
}
#: the budget of a bad input: this many times ``evalkit --version``
BAD_INPUT_RATIO = 1.5


def bench_bad_input(repeat: int) -> None:
    """Print the best time of ``--version`` and of each bad input, and their ratio (<= 1.5 passes)."""
    rows: dict[str, list[float]] = {"--version": []}
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        for name, (_, files) in BAD_INPUTS.items():
            for fname, text in files.items():
                (work / fname).write_text(text)
        for _ in range(repeat):  # interleaved, so that a load spike hits every command alike
            rows["--version"].append(_time_cli(["--version"], 0, work))
            for name, (args, _) in BAD_INPUTS.items():
                rows.setdefault(name, []).append(_time_cli([a.format(work=work) for a in args], 2, work))
    base = min(rows["--version"])
    print(f"{'command':<36}{'best s':>9}{'median s':>10}{'/ --version':>13}  (budget {BAD_INPUT_RATIO}x)")
    for name, times in rows.items():
        ratio = min(times) / base
        flag = "" if ratio <= BAD_INPUT_RATIO else "  OVER"
        print(f"{name:<36}{min(times):>9.2f}{statistics.median(times):>10.2f}{ratio:>13.2f}{flag}")
    print(f"cpu count {os.cpu_count()}, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


def bench_cli(names: list[str], repeat: int) -> list[tuple[str, list[float], float]]:
    rows = []
    for name in names:
        times = []
        for _ in range(repeat):
            with tempfile.TemporaryDirectory() as d, socket.socket() as silent:
                work = Path(d)
                silent.bind(("127.0.0.1", 0))
                silent.listen(16)  # the kernel accepts the connections; nothing ever answers
                args, expect, budget = scenario(name, work)
                args = [a.replace("{SILENT}", f"http://127.0.0.1:{silent.getsockname()[1]}") for a in args]
                times.append(_time_cli(args, expect, work))
        rows.append((name, times, budget))
    return rows


def bench_mulan(repeat: int) -> list[tuple[str, list[float], float]]:
    sys.path.insert(0, str(ROOT))
    from evalkit.data import load_dataset

    rows = []
    for name in ("emotions", "scene", "medical"):
        train, test = MULAN / name / f"{name}-train.arff", MULAN / name / f"{name}-test.arff"
        if not (train.is_file() and test.is_file()):
            print(f"(MULAN {name} not available under {MULAN}: skipped)")
            continue
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            load_dataset(str(train), str(test))
            times.append(time.perf_counter() - t0)
        rows.append((f"read MULAN {name} (train + test)", times, 5.0))
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", default=",".join(SCENARIOS), help=f"comma-separated subset of {', '.join(SCENARIOS)}")
    ap.add_argument("--skip-mulan", action="store_true")
    ap.add_argument("--bad-input", action="store_true", help="time --version and five bad inputs (ratio <= 1.5)")
    a = ap.parse_args(argv)
    if a.bad_input:
        bench_bad_input(a.repeat)
        return
    names = [n for n in a.only.split(",") if n]
    rows = bench_cli(names, a.repeat)
    if not a.skip_mulan:
        rows += bench_mulan(a.repeat)
    print(f"{'task':<38}{'best s':>9}{'median s':>10}{'budget s':>10}{'best/budget':>13}")
    for name, times, budget in rows:
        best = min(times)
        print(f"{name:<38}{best:>9.2f}{statistics.median(times):>10.2f}{budget:>10.1f}{best / budget:>13.2f}")
    print(f"cpu count {os.cpu_count()}, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
