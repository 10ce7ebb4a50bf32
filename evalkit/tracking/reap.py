"""Runs left RUNNING by a process that died without ending them (``kill -9``, a crashed machine, OOM).

MLflow cannot know that such a run is over. Every evalkit run is tagged at start with the process
that owns it (:func:`process_tags`: ``evalkit.host``, ``evalkit.pid``, ``evalkit.pid_start``), so
:func:`reap` can mark as KILLED the RUNNING evalkit runs older than a limit whose process is gone
(same host: checked with the PID and the process start time, so a reused PID is not mistaken for
the run's process), or, with ``any_host``, every RUNNING evalkit run older than the limit.

Nothing here imports mlflow at module import.
"""

from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import dataclass

from evalkit.errors import InfraError, InputError

HOST_TAG = "evalkit.host"
PID_TAG = "evalkit.pid"
PID_START_TAG = "evalkit.pid_start"
REAPED_TAG = "evalkit.reaped"
SPOOLED_TAG = "evalkit.spooled"  # a run created by sync-spool (evalkit.tracking.spool_sync)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def process_tags() -> dict[str, str]:
    """The tags that identify the process owning a run: host name, PID and (on Linux) its start time."""
    tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}
    start = _start_ticks(os.getpid())
    if start:
        tags[PID_START_TAG] = start
    return tags


def pid_alive(pid: int, start: str | None = None) -> bool:
    """Whether process ``pid`` exists on this host (and, when ``start`` is given and readable, is
    the same process: same start time)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if start:
        now = _start_ticks(pid)
        if now is not None and now != start:
            return False  # the PID was reused by another process
    return True


def parse_age(text: str) -> float:
    """``90s``, ``30m``, ``1h``, ``2d``, ``1w`` or a number of seconds -> seconds.

    Raises:
        InputError (exit 2): anything else.
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", str(text).lower())
    if not m:
        raise InputError(f"--older-than: expected a duration like 30m, 1h, 2d (or seconds), got {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


@dataclass(frozen=True)
class Stale:
    """A RUNNING evalkit run that :func:`reap` ends (or would end) as KILLED."""

    run_id: str
    run_name: str
    experiment: str
    start_time: int  # ms since the epoch
    host: str | None
    pid: int | None
    why: str

    def line(self, dry_run: bool = False) -> str:
        """One line for the terminal: the run, its start (UTC), why it is stale, and what was done."""
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.start_time / 1000))
        verb = "would mark KILLED" if dry_run else "KILLED"
        return (f"{verb} {self.run_id} {self.run_name!r} in experiment {self.experiment!r} "
                f"(started {started}; {self.why})")


def _owner(tags: dict) -> tuple[str | None, int | None, str | None]:
    """The (host, PID, PID start) of the process that owns a run: for a run created by
    ``sync-spool`` (tag ``evalkit.spooled``) the syncing process (``evalkit.spool_host`` / ``_pid`` /
    ``_pid_start``), else the run's own process tags."""
    keys = (HOST_TAG, PID_TAG, PID_START_TAG)
    if SPOOLED_TAG in tags:
        keys = tuple(k.replace("evalkit.", "evalkit.spool_") for k in keys)
    try:
        pid = int(tags[keys[1]]) if keys[1] in tags else None
    except ValueError:
        pid = None
    return tags.get(keys[0]), pid, tags.get(keys[2])


def stale_runs(tracking_uri: str, older_than: float, *, any_host: bool = False,
               experiments: list[str] | None = None, now: float | None = None) -> list[Stale]:
    """The RUNNING evalkit runs (tag ``evalkit.version``, or ``evalkit.spooled``: created by
    ``sync-spool``, owned by the syncing process) started more than ``older_than`` seconds
    ago whose process is gone (this host), or with ``any_host`` on any host.

    Raises:
        InputError (exit 2): an unknown experiment name.
        InfraError (exit 3): the store cannot be read.
    """
    from evalkit.tracking.redact import redact_uri, store_reason
    from evalkit.tracking.store import client_for, ensure_store

    ensure_store(tracking_uri)
    client = client_for(tracking_uri)
    here = socket.gethostname()
    now = time.time() if now is None else now
    try:
        if experiments:
            exps = []
            for name in experiments:
                exp = client.get_experiment_by_name(name)
                if exp is None:
                    raise InputError(f"--experiment: no experiment named {name!r} in {redact_uri(tracking_uri)}")
                exps.append(exp)
        else:
            exps = list(client.search_experiments(max_results=50000))
        names = {e.experiment_id: e.name for e in exps}
        runs, token = [], None
        while names:
            page = client.search_runs(list(names), filter_string="attributes.status = 'RUNNING'",
                                      max_results=1000, page_token=token)
            runs += list(page)
            token = page.token
            if not token:
                break
    except InputError:
        raise
    except Exception as e:
        raise InfraError(f"tracking store {redact_uri(tracking_uri)}: {store_reason(e)}") from None
    out = []
    for r in runs:
        tags = r.data.tags
        if "evalkit.version" not in tags and SPOOLED_TAG not in tags:  # not evalkit's: leave it alone
            continue
        if now - r.info.start_time / 1000 < older_than:
            continue
        host, pid, start = _owner(tags)
        if host == here and pid is not None:
            if pid_alive(pid, start):
                continue
            why = f"process {pid} on {host} is gone"
        elif any_host:
            why = f"process {pid if pid is not None else '?'} on {host or 'an unknown host'} not checked (--any-host)"
        else:
            continue
        out.append(Stale(r.info.run_id, r.info.run_name or tags.get("mlflow.runName", ""), names[r.info.experiment_id],
                         r.info.start_time, host, pid, why))
    return sorted(out, key=lambda s: s.start_time)


def reap(tracking_uri: str, older_than: float, *, any_host: bool = False, experiments: list[str] | None = None,
         dry_run: bool = False) -> list[Stale]:
    """Mark :func:`stale_runs` as KILLED (end time now, tag ``evalkit.reaped``); returns them.

    Raises:
        InputError (exit 2): an unknown experiment. InfraError (exit 3): the store cannot be written.
    """
    from evalkit.tracking.redact import redact_uri, store_reason
    from evalkit.tracking.store import client_for, retry_busy

    stale = stale_runs(tracking_uri, older_than, any_host=any_host, experiments=experiments)
    if dry_run or not stale:
        return stale
    client = client_for(tracking_uri)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for s in stale:
        try:
            retry_busy(lambda: client.set_tag(s.run_id, REAPED_TAG, f"{stamp} by {socket.gethostname()}: {s.why}"))
            retry_busy(lambda: client.set_terminated(s.run_id, "KILLED"))
        except Exception as e:
            raise InfraError(f"tracking store {redact_uri(tracking_uri)}: cannot end run {s.run_id}: "
                             f"{store_reason(e)}") from None
    return stale
