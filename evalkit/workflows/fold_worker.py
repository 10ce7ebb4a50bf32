"""The worker processes of :class:`~evalkit.workflows.fold_pool.FoldPool`: :class:`_Worker` (the
parent's handle) and :func:`_serve` (the worker's loop, ``python -P -m evalkit.workflows.fold_worker``).

A worker that stops answering (SIGSTOP, a hang) is found by its heartbeat: while it starts and trains it
sends ``("beat", None)`` every :data:`BEAT_SECONDS`; silence for :data:`STALL_SECONDS` gets it killed, and
its fold is trained in the parent (:class:`WorkerDied`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

#: seconds between two heartbeats of a worker that is training
BEAT_SECONDS = 1.0
#: a training worker silent this long (no epoch, no heartbeat) is stalled: it is killed
STALL_SECONDS = 30.0


class WorkerDied(RuntimeError):
    """A worker process ended without an answer (killed, crashed, stalled, or could not start); its
    fold can be trained in this process instead."""


class _Worker:
    """One worker process (``python -P -m evalkit.workflows.fold_worker THREADS``): pickled
    ``train_fold`` arguments in on its stdin; out on its stdout, ``("beat", None)`` every
    :data:`BEAT_SECONDS` while it starts or trains, ``("epoch", row)`` as each epoch ends, then ``("ok",
    result)`` or ``("error", exception)``. A fresh interpreter that imports only evalkit (never the
    caller's ``__main__``, so a script without an ``if __name__ == "__main__"`` guard is safe, and
    with ``-P`` / PYTHONSAFEPATH nothing from the working folder), ignores Ctrl-C (the parent stops
    it) and exits when its stdin closes (the parent died). Raises OSError when it cannot be started."""

    def __init__(self, threads: int) -> None:
        import subprocess
        import sys
        import tempfile

        self.log = tempfile.TemporaryFile()  # its stderr: shown if it dies
        root = str(Path(__file__).resolve().parents[2])  # evalkit importable as here (also from a source tree)
        # -P / PYTHONSAFEPATH: the working folder is not on its sys.path (nor its children's), so a stray
        # evalkit/ or typing_extensions.py there is never imported
        env = dict(os.environ, PYTHONSAFEPATH="1",
                   PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
        self.proc = subprocess.Popen([sys.executable, "-P", "-m", "evalkit.workflows.fold_worker", str(threads)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env)
        self.seen = time.monotonic()  # when it last sent anything
        self.stalled = False

    def call(self, args: tuple, on_row: Callable[[dict], None] | None = None) -> dict:
        """``train_fold(*args)`` in the worker; ``on_row(row)`` (in this thread) for each epoch.

        Raises:
            WorkerDied: the worker died, or stalled (silent for :data:`STALL_SECONDS`: then killed).
            Exception: what ``train_fold`` raised in the worker.
        """
        import pickle

        done = threading.Event()
        self.seen = time.monotonic()
        try:
            threading.Thread(target=self._watch, args=(done,), daemon=True, name="evalkit-fold-watchdog").start()
        except RuntimeError:  # no thread can be started (a process limit): no stall detection
            pass
        try:
            pickle.dump(args, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.proc.stdin.flush()
            while True:
                status, value = pickle.load(self.proc.stdout)
                self.seen = time.monotonic()
                if status == "epoch" and on_row is not None:
                    on_row(value)
                elif status not in ("epoch", "beat"):
                    break
        except (EOFError, BrokenPipeError, OSError, pickle.UnpicklingError):
            raise self._died() from None
        finally:
            done.set()
        if status == "error":
            raise value
        return value

    def _watch(self, done: threading.Event) -> None:
        """Kill the worker when it is silent for :data:`STALL_SECONDS` before ``done`` is set."""
        while not done.wait(min(BEAT_SECONDS, STALL_SECONDS / 4)):
            if time.monotonic() - self.seen > STALL_SECONDS:
                self.stalled = True
                self.proc.kill()  # also a stopped (SIGSTOP) process: its stdout closes, call() sees EOF
                return

    def _died(self) -> WorkerDied:
        self.proc.wait(timeout=5)
        if self.stalled:
            return WorkerDied(f"a fold worker process stalled (no sign of life for {STALL_SECONDS:g} s) and was "
                              "killed")
        self.log.seek(0)
        tail = self.log.read().decode(errors="replace").strip().splitlines()[-5:]
        return WorkerDied(f"a fold worker process died (exit code {self.proc.returncode}): "
                          + (" | ".join(tail) or "no output"))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.log):
            try:
                f.close()
            except OSError:
                pass


def _serve(threads: int) -> None:
    """The worker's loop (see :class:`_Worker`)."""
    import pickle
    import signal
    import sys

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = os.fdopen(os.dup(1), "wb")  # the protocol's channel; anything printed goes to stderr
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    lock = threading.Lock()
    busy = threading.Event()

    def send(message) -> None:
        with lock:
            pickle.dump(message, out, protocol=pickle.HIGHEST_PROTOCOL)
            out.flush()

    def beat() -> None:
        while True:
            time.sleep(BEAT_SECONDS)
            if busy.is_set():
                send(("beat", None))

    busy.set()  # its imports (seconds on a loaded machine) count as busy: a job may already wait
    threading.Thread(target=beat, daemon=True, name="evalkit-fold-heartbeat").start()
    _import_fold_modules(threads)
    busy.clear()
    from evalkit.workflows.fold_pool import train_fold

    stdin = sys.stdin.buffer
    while True:
        try:
            args = pickle.load(stdin)
        except EOFError:
            return
        busy.set()
        try:
            reply = ("ok", train_fold(*args, on_epoch=lambda row: send(("epoch", row))))
        except Exception as e:  # an InputError (diverged) travels back as itself
            reply = ("error", e)
        busy.clear()
        send(reply)


def _import_fold_modules(threads: int) -> None:
    """Everything a fold needs, loaded while the parent trains fold 1; torch set up as the parent's."""
    import torch

    import evalkit.losses  # noqa: F401
    import evalkit.metrics.threshold_free  # noqa: F401
    import evalkit.models  # noqa: F401
    import evalkit.train  # noqa: F401
    import evalkit.workflows.experiment  # noqa: F401
    import torch._dynamo  # noqa: F401  (what torch.optim's first step imports: about 1.3 s, before the first job)

    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)


if __name__ == "__main__":
    import sys

    _serve(int(sys.argv[1]))
