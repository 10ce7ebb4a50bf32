"""``evalkit tune SPEC``: a hyperparameter search on Ray Tune, one MLflow child run per trial.

The spec's ``[search]`` table maps :class:`~evalkit.config.RunConfig` fields to spaces and holds the
:class:`~evalkit.config.SearchConfig` settings::

    [search]
    num_samples = 8
    metric = "validation/map"          # or validation/mean_f2, ...: never a test-split number
    scheduler = "asha"                 # optional early stopping (per-epoch validation metric)
    lr = { loguniform = [1e-4, 1e-2] }
    dropout = { uniform = [0.1, 0.6] }
    loss = { choice = ["bce", "asl"] }
    epochs = { randint = [20, 60] }    # [low, high)

Each trial trains with ``run_experiment(..., evaluate_test=False)``: thresholds and the objective
come from the validation (out-of-fold) scores and the test split is never scored. When the search
ends, the best configuration is trained again (same seed) and evaluated ONCE on the test split; that
report is the parent run's result (``test/...`` metrics, ``report.json``, ``best_config.json``).
"""

from __future__ import annotations

import json
import math
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.config import RunConfig
from evalkit.errors import InputError
from evalkit.workflows.events import EventCallback, make_emitter

#: the per-epoch value trials report for ASHA (the first fold's monitored validation metric; -val_loss
#: when the monitor is val_loss or none, so that higher is always better)
EPOCH_KEY = "epoch_val"


@dataclass(frozen=True)
class TuneResult:
    """What :func:`run_tune` returns.

    Attributes:
        parent_run_id: the search's MLflow parent run (``None`` untracked).
        metric: the objective (``validation/map`` ...). best: the best trial's ``values`` (searched
            fields), ``run_id`` and objective value. trials: one dict per trial (``trial_id``,
            ``values``, ``run_id``, ``objective``, ``status``, ``error``), best first.
        final: the best configuration's :class:`~evalkit.workflows.experiment.RunResult` (its test report).
        seconds: wall time.
    """

    parent_run_id: str | None
    metric: str
    best: dict[str, Any]
    trials: list[dict[str, Any]]
    final: Any
    seconds: float = 0.0
    best_config: RunConfig | None = field(default=None)


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else ",".join(map(str, v)) if isinstance(v, list) else str(v)


def trial_label(values: dict[str, Any]) -> str:
    """``lr=0.00123 loss=asl``: a trial's searched values, readable."""
    return " ".join(f"{k}={_fmt(v)}" for k, v in values.items())


def to_tune_space(space: dict[str, tuple[str, list]]):
    """Ray Tune's ``param_space`` for ``space`` (choices are sampled as indices, so that list values
    such as ``hidden = [[256], [1024]]`` survive). Returns ``(param_space, choices)``."""
    from ray import tune

    out, choices = {}, {}
    for key, (kind, args) in space.items():
        if kind == "choice":
            choices[key] = list(args)
            out[key] = tune.choice(list(range(len(args))))
        elif kind == "uniform":
            out[key] = tune.uniform(float(args[0]), float(args[1]))
        elif kind == "loguniform":
            out[key] = tune.loguniform(float(args[0]), float(args[1]))
        else:
            out[key] = tune.randint(int(args[0]), int(args[1]))
    return out, choices


def _values(params: dict, choices: dict) -> dict[str, Any]:
    return {k: choices[k][v] if k in choices else v for k, v in params.items()}


def _trial(params: dict, *, base: dict, choices: dict, tags: dict, metric: str, asha: bool, track: bool) -> None:
    """One trial (runs in a Ray worker): train, fit thresholds on validation, report the objective."""
    from ray import tune

    from evalkit.workflows.experiment import run_experiment
    from evalkit.workflows.ray_session import node_tags

    values = _values(params, choices)
    config = RunConfig(**(base | values))
    state = {"fold": 1, "last": math.nan}

    def on_event(event) -> None:
        if event.kind == "fold":
            state["fold"] = event.data["k"]
        elif event.kind == "epoch" and state["fold"] == 1:
            row = event.data["row"]
            state["last"] = float(row["val_metric"]) if "val_metric" in row else -float(row["val_loss"])
            if asha:
                tune.report({EPOCH_KEY: state["last"]})

    res = run_experiment(config, track=track, nested=False, on_event=on_event, evaluate_test=False,
                         tags=tags | {"evalkit.trial": trial_label(values)} | node_tags())
    # the objective is in the last report: ASHA may still stop the trial on it, but it is recorded
    tune.report({EPOCH_KEY: state["last"], metric: res.validation[metric.split("/", 1)[1]],
                 "run_id": res.run_id or ""})


def asha_max_t(base: RunConfig, space: dict) -> int:
    """ASHA's ``max_t`` (the horizon its rungs are laid out on, in reports): one report per epoch of
    the first fold, at most the largest ``epochs`` the space can draw, + 1 for the final report.
    ``stop_last_trials`` is off, so ASHA never stops a trial merely for reaching ``max_t``
    (``--model auto`` trains two candidates on fold 1, which report more epochs than that), only for
    ranking low at a rung."""
    epochs = base.epochs
    if "epochs" in space:
        kind, args = space["epochs"]
        epochs = max(epochs, math.ceil(max(args)))
    return epochs + 1


def _check_space(spec, space: dict, overrides: dict[str, Any] | None) -> None:
    """Every choice and both ends of every range make a valid RunConfig, checked as a spec's cells
    are (:meth:`~evalkit.spec.Spec.config`), before Ray starts.

    Raises:
        InputError: ``file:line: search.key: problem`` for the first invalid value (a ``top-k:K``
            choice is checked against the data's label count).
    """
    from evalkit.workflows.grid import check_label_counts

    cells = [{key: v} for key, (kind, args) in space.items() for v in args]
    configs = [spec.config(cell, overrides, section="search") for cell in cells]
    check_label_counts(spec, cells, configs, overrides or {}, section="search")


def _check_data(spec, space: dict, overrides: dict[str, Any] | None) -> None:
    """Read each distinct data choice of the search once, before Ray starts: a bad file (a label cell
    of 2, a ragged row) is one line and exit 2 here, not the same error in every trial (exit 3).

    Raises:
        InputError: the reader's error.
    """
    from evalkit.data import load_dataset

    cells = [{}] + [{key: v} for key in ("dataset", "test_dataset", "reader_options") if key not in (overrides or {})
                    for v in space.get(key, ("", []))[1]]
    seen = set()
    for cell in cells:
        cfg = spec.config(cell, overrides, section="search")
        key = json.dumps([cfg.dataset, cfg.test_dataset, cfg.reader_options], sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            load_dataset(cfg.dataset, cfg.test_dataset, **cfg.reader_options)


def check_tune_inputs(spec, space: dict, overrides: dict[str, Any] | None = None) -> None:
    """The input files of the search exist (:func:`evalkit.inputs.check_run_inputs`): the base
    config's and those of every ``dataset`` / ``test_dataset`` / ``reader_options`` choice of the
    ``[search]`` table. Nothing is read or imported beyond the standard library: the CLI calls it
    before Ray, torch or MLflow load, :func:`run_tune` before any run is created.

    Raises:
        InputError: the first missing file, naming its field (``file:line: search.dataset x.csv: ...``
            for a searched choice).
    """
    from evalkit.inputs import check_run_inputs
    from evalkit.spec import find_line

    check_run_inputs(spec.configs(overrides)[0])
    for key in ("dataset", "test_dataset", "reader_options"):
        for value in space.get(key, ("", []))[1] if key not in (overrides or {}) else []:
            try:
                check_run_inputs(spec.config({key: value}, overrides, section="search"))
            except InputError as e:
                problem = e.named(lambda f, switch=None: f"search.{key}" + ("" if f == key else f".{f}"))
                raise InputError(f"{spec.path}:{find_line(spec.text, (key,), section='search')}: {problem}") from None


def run_tune(path: str, overrides: dict[str, Any] | None = None, *, track: bool = True,
             executor: dict[str, Any] | None = None, num_samples: int | None = None,
             on_event: EventCallback | None = None) -> TuneResult:
    """Search the ``[search]`` space of spec ``path`` on Ray Tune (see the module docstring).

    Trials run as Ray tasks (a local Ray instance, or ``executor["address"]``; ``max_concurrent``,
    ``cpus_per_cell`` / ``gpus_per_cell`` per trial, ``max_retries`` per failing trial), each an MLflow
    child run of the search's parent (tag ``mlflow.parentRunId``) with ``validation/...`` metrics
    and no test metric. The best trial's configuration is then evaluated once on the test split in
    this process; its metrics are logged on the parent run. ``num_samples`` overrides the table's.

    Raises:
        InputError: bad spec / ``[search]`` table / options, a ``[grid]`` in the spec, Ray missing
            (names the extra), a Ray cluster with a local tracking store.
        InfraError: tracking store unreachable, Ray cannot be started or joined.
        InfraError: no trial produced the objective (every trial failed: exit 3, one line).
    """
    from evalkit.workflows.executors import end_open_children
    from evalkit.workflows.experiment import run_experiment
    from evalkit.workflows.grid import resolve_cells_store
    from evalkit.workflows.ray_session import import_ray, start_ray

    emit = make_emitter(on_event)
    started = time.perf_counter()
    spec, search, space, base, options = _load_search(path, overrides, executor, num_samples)
    import_ray()
    store = resolve_cells_store(base, options, track)
    if store is not None:
        base = base.model_copy(update={"tracking_uri": store})
    from evalkit.tracking import RunLogger, TrackingSettings

    logger = RunLogger(TrackingSettings(store, base.tracking_timeout), base.experiment,
                       run_name=base.run_name or f"{Path(path).stem}-tune",
                       tags={"evalkit.command": "tune", "evalkit.grid": "parent", "evalkit.tune": "parent",
                             "evalkit.search.metric": search.metric, "evalkit.spec": str(path)}) if track else None
    with (logger if logger is not None else nullcontext()) as parent:
        parent_id = parent.run_id if parent else None
        if parent:
            _log_search(parent, path, space, search)
        trials = _search(base, space, search, options, parent_id, track, store, emit, start_ray, end_open_children)
        done = [t for t in trials if t["objective"] == t["objective"] and t["objective"] is not None]
        if not done:
            from evalkit.errors import InfraError

            raise InfraError(f"evalkit tune: no trial reported {search.metric}; "
                               + "; ".join(f"{t['label']}: {t['error']}" for t in trials if t["error"])[:500])
        best = done[0]
        emit("note", text=f"best trial {best['label']}: {search.metric} {best['objective']:.4f} "
                          f"(run {best['run_id']}); evaluating it once on the test split")
        best_config = base.model_copy(update=best["values"])
        final = run_experiment(best_config, track=False, on_event=emit)
        if parent:
            _log_best(parent, final, best, best_config, search.metric, len(trials), len(done))
    if parent:
        from evalkit.tracking import redact_uri

        emit("tracked", run_id=parent_id, experiment=base.experiment, tracking_uri=redact_uri(store),
             registered_model=None)
        emit("note", text=f"rank the trials with: evalkit compare --experiment {base.experiment} --parent {parent_id}")
    return TuneResult(parent_id, search.metric, best, trials, final, time.perf_counter() - started, best_config)


def _load_search(path: str, overrides: dict[str, Any] | None, executor: dict[str, Any] | None,
                 num_samples: int | None):
    """``(spec, search settings, space, base config, executor options)`` of the spec at ``path``,
    every choice of the space checked (InputError with file:line) before anything runs."""
    from evalkit.spec import load_spec

    spec = load_spec(path)
    if spec.grid:
        raise InputError(f"{path}: [grid]: `evalkit tune` searches the [search] table; run grids with `evalkit run`")
    search, space = spec.search_space()
    if num_samples is not None:
        search = search.model_copy(update={"num_samples": num_samples})
    base = spec.configs(overrides)[0].model_copy(update={"output": None})
    check_tune_inputs(spec, space, overrides)  # before any data is read, Ray starts or a run is created
    _check_space(spec, space, overrides)
    _check_data(spec, space, overrides)
    return spec, search, space, base, spec.executor_config(executor).model_copy(update={"kind": "ray"})


def _log_search(parent, path: str, space: dict, search) -> None:
    """The search parent's params (the spec, the space, the search settings) and the spec file."""
    parent.log_params({"spec": str(path), "search.space": _json(space), "search.num_samples": search.num_samples,
                       "search.metric": search.metric, "search.scheduler": search.scheduler,
                       "search.seed": search.seed, "executor": "ray"})
    parent.log_artifact(path)


def _log_best(parent, final, best: dict, best_config: RunConfig, metric: str, n_trials: int, n_done: int) -> None:
    """The search parent's results: the best configuration's test metrics (its one test evaluation),
    ``report.json``, ``best_config.json``, ``best.*`` params and the trial counts."""
    from evalkit.report import tracked_metrics

    test = tracked_metrics(final.report, class_metrics=best_config.log_class_metrics)
    parent.log_metrics(test | {f"validation/{k}": v for k, v in final.validation.items()}
                       | {"search/best_objective": best["objective"], "search/trials": n_trials,
                          "search/trials_ok": n_done})
    parent.log_dict(dict(final.report), "report.json")
    parent.log_dict({"values": best["values"], "trial_run_id": best["run_id"], "metric": metric,
                     "objective": best["objective"], "config": best_config.model_dump()}, "best_config.json")
    parent.log_params({f"best.{k}": _fmt(v) for k, v in best["values"].items()})
    parent.set_tags({"evalkit.best_trial_run": str(best["run_id"]), "evalkit.test_evaluations": "1",
                     "evalkit.cells_succeeded": str(n_done), "evalkit.cells_failed": str(n_trials - n_done)})


@contextmanager
def _sigterm_noticed():
    """While in the block, SIGTERM (main thread only) is recorded in the yielded list, then handled as
    before (a :class:`~evalkit.tracking.Terminated` when no Python handler was set): Ray Tune turns
    the interrupt into a plain ``KeyboardInterrupt``, so the caller tells SIGTERM (exit 143) from Ctrl-C."""
    from evalkit.workflows.executors import watch_sigterm

    flags, restore = watch_sigterm()
    try:
        yield flags
    finally:
        restore()


def _json(data) -> str:
    import json

    return json.dumps(data)


def _search(base: RunConfig, space: dict, search, options, parent_id, track: bool, store, emit, start_ray,
            end_open_children) -> list[dict]:
    """Run the Tuner; the trials as dicts, best first. SIGTERM / Ctrl-C: trial runs end KILLED."""
    import functools

    import os

    from evalkit.tracking import Terminated

    terminated: list = []
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: Tune prints nothing (events do)
    ray, started_here = start_ray(options)
    try:
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler
        from ray.tune.search import BasicVariantGenerator

        param_space, choices = to_tune_space(space)
        asha = search.scheduler == "asha"
        tags = {"evalkit.grid": "child", **({"mlflow.parentRunId": parent_id} if parent_id else {})}
        fn = functools.partial(_trial, base=base.model_dump() | {"threads": max(1, int(options.cpus_per_cell)),
                                                             "fold_processes": base.fold_processes or 1},
                               choices=choices, tags=tags, metric=search.metric, asha=asha, track=track)
        scheduler = ASHAScheduler(metric=EPOCH_KEY, mode="max", time_attr="training_iteration",
                                  max_t=asha_max_t(base, space), stop_last_trials=False,
                                  grace_period=search.grace_period, reduction_factor=search.reduction_factor) \
            if asha else None
        where = Path.cwd() / "mlruns" / "ray_tune"
        emit("note", text=f"{search.num_samples} trials on {options.address or 'a local Ray instance'}, "
                          f"objective {search.metric}" + (", ASHA early stopping" if asha else ""))
        tuner = tune.Tuner(
            tune.with_resources(fn, {"cpu": options.cpus_per_cell, "gpu": options.gpus_per_cell}),
            param_space=param_space,
            tune_config=tune.TuneConfig(num_samples=search.num_samples, scheduler=scheduler,
                                        max_concurrent_trials=options.max_concurrent,
                                        search_alg=BasicVariantGenerator(random_state=search.seed)),
            run_config=tune.RunConfig(name=f"evalkit-{parent_id or 'untracked'}", storage_path=str(where), verbose=0,
                                      failure_config=tune.FailureConfig(max_failures=options.max_retries)),
        )
        with _sigterm_noticed() as terminated:
            grid = tuner.fit()
    except KeyboardInterrupt as e:
        end_open_children(store, parent_id, "KILLED")
        if terminated and not isinstance(e, Terminated):  # Tune re-raises a plain KeyboardInterrupt
            raise Terminated("terminated by SIGTERM") from None
        raise
    finally:
        if started_here and ray.is_initialized():
            ray.shutdown()
        end_open_children(store, parent_id, "KILLED")  # trials stopped early by ASHA (their actor ended)
    return _trials(grid, space, choices, search.metric, emit)


def _trials(grid, space: dict, choices: dict, metric: str, emit) -> list[dict]:
    """The Tuner's results as trial dicts (values, label, run id, objective, status, error), best
    first, each told in a note (a failed one in a warning)."""
    trials = []
    for r in grid:
        m = r.metrics or {}
        obj = m.get(metric)
        values = _values({k: (r.config or {}).get(k) for k in space}, choices)
        trials.append({"trial_id": m.get("trial_id"), "values": values, "label": trial_label(values),
                       "run_id": m.get("run_id") or None, "objective": None if obj is None else float(obj),
                       "status": "error" if r.error else ("ok" if obj is not None else "stopped"),
                       "error": None if r.error is None else str(r.error).strip().splitlines()[-1][:300]})
    trials.sort(key=lambda t: -t["objective"] if t["objective"] is not None and t["objective"] == t["objective"]
                else math.inf)
    for i, t in enumerate(trials, 1):
        obj = "—" if t["objective"] is None else f"{t['objective']:.4f}"
        emit("note" if not t["error"] else "warning",
             text=f"trial {i}: {t['label']}: {metric} {obj} ({t['status']})" + (f": {t['error']}" if t["error"] else ""))
    return trials
