"""A real team deployment: an ``mlflow server`` backed by PostgreSQL (Debian's ``postgresql`` package,
a throw-away cluster started here on a loopback port), with 8 concurrent ``evalkit evaluate`` jobs and
2 concurrent ``evalkit run``s: every run FINISHED, every metric present, nothing spooled.

Skips (with the reason) where the PostgreSQL server binaries or psycopg2 are not installed:
``apt-get install -y postgresql`` and ``pip install -e '.[dev]'`` (psycopg2-binary).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import free_port, start_mlflow_server, stop_process_group, warm_server
from test_gates import write_predictions

pytestmark = pytest.mark.slow

EVALKIT = [sys.executable, "-m", "evalkit"]
# 10 clients start at once (each importing torch and MLflow) beside the other test worker on 2 shared
# cores: the server's first answers can queue for tens of seconds (CI: no answer within 10 s and 30 s)
SLOW = "90"


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("pg_ctl")
    return Path(which).parent if which and shutil.which("initdb") else None


def _as_postgres(cmd: list[str]) -> list[str]:
    """initdb / postgres refuse to run as root: run them as the ``postgres`` user then."""
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("running as root without `runuser`: cannot start PostgreSQL as the postgres user")
    return [runuser, "-u", "postgres", "--", *cmd]


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL cluster in a temp dir, listening on 127.0.0.1:<free port> only; yields its URI."""
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin: "
                    "install them with `apt-get install -y postgresql`")
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        pytest.skip("psycopg2 is not installed: pip install psycopg2-binary (in the dev extra)")
    root = Path(tempfile.mkdtemp(prefix="evalkit-pg-"))
    os.chmod(root, 0o755)
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = free_port()
    subprocess.run(_as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", "evalkit", "-A", "trust",
                                 "--no-sync", "-E", "UTF8"]), check=True, capture_output=True, cwd=root)
    opts = f"-k {root} -p {port} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off"
    subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "pg.log"),
                                 "-w", "-t", "60", "start"]), check=True, capture_output=True, cwd=root)
    try:
        subprocess.run(_as_postgres([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "evalkit",
                                     "mlflow"]), check=True, capture_output=True, cwd=root)
        yield f"postgresql+psycopg2://evalkit@127.0.0.1:{port}/mlflow", root
    finally:
        subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                       capture_output=True, cwd=root)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def server(postgres, tmp_path_factory):
    db_uri, _ = postgres
    d = tmp_path_factory.mktemp("mlflow-pg-server")
    uri, proc = start_mlflow_server(d, db_uri, workers=2)
    warm_server(uri)
    yield uri
    stop_process_group(proc, timeout=5)


def test_mlflow_server_on_postgresql_with_8_evaluate_jobs_and_2_runs_at_once(server, tmp_path):
    pred = write_predictions(tmp_path / "p.npz")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(PYTHONUNBUFFERED="1", MLFLOW_TRACKING_URI=server, EVALKIT_SPOOL_DIR=str(tmp_path / "spool"))
    jobs = [[*EVALKIT, "evaluate", "--predictions", str(pred), "--no-per-class", "--job", f"job{i}",
             "--trigger", "scheduled", "--gate", "test/macro_f2>=0.1", "--experiment", "pg-eval", "-o", f"r{i}.json",
             "--tracking-timeout", SLOW]
            for i in range(8)]
    jobs += [[*EVALKIT, "run", "--epochs", "2", "--folds", "1", "--hidden", "16", "--seed", str(s),
              "--experiment", "pg-run", "-o", f"run{s}.json", "--tracking-timeout", SLOW] for s in range(2)]
    procs = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for cmd in jobs]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    failed = [f"{' '.join(cmd[2:4])} {cmd[cmd.index('--seed') + 1] if '--seed' in cmd else cmd[cmd.index('--job') + 1]}"
              f" exited {p.returncode}:\n" + "\n".join(out.splitlines()[-25:])
              for cmd, p, out in zip(jobs, procs, outs) if p.returncode != 0]
    assert not failed, "\n\n".join(failed)  # only the failures, their last lines (CI shows the tail)
    assert not (tmp_path / "spool").exists() or not any((tmp_path / "spool").iterdir()), "something was spooled"

    import mlflow

    client = mlflow.MlflowClient(server)
    evals = client.search_runs([client.get_experiment_by_name("pg-eval").experiment_id])
    runs = client.search_runs([client.get_experiment_by_name("pg-run").experiment_id])
    assert sorted(r.data.tags["evalkit.job"] for r in evals) == [f"job{i}" for i in range(8)]
    assert len(runs) == 2
    for r in [*evals, *runs]:
        assert r.info.status == "FINISHED", (r.info.run_id, r.info.status)
    for i, r in enumerate(sorted(evals, key=lambda r: r.data.tags["evalkit.job"])):
        rep = json.loads((tmp_path / f"r{i}.json").read_text())
        assert rep["run_id"] == r.info.run_id
        expected = {k for k in _metric_keys(rep)}
        assert expected <= set(r.data.metrics), expected - set(r.data.metrics)
    for r in runs:
        rep = json.loads((tmp_path / f"run{r.data.params['seed']}.json").read_text())
        expected = _metric_keys(rep)
        assert expected <= set(r.data.metrics), expected - set(r.data.metrics)
        assert {"train/loss", "val/loss"} <= set(r.data.metrics)
        assert len(client.get_metric_history(r.info.run_id, "train/loss")) == 2


def _metric_keys(report: dict) -> set[str]:
    from evalkit.report import tracked_metrics

    return set(tracked_metrics(report, "test"))
