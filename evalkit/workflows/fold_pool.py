"""Worker processes as a :class:`concurrent.futures.Executor`: fresh interpreters that run picklable calls.

:class:`FoldPool` knows nothing about experiments. ``submit(fn, *args, **kwargs)`` returns a
:class:`~concurrent.futures.Future`; a free worker process runs ``fn(*args, **kwargs)`` and sends the
result (or the exception, raised as itself by ``Future.result()``) back. With ``on_event=callback``,
``fn`` is also given ``emit``: an :class:`~evalkit.workflows.events.Emitter` whose events are sent
back as they happen and passed to ``callback`` (from one of the pool's threads).

Why fresh interpreters (``python -P -m evalkit.workflows.fold_pool``) and not ``multiprocessing``: a
worker imports evalkit only, never the caller's ``__main__``, so a user's script without an
``if __name__ == "__main__"`` guard is never re-run; ``-P`` (and ``PYTHONSAFEPATH=1`` for anything it
starts) keeps the working directory off ``sys.path``, so no ``evalkit/`` or ``typing_extensions.py``
lying in the caller's folder is imported.

Failure behaviour: a worker that dies (killed, out of memory) or stops answering (no heartbeat for
:data:`STALL_SECONDS`: SIGSTOP, a hung system call) fails its future with :class:`WorkerDied` and is
gone; when no worker is left, calls still queued fail the same way. The caller decides what to do
(the training stage trains such a fold in its own process, with a warning). Leaving the ``with``
block (or :meth:`FoldPool.shutdown`) kills the workers, so nothing trains on after its run ended.
"""

from __future__ import annotations

import os
import pickle
import select
import struct
import sys
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

#: a busy worker says it is alive this often (seconds)
HEARTBEAT_SECONDS = 1.0
#: a worker silent this long (no heartbeat, no event, no result) is stopped as hung (seconds)
STALL_SECONDS = 60.0


class WorkerDied(RuntimeError):
    """A worker process ended or stopped answering before its call returned (killed, crashed, hung,
    or could not start); its call can be run in this process instead."""


class NoWorkerLeft(WorkerDied):
    """Every worker process of the pool died (each one's own :class:`WorkerDied` said why): a call
    still queued, or submitted after, fails with this."""


class PoolUnavailable(OSError):
    """No worker process (or the thread that talks to it) could be started: a process or thread limit."""


def _send(stream, lock: threading.Lock, message) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    with lock:
        stream.write(struct.pack("<Q", len(data)) + data)
        stream.flush()


def _read_exact(fd: int, n: int, timeout: float | None) -> bytes:
    """``n`` bytes from ``fd``, each wait at most ``timeout`` seconds (None: no limit). Raises
    EOFError at the end of the stream, TimeoutError when the peer is silent."""
    chunks, left = [], n
    while left:
        if timeout is not None and not select.select([fd], [], [], timeout)[0]:
            raise TimeoutError
        chunk = os.read(fd, left)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _receive(fd: int, timeout: float | None):
    (size,) = struct.unpack("<Q", _read_exact(fd, 8, timeout))
    return pickle.loads(_read_exact(fd, size, timeout))


def child_environment() -> dict[str, str]:
    """The environment of a child interpreter: ``PYTHONSAFEPATH=1`` (what ``-P`` does, inherited by
    anything it starts in turn) and evalkit importable as in this process (also from a source tree)."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ, PYTHONPATH=path, PYTHONSAFEPATH="1")


class _Worker:
    """One worker process: length-prefixed pickles in on its stdin, ``("event", Event)``,
    ``("alive", None)``, then ``("ok", result)`` or ``("error", exception)`` out on its stdout. It
    ignores Ctrl-C (the parent stops it) and exits when its stdin closes (the parent died)."""

    def __init__(self, initializer: tuple) -> None:
        import subprocess
        import tempfile

        self.log = tempfile.TemporaryFile()  # its stderr: shown if it dies
        self.proc = subprocess.Popen([sys.executable, "-P", "-m", "evalkit.workflows.fold_pool"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     env=child_environment())
        self._lock = threading.Lock()
        _send(self.proc.stdin, self._lock, initializer)
        self.retired = False  # set by FoldPool.shrink: its thread takes no call
        self.gone = False  # stopped (or found dead): it takes no further call

    def call(self, request: tuple, on_event: Callable | None, stall: float) -> Any:
        """Run ``request`` (``(fn, args, kwargs, with_events)``) in the worker and return its result."""
        try:
            _send(self.proc.stdin, self._lock, request)
            while True:
                status, value = _receive(self.proc.stdout.fileno(), stall)
                if status == "event" and on_event is not None:
                    on_event(value)
                elif status in ("ok", "error"):
                    break
        except TimeoutError:
            self.stop()
            raise WorkerDied(f"a fold worker process stopped answering (no sign of life for {stall:.0f} s); "
                             "it was stopped") from None
        except (EOFError, OSError, pickle.UnpicklingError, struct.error):
            raise self._died() from None
        if status == "error":
            raise value
        return value

    def _died(self) -> WorkerDied:
        try:
            self.proc.wait(timeout=5)
        except Exception:  # still running (its pipe broke): it goes now
            self.stop()
        self.log.seek(0)
        tail = self.log.read().decode(errors="replace").strip().splitlines()[-5:]
        return WorkerDied(f"a fold worker process died (exit code {self.proc.returncode}): "
                          + (" | ".join(tail) or "no output"))

    def stop(self) -> None:
        self.gone = True
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.log):
            try:
                f.close()
            except OSError:
                pass


class FoldPool(Executor):
    """``workers`` worker processes, each running the next submitted call when free (see the module).

    Raises:
        PoolUnavailable: a worker process or its thread could not be started (those started are stopped).
    """

    def __init__(self, workers: int, *, initializer: Callable | None = None, initargs: tuple = (),
                 stall_seconds: float = STALL_SECONDS) -> None:
        """Start ``workers`` worker processes; each runs ``initializer(*initargs)`` (picklable) first."""
        self._queue: deque[tuple[Future, tuple, Callable | None]] = deque()
        self._cv = threading.Condition()
        self._closed = False
        self._stall = stall_seconds
        self._workers: list[_Worker] = []
        try:
            for _ in range(workers):  # they start now: their imports overlap the caller's work
                self._workers.append(_Worker((initializer, initargs)))
            self._threads = [threading.Thread(target=self._serve, args=(w,), daemon=True, name="evalkit-fold-worker")
                             for w in self._workers]
            for t in self._threads:
                t.start()
        except (OSError, RuntimeError) as e:  # fork / exec / "can't start new thread"
            self.shutdown()
            raise PoolUnavailable(f"no fold worker could be started: {e}") from e

    @property
    def workers(self) -> int:
        """Worker processes that take calls (not stopped, not found dead)."""
        return sum(not w.gone for w in self._workers)

    def submit(self, fn, /, *args, on_event: Callable | None = None, **kwargs) -> Future:
        """Queue ``fn(*args, **kwargs)`` (``fn`` picklable: a module-level function) for the next free
        worker. With ``on_event``, ``fn`` also gets ``emit=`` and its events reach ``on_event``."""
        future: Future = Future()
        with self._cv:
            if self._closed:
                raise RuntimeError("cannot submit to a pool that was shut down")
            if not self.workers:
                future.set_exception(NoWorkerLeft("no fold worker process is left"))
                return future
            self._queue.append((future, (fn, args, kwargs, on_event is not None), on_event))
            self._cv.notify()
        return future

    def _serve(self, worker: _Worker) -> None:
        """One thread per worker: take the next call (skipping cancelled ones), run it, set the future."""
        while True:
            with self._cv:
                while not self._queue and not self._closed and not worker.retired:
                    self._cv.wait()
                if self._closed or worker.retired:
                    return
                future, request, on_event = self._queue.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(worker.call(request, on_event, self._stall))
            except WorkerDied as e:
                future.set_exception(e)
                worker.stop()
                self._fail_queued_if_no_worker()
                return
            except BaseException as e:
                future.set_exception(e)

    def _fail_queued_if_no_worker(self) -> None:
        with self._cv:
            if self.workers:
                return
            queued, self._queue = list(self._queue), deque()
        for future, _, _ in queued:
            if future.set_running_or_notify_cancel():
                future.set_exception(NoWorkerLeft("no fold worker process is left"))

    def shrink(self, workers: int) -> None:
        """Keep at most ``workers`` (>= 1) worker processes, stopping the others (before any call)."""
        with self._cv:
            for w in self._workers[max(1, workers):]:
                w.retired = True
            self._cv.notify_all()
        for w in self._workers[max(1, workers):]:
            w.stop()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = True) -> None:
        """Stop every worker now (a running call fails with :class:`WorkerDied`, queued calls are
        cancelled); ``wait`` joins the pool's threads."""
        with self._cv:
            self._closed = True
            queued, self._queue = list(self._queue), deque()
            self._cv.notify_all()
        for future, _, _ in queued:
            future.cancel()
        for w in self._workers:
            w.stop()
        if wait:
            for t in getattr(self, "_threads", []):
                if t.ident is not None:  # started
                    t.join(5)


def _heartbeat(out, lock: threading.Lock, busy: threading.Event) -> None:
    """While the worker runs its initializer or a call, ``("alive", None)`` every :data:`HEARTBEAT_SECONDS`."""
    while True:
        busy.wait()
        threading.Event().wait(HEARTBEAT_SECONDS)
        if busy.is_set():
            _send(out, lock, ("alive", None))


def _serve() -> None:
    """The worker's loop (see :class:`_Worker`)."""
    import signal

    from evalkit.workflows.events import Emitter
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = os.fdopen(os.dup(1), "wb")  # the protocol's channel; anything printed goes to stderr
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    stdin = sys.stdin.buffer.fileno()
    lock, busy = threading.Lock(), threading.Event()
    threading.Thread(target=_heartbeat, args=(out, lock, busy), daemon=True).start()
    initializer, initargs = _receive(stdin, None)
    if initializer is not None:
        busy.set()  # its imports take seconds: a call sent meanwhile must not take the worker for hung
        initializer(*initargs)  # e.g. imports, while the parent does other work
        busy.clear()
    while True:
        try:
            fn, args, kwargs, with_events = _receive(stdin, None)
        except EOFError:
            return
        if with_events:
            kwargs = dict(kwargs, emit=Emitter(lambda event: _send(out, lock, ("event", event))))
        busy.set()
        try:
            reply = ("ok", fn(*args, **kwargs))
        except Exception as e:  # an InputError (diverged) travels back as itself
            reply = ("error", e)
        busy.clear()
        _send(out, lock, reply)


if __name__ == "__main__":
    _serve()
