"""``evalkit evaluate`` as a function: a (scheduled) evaluation job with quality gates.

:func:`evaluate_job` evaluates predictions or a model, applies the gates (absolute and relative to a
baseline run), writes the report, tracks the run, and returns the exit code the CLI uses:
0 all gates pass, 1 a gate failed, 3 tracking store unreachable (the report is still written and
the run spooled). Bad input raises :class:`~evalkit.errors.InputError` (exit 2) before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from evalkit.config import EvaluateJobConfig
from evalkit.errors import EXIT_GATE_FAILED, EXIT_INFRA, EXIT_OK, InfraError, InputError, field_name
from evalkit.report import Report
from evalkit.workflows.events import EventCallback, make_emitter
from evalkit.workflows.kept_scores import GATE_RESAMPLES, MIN_GATE_P, KeptScores, gate_difference_metrics

if TYPE_CHECKING:
    from evalkit.tracking.settings import TrackingSettings


@dataclass(frozen=True)
class JobResult:
    """What :func:`evaluate_job` returns.

    Attributes:
        report: the evaluation report, with the ``gates`` and ``job`` blocks (and ``run_id``) added.
        gates: the gate block: ``status`` (pass, fail, unknown), ``results`` (one row per gate),
            ``baseline``.
        exit_code: 0 pass, 1 a gate failed, 3 infrastructure fault (see ``error``).
        run_id: the MLflow run (``None`` when not tracked or spooled).
        error: the one-line infrastructure fault behind exit code 3, else ``None``.
    """

    report: Report
    gates: dict
    exit_code: int
    run_id: str | None = None
    error: str | None = None
    report_written: bool = True  # False: --output could not be written (the CLI prints the JSON instead)


def check_job(cfg: EvaluateJobConfig) -> list:
    """Reject inconsistent job options before anything is evaluated. Returns the parsed gates.

    Raises:
        InputError: neither or both of predictions / model, malformed gate / max-drop / baseline /
            job name, a gate on a threshold-free metric with ``threshold_free="none"``, an output path
            that is a directory.
    """
    from evalkit.gates import needs_ranking, parse_gate, parse_max_drop, unique_gates

    if (cfg.predictions is None) == (cfg.model is None):
        raise InputError("evaluate: give either --predictions FILE or --model SPEC")
    parsed = unique_gates([parse_gate(g) for g in cfg.gates] + [parse_max_drop(d) for d in cfg.max_drop])
    if cfg.job is not None and (not cfg.job.strip() or "'" in cfg.job or '"' in cfg.job):
        raise InputError(f"--job: expected a non-empty name without quotes, got {cfg.job!r}")
    if cfg.max_drop and not cfg.baseline:
        raise InputError("--max-drop: needs --baseline last|champion|RUN_ID")
    if cfg.baseline and not any(g.relative for g in parsed):
        raise InputError("--baseline: give at least one --max-drop METRIC=AMOUNT to compare against it")
    if "gate_alpha" in cfg.model_fields_set and not any(g.significant for g in parsed):
        alpha = field_name("gate_alpha")  # the flag, or the spec's key
        raise InputError(f"{alpha}: applies to METRIC=significant --max-drop gates; give one or drop {alpha}")
    if any(g.significant for g in parsed) and cfg.gate_alpha <= MIN_GATE_P:  # p < alpha could never hold
        raise InputError(f"--gate-alpha {cfg.gate_alpha:g}: a significant gate could never fail: its {GATE_RESAMPLES} "
                         f"paired resamples give p >= {MIN_GATE_P:.4g}; expected an alpha above that")
    ranked = [g for g in parsed if needs_ranking(g.metric)] if cfg.threshold_free == "none" else []
    if ranked:
        tf = field_name("threshold_free")
        raise InputError(f"{field_name('max_drop' if ranked[0].relative else 'gates')} {ranked[0].text}: {tf} none "
                         f"computes no threshold-free metric; expected {tf} exact or streaming, or no gate on it")
    if cfg.baseline == "champion" and not (cfg.model or "").startswith("models:/"):
        raise InputError("--baseline champion: needs --model models:/NAME@ALIAS (or use --baseline models:/NAME@champion)")
    if cfg.output and Path(cfg.output).is_dir():
        raise InputError(f"--output: {cfg.output} is a directory; expected a file path for the report JSON")
    return parsed


def evaluate_job(config: EvaluateJobConfig, *, on_event: EventCallback | None = None) -> JobResult:
    """Run one evaluation job (``evalkit evaluate``) and return its outcome and exit code.

    Prints nothing: events go to ``on_event`` (events: ``report``, ``gates``,
    ``tracked``, ``written``, ``note``, ``warning``).

    Raises:
        InputError: bad options or input (exit 2), before any run starts; among them a baseline run
            that is not FINISHED, lacks a gated metric (both checked before the evaluation), records
            no test-data digest or was evaluated on other rows.
    """
    from evalkit.gates import check_baseline, check_metrics
    from evalkit.metrics.degenerate import degenerate_note
    from evalkit.tracking import TrackingSettings, start_probe

    emit = make_emitter(on_event)
    gates = check_job(config)
    # resolved once for the whole job: model loading, the baseline and the run all use this store
    tracking = TrackingSettings.of(config)
    config = config.model_copy(update={"tracking_uri": tracking.uri})
    store = None
    if config.track or config.baseline:  # a baseline is read from the store even with --no-track
        store = tracking
        start_probe(store.uri, store.timeout)  # answered below: the wait overlaps the evaluation
    store_error, baseline = None, None
    kept = KeptScores(config, gates)  # the job's scores.parquet (and a significant gate's baseline's)
    try:
        if any(g.relative for g in gates):  # an unusable baseline is refused before the evaluation and any run
            store_error, baseline = _checked_baseline(config, gates, store)
            kept.fetch_baseline(store.uri, baseline)
        report = _evaluate(config, emit, kept.writer)
        check_metrics(gates, report)  # bad input: before any output or run
        check_baseline(gates, baseline, report["dataset"]["digest"])  # same rows as the baseline's?
        kept.finish(report)
        paired = kept.paired(baseline)
        emit("report", report=report, title="Model" if config.model else "Predictions", per_class=config.per_class)
        if note := degenerate_note(report):
            emit(note[0], text=note[1])
        return _finish(config, gates, report, store, emit, store_error, baseline, kept, paired)
    finally:
        kept.close()


def _checked_baseline(cfg: EvaluateJobConfig, gates: list, store: TrackingSettings) -> tuple[str | None, dict]:
    """``(store error or None, baseline)``: the store's answer and the baseline run, whose status and
    metrics are checked (:func:`evalkit.gates.check_baseline`)."""
    from evalkit.gates import check_baseline
    from evalkit.tracking import probe_store

    store_error = probe_store(store.uri, timeout=store.timeout)
    baseline = _baseline(cfg, store.uri, store_error)
    _from_report(baseline, [g.metric for g in gates if g.relative], store.uri)
    check_baseline(gates, baseline)
    return store_error, baseline


def _from_report(baseline: dict, needed: list[str], store: str) -> None:
    """Add to ``baseline["metrics"]`` the ``needed`` metrics the run did not log as MLflow metrics (a run
    logs its headline metrics and the ones its own gates name) from its ``report.json`` artifact, which
    has every metric of the report (:func:`evalkit.report.metric_keys`)."""
    missing = [m for m in needed if m not in baseline.get("metrics", {})]
    if not missing or baseline.get("run_id") is None:
        return
    from evalkit.report import metric_keys
    from evalkit.tracking import load_run_json

    report = load_run_json(store, baseline["run_id"], "report.json")
    try:  # a report of another shape (an older evalkit): the metrics stay missing, check_baseline says so
        values = metric_keys(report, "test", per_class=isinstance(report.get("per_class"), list))
    except (AttributeError, KeyError, TypeError, ValueError):
        return
    baseline["metrics"] = dict(baseline["metrics"]) | {m: values[m] for m in missing if m in values}


def _evaluate(cfg: EvaluateJobConfig, emit, sink) -> Report:
    from evalkit.workflows.evaluation import evaluate_model_config, evaluate_predictions

    if cfg.model is not None:  # the model's own data, unless named: with the reader options its run recorded
        own_data = cfg.dataset is None and cfg.test_dataset is None and "reader_options" not in cfg.model_fields_set
        return evaluate_model_config(cfg, reader_options_given=not own_data, emit=emit, scores_sink=sink)
    report = evaluate_predictions(cfg.predictions, threshold=cfg.threshold or "0.5", beta=cfg.beta,
                                  threshold_free=cfg.threshold_free, batch_size=cfg.batch_size,
                                  label_map=cfg.label_map, map_reduce=cfg.map_reduce, scores_sink=sink, ci=cfg.ci,
                                  ci_resamples=cfg.ci_resamples, ci_method=cfg.ci_method)
    for note in report.get("notes") or []:
        emit("note", text=note)
    return report


def _finish(cfg: EvaluateJobConfig, gates: list, report: Report, store: TrackingSettings | None, emit,
            store_error: str | None, baseline: dict | None, kept: KeptScores, paired: dict) -> JobResult:
    """Gates, output, tracking: the job's second half (``store``: the job's
    :class:`~evalkit.tracking.TrackingSettings`, None when nothing is tracked or read; ``baseline``:
    checked, or None without relative gates; ``store_error``: the store's answer when already probed;
    ``kept``: the job's scores; ``paired``: the significant gates' comparisons)."""
    from evalkit.gates import apply_gates
    from evalkit.report import metric_keys

    if store and baseline is None:
        from evalkit.tracking import probe_store

        store_error = probe_store(store.uri, timeout=store.timeout)
    values = metric_keys(report, "test", per_class=True)
    block = apply_gates(gates, values, baseline, paired)
    report = report.extend(gates=block, job={"name": cfg.job_name, "trigger": cfg.trigger, "experiment": cfg.experiment})
    write_error = _write(report, cfg.output)  # disk full / read-only: still tracked (or spooled), exit 3
    run_id, error = None, None
    if store and cfg.track:
        try:
            run_id = _track(cfg, gates, report, block, store, store_error, kept)
        except InfraError as e:
            error = str(e)
    elif store_error and baseline is not None:  # --no-track: the baseline was unreadable
        error = f"{store_error}; relative gates could not be checked (report written)"
    if run_id:
        report = report.extend(run_id=run_id)
        if write_error is None:
            write_error = _write(report, cfg.output)
    if write_error is not None:
        kept = f"; the run was tracked ({run_id})" if run_id else ""
        error = f"{write_error} (report printed to stdout instead{kept})" + (f"; {error}" if error else "")
    emit("gates", block=block)
    if run_id:
        from evalkit.tracking import redact_uri

        emit("tracked", run_id=run_id, experiment=cfg.experiment, tracking_uri=redact_uri(store.uri),
             registered_model=None)
    if cfg.output and write_error is None:
        emit("written", path=cfg.output, what="Report")
    if error is not None:
        code = EXIT_INFRA
    else:
        code = EXIT_GATE_FAILED if block["status"] == "fail" else EXIT_OK
    return JobResult(report, block, code, run_id, error, write_error is None)


def _write(report: Report, output: str | None) -> str | None:
    """Write the report to ``output``; the one-line reason when it cannot be written (else None)."""
    from evalkit.errors import WriteError

    if not output:
        return None
    try:
        report.write_json(output)
    except WriteError as e:
        return str(e)
    return None


def _baseline(cfg: EvaluateJobConfig, store: str, store_error: str | None) -> dict:
    from evalkit.tracking import baseline_run

    if store_error:
        return {"run_id": None, "source": cfg.baseline, "metrics": {}, "unavailable": True,
                "reason": "tracking store unreachable: baseline unavailable"}
    return baseline_run(store, cfg.experiment, cfg.baseline, job=cfg.job_name, model_uri=cfg.model)


def _track(cfg: EvaluateJobConfig, gates: list, report: Report, block: dict, store: TrackingSettings,
           store_error: str | None, kept: KeptScores) -> str | None:
    """Log the job's run to ``store`` (:class:`~evalkit.tracking.TrackingSettings`); its run id (None
    when spooled)."""
    from evalkit.tracking import RunLogger

    tags = {"evalkit.command": "evaluate", "evalkit.trigger": cfg.trigger,
            "evalkit.gate": {"fail": "fail", "unknown": "unknown"}.get(block["status"], "pass"),
            "evalkit.job": cfg.job_name}
    failed = sorted({r["metric"] for r in block["results"] if r["status"] == "fail"})
    if gates:  # the runs table's pass / fail column (evalkit.tracking.view)
        tags["evalkit.gates"] = tags["evalkit.gate"]
    if failed:  # exactly which metrics failed a gate (the history plot marks those points only)
        tags["evalkit.failed_gates"] = ",".join(failed)
    if block.get("baseline") and block["baseline"].get("run_id"):
        tags["evalkit.baseline_run"] = block["baseline"]["run_id"]
    params = {"predictions": cfg.predictions} if cfg.predictions else \
        {"model": cfg.model, "dataset": cfg.dataset or "", "test_dataset": cfg.test_dataset or ""}
    params.update({"threshold": report["threshold"]["strategy"], "beta": report.get("beta"),
                   "dataset.name": report["dataset"]["name"], "dataset.digest": report["dataset"]["digest"],
                   "dataset.n_samples": report["dataset"]["n_samples"]})
    params.update({"ci": cfg.ci, "ci_resamples": cfg.ci_resamples, "ci_method": cfg.ci_method} if cfg.ci else {"ci": 0})
    if gates:
        params["gates"] = "; ".join(g.text for g in gates)
    if cfg.baseline:
        params["baseline"] = cfg.baseline
    logger = RunLogger(store, cfg.experiment, run_name=cfg.job_name, tags=tags, offline_reason=store_error)
    from evalkit.workflows.artifacts import log_report

    with logger as run:
        run.log_params(params)
        _log_inputs(run, cfg, report, store.uri)
        # headline metrics + the keys gates name (relative gates read them from the baseline run)
        log_report(run, report, gate_metrics(block) | gate_difference_metrics(block), keys=[g.metric for g in gates],
                   class_metrics=cfg.log_class_metrics)
        if kept.log and kept.path is not None:
            run.log_artifact(kept.path)
    return logger.run_id


def gate_metrics(block: dict) -> dict[str, float]:
    """``{"gates/passed": 1.0 | 0.0}`` of a job's gate block (pass / fail); ``{}`` without gates or
    when the outcome is unknown (a baseline that could not be read)."""
    return {"gates/passed": float(block["status"] == "pass")} if block["status"] in ("pass", "fail") else {}


def _log_inputs(run, cfg: EvaluateJobConfig, report: Report, store: str) -> None:
    """The evaluated data as the run's ``evaluation`` input and, for an MLflow model, the link to the
    logged model (the runs table's Models column).

    The input's digest is the report's: for ``--model``, ``Dataset.digest`` of the evaluated rows as
    read (the training run's ``evaluation`` input of the same test split has the same digest); for
    ``--predictions``, the digest of the file's targets, its path as the source."""
    ds = report["dataset"]
    profile = {"num_rows": ds["n_samples"], "targets_shape": [ds["n_samples"], ds["n_labels"]]}
    if cfg.predictions:
        run.log_file_input(cfg.predictions, name=ds["name"], digest=ds["digest"], context="evaluation",
                           profile=profile)
        return
    if cfg.test_dataset:
        source, name = cfg.test_dataset, ds["name"]
    else:
        source, name = cfg.dataset or ds["name"], f"{ds['name']}-test"  # the dataset's test split
    run.log_file_input(source, name=name, digest=ds["digest"], context="evaluation", profile=profile)
    from evalkit.tracking.run import logged_model_id

    model_id = logged_model_id(store, cfg.model) if not run.offline else None
    if model_id:
        run.link_model(model_id)
        run.set_tags({"evalkit.model_id": model_id})
