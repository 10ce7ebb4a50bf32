"""``evalkit sync-spool``: upload the spool (:mod:`evalkit.tracking.spool`) exactly once.

* One sync at a time per spool folder: a lock file (``filelock``, in the temporary folder, keyed by
  the spool folder's real path, so the spool itself holds only entries).
* Each entry uploads once: the run it goes to carries ``evalkit.spool_id`` = the entry's folder
  name, and ``evalkit.spool_synced`` once complete. Before uploading, a sync looks that run up
  (``search_runs`` by tag): a complete run means the entry was uploaded already (restored from a
  backup, or a crash between upload and delete), so the entry is removed without a new run; an
  incomplete one (an earlier sync failed midway and ended it FAILED) is resumed.
* Each entry is validated whole before any run is created (:func:`evalkit.tracking.spool.load`);
  a corrupt one is moved to ``corrupt/`` with its reason, never uploaded.

Nothing here prints: :func:`sync_spool` returns one :class:`Outcome` per entry, the CLI renders them.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from evalkit.tracking.spool import (
    SPOOL_ID_TAG,
    SPOOLED_TAG,
    SYNCED_TAG,
    CorruptEntry,
    Entry,
    entry_dirs,
    load,
    quarantine,
    remove,
    spool_roots,
)

UPLOADED, SKIPPED, CORRUPT, FAILED, LOCKED = "uploaded", "skipped", "corrupt", "failed", "locked"


@dataclass(frozen=True)
class Outcome:
    """What a sync did with one spool entry (or, for ``locked``, one spool folder).

    ``status``: ``uploaded``; ``skipped`` (uploaded before: the entry was only removed); ``corrupt``
    (moved to ``corrupt/``, nothing uploaded); ``failed`` (kept for the next sync: store down, or it
    failed midway and its run was ended FAILED); ``locked`` (another sync is running on ``path``).
    ``run_id`` / ``experiment`` / ``store`` (redacted URI): where it went, when known. ``reason``:
    why it is corrupt / failed / locked (one line).
    """

    path: Path
    status: str
    reason: str = ""
    run_id: str | None = None
    experiment: str | None = None
    store: str | None = None


def lock_path(base: Path) -> Path:
    """The lock file of spool folder ``base``: ``<tmp>/evalkit-spool-locks-<uid>/<hash of its real path>.lock``."""
    key = hashlib.sha1(os.path.realpath(base).encode()).hexdigest()[:16]
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"evalkit-spool-locks-{uid}" / f"{key}.lock"


def _target(explicit: str | None, recorded: str) -> str:
    """Where an entry goes: ``explicit`` > the store it was meant for (unless that URI held
    credentials, which are never written to disk) > the default local store."""
    from evalkit.tracking.store import resolve_tracking_uri

    return resolve_tracking_uri(explicit or (recorded if recorded and "***@" not in recorded else None))


def _find_run(client, target: str, entry: Entry):
    """The run ``entry`` goes to, if it exists: the original run (created before the store failed)
    or a run an earlier sync created for it (tag ``evalkit.spool_id``). Returns the mlflow Run or None."""
    from mlflow.entities import ViewType
    from mlflow.exceptions import MlflowException

    from evalkit.tracking.store import get_or_create_experiment

    if entry.run.get("run_id"):
        try:
            return client.get_run(entry.run["run_id"])
        except MlflowException:
            pass  # not in this store: a new run
    exp_id = get_or_create_experiment(target, entry.run["experiment"])
    found = client.search_runs([exp_id], filter_string=f"tags.`{SPOOL_ID_TAG}` = '{entry.id}'",
                               run_view_type=ViewType.ALL, max_results=1)
    return found[0] if found else None


def _upload(client, run_id: str, entry: Entry) -> None:
    """Log ``entry``'s params, tags, metrics and artifacts to ``run_id``, mark it synced, end it."""
    from mlflow.entities import Metric, Param, RunTag

    client.set_tag(run_id, SPOOL_ID_TAG, entry.id)
    params = [Param(k, str(v)) for k, v in entry.params.items()]
    tags = [RunTag(k, str(v)) for k, v in entry.tags.items()]
    metrics = [Metric(m["key"], float(m["value"]), int(m["timestamp"]), int(m["step"])) for m in entry.metrics]
    for i in range(0, max(len(params), len(tags), len(metrics)), 100):
        client.log_batch(run_id, metrics=metrics[i : i + 100], params=params[i : i + 100], tags=tags[i : i + 100])
    if entry.artifacts.is_dir() and any(entry.artifacts.iterdir()):
        client.log_artifacts(run_id, str(entry.artifacts))
    client.set_tag(run_id, SYNCED_TAG, "true")
    client.set_terminated(run_id, entry.run["status"], end_time=entry.run.get("end_time"))


def _create(client, target: str, entry: Entry) -> str:
    """A new run for ``entry`` (its original start time and name), tagged as spooled with its spool
    id and the syncing process (``evalkit.spool_host`` / ``_pid`` / ``_pid_start``, so
    ``evalkit runs reap`` can end it if this process dies midway)."""
    from evalkit.tracking.reap import process_tags
    from evalkit.tracking.store import get_or_create_experiment

    exp_id = get_or_create_experiment(target, entry.run["experiment"])
    owner = {k.replace("evalkit.", "evalkit.spool_"): v for k, v in process_tags().items()}
    tags = {SPOOLED_TAG: "true", SPOOL_ID_TAG: entry.id, **owner}
    return client.create_run(exp_id, start_time=entry.run.get("start_time"), run_name=entry.run.get("run_name"),
                             tags=tags).info.run_id


def _why(e: BaseException) -> str:
    from evalkit.errors import InfraError
    from evalkit.tracking.redact import store_reason

    return str(e) if isinstance(e, InfraError) else store_reason(e)


def _end_failed(client, run_id: str) -> None:
    """End a run a sync failed to complete as FAILED (best effort: the store may be down)."""
    try:
        client.set_terminated(run_id, "FAILED")
    except Exception:  # noqa: BLE001, S110 -- the store failing is why we are here; the next sync ends it
        pass


def _removed(entry: Entry, status: str, run_id: str, store: str) -> Outcome:
    """Remove an entry whose run is complete; the outcome says so (or why it could not be removed:
    the next sync skips it, as its run is complete)."""
    try:
        remove(entry)
        reason = ""
    except OSError as e:
        reason = f"could not remove the entry ({e.strerror or e}); the next sync skips it"
    return Outcome(entry.path, status, reason, run_id, entry.run["experiment"], store)


def _sync_one(entry: Entry, explicit: str | None) -> Outcome:
    from evalkit.tracking.redact import redact_uri
    from evalkit.tracking.store import client_for, ensure_store

    target = _target(explicit, entry.run.get("tracking_uri") or "")
    store, exp = redact_uri(target), entry.run["experiment"]
    try:
        ensure_store(target)  # InfraError: this entry's store is down; the others may be up
        client = client_for(target)
        run = _find_run(client, target, entry)
    except Exception as e:  # noqa: BLE001 -- any store fault: this entry is kept, the others go on
        return Outcome(entry.path, FAILED, _why(e), None, exp, store)
    run_id = run.info.run_id if run is not None else None
    if run is not None and run.data.tags.get(SPOOL_ID_TAG) == entry.id and run.data.tags.get(SYNCED_TAG) == "true":
        if run.info.status == "RUNNING":  # the earlier sync stopped between its last two calls
            client.set_terminated(run_id, entry.run["status"], end_time=entry.run.get("end_time"))
        return _removed(entry, SKIPPED, run_id, store)
    try:
        run_id = run_id or _create(client, target, entry)
        _upload(client, run_id, entry)
    except Exception as e:  # noqa: BLE001 -- any store fault: the run is ended FAILED, the entry kept
        if run_id:
            _end_failed(client, run_id)
        return Outcome(entry.path, FAILED, _why(e), run_id, exp, store)
    return _removed(entry, UPLOADED, run_id, store)


def _sync_folder(base: Path, explicit: str | None) -> list[Outcome]:
    out = []
    for d in entry_dirs(base):
        try:
            entry = load(d)
        except FileNotFoundError:
            continue  # removed meanwhile (e.g. by hand)
        except (CorruptEntry, OSError) as e:
            reason = str(e) if isinstance(e, CorruptEntry) else f"unreadable ({e.strerror or e})"
            try:
                out.append(Outcome(quarantine(d, reason), CORRUPT, reason))
            except OSError as e2:
                out.append(Outcome(d, CORRUPT, f"{reason}; kept in place: cannot move it aside ({e2.strerror or e2})"))
            continue
        out.append(_sync_one(entry, explicit))
    return out


def sync_spool(tracking_uri: str | None = None, root: str | os.PathLike | None = None, *,
               timeout: float | None = None, lock_wait: float = 10.0) -> list[Outcome]:
    """Upload every spool entry exactly once and remove it. A run created before the store failed is
    resumed (its missing params / metrics / tags / artifacts added and its final status set);
    otherwise a new run is created with the original start and end times.

    One sync at a time per spool folder: a second sync waits up to ``lock_wait`` seconds for the
    first, then leaves that folder to it (one ``locked`` outcome; the CLI says "another sync is
    running" and exits 0) -- a cron job or a systemd ``ExecStartPre`` should neither fail nor hang
    because an earlier sync is still uploading, and the running sync uploads everything anyway.

    Args:
        tracking_uri: upload everything here; default ``$MLFLOW_TRACKING_URI``, else the store each
            entry was meant for (unless that URI held credentials, which are never written to disk),
            else the default local store.
        root: the spool folder (default :func:`evalkit.tracking.spool.spool_roots`: also the fallbacks).
        timeout: seconds to wait for an HTTP store (sets MLflow's HTTP limits); None: leave them.
        lock_wait: seconds to wait for another sync of the same spool folder (>= 0).
    Returns:
        One :class:`Outcome` per entry (oldest first, folder by folder) and per locked folder.
    Raises:
        InputError (exit 2): a malformed ``tracking_uri``. InfraError (exit 3): the lock folder
            cannot be created. An unreachable store does not raise: its entries are ``failed``, kept.
    """
    from filelock import FileLock, Timeout

    from evalkit.errors import write_error
    from evalkit.tracking.store import configure_http

    if timeout is not None:
        configure_http(timeout)
    explicit = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    out: list[Outcome] = []
    for base in spool_roots(root):
        if not entry_dirs(base):
            continue
        lock = lock_path(base)
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise write_error(lock.parent, e, "cannot create the spool lock folder") from None
        try:
            with FileLock(lock, timeout=lock_wait):
                out += _sync_folder(base, explicit)
        except Timeout:
            out.append(Outcome(base, LOCKED, f"another sync is running on {base} (waited {lock_wait:g} s)"))
    return out
