"""Nothing is lost when the disk or the store fails: a full disk or an unwritable location while
writing the report, the spool or the store exits 3 with one line naming the path and the cause; the
report is written where it can be (else printed on stdout); results are spooled somewhere writable; a
store whose creation failed is repaired by the next command (never when it holds runs); a SQLite
store path that is a directory fails at once; a missing database driver names the package.

Faults are real mechanisms: a file where a folder is expected, ``/proc`` (unwritable even for
root), an ``os.replace`` that raises ENOSPC for one path, a schema migration interrupted half-way."""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from test_gates import _runs, write_predictions

DEAD = "http://127.0.0.1:9"


@pytest.fixture(autouse=True)
def _fallback(tmp_path, monkeypatch):
    """Spool fallbacks inside the test's folder (never the user's ~/.cache)."""
    monkeypatch.setenv("EVALKIT_SPOOL_FALLBACK", str(tmp_path / "fallback"))
    monkeypatch.delenv("EVALKIT_SPOOL_DIR", raising=False)


def _enospc_for(monkeypatch, target: Path):
    """``os.replace`` onto ``target`` (or into it) fails with ENOSPC, as on a full disk."""
    real = os.replace

    def replace(src, dst, *a, **k):
        if str(dst) == str(target) or str(dst).startswith(str(target) + os.sep):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", replace)


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def test_disk_full_writing_the_report_exits_3_prints_the_report_and_still_tracks_the_run(store, cli, tmp_path,
                                                                                       monkeypatch):
    pred = write_predictions(tmp_path / "p.npz")
    out = tmp_path / "reports" / "r.json"
    _enospc_for(monkeypatch, out)
    res = cli("evaluate", "--predictions", pred, "-o", out, "--no-per-class", "--gate", "test/macro_f2>=0.1")
    assert res.exit_code == 3, res.output
    assert "Traceback" not in res.output
    [line] = _error_lines(res.output)
    assert str(out) in line and "disk full" in line and "printed to stdout" in line
    assert not out.exists() and not list(out.parent.glob(".r.json.*"))  # no half-written or temporary file
    start = res.output.index('{\n  "evalkit_version"')
    printed, _ = json.JSONDecoder().raw_decode(res.output[start:])
    assert printed["gates"]["status"] == "pass" and printed["run_id"]
    [run] = _runs(store)  # the run is recorded all the same
    assert run.info.status == "FINISHED" and run.info.run_id == printed["run_id"]
    assert run.data.metrics["test/macro_f2"] == pytest.approx(printed["summary"]["macro"]["f2"])


def test_report_location_unwritable_and_store_down_spools_and_prints_the_report(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pred = write_predictions(tmp_path / "p.npz")
    out = Path("/proc/evalkit-report.json")  # /proc refuses new files, even to root
    res = cli("evaluate", "--predictions", pred, "-o", out, "--no-per-class", "--tracking-uri", DEAD)
    assert res.exit_code == 3, res.output
    [line] = _error_lines(res.output)
    assert str(out) in line and "sync-spool" in line
    assert '"evalkit_version"' in res.output  # the report, on stdout
    [entry] = list((tmp_path / "mlruns" / "spool").iterdir())
    assert json.loads((entry / "artifacts" / "report.json").read_text())["gates"]


def test_spool_location_unwritable_spools_to_the_fallback_and_sync_spool_finds_it(store, cli, tmp_path):
    shutil.rmtree(tmp_path / "mlruns")
    (tmp_path / "mlruns").write_text("a file where the spool's folder should be")
    pred = write_predictions(tmp_path / "p.npz")
    res = cli("evaluate", "--predictions", pred, "-o", tmp_path / "r.json", "--no-per-class", "--tracking-uri", DEAD)
    assert res.exit_code == 3, res.output
    [line] = _error_lines(res.output)
    assert "nothing lost" in line and str(tmp_path / "fallback") in line and "mlruns/spool" in line
    assert json.loads((tmp_path / "r.json").read_text())["gates"]  # the report is written
    [entry] = list((tmp_path / "fallback").iterdir())
    assert json.loads((entry / "run.json").read_text())["status"] == "FINISHED"

    other = tmp_path / "store2" / "mlflow.db"
    res = cli("sync-spool", "--tracking-uri", f"sqlite:///{other}")
    assert res.exit_code == 0, res.output
    assert "1 spooled run(s) uploaded" in res.output
    [run] = _runs(f"sqlite:///{other}")
    assert run.info.status == "FINISHED" and "test/macro_f2" in run.data.metrics
    assert not list((tmp_path / "fallback").iterdir())


def test_disk_full_for_every_spool_folder_still_exits_3_with_one_line(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _enospc_for(monkeypatch, tmp_path / "mlruns")
    _enospc_for_also = os.replace

    def replace(src, dst, *a, **k):
        if str(dst).startswith(str(tmp_path / "fallback")):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return _enospc_for_also(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", replace)
    pred = write_predictions(tmp_path / "p.npz")
    res = cli("evaluate", "--predictions", pred, "-o", tmp_path / "r.json", "--no-per-class", "--tracking-uri", DEAD)
    assert res.exit_code == 3, res.output
    assert "Traceback" not in res.output
    [line] = _error_lines(res.output)
    assert "could not be spooled either" in line and "disk full" in line and str(tmp_path / "mlruns" / "spool") in line
    assert json.loads((tmp_path / "r.json").read_text())["gates"]  # the report is what is kept


def test_store_folder_unwritable_exits_3_naming_the_path_and_spools(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pred = write_predictions(tmp_path / "p.npz")
    uri = "sqlite:////proc/evalkit-store/mlflow.db"
    res = cli("evaluate", "--predictions", pred, "-o", tmp_path / "r.json", "--no-per-class", "--tracking-uri", uri)
    assert res.exit_code == 3, res.output
    [line] = _error_lines(res.output)
    assert "/proc/evalkit-store" in line and "nothing lost" in line
    assert len(list((tmp_path / "mlruns" / "spool").iterdir())) == 1


def test_sqlite_store_path_that_is_a_directory_fails_at_once_with_one_line(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "db-dir").mkdir()
    res = cli("run", "--tracking-uri", f"sqlite:///{tmp_path / 'db-dir'}", "--epochs", "1", "--hidden", "8")
    assert res.exit_code == 3, res.output
    [line] = _error_lines(res.output)
    assert f"{tmp_path / 'db-dir'} is a directory" in line and "nothing was run" in line
    assert "retried" not in res.output and "Traceback" not in res.output


def test_sqlite_reason_disk_full_and_read_only_are_named():
    from evalkit.errors import os_cause
    from evalkit.tracking import store_reason

    assert store_reason(Exception("(sqlite3.OperationalError) database or disk is full")) == "disk full"
    assert store_reason(Exception("(sqlite3.OperationalError) attempt to write a readonly database")) == \
        "read-only file system"
    assert os_cause(OSError(errno.ENOSPC, "No space left on device")) == "disk full"
    assert os_cause(OSError(errno.EROFS, "Read-only file system")) == "read-only file system"
    assert os_cause(OSError(errno.EACCES, "Permission denied")) == "permission denied"


@pytest.mark.parametrize("uri,package", [
    ("postgresql+pg8000://u@127.0.0.1:1/db", "pip install pg8000"),
    ("mysql+pymysql://u@127.0.0.1:1/db", "pip install pymysql"),
])
def test_missing_database_driver_names_the_package_to_install(cli, tmp_path, monkeypatch, uri, package):
    import importlib.util

    module = {"pg8000": "pg8000", "pymysql": "pymysql"}[package.rsplit(" ", 1)[1]]
    if importlib.util.find_spec(module) is not None:
        pytest.skip(f"{module} is installed here")
    monkeypatch.chdir(tmp_path)
    pred = write_predictions(tmp_path / "p.npz")
    res = cli("evaluate", "--predictions", pred, "--no-per-class", "--tracking-uri", uri)
    assert res.exit_code == 3, res.output
    [line] = _error_lines(res.output)
    assert package in line and f"driver {module!r} is not installed" in line and "unreachable" not in line


# -- a store whose creation failed half-way ------------------------------------------------------------


def _half_migrated(db: Path) -> None:
    """What a disk that fills during MLflow's schema migrations leaves: the initial tables, migrations
    applied up to the trace tables, and the batch copy of the next one, ``_alembic_tmp_trace_tags`` copy."""
    import sqlalchemy
    from alembic import command
    from mlflow.store.db.utils import _get_alembic_config
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase

    url = f"sqlite:///{db}"
    engine = sqlalchemy.create_engine(url)
    InitialBase.metadata.create_all(engine)
    with engine.begin() as conn:
        config = _get_alembic_config(url)
        config.attributes["connection"] = conn
        command.upgrade(config, "867495a8f9d4")  # the trace tables; next: 5b0e9adcef9c (batch)
    engine.dispose()
    con = sqlite3.connect(db)
    con.execute("create table _alembic_tmp_trace_tags (key varchar(250), value varchar(8000), request_id varchar(50))")
    con.commit()
    con.close()


@pytest.fixture(scope="module")
def half_migrated_template(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("half") / "mlflow.db"
    _half_migrated(db)
    return db


def test_store_whose_creation_failed_is_repaired_by_the_next_command(cli, tmp_path, monkeypatch, half_migrated_template):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlruns").mkdir()
    db = tmp_path / "mlruns" / "mlflow.db"
    shutil.copy(half_migrated_template, db)
    uri = f"sqlite:///{db}"
    pred = write_predictions(tmp_path / "p.npz")
    res = cli("evaluate", "--predictions", pred, "--no-per-class", "--tracking-uri", uri, "--job", "after")
    assert res.exit_code == 0, res.output
    [run] = _runs(uri)
    assert run.info.status == "FINISHED" and run.data.tags["evalkit.job"] == "after"
    [aside] = list((tmp_path / "mlruns").glob("mlflow.db.failed-*"))  # moved aside, not deleted
    assert "_alembic_tmp_trace_tags" in {r[0] for r in sqlite3.connect(aside).execute(
        "select name from sqlite_master where type = 'table'")}
    assert not (tmp_path / "mlruns" / "spool").exists()


def test_half_migrated_store_that_holds_runs_is_never_moved(cli, tmp_path, monkeypatch, _migrated_store):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlruns").mkdir()
    db = tmp_path / "mlruns" / "mlflow.db"
    shutil.copy(_migrated_store, db)
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{db}")
    client.create_run(client.create_experiment("kept")).info.run_id
    con = sqlite3.connect(db)
    con.execute("create table _alembic_tmp_trace_tags (key varchar(250))")
    con.commit()
    con.close()
    before = db.read_bytes()
    pred = write_predictions(tmp_path / "p.npz")
    res = cli("evaluate", "--predictions", pred, "--no-per-class", "--tracking-uri", f"sqlite:///{db}")
    assert res.exit_code == 3, res.output
    [line] = _error_lines(res.output)
    assert "holds 1 run(s)" in line and "mlflow db upgrade" in line and "nothing lost" in line
    assert db.read_bytes() == before and not list((tmp_path / "mlruns").glob("mlflow.db.failed-*"))


def test_sqlite_store_full_mid_run_spools_the_rest_with_disk_full(store, tmp_path, monkeypatch):
    """A real SQLITE_FULL: every pooled connection gets ``PRAGMA max_page_count`` = its current size."""
    import mlflow
    from sqlalchemy import event
    from sqlalchemy.pool import Pool

    from evalkit.errors import InfraError
    from evalkit.tracking import RunLogger

    def full(dbapi_con, record, proxy):
        pages = dbapi_con.execute("PRAGMA page_count").fetchone()[0]
        dbapi_con.execute(f"PRAGMA max_page_count = {pages}")

    monkeypatch.setenv("EVALKIT_SPOOL_DIR", str(tmp_path / "spool"))
    logger = RunLogger(store, "full", run_name="r")
    try:
        with pytest.raises(InfraError, match=r"mlflow.db: disk full; nothing lost: results spooled to"):
            with logger as run:
                run.log_params({"a": 1})
                event.listen(Pool, "checkout", full)  # the disk fills up mid-run
                run.log_metrics({f"test/class/L{i}/f1": i / 5000 for i in range(5000)})
    finally:
        event.remove(Pool, "checkout", full)
    [entry] = list((tmp_path / "spool").iterdir())
    assert len(json.loads((entry / "metrics.json").read_text())) == 5000
    # ending a run does not grow the database: FAILED until sync-spool sets the real status
    assert mlflow.MlflowClient(store).get_run(logger.run_id).info.status == "FAILED"


def test_run_with_a_full_disk_for_the_report_logs_the_run_and_prints_the_report(store, cli, tmp_path, monkeypatch):
    out = tmp_path / "run.json"
    _enospc_for(monkeypatch, out)
    res = cli("run", "--epochs", "1", "--hidden", "8", "--no-log-model", "--experiment", "full", "-o", out)
    assert res.exit_code == 3, res.output
    [line] = _error_lines(res.output)
    assert f"cannot write {out}: disk full" in line and "report printed to stdout" in line
    printed, _ = json.JSONDecoder().raw_decode(res.output[res.output.index('{\n  "evalkit_version"'):])
    assert not out.exists()
    [run] = _runs(store, "full")
    assert run.info.status == "FINISHED"  # the run is a result: only the file could not be written
    assert run.data.metrics["test/macro_f2"] == pytest.approx(printed["summary"]["macro"]["f2"])
