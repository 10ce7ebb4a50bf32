"""The terminal side of ``evalkit sync-spool``: one line per :class:`evalkit.tracking.spool_sync.Outcome`,
a summary, and the exit code (light at import: no mlflow)."""

from __future__ import annotations

from rich.markup import escape


def _line(o) -> str:
    name = escape(o.path.name)
    if o.status == "uploaded":
        return f"uploaded {name} -> run {o.run_id} in experiment '{escape(o.experiment)}' ({escape(o.store)})"
    if o.status == "skipped":
        return f"skipped {name}: already uploaded as run {o.run_id} in experiment '{escape(o.experiment)}'; removed"
    if o.status == "corrupt":
        return f"[red]corrupt[/] {name}: {escape(o.reason)}; moved to {escape(str(o.path.parent))}, not uploaded"
    if o.status == "locked":
        return f"[yellow]{escape(o.reason)}[/]; left to it"
    return f"[red]not uploaded[/] {name}: {escape(o.reason)}"


def show_sync(outcomes, console) -> None:
    """Print one line per outcome (a non-empty reason after an upload too) and the summary
    ``N spooled run(s) uploaded; M left`` (plus skipped / corrupt counts when any).

    Raises:
        InfraError (exit 3): some entries failed (kept for the next sync).
        InputError (exit 2): some entries were corrupt (moved to ``corrupt/``; nothing else failed).
        Another sync running on a folder is not an error (exit 0).
    """
    from evalkit.errors import InfraError, InputError

    count = {s: sum(o.status == s for o in outcomes) for s in ("uploaded", "skipped", "corrupt", "failed")}
    for o in outcomes:
        console.print(_line(o), soft_wrap=True)
        if o.status in ("uploaded", "skipped") and o.reason:
            console.print(f"  [yellow]note:[/] {escape(o.reason)}", soft_wrap=True)
    extra = "".join(f"; {count[s]} {s}" for s in ("skipped", "corrupt") if count[s])
    console.print(f"{count['uploaded']} spooled run(s) uploaded; {count['failed']} left{extra}")
    if count["failed"]:
        raise InfraError(f"sync-spool: {count['failed']} spooled run(s) could not be uploaded; they are kept")
    if count["corrupt"]:
        raise InputError(f"sync-spool: {count['corrupt']} corrupt spool entr{'y' if count['corrupt'] == 1 else 'ies'} "
                         "moved aside (see the reasons above and the .reason files); not uploaded")
