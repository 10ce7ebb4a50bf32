"""The local spool: everything a run would have logged to MLflow when the tracking store was down.

When the store is unreachable (at the start or in the middle of a run) :class:`evalkit.tracking.RunLogger`
writes what it could not log to ``mlruns/spool/<UTC timestamp>-<id>/`` (or ``$EVALKIT_SPOOL_DIR``)::

    run.json        experiment, run name, run id (when the run was created before the store failed),
                    final status, reason, redacted tracking URI, start / end times (ms)
    params.json     {name: value}
    tags.json       {name: value}
    metrics.json    [{"key", "value", "step", "timestamp"}, ...]
    artifacts/      files, at their artifact paths

A spool entry is written to a hidden temporary directory and renamed into place, so an entry is
either complete or absent. ``evalkit sync-spool`` uploads each entry (resuming the original run when
it exists, else creating one) and removes it once uploaded. This module does not import mlflow.
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


def spool_root(root: str | os.PathLike | None = None) -> Path:
    """``root`` > ``$EVALKIT_SPOOL_DIR`` > ``<cwd>/mlruns/spool``."""
    return Path(root or os.environ.get(SPOOL_ENV) or Path.cwd() / "mlruns" / "spool")


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
        ts = timestamp or int(time.time() * 1000)
        self.metrics.extend({"key": k, "value": float(v), "step": int(step or 0), "timestamp": ts}
                            for k, v in metrics.items())

    def add_file(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        p = Path(path)
        if p.is_dir():  # copied now: the source may be a temporary directory
            import tempfile

            keep = Path(tempfile.mkdtemp(prefix="evalkit-journal-")) / p.name
            shutil.copytree(p, keep)
            self.artifact_dirs.append((str(keep), artifact_path))
        else:
            self.artifacts.append((p.name, artifact_path, p.read_bytes()))

    def add_text(self, name: str, text: str) -> None:
        parent = str(Path(name).parent)
        self.artifacts.append((Path(name).name, None if parent == "." else parent, text.encode()))

    @property
    def empty(self) -> bool:
        return not (self.params or self.tags or self.metrics or self.artifacts or self.artifact_dirs)

    def write(self, status: str, reason: str, root: str | os.PathLike | None = None) -> Path:
        """Write the entry atomically; returns its directory."""
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
        return self.path / "artifacts"


def _dump(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def entries(root: str | os.PathLike | None = None) -> list[Entry]:
    """Complete spool entries, oldest first (temporary, half-written directories are ignored)."""
    base = spool_root(root)
    if not base.is_dir():
        return []
    out = []
    for d in sorted(base.iterdir()):
        if not d.is_dir() or d.name.startswith("."):
            continue
        try:
            out.append(Entry(d, *(json.loads((d / f).read_text())
                                  for f in ("run.json", "params.json", "tags.json", "metrics.json"))))
        except (OSError, ValueError):
            continue  # not a spool entry
    return out


def remove(entry: Entry) -> None:
    shutil.rmtree(entry.path)
