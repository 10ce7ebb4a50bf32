import numpy as np


def test_run_figures_and_group_bars_render():
    import matplotlib.pyplot as plt

    from evalkit.plots import group_bars, run_figures
    from evalkit.thresholds import evaluate, fit_thresholds, parse_strategy

    rng = np.random.default_rng(0)
    Y = (rng.random((60, 3)) < 0.4).astype(int)
    P = np.clip(0.5 * Y + 0.5 * rng.random((60, 3)), 0, 1)
    for name in ("joint", "top-k:1"):
        s = parse_strategy(name)
        thr = fit_thresholds(s, P, Y)
        m = evaluate(s, Y, P, thr, beta=2.0, label_names=["a", "b", "c"])
        values = [None] * 3 if s.per_sample else list(thr)
        report = {"per_class": m["per_class"], "beta": 2.0, "threshold": {"strategy": name, "values": values},
                  "dataset": {"name": "toy"}, "reference_at_0.5": {"per_class": m["per_class"]}}
        figs = list(run_figures(report, s, (P, Y), (P, Y), beta=2.0, objective="mean-fbeta"))
        assert [p for p, _ in figs] == ["plots/per_class_fbeta.png", "plots/pr_curves.png", "plots/threshold_curve.png"]
        for _, f in figs:
            plt.close(f)
    stats = {"group_by": "loss", "metrics": ["test/macro_f2"], "groups": [
        {"group": "bce", "rank": 1, "metrics": {"test/macro_f2": {"mean": 0.6, "std": 0.01}}},
        {"group": "asl", "rank": 2, "metrics": {"test/macro_f2": {"mean": 0.5, "std": None}}}]}
    fig = group_bars(stats)
    assert len(fig.axes[0].patches) == 2
    plt.close(fig)
    assert plt.get_fignums() == []


def test_group_bars_draw_the_runs_bootstrap_intervals_as_whiskers():
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    from evalkit.plots import group_bars

    stats = {"group_by": "loss", "metrics": ["test/macro_f2", "test/macro_map"], "groups": [
        {"group": "bce", "rank": 1, "metrics": {"test/macro_f2": {"mean": 0.6, "std": None, "ci": [0.55, 0.66]},
                                                "test/macro_map": {"mean": 0.5, "std": None, "ci": None}}},
        {"group": "asl", "rank": 2, "metrics": {"test/macro_f2": {"mean": 0.5, "std": None, "ci": [0.42, 0.57]},
                                                "test/macro_map": {"mean": 0.4, "std": None}}}]}
    fig = group_bars(stats)
    ax = fig.axes[0]
    whiskers = [c for c in ax.collections if isinstance(c, LineCollection) and len(c.get_segments()) == 1]
    spans = sorted((round(s[0][1], 6), round(s[1][1], 6)) for c in whiskers for s in c.get_segments())
    assert spans == [(0.42, 0.57), (0.55, 0.66)]  # one whisker per bar with an interval, at its bounds
    assert "bootstrap interval" in ax.get_ylabel()
    lo, hi = ax.get_ylim()
    assert lo <= 0.42 and hi >= 0.66  # the zoom keeps the whole interval in view
    plt.close(fig)
    fig = group_bars({**stats, "groups": [{**g, "metrics": {m: {k: v for k, v in c.items() if k != "ci"}
                                                            for m, c in g["metrics"].items()}} for g in stats["groups"]]})
    assert "bootstrap" not in fig.axes[0].get_ylabel()
    plt.close(fig)


def test_group_stats_average_the_runs_interval_bounds():
    import pandas as pd
    import pytest

    from evalkit.compare import group_stats

    df = pd.DataFrame({"loss": ["bce", "bce", "asl"], "seed": ["0", "1", "0"], "test/macro_f2": [0.6, 0.62, 0.5],
                       "test/macro_f2_ci_low": [0.55, 0.57, float("nan")],
                       "test/macro_f2_ci_high": [0.65, 0.69, float("nan")]})
    g = {r["group"]: r["metrics"]["test/macro_f2"] for r in group_stats(df, "loss", ("test/macro_f2",))["groups"]}
    assert g["bce"]["ci"] == pytest.approx([0.56, 0.67])
    assert g["asl"]["ci"] is None  # its run logged no interval (--ci 0)


def test_the_per_class_fbeta_bars_of_a_large_beta_are_its_values():
    """The plot built its own key (``f1e+06``) while the report's is ``f1e06``: every bar drew 0."""
    import matplotlib.pyplot as plt

    from evalkit import evaluate_scores
    from evalkit.plots import per_class_fbeta

    rng = np.random.default_rng(0)
    report = evaluate_scores(rng.integers(0, 2, (80, 3)), probabilities=rng.random((80, 3)), beta=1e6)
    fig = per_class_fbeta(report)
    heights = sorted(round(p.get_height(), 9) for p in fig.axes[0].patches)
    assert heights == sorted(round(r["f1e06"], 9) for r in report["per_class"]) and max(heights) > 0.3
    plt.close(fig)
