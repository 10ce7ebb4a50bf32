"""SIGTERM and Ctrl-C (SIGINT) around a tracked run: deferred while the run starts or ends, acted on
while it works (SIGTERM raises :class:`~evalkit.tracking.run.Terminated`, Ctrl-C ``KeyboardInterrupt``:
the run ends KILLED, exit 143 / 130).

A signal that arrived inside ``mlflow.start_run`` / ``mlflow.end_run`` (or the flush of the buffered
metrics before it) used to abort them: the run was left RUNNING in the store (or, in a grid, the
parent's ``end_run`` ended the child); a second Ctrl-C while an interrupted run was being ended did the
same and printed a traceback. Deferred, a signal is acted on once the store call is done: the run that
just started is ended KILLED, the run that just ended keeps its status and the signal goes on to the
previous handler (unless the run is ending because of an interrupt already: then it is dropped).
"""

from __future__ import annotations

import os
import signal
import threading

#: the signals a run defers: SIGTERM first (when both arrived, the exit code is 143)
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class SignalGuard:
    """The SIGTERM / SIGINT handlers of one run (main thread only; elsewhere every method does nothing).

    ``defer()``: from now on either signal only joins ``pending``; ``arm()``: from now on a SIGTERM
    raises ``Terminated`` and a SIGINT goes to the handler from before ``defer()`` (Python's: a
    ``KeyboardInterrupt``); ``release()``: the handlers from before ``defer()`` again, and the first
    signal that was deferred is sent again to them (unless ``resend=False``). Returns the pending signals.
    """

    def __init__(self) -> None:
        self.old: dict[int, object] = {}
        self.pending: list[int] = []
        self.main = threading.current_thread() is threading.main_thread()

    def _set(self, signum: int, handler) -> None:
        if not self.main:
            return
        previous = signal.signal(signum, handler)
        self.old.setdefault(signum, previous)

    def defer(self) -> None:
        def note(signum, frame):
            if signum not in self.pending:
                self.pending.append(signum)

        for signum in SIGNALS:
            self._set(signum, note)

    def arm(self) -> None:
        from evalkit.tracking.run import Terminated

        def handler(signum, frame):
            raise Terminated("terminated by SIGTERM")

        self._set(signal.SIGTERM, handler)
        if self.main and signal.SIGINT in self.old:
            signal.signal(signal.SIGINT, self.old[signal.SIGINT])

    def interruption(self) -> KeyboardInterrupt | None:
        """What a pending signal stands for: ``Terminated`` (SIGTERM), ``KeyboardInterrupt`` (Ctrl-C) or None."""
        from evalkit.tracking.run import Terminated

        if signal.SIGTERM in self.pending:
            return Terminated("terminated by SIGTERM")
        return KeyboardInterrupt() if self.pending else None

    def release(self, resend: bool = True) -> list[int]:
        pending, self.pending = self.pending, []
        if self.main and self.old:
            for signum, handler in self.old.items():
                signal.signal(signum, handler)
            self.old = {}
            if pending and resend:  # the previous handler's turn (the CLI's: exit 143 / 130)
                os.kill(os.getpid(), signal.SIGTERM if signal.SIGTERM in pending else signal.SIGINT)
        return pending
