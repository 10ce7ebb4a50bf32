"""The local spool: everything a run would have logged to MLflow when the tracking store was down.

When the store is unreachable (at the start or in the middle of a run) :class:`evalkit.tracking.run.RunLogger`
writes what it could not log to ``mlruns/spool/<UTC timestamp>-<id>/`` (or ``$EVALKIT_SPOOL_DIR``)::

    run.json        experiment, run name, run id (when the run was created before the store failed),
                    final status, reason, redacted tracking URI, start / end times (ms)
    params.json     {name: value}
    tags.json       {name: value}
    metrics.json    [{"key", "value", "step", "timestamp"}, ...]
    artifacts/      files, at their artifact paths

A spool entry is written to a hidden temporary directory and renamed into place, so an entry is
either complete or absent. ``evalkit sync-spool`` validates each entry whole (:func:`load`; a corrupt
one is moved to ``corrupt/`` with a ``.reason`` file), uploads it exactly once (resuming the original
run when it exists, else creating one tagged ``evalkit.spool_id``) and removes it
(:func:`evalkit.tracking.spool_sync.sync_spool`: locked, imports mlflow lazily).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPOOL_ENV = "EVALKIT_SPOOL_DIR"
FALLBACK_ENV = "EVALKIT_SPOOL_FALLBACK"


def spool_root(root: str | os.PathLike | None = None) -> Path:
    """``root`` > ``$EVALKIT_SPOOL_DIR`` > ``<cwd>/mlruns/spool``."""
    return Path(root or os.environ.get(SPOOL_ENV) or Path.cwd() / "mlruns" / "spool")


def fallback_roots() -> list[Path]:
    """Where a spool entry goes when :func:`spool_root` is not writable (read-only, disk full, a
    file in the way), in order: ``$EVALKIT_SPOOL_FALLBACK`` (folders separated by ``os.pathsep``) or
    ``~/.cache/evalkit/spool``, then ``<tmp>/evalkit-spool-<uid>``. ``sync-spool`` (without
    ``--spool-dir``) uploads from these too."""
    import tempfile

    if os.environ.get(FALLBACK_ENV):
        return [Path(p) for p in os.environ[FALLBACK_ENV].split(os.pathsep) if p]
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return [Path.home() / ".cache" / "evalkit" / "spool", Path(tempfile.gettempdir()) / f"evalkit-spool-{uid}"]


def spool_roots(root: str | os.PathLike | None = None) -> list[Path]:
    """The spool folder (``root``), and without ``root``: also the :func:`fallback_roots`."""
    first = spool_root(root)
    if root:
        return [first]
    return list(dict.fromkeys([first, *fallback_roots()]))


@dataclass
class Journal:
    """What a run has not (yet) logged. Artifacts are copied when journaled (their source may be a
    temporary file)."""

    experiment: str
    run_name: str | None = None
    run_id: str | None = None
    tracking_uri: str = ""  # redacted
    start_time: int = field(default_factory=lambda: int(time.time() * 1000))
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[tuple[str, str | None, bytes]] = field(default_factory=list)  # (name, artifact_path, content)
    artifact_dirs: list[tuple[str, str | None]] = field(default_factory=list)  # (local dir, artifact_path)

    def add_metrics(self, metrics: dict[str, float], step: int | None, timestamp: int | None = None) -> None:
        """Journal ``metrics`` at ``step`` (None: 0) and ``timestamp`` (ms since the epoch; default now)."""
        ts = timestamp or int(time.time() * 1000)
        self.metrics.extend({"key": k, "value": float(v), "step": int(step or 0), "timestamp": ts}
                            for k, v in metrics.items())

    def add_file(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        """Journal a file or folder as an artifact (copied now: it may be temporary).

        Raises:
            OSError: ``path`` cannot be read.
        """
        p = Path(path)
        if p.is_dir():  # copied now: the source may be a temporary directory
            import tempfile

            keep = Path(tempfile.mkdtemp(prefix="evalkit-journal-")) / p.name
            shutil.copytree(p, keep)
            self.artifact_dirs.append((str(keep), artifact_path))
        else:
            self.artifacts.append((p.name, artifact_path, p.read_bytes()))

    def add_text(self, name: str, text: str) -> None:
        """Journal ``text`` as the artifact file ``name`` (e.g. ``report.json``)."""
        parent = str(Path(name).parent)
        self.artifacts.append((Path(name).name, None if parent == "." else parent, text.encode()))

    def write_anywhere(self, status: str, reason: str) -> tuple[Path, str | None]:
        """Write the entry to :func:`spool_root`, else to the first writable :func:`fallback_roots`.

        Returns:
            ``(entry directory, why the usual spool folder was not used or None)``.
        Raises:
            evalkit.errors.WriteError (exit 3): no spool folder is writable (names the usual one).
        """
        from evalkit.errors import write_error

        first_error = None
        for base in spool_roots():
            try:
                path = self.write(status, reason, base)
            except OSError as e:
                first_error = first_error or write_error(base, e, "cannot spool to")
                continue
            return path, (None if first_error is None else str(first_error))
        raise first_error

    def write(self, status: str, reason: str, root: str | os.PathLike | None = None) -> Path:
        """Write the entry atomically under :func:`spool_root` (``root``) with the run's final
        ``status`` and the ``reason`` it was spooled; returns its directory.

        Raises:
            OSError: the spool folder is not writable.
        """
        base = spool_root(root)
        base.mkdir(parents=True, exist_ok=True)
        name = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]
        tmp = base / f".tmp-{name}"
        tmp.mkdir()
        try:
            _dump(tmp / "run.json", {
                "experiment": self.experiment, "run_name": self.run_name, "run_id": self.run_id,
                "tracking_uri": self.tracking_uri, "status": status, "reason": reason,
                "start_time": self.start_time, "end_time": int(time.time() * 1000),
            })
            _dump(tmp / "params.json", self.params)
            _dump(tmp / "tags.json", self.tags)
            _dump(tmp / "metrics.json", self.metrics)
            art = tmp / "artifacts"
            art.mkdir()
            for fname, apath, content in self.artifacts:
                d = art / apath if apath else art
                d.mkdir(parents=True, exist_ok=True)
                (d / fname).write_bytes(content)
            for src, apath in self.artifact_dirs:
                dest = art / apath if apath else art / Path(src).name
                shutil.copytree(src, dest, dirs_exist_ok=True)
            final = base / name
            os.replace(tmp, final)
            for src, _ in self.artifact_dirs:
                shutil.rmtree(Path(src).parent, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final


SPOOL_ID_TAG = "evalkit.spool_id"  # on every run a sync uploads to: the entry's folder name
SYNCED_TAG = "evalkit.spool_synced"  # "true" once everything of the entry is in the run
SPOOLED_TAG = "evalkit.spooled"  # on a run created by a sync
QUARANTINE = "corrupt"  # corrupt entries are moved to <spool>/corrupt/ with a <name>.reason file
TERMINAL = ("FINISHED", "FAILED", "KILLED")
_FILES = ("run.json", "params.json", "tags.json", "metrics.json")
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_SCALAR = (str, int, float, bool)


class CorruptEntry(ValueError):
    """A spool entry that cannot be uploaded as it is; ``str()`` is the one-line reason."""


@dataclass
class Entry:
    """A spooled run read back from disk and validated whole (:func:`load`)."""

    path: Path
    run: dict
    params: dict
    tags: dict
    metrics: list[dict]

    @property
    def id(self) -> str:
        """The entry's folder name (``<UTC timestamp>-<8 hex>``), written on its run as ``evalkit.spool_id``."""
        return self.path.name

    @property
    def artifacts(self) -> Path:
        """The entry's ``artifacts/`` folder."""
        return self.path / "artifacts"


def _dump(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def entry_dirs(base: Path) -> list[Path]:
    """The entry folders of spool folder ``base``, oldest first: everything but hidden (half-written)
    folders and the ``corrupt/`` quarantine; [] when ``base`` cannot be listed."""
    try:
        found = list(base.iterdir()) if base.is_dir() else []
    except OSError:
        return []
    return sorted((d for d in found if not d.name.startswith(".") and d.name != QUARANTINE
                   and not d.name.endswith(".reason")), key=lambda d: d.name)


def _load_json(d: Path, name: str):
    p = d / name
    if p.is_symlink() or not p.is_file():
        raise CorruptEntry(f"{name}: missing, or not a regular file")
    try:
        return json.loads(p.read_text())
    except (UnicodeDecodeError, ValueError) as e:
        raise CorruptEntry(f"{name}: not valid JSON ({'empty file' if not p.stat().st_size else e})") from None


def _check_run(run) -> None:
    if not isinstance(run, dict):
        raise CorruptEntry("run.json: expected a JSON object")
    if not isinstance(run.get("experiment"), str) or not run["experiment"]:
        raise CorruptEntry("run.json: 'experiment' must be a non-empty string")
    if run.get("status") not in TERMINAL:
        raise CorruptEntry(f"run.json: 'status' must be one of {', '.join(TERMINAL)}, got {run.get('status')!r}")
    for k in ("run_id", "run_name", "tracking_uri", "reason"):
        if run.get(k) is not None and not isinstance(run[k], str):
            raise CorruptEntry(f"run.json: {k!r} must be a string or null")
    for k in ("start_time", "end_time"):
        if run.get(k) is not None and (isinstance(run[k], bool) or not isinstance(run[k], int)):
            raise CorruptEntry(f"run.json: {k!r} must be an integer (ms since the epoch) or null")


def _check_map(data, name: str) -> None:
    if not isinstance(data, dict):
        raise CorruptEntry(f"{name}: expected a JSON object {{name: value}}")
    bad = next((k for k, v in data.items() if not k or not isinstance(v, _SCALAR)), None)
    if bad is not None:
        raise CorruptEntry(f"{name}: {bad!r} must have a non-empty name and a string or number value")


def _check_metrics(metrics) -> None:
    if not isinstance(metrics, list):
        raise CorruptEntry("metrics.json: expected a JSON list")
    for i, m in enumerate(metrics):
        ok = (isinstance(m, dict) and isinstance(m.get("key"), str) and m["key"]
              and all(isinstance(m.get(k), int) and not isinstance(m[k], bool) for k in ("step", "timestamp"))
              and isinstance(m.get("value"), (int, float)) and not isinstance(m["value"], bool))
        if not ok:
            raise CorruptEntry(f"metrics.json: item {i} must be {{key: string, value: number, step: int, "
                               f"timestamp: int}}")


def _check_artifacts(art: Path) -> None:
    """Every artifact a regular file inside the entry (a symlink is refused: it could upload any
    file of the machine)."""
    if not os.path.lexists(art):
        return
    if art.is_symlink() or not art.is_dir():
        raise CorruptEntry("artifacts: not a folder (a symlink or a file)")
    for top, dirs, files in os.walk(art):
        for name in dirs + files:
            p = Path(top) / name
            mode = os.lstat(p).st_mode
            if stat.S_ISLNK(mode) or not (stat.S_ISDIR(mode) if name in dirs else stat.S_ISREG(mode)):
                kind = "a symlink" if stat.S_ISLNK(mode) else "not a regular file"
                raise CorruptEntry(f"artifacts/{p.relative_to(art)}: {kind} (refused)")


def load(d: Path) -> Entry:
    """Read and validate the spool entry in folder ``d`` whole, before anything is uploaded: a folder
    (not a symlink) named ``[A-Za-z0-9_.-]+``; ``run.json`` with an ``experiment`` and a terminal
    ``status`` (FINISHED, FAILED, KILLED); ``params.json`` / ``tags.json`` JSON objects of scalars
    (an empty file is corrupt); ``metrics.json`` a list of ``{key, value, step, timestamp}``;
    ``artifacts/`` only regular files and folders.

    Raises:
        CorruptEntry: the first problem found (one line, naming the file).
        FileNotFoundError: ``d`` vanished (another process removed it).
    """
    if not os.path.lexists(d):
        raise FileNotFoundError(d)
    if d.is_symlink() or not d.is_dir():
        raise CorruptEntry("not a folder (a symlink or a file)")
    if not _NAME.fullmatch(d.name):
        raise CorruptEntry("folder name: expected letters, digits, '_', '.', '-'")
    run, params, tags, metrics = (_load_json(d, f) for f in _FILES)
    _check_run(run)
    _check_map(params, "params.json")
    _check_map(tags, "tags.json")
    _check_metrics(metrics)
    _check_artifacts(d / "artifacts")
    return Entry(d, run, params, tags, metrics)


def entries(root: str | os.PathLike | None = None) -> list[Entry]:
    """The valid entries of :func:`spool_roots` (``root``), oldest first; corrupt ones are left out
    (:func:`sync_spool` moves them aside)."""
    out = []
    for base in spool_roots(root):
        for d in entry_dirs(base):
            try:
                out.append(load(d))
            except (CorruptEntry, OSError):
                continue
    return out


def quarantine(d: Path, reason: str) -> Path:
    """Move entry folder ``d`` to ``<spool>/corrupt/`` and write the one-line ``reason`` beside it
    (``corrupt/<name>.reason``); returns its new path.

    Raises:
        OSError: it cannot be moved.
    """
    dest = d.parent / QUARANTINE / d.name
    dest.parent.mkdir(exist_ok=True)
    if os.path.lexists(dest):
        dest = dest.with_name(f"{d.name}.{uuid.uuid4().hex[:6]}")
    os.replace(d, dest)
    dest.with_name(dest.name + ".reason").write_text(reason + "\n")
    return dest


def remove(entry: Entry) -> None:
    """Delete an uploaded entry's folder."""
    shutil.rmtree(entry.path)


def sync_spool(tracking_uri: str | None = None, root: str | os.PathLike | None = None, *,
               timeout: float | None = None, lock_wait: float = 10.0) -> list:
    """Upload every spool entry exactly once (see :func:`evalkit.tracking.spool_sync.sync_spool`)."""
    from evalkit.tracking.spool_sync import sync_spool as run

    return run(tracking_uri, root, timeout=timeout, lock_wait=lock_wait)
