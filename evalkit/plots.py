"""Figures of a run (matplotlib, Agg backend): per-class F-beta bars, precision-recall curves, the
threshold-vs-F-beta curve with the chosen cut marked, and the grouped bar chart of ``compare``.

Every function returns a ``matplotlib.figure.Figure``; the caller logs it (``RunLogger.log_figure``)
or saves it, then closes it (``plt.close(fig)``).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

MAX_LABELS = 20  # curves drawn for at most this many labels (the most frequent in the split)


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def per_class_fbeta(report: dict):
    """Bar per label: test F-beta at the chosen thresholds, with the 0.5-cut value as a marker."""
    plt = _plt()
    from evalkit.metrics.names import fbeta_key

    fk = fbeta_key(report.get("beta", 2.0))
    rows = report["per_class"]
    names = [r["label"] for r in rows]
    vals = [r.get(fk) or 0.0 for r in rows]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(rows) + 2), 4))
    x = np.arange(len(rows))
    ax.bar(x, vals, color="tab:blue", label=f"{fk.upper()} ({report['threshold']['strategy']})")
    ref = report.get("reference_at_0.5", {}).get("per_class")
    if ref:
        ax.scatter(x, [r.get(fk) or 0.0 for r in ref], color="black", marker="_", s=200, zorder=3,
                   label=f"{fk.upper()} at 0.5")
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"test {fk.upper()}")
    ax.set_title(f"Per-class {fk.upper()} — {report['dataset']['name']}")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def _top_labels(Y: np.ndarray, limit: int = MAX_LABELS) -> list[int]:
    order = np.argsort(-Y.sum(axis=0), kind="stable")
    return sorted(int(c) for c in order[:limit] if Y[:, c].sum() > 0)


def pr_curves(probabilities: np.ndarray, targets: np.ndarray, label_names, thresholds=None, title: str = ""):
    """Precision-recall curve per label (the ``MAX_LABELS`` most frequent), the operating point at
    each label's threshold marked."""
    from evalkit.thresholds import pr_curve

    plt = _plt()
    fig, ax = plt.subplots(figsize=(8.5, 5))
    cmap = plt.get_cmap("tab20")
    for i, c in enumerate(_top_labels(targets)):
        cuts, prec, rec = pr_curve(probabilities[:, c], targets[:, c])
        color = cmap(i % 20)
        ax.plot(np.r_[0, rec], np.r_[prec[0], prec], color=color, lw=1, label=str(label_names[c]))
        if thresholds is not None and np.isfinite(thresholds[c]):
            j = np.searchsorted(-cuts, -thresholds[c], side="right") - 1  # last cut >= threshold
            if j >= 0:
                ax.plot(rec[j], prec[j], "o", color=color, ms=4)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(title or "Precision-recall per label (dots: chosen thresholds)")
    # outside the axes: the rare labels' curves sit low and left, where a legend inside would cover them
    ax.legend(fontsize=6, ncol=1 + len(ax.get_lines()) // 40, loc="upper left", bbox_to_anchor=(1.02, 1.0),
              borderaxespad=0.0)
    fig.tight_layout()
    return fig


def threshold_curve(probabilities: np.ndarray, targets: np.ndarray, *, beta: float, chosen=None,
                    strategy: str = "", objective: str = "macro-fbeta", title: str = ""):
    """Validation micro and macro F-beta as functions of one cut shared by all labels; the chosen
    cut (or, for per-label cuts, each label's cut as a tick) marked."""
    from evalkit.thresholds import objective_curve

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for obj, style in (("micro-fbeta", "-"), ("macro-fbeta", "--")):
        cuts, values = objective_curve(probabilities, targets, beta=beta, objective=obj)
        ax.plot(cuts, values, style, label=f"{obj.split('-')[0]}-F{beta:g} (validation)"
                + (" — objective" if obj == objective else ""))
    if chosen is not None:
        chosen = np.asarray(chosen, dtype=np.float64)
        finite = chosen[np.isfinite(chosen)]
        if finite.size and np.allclose(finite, finite[0]):
            ax.axvline(finite[0], color="red", lw=1.2, label=f"chosen cut {finite[0]:.3f} ({strategy})")
        elif finite.size:
            for t in finite:
                ax.axvline(t, color="red", lw=0.6, alpha=0.5)
            ax.plot([], [], color="red", lw=0.6, label=f"per-label cuts ({strategy})")
    ax.axvline(0.5, color="grey", lw=0.8, ls=":", label="0.5")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("threshold (probability >= threshold)")
    ax.set_ylabel(f"F{beta:g}")
    ax.set_title(title or f"Threshold vs F{beta:g} on validation scores (out-of-fold with --folds > 1)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def run_figures(report: dict, strategy, val, test, *, beta: float, objective: str) -> Iterator[tuple[str, object]]:
    """The figures logged with every run: ``(artifact path, figure)`` pairs, built one at a time."""
    val_p, val_y = val
    test_p, test_y = test
    names = [r["label"] for r in report["per_class"]]
    thr = np.array([np.nan if v is None else v for v in report["threshold"]["values"]], dtype=np.float64)
    yield "plots/per_class_fbeta.png", per_class_fbeta(report)
    yield "plots/pr_curves.png", pr_curves(test_p, test_y, names, thr,
                                            title="Precision-recall per label, test split (dots: chosen thresholds)")
    yield "plots/threshold_curve.png", threshold_curve(val_p, val_y, beta=beta, chosen=thr, strategy=strategy.label,
                                                       objective=objective)


def _zoom(cells: list[dict]) -> tuple[float, float]:
    """A y range that shows differences of 0.01: the data's span (mean ± std, intervals) plus a margin, within [0, 1]."""
    cells = [c for c in cells if c["mean"] == c["mean"]]
    lo = [c["mean"] - (c["std"] or 0.0) for c in cells] + [c["ci"][0] for c in cells if c.get("ci")]
    hi = [c["mean"] + (c["std"] or 0.0) for c in cells] + [c["ci"][1] for c in cells if c.get("ci")]
    if not lo:
        return 0.0, 1.0
    span = max(max(hi) - min(lo), 0.02)
    return max(0.0, min(lo) - 0.25 * span), min(1.0, max(hi) + 0.25 * span)


def group_bars(stats: dict, title: str = ""):
    """Grouped bar chart of ``compare``: one group of bars per metric, one bar per group (e.g. loss),
    height = mean over runs, error bar = std; where the runs logged bootstrap intervals (``--ci``), thin
    dark whiskers show the interval (mean of the runs' bounds, the cell's ``ci``)."""
    plt = _plt()
    metrics = stats["metrics"]
    groups = stats["groups"]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(metrics) + 2), 4.2))
    width = 0.8 / max(len(groups), 1)
    x = np.arange(len(metrics))
    for i, g in enumerate(groups):
        means = [g["metrics"][m]["mean"] for m in metrics]
        stds = [g["metrics"][m]["std"] or 0.0 for m in metrics]
        pos = x + (i - (len(groups) - 1) / 2) * width
        ax.bar(pos, means, width, yerr=stds, capsize=2, label=f"{g['rank']}. {g['group']}")
        with_ci = [j for j, m in enumerate(metrics) if g["metrics"][m].get("ci")]
        if with_ci:
            cis = [g["metrics"][metrics[j]]["ci"] for j in with_ci]
            ax.errorbar(pos[with_ci], [means[j] for j in with_ci], fmt="none", ecolor="0.15", elinewidth=1.0,
                        capsize=4, yerr=[[max(0.0, means[j] - c[0]) for j, c in zip(with_ci, cis)],
                                         [max(0.0, c[1] - means[j]) for j, c in zip(with_ci, cis)]])
    ax.set_xticks(x, [m.removeprefix("test/") for m in metrics])
    shown_ci = any(g["metrics"][m].get("ci") for g in groups for m in metrics)
    ax.set_ylabel("mean ± std over runs" + ("\nwhiskers: bootstrap interval" if shown_ci else ""))
    ax.set_ylim(*_zoom([g["metrics"][m] for g in groups for m in metrics]))
    ax.set_title(title or f"By {stats['group_by']}")
    ax.legend(fontsize=8, ncol=1, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    return fig


def save_figure(fig, path, dpi: int = 120):
    """Save ``fig`` to ``path`` atomically (temporary file + rename), in the format of its extension
    (png, pdf, svg, jpg). Raises WriteError (exit 3) when it cannot be written."""
    from pathlib import Path

    from evalkit.report import write_atomic

    fmt = Path(path).suffix.lower().lstrip(".") or "png"
    return write_atomic(path, lambda f: fig.savefig(f, format=fmt, dpi=dpi), mode="wb")
