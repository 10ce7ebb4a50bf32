"""SIGTERM around a tracked run: raised as :class:`~evalkit.tracking.run.Terminated` while the run
works (so it ends KILLED, exit 143), deferred while the run starts or ends.

A SIGTERM that arrived inside ``mlflow.start_run`` / ``mlflow.end_run`` used to abort them: the
run was left RUNNING in the store (or, in a grid, the parent's ``end_run`` ended the child). Deferred,
it is acted on once the store call is done: the run that just started is ended KILLED, the run that
just ended keeps its status and the signal goes on to the previous handler.
"""

from __future__ import annotations

import os
import signal
import threading


class SigtermGuard:
    """The SIGTERM handler of one run (main thread only; elsewhere every method does nothing).

    ``defer()``: from now on a SIGTERM only sets ``pending``; ``arm()``: from now on a SIGTERM
    raises ``Terminated``; ``release()``: the handler from before ``defer()`` again, and a SIGTERM
    that was deferred is sent again to it (unless ``resend=False``). Returns whether one was pending.
    """

    def __init__(self) -> None:
        self.old = None
        self.pending = False
        self.main = threading.current_thread() is threading.main_thread()

    def _set(self, handler) -> None:
        if not self.main:
            return
        previous = signal.signal(signal.SIGTERM, handler)
        if self.old is None:
            self.old = previous

    def defer(self) -> None:
        def note(signum, frame):
            self.pending = True

        self._set(note)

    def arm(self) -> None:
        from evalkit.tracking.run import Terminated

        def handler(signum, frame):
            raise Terminated("terminated by SIGTERM")

        self._set(handler)

    def release(self, resend: bool = True) -> bool:
        pending, self.pending = self.pending, False
        if self.main and self.old is not None:
            signal.signal(signal.SIGTERM, self.old)
            self.old = None
            if pending and resend:
                os.kill(os.getpid(), signal.SIGTERM)  # the previous handler's turn (the CLI's: exit 143)
        return pending
