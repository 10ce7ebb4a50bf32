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
