"""Where the cells of a spec grid run: :class:`SequentialExecutor` (the default: one cell after
another, in this process) or :class:`RayExecutor` (each cell a Ray task, on a local Ray instance or
a cluster). Both make each cell one MLflow child run of the grid's parent run.

Ray does the scheduling, retries and cancellation; this module only submits tasks, collects their
results and keeps the tracking store consistent: a cell whose worker died, or that was cancelled by
SIGTERM / Ctrl-C on the driver, never leaves a run RUNNING (FAILED resp. KILLED).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from typing import Any

from evalkit.config import ExecutorConfig, RunConfig
from evalkit.errors import EvalkitError
from evalkit.workflows.experiment import RunResult, run_experiment
from evalkit.workflows.ray_session import node_tags, start_ray

#: seconds between two looks at the running cells (also how fast SIGTERM / Ctrl-C is acted on)
POLL = 0.5


@dataclass(frozen=True)
class Cell:
    """One grid cell: 1-based ``index`` of ``total``, its ``label`` (``loss=bce seed=0``), its
    ``values`` and the full :class:`RunConfig`."""

    index: int
    total: int
    label: str
    values: dict[str, Any]
    config: RunConfig

    @property
    def tags(self) -> dict[str, str]:
        """The MLflow tags of the cell's run."""
        return {"evalkit.grid": "child", "evalkit.cell": self.label}


@dataclass
class CellOutcome:
    """A finished cell: its :class:`RunResult`, or ``error`` (one line) when it failed after all retries."""

    cell: Cell
    result: RunResult | None = None
    error: str | None = None
    seconds: float = 0.0
    exception: BaseException | None = None

    @property
    def ok(self) -> bool:
        """True when the cell produced a :class:`RunResult` (it did not fail after its retries)."""
        return self.result is not None


@dataclass
class SequentialExecutor:
    """The default: cells run one after another in this process, as nested MLflow runs of the
    active parent. A cell that raises stops the grid (the exception propagates), as it always did."""

    options: ExecutorConfig = field(default_factory=ExecutorConfig)

    def start(self, warm_config: RunConfig | None = None, tracking_uri: str | None = None) -> None:
        """Nothing to start: the cells run in this process."""

    def release(self) -> None:
        """Nothing to release."""

    def close(self) -> None:
        """Nothing to stop."""

    def run(self, cells: list[Cell], *, track: bool, parent_run_id: str | None, tracking_uri: str | None,
            emit) -> list[CellOutcome]:
        """Run ``cells`` in order. Raises whatever a cell raises (InputError, InfraError, ...)."""
        out = []
        for cell in cells:
            emit("grid_cell", i=cell.index, n=cell.total, label=cell.label)
            started = time.perf_counter()
            res = run_experiment(cell.config, track=track, nested=True, on_event=emit, tags=cell.tags)
            out.append(CellOutcome(cell, res, seconds=time.perf_counter() - started))
            cell_done(emit, out[-1])
        return out


def cell_done(emit, outcome: CellOutcome) -> None:
    """Emit ``grid_cell_done`` for a cell that produced a result: its index, label, values, seconds,
    run id and report (the CLI prints one line per cell from it)."""
    cell, res = outcome.cell, outcome.result
    emit("grid_cell_done", i=cell.index, n=cell.total, label=cell.label, values=dict(cell.values),
         seconds=outcome.seconds, run_id=res.run_id, report=res.report)


def _cell_task(config: dict, tags: dict[str, str], track: bool) -> RunResult:
    """The Ray task of one cell: ``run_experiment`` as a top-level run tagged with its parent
    (``mlflow.parentRunId`` in ``tags``) and the Ray node it runs on (``evalkit.ray_node_id``).
    Silent (events stay in the worker). The report travels as a plain dict (a
    :class:`~evalkit.report.Report` refuses the item assignment unpickling does)."""
    return to_wire(run_experiment(RunConfig(**config), track=track, nested=False, tags=tags | node_tags()))


def _warm_task(config: dict, tracking_uri: str | None) -> int:
    """The Ray task that readies one worker before its first cell: the imports a cell needs (torch
    with what torch.optim's first step loads, MLflow, scikit-learn, pandas, torchmetrics,
    matplotlib: ~6 s in a fresh worker process), the dataset's reader and, when
    tracking, the connection to the store (:func:`~evalkit.tracking.ensure_store`, which waits under
    the store's lock while the driver creates a new one). Changes nothing anyone can see; any
    failure is left for the cell itself to report. Returns the worker's pid."""
    from evalkit.workflows.warmups import ray_cell

    ray_cell(config, tracking_uri)
    return os.getpid()


def to_wire(res: RunResult) -> RunResult:
    """``res`` with its report as a plain dict (picklable); :func:`from_wire` undoes it."""
    return replace(res, report=None if res.report is None else dict(res.report))


def from_wire(res: RunResult) -> RunResult:
    """``res`` with its report a :class:`~evalkit.report.Report` again."""
    from evalkit.report import Report

    return replace(res, report=None if res.report is None else Report(res.report))


def error_line(e: BaseException) -> str:
    """One line for a cell's failure: the original exception of a Ray task error."""
    cause = getattr(e, "cause", None) or e
    text = str(cause).strip().splitlines()
    name = type(cause).__name__
    return f"{name}: {text[0]}" if text and not isinstance(cause, EvalkitError) else (text[0] if text else name)


def end_open_children(tracking_uri: str | None, parent_run_id: str | None, status: str) -> list[str]:
    """End every child run of ``parent_run_id`` still RUNNING with ``status`` (KILLED / FAILED);
    returns their ids. Never raises (the store may be the reason we are here)."""
    if not tracking_uri or not parent_run_id:
        return []
    try:
        from evalkit.tracking.store import client_for, retry_busy

        client = client_for(tracking_uri)
        parent = client.get_run(parent_run_id)
        runs = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}' "
                                                "and attributes.status = 'RUNNING'")
        for r in runs:
            retry_busy(lambda: client.set_terminated(r.info.run_id, status))
        return [r.info.run_id for r in runs]
    except Exception:
        return []


@dataclass
class RayExecutor:
    """Cells as Ray tasks (``num_cpus`` / ``num_gpus`` per cell, ``max_retries`` with
    ``retry_exceptions``), at most ``max_concurrent`` in flight. Each task's run is a top-level MLflow
    run tagged ``mlflow.parentRunId`` = the grid's parent (MLflow's nesting across processes).

    :meth:`start` starts (or joins) Ray early and warms one worker per concurrent cell while the
    driver does its own set-up; :meth:`close` shuts down a Ray instance started here. :meth:`run`
    starts Ray itself when :meth:`start` was not called (and then closes it when done).
    """

    options: ExecutorConfig
    _ray: Any = field(default=None, init=False, repr=False)
    _started_here: bool = field(default=False, init=False)
    _warming: list = field(default_factory=list, init=False, repr=False)
    _stopping: Any = field(default=None, init=False, repr=False)

    def start(self, warm_config: RunConfig | None = None, tracking_uri: str | None = None) -> None:
        """Start or join Ray now (idempotent) and, given ``warm_config`` (the first cell's config),
        submit one warm-up task per concurrent cell (:func:`_warm_task`): a fresh worker's imports
        and first store connection (~5 s) then overlap the driver's set-up instead of delaying the
        first cells. Raises InputError / InfraError as :func:`start_ray`."""
        if self._ray is not None:
            return
        self._ray, self._started_here = start_ray(self.options)
        if warm_config is None:
            return
        opts = self.options
        slots = int(self._ray.cluster_resources().get("CPU", 1) // max(opts.cpus_per_cell, 1e-9)) or 1
        n = min(opts.max_concurrent or slots, slots)
        warm = self._ray.remote(_warm_task).options(num_cpus=opts.cpus_per_cell, num_gpus=opts.gpus_per_cell)
        cfg = warm_config.model_copy(update={"output": None}).model_dump()
        self._warming = [warm.remote(cfg, tracking_uri) for _ in range(max(1, n))]

    def release(self) -> None:
        """Start shutting down the Ray instance started here in a thread (about 1.5 s: its processes
        exit) while the caller summarises the grid; :meth:`close` waits for it. Call it only when no
        task is left."""
        import threading

        ray, self._ray, self._warming = self._ray, None, []
        if ray is not None and self._started_here and ray.is_initialized():
            self._stopping = threading.Thread(target=ray.shutdown, name="evalkit-ray-shutdown", daemon=True)
            self._stopping.start()

    def close(self) -> None:
        """Shut down the Ray instance started here (a joined cluster stays up), or wait for the
        shutdown :meth:`release` began; idempotent."""
        ray, self._ray, self._warming = self._ray, None, []
        if ray is not None and self._started_here and ray.is_initialized():
            ray.shutdown()
        if self._stopping is not None:
            self._stopping.join()
            self._stopping = None

    def run(self, cells: list[Cell], *, track: bool, parent_run_id: str | None, tracking_uri: str | None,
            emit) -> list[CellOutcome]:
        """Run ``cells`` on Ray; a cell that still fails after its retries is an outcome with ``error``.

        SIGTERM / Ctrl-C (``KeyboardInterrupt``): the outstanding tasks are cancelled (force), every
        child run still RUNNING ends KILLED, Ray is shut down (if started here) and the interrupt is
        re-raised (the parent run then ends KILLED). Raises InputError / InfraError from
        :func:`start_ray`.
        """
        owns = self._ray is None  # not started by the caller: start it here, close it when done
        self.start()
        ray = self._ray
        opts = self.options
        threads = max(1, int(opts.cpus_per_cell))
        remote = ray.remote(_cell_task).options(num_cpus=opts.cpus_per_cell, num_gpus=opts.gpus_per_cell,
                                                max_retries=opts.max_retries, retry_exceptions=True)
        cpus = int(ray.cluster_resources().get("CPU", 0))
        where = f"Ray cluster {opts.address} ({cpus} CPUs)" if opts.address else f"local Ray instance ({cpus} CPUs)"
        emit("note", text=f"{len(cells)} cells on {where}, {opts.cpus_per_cell:g} CPU(s) per cell"
                          + (f", at most {opts.max_concurrent} at once" if opts.max_concurrent else ""))
        queue = list(cells)
        pending: dict[Any, tuple[Cell, float]] = {}
        outcomes: dict[int, CellOutcome] = {}
        limit = opts.max_concurrent or len(cells)
        terminated, restore = watch_sigterm()
        try:
            while queue or pending:
                while queue and len(pending) < limit:
                    cell = queue.pop(0)
                    # a cell holds --cpus-per-cell CPUs: its folds train one after another unless set
                    cfg = cell.config.model_copy(update={"output": None, "threads": threads,
                                                         "fold_processes": cell.config.fold_processes or 1})
                    tags = cell.tags | ({"mlflow.parentRunId": parent_run_id} if parent_run_id else {})
                    pending[remote.remote(cfg.model_dump(), tags, track)] = (cell, time.perf_counter())
                    if not queue:  # the last cells run: a core frees up as each ends
                        _in_background(_summary_imports)
                done, _ = ray.wait(list(pending), num_returns=1, timeout=POLL)
                for ref in done:
                    cell, t0 = pending.pop(ref)
                    outcomes[cell.index] = self._collect(ray, ref, cell, t0, emit)
        except KeyboardInterrupt as e:
            self._cancel(ray, list(pending) + self._warming, tracking_uri, parent_run_id)
            from evalkit.tracking import Terminated

            if terminated and not isinstance(e, Terminated):  # Ray re-raised it as a plain KeyboardInterrupt
                raise Terminated("terminated by SIGTERM") from None
            raise
        finally:
            restore()
            if owns:
                self.close()
        end_open_children(tracking_uri, parent_run_id, "FAILED")  # a worker that died mid-run
        return [outcomes[c.index] for c in cells]

    @staticmethod
    def _collect(ray, ref, cell: Cell, t0: float, emit) -> CellOutcome:
        seconds = time.perf_counter() - t0
        try:
            res = from_wire(ray.get(ref))
        except Exception as e:  # RayTaskError (after the retries), WorkerCrashedError, ...
            msg = error_line(e)
            emit("warning", text=f"cell {cell.index}/{cell.total} {cell.label}: FAILED: {msg}")
            return CellOutcome(cell, None, msg, seconds, getattr(e, "cause", None) or e)
        outcome = CellOutcome(cell, res, None, seconds)
        cell_done(emit, outcome)
        return outcome

    def _cancel(self, ray, refs: list, tracking_uri: str | None, parent_run_id: str | None) -> None:
        """Cancel ``refs`` (force: their workers are killed), wait briefly for them to go, then mark the
        runs they left RUNNING as KILLED (again after shutdown, for a run that started meanwhile)."""
        for ref in refs:
            try:
                ray.cancel(ref, force=True)
            except Exception:
                pass
        try:
            ray.wait(refs, num_returns=len(refs), timeout=10)
        except Exception:
            pass
        end_open_children(tracking_uri, parent_run_id, "KILLED")
        self.close()
        end_open_children(tracking_uri, parent_run_id, "KILLED")


def _summary_imports() -> None:
    """What the driver needs after the grid: pandas, the comparison statistics with the paired test's
    ``scipy.stats`` (about 1 s: a Ray driver has not loaded scipy, unlike a process that ran cells)
    and matplotlib (Agg, as :mod:`evalkit.plots` sets it) for the grouped summary and its chart."""
    import pandas  # noqa: F401
    import scipy.stats  # noqa: F401  (evalkit.stats.paired_pvalue)

    import evalkit.compare  # noqa: F401
    from evalkit.plots import _plt

    _plt()


def _in_background(fn) -> None:
    """Run ``fn()`` in a daemon thread (imports the driver needs later, loaded while the last cells
    still run and a core frees up as each ends, instead of after them). Its errors are left for
    the real use to report."""
    import threading

    def call() -> None:
        try:
            fn()
        except Exception:  # pragma: no cover - reported where the module is really used
            pass

    threading.Thread(target=call, name=f"evalkit-{fn.__name__}", daemon=True).start()


def watch_sigterm():
    """Note SIGTERM (``flags`` becomes non-empty) and raise :class:`~evalkit.tracking.Terminated` as
    the run's handler does; Ray may turn that into a plain KeyboardInterrupt inside ``ray.wait``, so
    the flag tells SIGTERM (exit 143) from Ctrl-C (130). Returns ``(flags, restore)``."""
    import signal
    import threading

    flags: list[bool] = []
    if threading.current_thread() is not threading.main_thread():
        return flags, lambda: None
    old = signal.getsignal(signal.SIGTERM)

    def handler(signum, frame):
        from evalkit.tracking import Terminated

        flags.append(True)
        if callable(old):
            old(signum, frame)
        raise Terminated("terminated by SIGTERM")

    signal.signal(signal.SIGTERM, handler)
    return flags, lambda: signal.signal(signal.SIGTERM, old)


def make_executor(options: ExecutorConfig):
    """The executor for ``options.kind``: :class:`SequentialExecutor` or :class:`RayExecutor`."""
    return RayExecutor(options) if options.kind == "ray" else SequentialExecutor(options)
