"""Store health before MLflow touches it: database drivers, SQLite files that cannot work (a
directory, read-only, locked, not a database), and the repair of a store whose creation failed
(a half-migrated schema that holds no runs is moved aside and created anew; one that holds runs is
never touched)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import urlsplit

from evalkit.errors import InfraError
from evalkit.tracking.redact import redact_uri


def sqlite_path(uri: str) -> str:
    """The database file of a ``sqlite:///`` URI (``""`` for other schemes)."""
    return uri.split(":///", 1)[1] if uri.startswith("sqlite") and ":///" in uri else ""


#: SQLAlchemy dialect (+ driver) -> (module to import, package to install)
DRIVERS = {
    "postgresql": ("psycopg2", "psycopg2-binary"),
    "postgresql+psycopg2": ("psycopg2", "psycopg2-binary"),
    "postgresql+psycopg": ("psycopg", "'psycopg[binary]'"),
    "postgresql+pg8000": ("pg8000", "pg8000"),
    "mysql": ("MySQLdb", "mysqlclient (or use mysql+pymysql:// with pymysql)"),
    "mysql+mysqldb": ("MySQLdb", "mysqlclient"),
    "mysql+pymysql": ("pymysql", "pymysql"),
    "mysql+mysqlconnector": ("mysql.connector", "mysql-connector-python"),
    "mssql": ("pyodbc", "pyodbc"),
    "mssql+pyodbc": ("pyodbc", "pyodbc"),
    "mssql+pymssql": ("pymssql", "pymssql"),
}


def check_driver(tracking_uri: str) -> None:
    """A database store needs its Python driver: say which package to install when it is missing.

    Raises:
        InfraError (exit 3): ``tracking store URI: database driver 'psycopg2' is not installed: pip install psycopg2-binary``.
    """
    import importlib.util

    scheme = urlsplit(tracking_uri).scheme.lower()
    if scheme not in DRIVERS:
        return
    module, package = DRIVERS[scheme]
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise InfraError(f"tracking store {redact_uri(tracking_uri)}: database driver {module!r} is not installed: "
                         f"pip install {package}")


def _sqlite_state(path: Path, timeout: float) -> tuple[list[str], int | None]:
    """``(interrupted-migration tables, number of runs or None when there is no runs table)``."""
    import sqlite3

    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)
    try:
        tables = [r[0] for r in con.execute("select name from sqlite_master where type = 'table'")]
        tmp = [t for t in tables if t.startswith("_alembic_tmp_")]
        runs = con.execute("select count(*) from runs").fetchone()[0] if "runs" in tables else None
        return tmp, runs
    finally:
        con.close()


def check_sqlite(tracking_uri: str, timeout: float) -> None:
    """Cheap checks of a SQLite store before MLflow opens it (MLflow would retry for minutes):
    the path is not a directory, its folder is writable, an existing file is a SQLite database.

    Raises:
        InfraError (exit 3): one line naming the path and the cause.
    """
    import sqlite3

    from evalkit.errors import os_cause

    raw = sqlite_path(tracking_uri)
    if not raw or raw == ":memory:":
        return
    path = Path(raw).expanduser()
    where = f"tracking store {redact_uri(tracking_uri)}"
    if path.is_dir():
        raise InfraError(f"{where}: {path} is a directory, not a database file")
    if not path.exists():
        if not os.access(path.parent, os.W_OK | os.X_OK):
            import errno

            cause = os_cause(OSError(errno.EROFS if _read_only(path.parent) else errno.EACCES, ""))
            raise InfraError(f"{where}: cannot create {path}: {cause}")
        return
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)
        try:
            con.execute("select count(*) from sqlite_master").fetchone()
        finally:
            con.close()
    except sqlite3.Error as e:
        msg = str(e)
        if "locked" in msg or "busy" in msg:
            raise InfraError(f"{where}: {path} is locked by another process (timed out after {timeout:g} s)") from None
        if "not a database" in msg:
            raise InfraError(f"{where}: {path} is not an SQLite database") from None
        raise InfraError(f"{where}: {path}: {msg}") from None


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


_SCHEMA_FAILURES = ("alembic", "already exists", "no such table", "no such column", "out-of-date database schema",
                    "duplicate column", "malformed")


def repair_failed_creation(tracking_uri: str, timeout: float, error: BaseException | None = None) -> bool:
    """A SQLite store whose creation failed (disk full or a kill during MLflow's schema migrations:
    ``_alembic_tmp_*`` tables left, ``table _alembic_tmp_trace_tags already exists`` on every later
    command) is moved aside to ``<db>.failed-<UTC time>`` when it holds no runs, so the caller can
    create it anew. A store that holds runs is never moved (InfraError with what to do instead).
    Call under :func:`evalkit.tracking.store.store_lock`. Returns True when the file was moved aside.

    Args:
        error: the error MLflow raised opening the store (None: check for leftovers before opening).
    Raises:
        InfraError (exit 3): the store is half-migrated but holds runs.
    """
    raw = sqlite_path(tracking_uri)
    if not raw or raw == ":memory:":
        return False
    path = Path(raw).expanduser()
    if not path.is_file():
        return False
    try:
        tmp, runs = _sqlite_state(path, timeout)
    except Exception:
        return False
    failed = bool(tmp) or (error is not None and any(k in str(error).lower() for k in _SCHEMA_FAILURES))
    if not failed:
        return False
    if runs:
        raise InfraError(
            f"tracking store {redact_uri(tracking_uri)}: an interrupted schema migration left "
            f"{', '.join(tmp) or 'an incomplete schema'}; the store holds {runs} run(s), so evalkit leaves it "
            f"untouched: back up {path}, then run `mlflow db upgrade {redact_uri(tracking_uri)}`")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.failed-{stamp}")
    for suffix in ("", "-journal", "-wal", "-shm"):
        src = Path(str(path) + suffix)
        if src.exists():
            os.replace(src, Path(str(aside) + suffix))
    import logging

    logging.getLogger("evalkit").warning("tracking store %s: its creation had failed (no runs in it); moved it "
                                         "to %s and created it anew", path, aside)
    return True


