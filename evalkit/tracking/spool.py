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
either complete or absent. ``evalkit sync-spool`` uploads each entry (resuming the original run when
it exists, else creating one) and removes it once uploaded (:func:`sync_spool`, which imports mlflow
lazily).
"""

from __future__ import annotations

import json
import os
import shutil
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


@dataclass
class Entry:
    """A spooled run read back from disk."""

    path: Path
    run: dict
    params: dict
    tags: dict
    metrics: list[dict]

    @property
    def artifacts(self) -> Path:
        """The entry's ``artifacts/`` folder."""
        return self.path / "artifacts"


def _dump(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def entries(root: str | os.PathLike | None = None) -> list[Entry]:
    """Complete spool entries, oldest first (temporary, half-written directories are ignored); without
    ``root``, those of the fallback folders too (:func:`spool_roots`)."""
    found = []
    for base in spool_roots(root):
        try:
            found += [d for d in base.iterdir()] if base.is_dir() else []
        except OSError:
            continue
    out = []
    for d in sorted(found, key=lambda d: d.name):
        if not d.is_dir() or d.name.startswith("."):
            continue
        try:
            out.append(Entry(d, *(json.loads((d / f).read_text())
                                  for f in ("run.json", "params.json", "tags.json", "metrics.json"))))
        except (OSError, ValueError):
            continue  # not a spool entry
    return out


def remove(entry: Entry) -> None:
    """Delete an uploaded entry's folder."""
    shutil.rmtree(entry.path)


# -- upload ------------------------------------------------------------------------------------------


def _target(explicit: str | None, recorded: str) -> str:
    """Where an entry goes: ``explicit`` > the store it was meant for (unless that URI held
    credentials, which are never written to disk) > the default local store."""
    from evalkit.tracking.store import resolve_tracking_uri

    return resolve_tracking_uri(explicit or (recorded if recorded and "***@" not in recorded else None))


def _upload(client, target: str, entry: Entry) -> str:
    """Upload one entry to ``target``; returns the run id."""
    from mlflow.entities import Metric, Param, RunTag

    from evalkit.tracking.store import get_or_create_experiment

    run_info = entry.run
    run_id = run_info.get("run_id")
    if run_id:
        try:
            client.get_run(run_id)
        except Exception:
            run_id = None
    if not run_id:
        exp_id = get_or_create_experiment(target, run_info["experiment"])
        run_id = client.create_run(exp_id, start_time=run_info.get("start_time"), run_name=run_info.get("run_name"),
                                   tags={"evalkit.spooled": "true"}).info.run_id
    params = [Param(k, str(v)) for k, v in entry.params.items()]
    tags = [RunTag(k, str(v)) for k, v in entry.tags.items()]
    metrics = [Metric(m["key"], float(m["value"]), int(m["timestamp"]), int(m["step"])) for m in entry.metrics]
    for i in range(0, max(len(params), len(tags), len(metrics)), 100):
        client.log_batch(run_id, metrics=metrics[i : i + 100], params=params[i : i + 100], tags=tags[i : i + 100])
    if entry.artifacts.is_dir() and any(entry.artifacts.iterdir()):
        client.log_artifacts(run_id, str(entry.artifacts))
    client.set_tag(run_id, "evalkit.spool_synced", "true")
    client.set_terminated(run_id, run_info.get("status") or "FINISHED", end_time=run_info.get("end_time"))
    return run_id


def sync_spool(tracking_uri: str | None = None, root: str | os.PathLike | None = None, console=None, *,
               timeout: float | None = None) -> tuple[int, int]:
    """Upload every spool entry and remove it once uploaded. A run created before the store failed is
    resumed (its missing params / metrics / tags / artifacts added and its final status set);
    otherwise a new run is created with the original start and end times.

    Args:
        tracking_uri: upload everything here; default ``$MLFLOW_TRACKING_URI``, else the store each
            entry was meant for (unless that URI held credentials, which are never written to disk),
            else the default local store.
        root: the spool folder (default :func:`spool_root`). console: a rich console for progress.
        timeout: seconds to wait for an HTTP store (sets MLflow's HTTP limits); None: leave them.
    Returns:
        ``(uploaded, left)``.
    Raises:
        InputError (exit 2): a malformed ``tracking_uri``. A store that is unreachable does not raise:
            its entries are kept and counted in ``left`` (the CLI then exits 3).
    """
    from evalkit.errors import InfraError
    from evalkit.tracking.redact import redact_uri, store_reason
    from evalkit.tracking.store import client_for, configure_http, ensure_store

    if timeout is not None:
        configure_http(timeout)
    explicit = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    done = left = 0
    for entry in entries(root):
        target = _target(explicit, entry.run.get("tracking_uri") or "")
        try:
            ensure_store(target)  # InfraError: this entry's store is down; the others may be up
            run_id = _upload(client_for(target), target, entry)
        except Exception as e:
            left += 1
            if console is not None:
                reason = str(e) if isinstance(e, InfraError) else store_reason(e)
                console.print(f"[red]not uploaded[/] {entry.path.name}: {reason}", soft_wrap=True)
            continue
        remove(entry)
        done += 1
        if console is not None:
            console.print(f"uploaded {entry.path.name} -> run {run_id} in experiment '{entry.run['experiment']}' "
                          f"({redact_uri(target)})")
    return done, left
