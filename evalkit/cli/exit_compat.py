"""The CLI's fast exit, the one place that calls the interpreter's private exit steps
(``threading._shutdown``, ``atexit._run_exitfuncs``); only ``evalkit.cli.commands.main`` (the
``evalkit`` process itself) uses it. ``EVALKIT_NO_FAST_EXIT=1`` turns it off (a normal interpreter
exit, e.g. when embedding the CLI or debugging an exit hook); ``tests/test_fold_pool.py`` checks it
keeps what a normal exit does."""

from __future__ import annotations

import os
import sys


def exit_now(code) -> None:
    """End the process with ``code`` (a ``SystemExit`` code) without the interpreter's teardown.

    Tearing down the imported libraries (torch, MLflow, SQLAlchemy, pandas, matplotlib: freeing
    every module and running C++ destructors) took 1.8-2.4 s after the last line was printed,
    measured on a tracked ``evalkit run``. Everything the normal exit does that matters still runs,
    in the same order: thread pools are stopped and non-daemon threads joined (``threading._shutdown``,
    what the interpreter calls), ``atexit`` handlers run (logging's flush,
    ``weakref.finalize`` clean-ups such as temporary folders, MLflow's own), stdout and stderr
    are flushed; then ``os._exit``."""
    import atexit
    import threading

    threading._shutdown()  # as at a normal exit: stop thread pools (their exit hooks), join non-daemon threads
    atexit._run_exitfuncs()
    if code is not None and not isinstance(code, int):  # SystemExit("message"): printed, exit 1
        print(code, file=sys.stderr)
        code = 1
    from evalkit.cli.outputs import stdout_lost_note

    code = stdout_lost_note(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (evalkit ... | head)
            pass
    os._exit(code or 0)
