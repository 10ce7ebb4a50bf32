"""Degenerate labels: predicted for every (or no) evaluated row, so their F-beta says nothing about the model."""

from __future__ import annotations


#: a label whose decisions differ from "every row" (or "no row") on at most this share of the rows
#: (and at least one row) is named as ``nearly_all`` (``nearly_none``)
NEARLY_SHARE = 0.01


def degenerate_labels(per_class: list[dict], n_rows: int | None = None) -> dict[str, list[str]]:
    """The labels whose decisions (barely) depend on the row, in label order (empty lists when none):

    * ``all``: predicted positive for every evaluated row (``fn == tn == 0``: F-beta is then
      ``(1 + b²)p / (b²p + 1)`` for prevalence p, high for a frequent label whatever the model);
    * ``none``: predicted for no row (``tp == fp == 0``);
    * ``nearly_all`` / ``nearly_none``: not so, but at most ``max(1, NEARLY_SHARE x rows)`` rows
      decided otherwise (a cut just above the lowest validation score, e.g. after the threshold
      fit's tie rule, leaves out a row or two: the label still reads as its prevalence).

    With sample weights the counts are sums of weights: give ``n_rows`` (the evaluated rows) and the
    slack is the share ``max(1 / n_rows, NEARLY_SHARE)`` of the total weight (the same as above for
    unit weights; without it, weights of 0.001 made every label "nearly all").
    """
    out: dict[str, list[str]] = {"all": [], "none": [], "nearly_all": [], "nearly_none": []}
    for r in per_class:
        n = r.get("tp", 0) + r.get("fp", 0) + r.get("fn", 0) + r.get("tn", 0)
        predicted = r.get("tp", 0) + r.get("fp", 0)
        slack = max(1.0, NEARLY_SHARE * n) if not n_rows else max(1.0 / n_rows, NEARLY_SHARE) * n
        if n <= 0:
            continue
        kind = ("all" if predicted == n else "none" if predicted == 0 else
                "nearly_all" if n - predicted <= slack else "nearly_none" if predicted <= slack else None)
        if kind:
            out[kind].append(r["label"])
    return out


def degenerate_note(report: dict) -> tuple[str, str] | None:
    """``(event kind, text)`` telling the degenerate labels of ``report`` (:func:`degenerate_labels`):
    a ``warning`` naming them (at most 10 of each kind shown); None when there are none (nothing to say)."""
    found = (report.get("summary") or {}).get("degenerate_labels") or {}
    parts = []
    for kind, what in (("all", "every test row"), ("none", "no test row"),
                       ("nearly_all", "all but at most 1% of the test rows"), ("nearly_none", "at most 1% of the test rows")):
        labels = [str(x) for x in found.get(kind) or []]
        if labels:
            more = f" (+{len(labels) - 10} more)" if len(labels) > 10 else ""
            parts.append(f"{len(labels)} label(s) predicted for {what}: {', '.join(labels[:10])}{more}")
    if not parts:
        return None
    return "warning", "; ".join(parts) + (" — their F-beta says nothing about the model (see their AUROC); "
                                          "report summary.degenerate_labels")
