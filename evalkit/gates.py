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

This module is pure logic (no I/O, no tracking): the job around it is
:func:`evalkit.workflows.job.evaluate_job`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from evalkit.errors import InputError, field_name

OPS = {
    ">=": lambda v, b: v >= b,
    ">": lambda v, b: v > b,
    "<=": lambda v, b: v <= b,
    "<": lambda v, b: v < b,
}
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_GATE_RE = re.compile(rf"^\s*(?P<metric>[A-Za-z0-9_\-. :/]+?)\s*(?P<op>>=|<=|>|<)\s*(?P<bound>{_NUMBER})\s*$")
_DROP_RE = re.compile(rf"^\s*(?P<metric>[A-Za-z0-9_\-. :/]+?)\s*=\s*(?P<bound>{_NUMBER}|significant)\s*$")
GATE_FORM = "METRIC OP NUMBER with OP one of >=, >, <=, < (e.g. \"test/macro_f2>=0.55\")"


@dataclass(frozen=True)
class Gate:
    """One gate: ``metric op bound`` (absolute) or ``metric`` may drop by at most ``bound`` (relative)."""

    metric: str
    op: str  # ">=", ">", "<=", "<" or "max-drop"
    bound: float  # NaN for a significant max-drop
    text: str
    significant: bool = False  # max-drop METRIC=significant: fails on a drop significant at --gate-alpha

    @property
    def relative(self) -> bool:
        """True for a ``--max-drop`` gate (compared with a baseline run)."""
        return self.op == "max-drop"


def parse_gate(text: str) -> Gate:
    """``"test/macro_f2>=0.55"`` -> :class:`Gate`. Raises InputError naming ``--gate`` and the form."""
    m = _GATE_RE.match(text or "")
    if not m:
        raise InputError(f"--gate: malformed gate {text!r}; expected {GATE_FORM}")
    bound = float(m["bound"])
    if not math.isfinite(bound):  # 1e400 reads as inf: a bar nothing, or everything, clears
        raise InputError(f"--gate: the bound of {text.strip()!r} is not a finite number; expected {GATE_FORM}")
    metric = _check_name(m["metric"], "--gate")
    return Gate(metric, m["op"], bound, f"{metric}{m['op']}{m['bound']}")


def parse_max_drop(text: str) -> Gate:
    """``"test/macro_f2=0.01"`` or ``"test/macro_f2=significant"`` -> relative :class:`Gate`.
    Raises InputError naming ``--max-drop``."""
    m = _DROP_RE.match(text or "")
    if not m:
        raise InputError(f"--max-drop: malformed value {text!r}; expected METRIC=AMOUNT or METRIC=significant "
                         "(e.g. test/macro_f2=0.01)")
    if m["bound"] == "significant":
        from evalkit.compare_paired import resampled_name

        metric = _check_name(m["metric"], "--max-drop")
        resampled_name(metric, "--max-drop")  # it must be recomputable from the kept scores
        return Gate(metric, "max-drop", math.nan, f"{metric} max-drop significant", significant=True)
    bound = float(m["bound"])
    if bound < 0 or not math.isfinite(bound):
        raise InputError(f"--max-drop: the allowed drop of {m['metric']} must be a number >= 0, got {m['bound']}")
    metric = _check_name(m["metric"], "--max-drop")
    return Gate(metric, "max-drop", bound, f"{metric} max-drop {m['bound']}")


def unique_gates(gates: list[Gate]) -> list[Gate]:
    """``gates`` without repeats, in order: a gate written twice (the spec's and the command line's,
    or spelt differently: ``macro_f2>=0.55``, ``test/macro_f2 >= 0.550``) counts once."""
    seen: dict[tuple, Gate] = {}
    for g in gates:
        seen.setdefault((g.metric, g.op, None if g.significant else g.bound, g.significant), g)
    return list(seen.values())


_CLASS_RE = re.compile(r"^test/class/[^/]+/[a-z_0-9.]+$")
_AVG_RE = re.compile(r"^test/((micro|macro|weighted|samples)_(accuracy|precision|recall|f\d+(\.\d+)?(e-?\d+)?|finf|"
                     r"jaccard)|(micro|macro|weighted)_(specificity|npv|mcc))$")  # no samples average of these


#: common names of tracked metrics (with or without ``test/``): ``--gate "ranking_loss<0.2"`` gates
#: ``test/label_ranking_loss``; a bare tracked name (``macro_f2``) means ``test/macro_f2``
ALIASES = {"ranking_loss": "label_ranking_loss", "label_ranking_average_precision": "lrap", "map": "macro_map",
           "mean_average_precision": "macro_map", "exact_match": "subset_accuracy", "hamming": "hamming_loss",
           "auroc": "macro_auroc", "coverage": "coverage_error"}


def resolve_metric(metric: str) -> str:
    """The tracked key a gate names: ``test/`` added when missing, :data:`ALIASES` (any case) resolved;
    ``lrap`` -> ``test/lrap``, ``test/ranking_loss`` -> ``test/label_ranking_loss``."""
    bare = metric.removeprefix("test/")
    return "test/" + ALIASES.get(bare.lower(), bare.lower() if f"test/{bare.lower()}" in _static_keys() else bare)


def metric_key(name: str) -> str:
    """A metric named as a gate names it (``macro_f2``, ``map``, ``test/ranking_loss``) as its tracked key;
    a key of another stage (``validation/map``, ``train/loss``) as it is (``evalkit compare --metric``)."""
    return resolve_metric(name) if "/" not in name or name.startswith("test/") else name


def _static_keys() -> list[str]:
    """The test metric keys every report has (averaged F1 / F2 / precision / recall / accuracy, scalars)."""
    from evalkit.report import SCALARS

    averaged = [f"test/{a}_{m}" for a in ("micro", "macro", "weighted", "samples")
                for m in ("accuracy", "precision", "recall", "f1", "f2", "jaccard")]
    averaged += [f"test/{a}_{m}" for a in ("micro", "macro", "weighted") for m in ("specificity", "npv", "mcc")]
    return averaged + [f"test/{v}" for v in SCALARS.values()]


#: per-class threshold-free keys (``test/class/<label>/average_precision``)
_RANKED_CLASS_RE = re.compile(r"^test/class/[^/]+/(average_precision|auroc)$")


def needs_ranking(metric: str) -> bool:
    """Whether the tracked key ``metric`` is a threshold-free metric (mAP, AUROC, LRAP, ...: the summary's
    :data:`~evalkit.metrics.names.THRESHOLD_FREE` scalars, weighted / samples AP and AUROC, per-class AP
    and AUROC), which ``--threshold-free none`` does not compute."""
    from evalkit.metrics.names import THRESHOLD_FREE
    from evalkit.report import SCALARS

    ranked = (*THRESHOLD_FREE, "average_precision_weighted", "average_precision_samples", "auroc_weighted",
              "auroc_samples")
    return metric in {f"test/{SCALARS[k]}" for k in ranked} or bool(_RANKED_CLASS_RE.match(metric))


def did_you_mean(metric: str, known) -> str:
    """``"; did you mean test/a or test/b?"`` for the keys of ``known`` closest to ``metric`` (difflib), or ``""``."""
    import difflib

    close = difflib.get_close_matches(metric, sorted(known), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(close)}?" if close else ""


def _check_name(metric: str, option: str) -> str:
    """Static check (before any work) that ``metric`` (an alias resolved: :func:`resolve_metric`) can be
    a tracked test metric; returns the key. The exact check against the report (labels, beta) is
    :func:`check_metrics`."""
    key = resolve_metric(metric)
    from evalkit.report import TOP_K_SCALAR

    if _AVG_RE.match(key) or _CLASS_RE.match(key) or TOP_K_SCALAR.match(key.removeprefix("test/")) \
            or key in _static_keys():
        return key
    raise InputError(f"{option}: unknown metric {metric!r}{did_you_mean(key, _static_keys())} (tracked test metrics "
                     "are e.g. test/macro_f2, test/subset_accuracy, test/hamming_loss, test/macro_map, test/lrap, "
                     "test/label_ranking_loss, test/class/<label>/f2)")


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
            option = field_name("max_drop" if g.relative else "gates")  # the flag, or the spec's key and line
            examples = ", ".join(k for k in ("test/macro_f2", "test/micro_f2", "test/subset_accuracy",
                                             "test/hamming_loss", "test/macro_map") if k in known)
            raise InputError(f"{option}: unknown metric {g.metric!r}{did_you_mean(g.metric, known)} (tracked metric "
                             f"names are e.g. {examples})")


def check_baseline(gates: list[Gate], baseline: dict | None, digest: str | None = None) -> None:
    """Refuse a baseline run relative gates cannot be compared with (before the evaluation run starts).

    ``baseline`` is :func:`evalkit.tracking.baseline_run`'s dict (nothing is checked without a run).
    Without ``digest`` only the run's status and metrics are checked; with it (the evaluated rows'
    digest, 16 hex) the run's test-data digest must equal it.

    Raises:
        InputError: the run is not FINISHED, lacks a gated metric, records no test-data digest, or
            was evaluated on other rows; the line names the run id and what is wrong.
    """
    if not baseline or baseline.get("run_id") is None:
        return
    where = f"--baseline {baseline.get('source')}: run {baseline['run_id']}"
    hint = "; pick another --baseline"
    if digest is None:
        status = baseline.get("status") or "FINISHED"
        if status != "FINISHED":
            raise InputError(f"{where} is {status}, not FINISHED; expected a finished run{hint}")
        missing = [g.metric for g in gates if g.relative and g.metric not in baseline.get("metrics", {})]
        if missing:
            raise InputError(f"{where} has no metric {', '.join(missing)}; expected a run that logged it{hint}")
        return
    theirs = baseline.get("digest")
    if theirs is None:
        raise InputError(f"{where} records no test-data digest (it predates digest tagging), so it cannot be "
                         f"told to be on the same rows (digest {digest[:8]}){hint}")
    if theirs != digest:
        raise InputError(f"{where} was evaluated on other rows (test-data digest {theirs[:8]}, here {digest[:8]}); "
                         f"expected a baseline on the same test data{hint}")


from evalkit.direction import lower_is_better  # noqa: E402  (re-exported: gates.lower_is_better)


def apply_gates(gates: list[Gate], values: dict[str, float], baseline: dict | None = None,
                paired: dict[str, dict] | None = None) -> dict:
    """Evaluate gates on tracked metric values. Returns the report's ``gates`` block::

        {"status": "pass" | "fail" | "unknown" | "none", "failed": int,
         "baseline": {"run_id", "source", "reason"} | None,
         "results": [{"gate", "metric", "op", "bound", "value", "baseline", "limit", "status", "reason"}]}

    ``baseline`` is ``{"run_id", "source", "metrics", "reason"}`` or None. A relative gate without a
    baseline run is ``skipped`` (e.g. the first run of a job with ``--baseline last``), or ``unknown``
    when the baseline could not be read (``"unavailable": True``: store unreachable; then the overall
    status is ``unknown`` unless a gate failed). A gate whose value is undefined fails.

    A significant gate reads ``paired[metric]`` (:func:`evalkit.compare_paired.paired_compare`'s
    row with ``alpha`` and ``level`` added; the difference is this run minus the baseline): it
    fails when the difference is a worsening with ``p_value < alpha``; its row also holds
    ``difference``, ``ci``, ``p_value`` and ``alpha``.
    """
    results = []
    for g in gates:
        v = values.get(g.metric)
        row: dict[str, Any] = {"gate": g.text, "metric": g.metric, "op": g.op,
                               "bound": None if g.significant else g.bound, "value": v,
                               "baseline": None, "limit": None, "status": "pass", "reason": ""}
        if g.relative and (not baseline or baseline.get("run_id") is None):
            status = "unknown" if (baseline or {}).get("unavailable") else "skipped"
            row.update(status=status, reason=(baseline or {}).get("reason") or "no baseline run")
        elif g.significant:
            _significant(row, (paired or {}).get(g.metric), baseline)
        elif g.relative:
            _max_drop(row, g, v, baseline)
        else:
            row["limit"] = g.bound
            if v is None or not OPS[g.op](v, g.bound):
                row["status"] = "fail"
        if v is None and row["status"] not in ("skipped", "unknown"):
            row.update(status="fail", reason="value undefined")
        results.append(row)
    failed = sum(r["status"] == "fail" for r in results)
    unknown = any(r["status"] == "unknown" for r in results)
    return {
        "status": "none" if not results else ("fail" if failed else "unknown" if unknown else "pass"),
        "failed": failed,
        "baseline": None if not baseline else {k: baseline.get(k) for k in ("run_id", "source", "reason")},
        "results": results,
    }


def _max_drop(row: dict, g: Gate, v: float | None, baseline: dict) -> None:
    b = baseline["metrics"].get(g.metric)
    row["baseline"] = b
    if b is None:
        row.update(status="skipped", reason=f"baseline run {baseline['run_id']} has no metric {g.metric}")
        return
    row["limit"] = b + g.bound if lower_is_better(g.metric) else b - g.bound
    ok = v is not None and (v <= row["limit"] + 1e-12 if lower_is_better(g.metric) else v >= row["limit"] - 1e-12)
    if not ok:
        row["status"] = "fail"


def _significant(row: dict, r: dict | None, baseline: dict) -> None:
    if r is None:
        row.update(status="unknown", reason=f"no paired comparison with baseline run {baseline['run_id']}")
        return
    d, p = r["difference"], r["p_value"]
    worse = d is not None and (d > 0 if lower_is_better(row["metric"]) else d < 0)
    row.update(baseline=r["a"], difference=d, ci=r["ci"], p_value=p, alpha=r["alpha"], level=r["level"])
    if d is None or not math.isfinite(d) or p is None:  # as any gate whose value is undefined
        row.update(status="fail", reason="paired difference undefined")
    elif worse and p < r["alpha"]:
        row.update(status="fail", reason="significant drop")


def _decimals(value: float, op: str, bound: float, rounds_bound: bool, holds: bool) -> int:
    """4, or more when 4 decimals would show ``value`` on the other side of ``bound`` than the verdict
    (``holds``: the gate passed) says it is: ``0.636154`` failing ``>= 0.63616`` prints ``0.63615``, not
    ``0.6362``. ``rounds_bound``: the bound is printed with as many decimals (a max-drop limit), else as given."""
    for d in (4, 5, 6, 8, 10, 12, 15):
        if OPS[op](round(value, d), round(bound, d) if rounds_bound else bound) == holds:
            return d
    return 17


def describe(row: dict) -> str:
    """One line per gate result: value, bound (limit) and baseline; for a significant gate the
    paired difference (this run - baseline), its interval and p-value. The value has 4 decimals, more
    when 4 would round it across its bound (:func:`_decimals`)."""
    v = "undefined" if row["value"] is None else f"{row['value']:.4f}"
    if row["op"] == "max-drop":
        if row["status"] in ("skipped", "unknown"):
            what = "not checked, outcome unknown" if row["status"] == "unknown" else "skipped"
            return f"{row['gate']}: {what} ({row['reason']}); value {v}"
        if "p_value" in row:
            from evalkit.stats import p_text

            ci = "undefined" if row["ci"] is None else f"[{row['ci'][0]:+.4f}, {row['ci'][1]:+.4f}]"
            p = "undefined" if row["p_value"] is None else p_text(row["p_value"], row["alpha"])
            verdict = "significant drop" if row["status"] == "fail" else "no significant drop"
            if row.get("reason") == "paired difference undefined":
                verdict = "paired difference undefined (fails, as an undefined value does)"
            return (f"{row['metric']} = {v} (baseline {row['baseline']:.4f}): difference {row['difference']:+.4f}, "
                    f"{100 * row['level']:g}% CI {ci}, paired bootstrap p = {p}: {verdict} at alpha {row['alpha']:g}")
        cmp = "<=" if lower_is_better(row["metric"]) else ">="
        d = 4 if row["value"] is None else _decimals(row["value"], cmp, row["limit"], True, row["status"] == "pass")
        v = v if row["value"] is None else f"{row['value']:.{d}f}"
        return (f"{row['metric']} = {v}, bound {cmp} {row['limit']:.{d}f} "
                f"(baseline {row['baseline']:.4f}, max drop {row['bound']:g})")
    if row["value"] is not None:
        v = f"{row['value']:.{_decimals(row['value'], row['op'], row['bound'], False, row['status'] == 'pass')}f}"
    b = f"{row['bound']:g}" if float(f"{row['bound']:g}") == row["bound"] else repr(row["bound"])  # as written
    return f"{row['metric']} = {v}, bound {row['op']} {b}"
