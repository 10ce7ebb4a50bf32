"""Quality gates of a scheduled evaluation job: "does the model still meet its bar?".

* Absolute gates, ``--gate "test/macro_f2>=0.55"`` (operators ``>=``, ``>``, ``<=``, ``<``).
* Relative gates, ``--max-drop test/macro_f2=0.01`` against a baseline run (``--baseline last``:
  the last finished run of the same job; ``champion``: the run that produced the model behind the
  registered model's ``@champion`` alias; ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``; or a
  run id). A "drop" is a worsening: a decrease, or an increase for lower-is-better metrics
  (Hamming loss, coverage error, ranking loss).

Gate keys are the tracked metric names of :func:`evalkit.report.metric_keys` (``test/macro_f2``,
``test/subset_accuracy``, ``test/class/<label>/f2``, ...), so a gate reads the same for ``run`` and
``evaluate``. A malformed gate or an unknown metric is bad input (exit 2); a failed gate is exit 1.

:class:`EvalJob` runs the job around a computed report: options checked before any work, the store
probed early (fail fast), gates applied, report written, the evaluation tracked as an MLflow run
tagged ``evalkit.trigger`` / ``evalkit.gate`` / ``evalkit.job`` (spooled locally when the store is
down), and the exit code decided. No heavy imports at module level.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from evalkit.errors import EXIT_GATE_FAILED, EXIT_OK, InfraError, InputError

OPS = {
    ">=": lambda v, b: v >= b,
    ">": lambda v, b: v > b,
    "<=": lambda v, b: v <= b,
    "<": lambda v, b: v < b,
}
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_GATE_RE = re.compile(rf"^\s*(?P<metric>[A-Za-z0-9_\-. :/]+?)\s*(?P<op>>=|<=|>|<)\s*(?P<bound>{_NUMBER})\s*$")
_DROP_RE = re.compile(rf"^\s*(?P<metric>[A-Za-z0-9_\-. :/]+?)\s*=\s*(?P<bound>{_NUMBER})\s*$")
GATE_FORM = "METRIC OP NUMBER with OP one of >=, >, <=, < (e.g. \"test/macro_f2>=0.55\")"
TRIGGERS = ("manual", "scheduled")


@dataclass(frozen=True)
class Gate:
    """One gate: ``metric op bound`` (absolute) or ``metric`` may drop by at most ``bound`` (relative)."""

    metric: str
    op: str  # ">=", ">", "<=", "<" or "max-drop"
    bound: float
    text: str

    @property
    def relative(self) -> bool:
        return self.op == "max-drop"


def parse_gate(text: str) -> Gate:
    """``"test/macro_f2>=0.55"`` -> :class:`Gate`. Raises InputError naming ``--gate`` and the form."""
    m = _GATE_RE.match(text or "")
    if not m:
        raise InputError(f"--gate: malformed gate {text!r}; expected {GATE_FORM}")
    bound = float(m["bound"])
    _check_name(m["metric"], "--gate")
    return Gate(m["metric"], m["op"], bound, f"{m['metric']}{m['op']}{m['bound']}")


def parse_max_drop(text: str) -> Gate:
    """``"test/macro_f2=0.01"`` -> relative :class:`Gate`. Raises InputError naming ``--max-drop``."""
    m = _DROP_RE.match(text or "")
    if not m:
        raise InputError(f"--max-drop: malformed value {text!r}; expected METRIC=AMOUNT (e.g. test/macro_f2=0.01)")
    bound = float(m["bound"])
    if bound < 0 or not math.isfinite(bound):
        raise InputError(f"--max-drop: the allowed drop of {m['metric']} must be a number >= 0, got {m['bound']}")
    _check_name(m["metric"], "--max-drop")
    return Gate(m["metric"], "max-drop", bound, f"{m['metric']} max-drop {m['bound']}")


_CLASS_RE = re.compile(r"^test/class/[^/]+/[a-z_0-9.]+$")
_AVG_RE = re.compile(r"^test/(micro|macro|weighted|samples)_(accuracy|precision|recall|f\d+(\.\d+)?)$")


def _check_name(metric: str, option: str) -> None:
    """Static check (before any work) that ``metric`` can be a tracked test metric; the exact check
    against the report (labels, beta) is :func:`check_metrics`."""
    from evalkit.report import SCALARS

    if _AVG_RE.match(metric) or _CLASS_RE.match(metric) or metric in {f"test/{v}" for v in SCALARS.values()}:
        return
    raise InputError(f"{option}: unknown metric {metric!r}; expected a tracked test metric such as test/macro_f2, "
                     "test/micro_f2, test/subset_accuracy, test/hamming_loss, test/macro_map or test/class/<label>/f2")


def known_metrics(report: dict, split: str = "test") -> set[str]:
    """Every tracked metric name the report defines, including those whose value is undefined."""
    from evalkit.report import metric_keys

    def fill(x):
        if isinstance(x, dict):
            return {k: fill(v) for k, v in x.items()}
        if isinstance(x, list):
            return [fill(v) for v in x]
        if x is None or (isinstance(x, float) and not math.isfinite(x)):
            return 0.0
        return x

    return set(metric_keys(fill({"summary": report["summary"], "per_class": report["per_class"]}), split))


def check_metrics(gates: list[Gate], report: dict) -> None:
    """Raise InputError for a gate naming a metric the report does not have (before any tracking)."""
    known = known_metrics(report)
    for g in gates:
        if g.metric not in known:
            option = "--max-drop" if g.relative else "--gate"
            examples = ", ".join(k for k in ("test/macro_f2", "test/micro_f2", "test/subset_accuracy",
                                             "test/hamming_loss", "test/macro_map") if k in known)
            raise InputError(f"{option}: unknown metric {g.metric!r}; expected a tracked metric name such as {examples}")


from evalkit.direction import lower_is_better  # noqa: E402  (re-exported: gates.lower_is_better)


def apply_gates(gates: list[Gate], values: dict[str, float], baseline: dict | None = None) -> dict:
    """Evaluate gates on tracked metric values. Returns the report's ``gates`` block::

        {"status": "pass" | "fail" | "unknown" | "none", "failed": int,
         "baseline": {"run_id", "source", "reason"} | None,
         "results": [{"gate", "metric", "op", "bound", "value", "baseline", "limit", "status", "reason"}]}

    ``baseline`` is ``{"run_id", "source", "metrics", "reason"}`` or None. A relative gate without a
    baseline run is ``skipped`` (e.g. the first run of a job with ``--baseline last``), or ``unknown``
    when the baseline could not be read (``"unavailable": True``: store unreachable; then the overall
    status is ``unknown`` unless a gate failed). A gate whose value is undefined fails.
    """
    results = []
    for g in gates:
        v = values.get(g.metric)
        row: dict[str, Any] = {"gate": g.text, "metric": g.metric, "op": g.op, "bound": g.bound, "value": v,
                               "baseline": None, "limit": None, "status": "pass", "reason": ""}
        if g.relative:
            if not baseline or baseline.get("run_id") is None:
                status = "unknown" if (baseline or {}).get("unavailable") else "skipped"
                row.update(status=status, reason=(baseline or {}).get("reason") or "no baseline run")
                results.append(row)
                continue
            b = baseline["metrics"].get(g.metric)
            row["baseline"] = b
            if b is None:
                row.update(status="skipped", reason=f"baseline run {baseline['run_id']} has no metric {g.metric}")
                results.append(row)
                continue
            if lower_is_better(g.metric):
                row["limit"] = b + g.bound
                ok = v is not None and v <= row["limit"] + 1e-12
            else:
                row["limit"] = b - g.bound
                ok = v is not None and v >= row["limit"] - 1e-12
        else:
            row["limit"] = g.bound
            ok = v is not None and OPS[g.op](v, g.bound)
        if v is None:
            row.update(status="fail", reason="value undefined")
        elif not ok:
            row["status"] = "fail"
        results.append(row)
    failed = sum(r["status"] == "fail" for r in results)
    unknown = any(r["status"] == "unknown" for r in results)
    return {
        "status": "none" if not results else ("fail" if failed else "unknown" if unknown else "pass"),
        "failed": failed,
        "baseline": None if not baseline else {k: baseline.get(k) for k in ("run_id", "source", "reason")},
        "results": results,
    }


def describe(row: dict) -> str:
    """One line per gate result: value, bound (limit) and baseline."""
    v = "undefined" if row["value"] is None else f"{row['value']:.4f}"
    if row["op"] == "max-drop":
        if row["status"] in ("skipped", "unknown"):
            return f"{row['gate']}: skipped ({row['reason']}); value {v}"
        cmp = "<=" if lower_is_better(row["metric"]) else ">="
        return (f"{row['metric']} = {v}, bound {cmp} {row['limit']:.4f} "
                f"(baseline {row['baseline']:.4f}, max drop {row['bound']:g})")
    return f"{row['metric']} = {v}, bound {row['op']} {row['bound']:g}"


# ----------------------------------------------------------------------------- job spec (TOML)

def _spec_model():
    from pydantic import BaseModel, ConfigDict, Field

    class EvaluateSection(BaseModel):
        """The ``[evaluate]`` table of a job spec: the same keys as the ``evaluate`` options."""

        model_config = ConfigDict(extra="forbid")

        predictions: str | None = None
        model: str | None = None
        dataset: str | None = None
        threshold: str | None = None
        beta: float | None = Field(None, gt=0)
        output: str | None = None
        gates: list[str] = Field(default_factory=list)
        baseline: str | None = None
        max_drop: list[str] = Field(default_factory=list)
        trigger: Literal["manual", "scheduled"] | None = None
        job: str | None = None
        experiment: str | None = None
        tracking_uri: str | None = None
        track: bool | None = None
        tracking_timeout: float | None = Field(None, gt=0)

    class Spec(BaseModel):
        model_config = ConfigDict(extra="allow")

        evaluate: EvaluateSection

    return Spec


def load_evaluate_spec(path: str) -> dict[str, Any]:
    """Read the ``[evaluate]`` table of a TOML job spec (``evaluate --spec FILE``) as option values.

    Raises:
        InputError: missing or unreadable file, TOML syntax error (``file:line: problem``), unknown or
            ill-typed keys (``file:line: evaluate.key: problem``).
    """
    import tomllib

    from pydantic import ValidationError

    p = Path(path)
    if not p.is_file():
        raise InputError(f"--spec: {path}: no such file")
    text = p.read_text(encoding="utf-8", errors="replace")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        line = getattr(e, "lineno", None) or _line_from_message(str(e), text)
        raise InputError(f"{path}:{line}: invalid TOML: {str(e).split(' (at ')[0]}") from None
    if "evaluate" not in data:
        raise InputError(f"{path}:1: evaluate: missing [evaluate] table")
    try:
        spec = _spec_model()(**data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = [str(x) for x in err["loc"]]
        line = _find_line(text, loc)
        raise InputError(f"{path}:{line}: {'.'.join(loc)}: {err['msg']}") from None
    values = spec.evaluate.model_dump(exclude_none=True, exclude_defaults=True)
    if "gates" in values:  # the option is --gate (repeatable)
        values["gate"] = values.pop("gates")
    return values


def _line_from_message(msg: str, text: str) -> int:
    m = re.search(r"line (\d+)", msg)
    if m:
        return int(m.group(1))
    return max(1, len(text.splitlines())) if "end of document" in msg else 1


def _find_line(text: str, loc: list[str]) -> int:
    """Line of the key named by a pydantic error location (best effort: its table, then its key)."""
    lines = text.splitlines()
    start = 0
    if loc:
        for i, line in enumerate(lines):
            if re.match(rf"^\s*\[\s*{re.escape(loc[0])}\s*\]", line):
                start = i
                break
    keys = [k for k in loc[1:] if not k.isdigit()]
    if keys:
        for i in range(start, len(lines)):
            if re.match(rf"^\s*{re.escape(keys[0])}\s*=", lines[i]):
                return i + 1
    return start + 1


# ----------------------------------------------------------------------------- the job

def _terminate_on_sigterm() -> None:
    """SIGTERM during the evaluation (before its MLflow run starts) ends the job like Ctrl-C: a
    one-line message and exit 143, not a silent kill (the run's own handler takes over inside it)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        from evalkit.tracking import Terminated

        def handler(signum, frame):
            raise Terminated("terminated by SIGTERM")

        signal.signal(signal.SIGTERM, handler)


@dataclass
class EvalJob:
    """A scheduled (or manual) evaluation: gates, baseline, tracking and the exit code.

    Use: ``job = EvalJob.create(...)`` (checks options, starts probing the store in the background),
    compute the report, then ``code = job.finish(report, console)``.
    """

    gates: list[Gate] = field(default_factory=list)
    baseline: str | None = None
    trigger: str = "manual"
    job: str | None = None
    experiment: str = "evalkit"
    tracking_uri: str | None = None  # None: not tracked
    model_uri: str | None = None
    output: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    store_error: str | None = None
    track: bool = True
    timeout: float = 10.0

    @classmethod
    def create(cls, *, gates=(), max_drops=(), baseline: str | None = None, trigger: str = "manual",
               job: str | None = None, experiment: str = "evalkit", tracking_uri: str | None = None,
               track: bool = True, tracking_timeout: float = 10.0, model_uri: str | None = None,
               output: str | None = None, params: dict | None = None) -> "EvalJob":
        """Check the job options and probe the tracking store (bounded by ``tracking_timeout``).

        Raises:
            InputError: malformed gate / max-drop / baseline / trigger / tracking URI.
        """
        from evalkit.tracking import configure_http, resolve_tracking_uri, start_probe

        parsed = [parse_gate(g) for g in gates or ()] + [parse_max_drop(d) for d in max_drops or ()]
        if job is not None and (not job.strip() or "'" in job or '"' in job):
            raise InputError(f"--job: expected a non-empty name without quotes, got {job!r}")
        if trigger not in TRIGGERS:
            raise InputError(f"--trigger: expected one of {', '.join(TRIGGERS)}, got {trigger!r}")
        if max_drops and not baseline:
            raise InputError("--max-drop: needs --baseline last|champion|RUN_ID")
        if baseline and not any(g.relative for g in parsed):
            raise InputError("--baseline: give at least one --max-drop METRIC=AMOUNT to compare against it")
        if baseline == "champion" and not (model_uri or "").startswith("models:/"):
            raise InputError("--baseline champion: needs --model models:/NAME@ALIAS (or use --baseline models:/NAME@champion)")
        if output and Path(output).is_dir():
            raise InputError(f"--output: {output} is a directory; expected a file path for the report JSON")
        uri = None
        if track or baseline:  # a baseline is read from the store even with --no-track
            configure_http(tracking_timeout)
            uri = resolve_tracking_uri(tracking_uri)
            start_probe(uri, tracking_timeout)  # answered in finish(): the wait overlaps the evaluation
        _terminate_on_sigterm()
        return cls(parsed, baseline, trigger, job, experiment, uri, model_uri, output, dict(params or {}),
                   track=track, timeout=tracking_timeout)

    def finish(self, report, console=None) -> int:
        """Check gate names, resolve the baseline, apply the gates, write ``--output``, track, render.

        Returns the exit code (0 pass, 1 a gate failed). Raises InfraError (exit 3) after writing the
        report and spooling when the tracking store is unreachable.
        """
        from evalkit.report import metric_keys

        from evalkit.tracking import probe_store

        check_metrics(self.gates, report)  # bad input: before any output or run
        if self.tracking_uri:
            self.store_error = probe_store(self.tracking_uri, timeout=self.timeout)
        baseline = self._baseline() if any(g.relative for g in self.gates) else None
        values = metric_keys(report, "test", per_class=True)
        block = apply_gates(self.gates, values, baseline)
        report["gates"] = block
        report["job"] = {"name": self.job, "trigger": self.trigger, "experiment": self.experiment}
        if self.output:
            report.write_json(self.output)
        run_id = None
        infra: InfraError | None = None
        if self.tracking_uri and self.track:
            try:
                run_id = self._track(report, values, block)
            except InfraError as e:
                infra = e
        elif self.store_error and baseline is not None:  # --no-track: the baseline was unreadable
            infra = InfraError(f"{self.store_error}; relative gates could not be checked (report written)")
        if run_id:
            report["run_id"] = run_id
            if self.output:
                report.write_json(self.output)
        if console is not None:
            self.render(block, console, run_id)
        if infra is not None:
            raise infra
        return EXIT_GATE_FAILED if block["status"] == "fail" else EXIT_OK

    # -- pieces
    def _baseline(self) -> dict:
        from evalkit.tracking import baseline_run

        if self.store_error:
            return {"run_id": None, "source": self.baseline, "metrics": {}, "unavailable": True,
                    "reason": "tracking store unreachable: baseline unavailable"}
        return baseline_run(self.tracking_uri, self.experiment, self.baseline, job=self.job, model_uri=self.model_uri)

    def _track(self, report, values: dict, block: dict) -> str | None:
        from evalkit.tracking import RunLogger

        tags = {"evalkit.command": "evaluate", "evalkit.trigger": self.trigger,
                "evalkit.gate": {"fail": "fail", "unknown": "unknown"}.get(block["status"], "pass")}
        if self.job:
            tags["evalkit.job"] = self.job
        if block.get("baseline") and block["baseline"].get("run_id"):
            tags["evalkit.baseline_run"] = block["baseline"]["run_id"]
        params = dict(self.params)
        params.update({"threshold": report["threshold"]["strategy"], "beta": report.get("beta"),
                       "dataset.name": report["dataset"]["name"], "dataset.digest": report["dataset"]["digest"],
                       "dataset.n_samples": report["dataset"]["n_samples"]})
        if self.gates:
            params["gates"] = "; ".join(g.text for g in self.gates)
        if self.baseline:
            params["baseline"] = self.baseline
        logger = RunLogger(self.tracking_uri, self.experiment, run_name=self.job, tags=tags,
                           offline_reason=self.store_error)
        with logger as run:
            run.log_params(params)
            run.log_metrics(values)
            run.log_dict(dict(report), "report.json")
        return logger.run_id

    def render(self, block: dict, console, run_id: str | None) -> None:
        from evalkit.tracking import redact_uri

        if block["results"]:
            b = block.get("baseline") or {}
            head = f"Gates: {block['status'].upper()}"
            if block["status"] == "unknown":
                head += " (a baseline could not be read)"
            if b.get("run_id"):
                head += f" (baseline {b['source']}: run {b['run_id']})"
            console.print(f"[bold {'red' if block['status'] == 'fail' else 'green'}]{head}[/]")
            for r in block["results"]:
                mark = {"pass": "[green]PASS[/]", "fail": "[red]FAIL[/]", "skipped": "[yellow]SKIP[/]",
                        "unknown": "[yellow]UNKNOWN[/]"}[r["status"]]
                console.print(f"  {mark} {describe(r)}")
        if run_id:
            console.print(f"MLflow run [bold]{run_id}[/] in experiment '{self.experiment}' "
                          f"({redact_uri(self.tracking_uri)})")
        if self.output:
            console.print(f"Report written to {self.output}")
