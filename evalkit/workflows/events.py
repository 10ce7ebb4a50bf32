"""Progress events: how workflows tell a caller what is happening without printing.

A workflow takes ``on_event`` (any callable taking an :class:`Event`) and reports through it; with no
callback it is silent. The CLI's :class:`evalkit.cli.ui.ConsoleRenderer` turns events into tables,
progress bars and notes; a notebook or scheduler may log them, collect them, or ignore them.

Event kinds and their ``data`` keys:

====================  ==========================================================================
``dataset``           ``splits`` (:class:`evalkit.data.core.Splits`, the summary table)
``warning``           ``text``
``note``              ``text``
``fold``              ``k``, ``folds``, ``n_train``, ``n_out_of_fold``
``train_start``       ``epochs`` (maximum), ``monitor``
``epoch``             ``row`` (``epoch``, ``train_loss``, ``val_loss``, optional ``val_metric``)
``train_end``         ``best_epoch``, ``epochs_run``, ``stopped_early``
``report``            ``report``, ``title``, ``per_class`` (bool or ``"all"``)
``tracked``           ``run_id``, ``experiment``, ``tracking_uri`` (redacted), ``registered_model``
``written``           ``path``, ``what``
``grid_cell``         ``i``, ``n``, ``label`` (a cell starts; sequential executor only)
``grid_cell_done``    ``i``, ``n``, ``label``, ``values``, ``seconds``, ``run_id``, ``report`` (a cell ended)
``grid_summary``      ``stats``, ``title``
``grid_done``         ``parent_run_id``, ``runs``, ``experiment``
``gates``             ``block``
====================  ==========================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

EventCallback = Callable[["Event"], None]


@dataclass(frozen=True)
class Event:
    """One thing a workflow reports: ``kind`` (see the module table) and its ``data``."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)


class Emitter:
    """Calls ``on_event`` (if any) with an :class:`Event`: ``emit("note", text="...")``."""

    def __init__(self, on_event: EventCallback | None = None):
        self.on_event = on_event

    def __call__(self, kind: str, **data: Any) -> None:
        if self.on_event is not None:
            self.on_event(Event(kind, data))


def make_emitter(on_event: EventCallback | None = None) -> Emitter:
    """An :class:`Emitter` for ``on_event`` (silent without one). Workflows only emit events; to
    render them as the CLI does, pass ``on_event=evalkit.cli.ui.ConsoleRenderer(Console())``."""
    return on_event if isinstance(on_event, Emitter) else Emitter(on_event)
