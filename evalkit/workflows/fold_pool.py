"""Cross-fitting folds trained in several processes at once: the same models, sooner.

After fold 1 (where ``--model auto`` chooses the architecture), the folds are independent: fold k
seeds Python, numpy and torch with ``seed + k - 1`` and trains on its own rows only. A fold trained
in another process therefore has the same weights, bit for bit, as one trained here (CPU,
deterministic algorithms, the same ``--threads``); ``tests/test_fold_pool.py`` checks the whole
report against a one-process run.

``--fold-processes`` (``RunConfig.fold_processes``): ``1`` trains the folds one after another in
this process; ``N > 1`` uses this process and ``N - 1`` worker processes (fresh interpreters,
``python -P -m evalkit.workflows.fold_worker``: no state inherited, a caller's script is never
re-run, nothing in the working folder is imported; a stalled one is killed), each taking the next fold when free; ``0`` (auto) is :func:`resolve_fold_processes`. The
workers start first thing, before this process imports torch and reads the data
(:func:`start_early`), so their start-up (importing torch, about 2 s) overlaps both. One of them
trains fold 1's costly candidate while this process sets up the MLflow run (:meth:`FoldPool.prefetch`);
if this process is ready first, it trains fold 2 of that candidate meanwhile, in case it wins
(dropped at the first epoch after it lost). A worker's epochs come back as they end and are logged
under the same keys and steps as a fold trained here; its progress bar is not shown. Work of this
process that does not depend on the folds (logging the dataset, importing what logging the results
needs) waits in :attr:`FoldPool.chores` and is done while the workers train the last folds.

Measured (``benchmarks/bench_run.py``: yeast defaults, tracked, 2 cores): 13.8 s instead of 20.7 s
for the whole run, identical test metrics.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from evalkit.workflows.fold_worker import WorkerDied, _Worker  # noqa: F401  (WorkerDied: part of this API)

#: auto parallelism only when one fold's training is at least this much work (rows x hidden width
#: x epochs, a proxy of multiply-adds): below it, starting a worker (about 2 s) costs more than it saves
MIN_FOLD_WORK = 5e7


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a container's or taskset's limit)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def resolve_fold_processes(config, n_fit: int) -> int:
    """The number of processes that train folds 2..K at once for ``config`` (``fold_processes``).

    An explicit value (>= 1) is kept, capped at ``folds - 1``. Auto (0): ``available_cores() //
    threads`` processes, capped at ``folds - 1``, when the run is cross-fitted on the CPU and one
    fold is at least :data:`MIN_FOLD_WORK` of work (``n_fit`` rows x hidden width x epochs); else 1.

    Args:
        config: a :class:`~evalkit.config.RunConfig` (budget already applied).
        n_fit: training rows of one fold.
    """
    folds_left = max(1, config.folds - 1)
    if config.fold_processes >= 1:
        return min(config.fold_processes, folds_left)
    if config.folds < 2 or config.device == "cuda":
        return 1
    width = 1 if config.model == "linear" else max(1, sum(config.hidden))
    if n_fit * width * config.epochs < MIN_FOLD_WORK:
        return 1
    return max(1, min(available_cores() // max(1, config.threads), folds_left))


#: before the data is read, workers are started when a fold of this many rows would use them (the
#: decision is made again on the real size; workers a small dataset does not need are stopped)
EARLY_ROWS = 400


def _gpu_likely() -> bool:
    """Whether this machine may have a CUDA device, judged without importing torch: an NVIDIA
    driver's control device (Linux; ``/dev/dxg`` under WSL)."""
    return any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/dxg"))


def start_early(config) -> "FoldPool | None":
    """Workers started first thing, before this process imports torch and reads the data, so that
    their start-up (importing torch, about 2 s) overlaps both: a :class:`FoldPool` when ``config``
    would train folds in several processes on a dataset of :data:`EARLY_ROWS` fit rows on the CPU
    (``--device cpu``, or ``auto`` on a machine without an NVIDIA driver), else None. The caller
    decides again on the real data and device, and stops workers it does not need."""
    if config.device != "cpu" and not (config.device == "auto" and not _gpu_likely()):
        return None
    processes = resolve_fold_processes(config, EARLY_ROWS)
    if processes < 2:
        return None
    try:
        return FoldPool(processes - 1, config.threads)
    except OSError:  # no process could be started (a process limit): the folds train one after another
        return None


def train_fold(seed: int, train, held, config, on_epoch: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Train one fold as :func:`evalkit.workflows.experiment._cross_fit` does in its own process:
    seed everything with ``seed``, build ``config.model`` and fit it on ``train`` (early stopping on
    ``held``), calling ``on_epoch(row)`` with each epoch's history row. Returns the best weights
    (``state``) and the ``history``, ``best_epoch`` and ``stopped_early`` of
    :class:`~evalkit.train.TrainResult` (picklable: no model object)."""
    from evalkit.train import seed_everything
    from evalkit.workflows.experiment import _build, _fit

    def emit(kind: str, **data) -> None:
        if kind == "epoch" and on_epoch is not None:
            on_epoch(data["row"])

    seed_everything(seed)
    model, loss_fn = _build(config, train, train.Y)
    res = _fit(model, loss_fn, train, held, config, "cpu", emit, None)
    return {"state": res.model.state_dict(), "history": res.history, "best_epoch": res.best_epoch,
            "stopped_early": res.stopped_early}


class FoldPool:
    """``workers`` worker processes that train folds beside this one (:meth:`run`).

    Use as a context manager: leaving it (also by an exception, Ctrl-C or SIGTERM) kills the
    workers, so no fold trains on after its run ended.
    """

    def __init__(self, workers: int, threads: int, warn: Callable[[str], None] | None = None) -> None:
        """Start ``workers`` worker processes. Raises OSError when one cannot be started (those
        started are stopped). Until the pool is left (or this process exits), SIGTERM raises
        :class:`~evalkit.tracking.Terminated` in the main thread when it had no handler yet, so that
        the workers are stopped and the CLI says ``interrupted (SIGTERM)``."""
        import atexit

        self.warn = warn or (lambda text: None)  # told when a worker dies (its folds train here)
        self._stopping = False  # set when the pool is stopped: workers dying then are expected
        self.workers = workers
        self._workers: list[_Worker] = []
        self._sigterm = _terminate_on_sigterm()
        atexit.register(self.__exit__)  # an exit before the pool is entered (or left) stops them too
        try:
            for _ in range(workers):  # they start now: their imports overlap other work
                self._workers.append(_Worker(threads))
        except OSError:
            self.__exit__(None, None, None)
            raise
        self._prefetched: dict[Any, tuple[threading.Thread, list]] = {}
        self._rows: dict[Any, list[dict]] = {}  # epochs of prefetched jobs so far
        self._sinks: dict[Any, Callable[[dict], None]] = {}  # where further epochs go (take's on_row)
        self._lock = threading.Lock()
        #: work this process does while it would otherwise wait for the workers (:meth:`run_chores`)
        self.chores: deque[Callable[[], None]] = deque()

    def __enter__(self) -> "FoldPool":
        return self

    def __exit__(self, *exc) -> None:
        import atexit

        self._stopping = True
        for w in self._workers:
            w.stop()
        atexit.unregister(self.__exit__)
        if self._sigterm is not None:
            _restore_sigterm(*self._sigterm)
            self._sigterm = None

    def shrink(self, workers: int) -> None:
        """Keep ``workers`` workers (at least 1), stopping the others (before any job was given)."""
        for w in self._workers[max(1, workers):]:
            w.stop()
        self._workers = self._workers[:max(1, workers)]
        self.workers = len(self._workers)

    def prefetch(self, key, args: tuple) -> bool:
        """Start :func:`train_fold` ``(*args)`` on a free worker now (this process goes on with other
        work: the run's tracking set-up); :meth:`take` ``(key)`` collects it. False when every worker
        already has a prefetched job (then nothing was started)."""
        if len(self._prefetched) >= len(self._workers):
            return False
        worker = self._workers[len(self._prefetched)]
        box: list = []
        self._rows[key] = []

        def row(r: dict) -> None:
            with self._lock:
                self._rows[key].append(r)
                sink = self._sinks.get(key)
            if sink is not None:
                sink(r)

        def call() -> None:
            try:
                box.append(("ok", worker.call(args, on_row=row)))
            except BaseException as e:
                box.append(("error", e))

        t = threading.Thread(target=call, daemon=True, name="evalkit-fold-prefetch")
        if not self._start_thread(t):
            return False
        self._prefetched[key] = (t, box)
        return True

    def pending(self, key) -> bool:
        """Whether the job :meth:`prefetch` started under ``key`` is still running."""
        job = self._prefetched.get(key)
        return job is not None and job[0].is_alive()

    def follow(self, key, on_row: Callable[[dict], None] | None) -> None:
        """Send the epochs of the job :meth:`prefetch` started under ``key`` to ``on_row(row)``: those
        so far at once, the others as they end (from a helper thread), so that its curve is logged
        live, and a run killed meanwhile keeps it. No-op without such a job or ``on_row``."""
        if key not in self._prefetched or on_row is None:
            return
        with self._lock:
            done = list(self._rows[key])
            self._sinks[key] = on_row
        for r in done:
            on_row(r)

    def take(self, key, on_row: Callable[[dict], None] | None = None):
        """The result of the job :meth:`prefetch` started under ``key`` (waiting for it), or None when
        there is none; ``on_row``: as :meth:`follow` (if not already followed). Raises what the job
        raised."""
        if key not in self._prefetched:
            return None
        self.follow(key, on_row)
        t, box = self._prefetched[key]
        while t.is_alive():
            t.join(0.5)  # short waits: a signal handler still runs in this (main) thread
        status, value = box[0]
        if status == "error" and isinstance(value, WorkerDied):
            if not self._stopping:
                self.warn(f"{value}; training that model in this process instead")
            with self._lock:
                self._sinks.pop(key, None)
            return None  # the caller trains it (its epochs so far were logged: the same steps again)
        if status == "error":
            raise value
        return value

    def run_chores(self, busy: Callable[[], bool] = lambda: True) -> None:
        """Run the queued :attr:`chores` (callables, in order) while ``busy()`` holds; with the
        default, all of them. They are work that must happen in this process at some point and does
        not depend on the folds (logging the dataset, importing what logging the results needs):
        done while the workers train the last folds, they no longer lengthen the run."""
        while self.chores and busy():
            self.chores.popleft()()

    def _settle(self) -> None:
        """Wait for prefetched jobs nobody took (their workers are needed)."""
        for t, _ in self._prefetched.values():
            while t.is_alive():
                t.join(0.5)

    def run(self, items: Iterable[int], local: Callable[[int], Any], remote_args: Callable[[int], tuple],
            on_row: Callable[[int], Callable[[dict], None]] | None = None) -> dict:
        """Work through ``items`` with this process and the workers at once, each taking the next item
        when free: ``local(item)`` runs here, :func:`train_fold` ``(*remote_args(item))`` in a worker,
        whose epochs go to ``on_row(item)(row)`` as they end (from a helper thread). Once no item is
        left for this process, it runs :attr:`chores` while a worker still trains.

        Returns:
            ``{item: ("local", result) | ("remote", train_fold's dict)}``.
        Raises:
            The first (by item) exception of ``local`` or a worker, once every started item ended.
        """
        self.start(items, remote_args, on_row)
        return self.finish(local)

    def start(self, items: Iterable[int], remote_args: Callable[[int], tuple],
              on_row: Callable[[int], Callable[[dict], None]] | None = None) -> None:
        """The workers begin taking ``items`` (:meth:`run`'s first half): this process joins in with
        :meth:`finish`, so it can end other work first (a fold it was already training)."""
        self._settle()
        self._todo = deque(items)
        self._done: dict[int, tuple[str, Any]] = {}
        self._errors: dict[int, BaseException] = {}
        self._queue_lock = threading.Lock()

        def remote(worker: _Worker) -> Callable[[int], tuple[str, Any]]:
            return lambda item: ("remote", worker.call(remote_args(item), on_row=on_row(item) if on_row else None))

        threads = [threading.Thread(target=self._consume, args=(remote(w), BaseException), daemon=True,
                                    name="evalkit-fold-worker") for w in self._workers]
        self._threads = [t for t in threads if self._start_thread(t)]  # the others' folds: this process

    def _start_thread(self, t: threading.Thread) -> bool:
        """Start ``t``; False (with a warning, once) when no thread can be started (a process limit):
        the work it would have handed to a worker is done in this process instead."""
        try:
            t.start()
            return True
        except RuntimeError as e:
            if not getattr(self, "_no_threads", False):
                self._no_threads = True
                self.warn(f"cannot start a thread ({e}); the folds train one after another in this process")
            return False

    @property
    def started(self) -> bool:
        """Whether :meth:`start` gave the workers items (and :meth:`finish` has not collected them)."""
        return bool(getattr(self, "_threads", None))

    def _take_item(self) -> int | None:
        with self._queue_lock:
            return self._todo.popleft() if self._todo and not self._errors else None

    def _consume(self, compute: Callable[[int], tuple[str, Any]], catch: type[BaseException]) -> None:
        """Take items until none is left (or one failed), each ``compute(item)`` into the results."""
        while (item := self._take_item()) is not None:
            try:
                result = compute(item)
            except WorkerDied as e:  # its fold goes back to the queue: this process trains it
                if not self._stopping:
                    self.warn(f"{e}; its folds train in this process instead")
                with self._queue_lock:
                    self._todo.appendleft(item)
                return
            except catch as e:
                with self._queue_lock:
                    self._errors[item] = e
                return
            with self._queue_lock:
                self._done[item] = result

    def finish(self, local: Callable[[int], Any]) -> dict:
        """This process takes the items :meth:`start` queued, ``local(item)`` each, alongside the
        workers; then runs :attr:`chores` while a worker still trains, and waits for them. Returns
        and raises as :meth:`run`."""
        threads = self._threads

        def work_here() -> None:  # Ctrl-C / SIGTERM propagate from here (only Exception is recorded)
            self._consume(lambda item: ("local", local(item)), Exception)

        try:
            work_here()
            self.run_chores(busy=lambda: any(t.is_alive() for t in threads))  # instead of waiting
            for t in threads:
                while t.is_alive():
                    t.join(0.5)  # short waits: a signal handler still runs in this (main) thread
            work_here()  # folds handed back by a worker that died
        except BaseException:  # Ctrl-C / SIGTERM here: kill the workers, then let it propagate
            self.__exit__()
            raise
        finally:
            self._threads = []
        if self._errors:
            raise self._errors[min(self._errors)]
        return self._done


def _terminate_on_sigterm():
    """In the main thread, when SIGTERM has no Python handler: one raising
    :class:`~evalkit.tracking.Terminated`. Returns ``(previous, handler)`` to restore, else None."""
    import signal

    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return None

    def handler(signum, frame):
        from evalkit.tracking import Terminated

        raise Terminated("terminated by SIGTERM")

    signal.signal(signal.SIGTERM, handler)
    return signal.SIG_DFL, handler


def _restore_sigterm(previous, handler) -> None:
    """Put ``previous`` back if ``handler`` (of :func:`_terminate_on_sigterm`) is still in place."""
    import signal

    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is handler:
        signal.signal(signal.SIGTERM, previous)
