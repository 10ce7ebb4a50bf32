import pytest

from evalkit.stats import paired_pvalue


def test_paired_pvalue_known_values():
    from scipy import stats

    a, b = [0.70, 0.72, 0.71], [0.60, 0.65, 0.61]
    assert paired_pvalue(a, b) == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert paired_pvalue([0.5, 0.6], [0.5, 0.6]) == 1.0
    assert paired_pvalue([0.6, 0.7], [0.5, 0.6]) == 0.0  # constant lead, zero variance
    assert paired_pvalue([0.6], [0.5]) is None


def test_groups_of_several_datasets_are_ranked_and_tested_within_their_dataset():
    """Runs of two datasets x three losses x three seeds (as a grid over both axes gives): each dataset
    has its own best group, ranks restart per dataset, and no group is tested against a group of the
    other dataset (pairing yeast's seed 0 with emotions' seed 0 would mean nothing); Holm runs over
    every comparison made."""
    import pandas as pd
    from scipy import stats

    from evalkit.compare import by_dataset, group_stats
    from evalkit.stats import holm

    base = {("emotions", "bce"): 0.80, ("emotions", "focal"): 0.70, ("emotions", "asl"): 0.60,
            ("yeast", "bce"): 0.50, ("yeast", "focal"): 0.62, ("yeast", "asl"): 0.55}
    noise = [0.0, 0.013, -0.008]
    rows = [{"dataset.name": d, "loss": loss, "seed": s, "test/macro_f2": v + noise[s] + 0.004 * (loss == "asl") * s}
            for (d, loss), v in base.items() for s in range(3)]
    runs, key = by_dataset(pd.DataFrame(rows), "loss")
    assert key == "dataset / loss"
    st = group_stats(runs, key, ("test/macro_f2",), within="dataset.name")
    order = [(g["group"], g["rank"]) for g in st["groups"]]
    assert order == [("emotions / bce", 1), ("emotions / focal", 2), ("emotions / asl", 3),
                     ("yeast / focal", 1), ("yeast / asl", 2), ("yeast / bce", 3)]
    cells = {g["group"]: g["metrics"]["test/macro_f2"] for g in st["groups"]}
    assert [g for g, c in cells.items() if c["best"]] == ["emotions / bce", "yeast / focal"]
    assert cells["emotions / bce"]["p_raw"] is None and cells["yeast / focal"]["p_raw"] is None

    def values(group):
        return [r["test/macro_f2"] for r in rows if f"{r['dataset.name']} / {r['loss']}" == group]

    expected = {g: stats.ttest_rel(values(best), values(g)).pvalue
                for best, others in (("emotions / bce", ("emotions / asl", "emotions / focal")),
                                     ("yeast / focal", ("yeast / asl", "yeast / bce"))) for g in others}
    assert {g: cells[g]["p_raw"] for g in expected} == pytest.approx(expected)
    adjusted = dict(zip(expected, holm(list(expected.values()))))
    assert {g: cells[g]["p_value"] for g in expected} == pytest.approx(adjusted)
    assert st["within"] == "dataset.name"
    # one dataset: no blocks, the ranking and tests as before
    one = group_stats(pd.DataFrame([r for r in rows if r["dataset.name"] == "yeast"]), "loss", ("test/macro_f2",))
    assert [(g["group"], g["rank"]) for g in one["groups"]] == [("focal", 1), ("asl", 2), ("bce", 3)]
    assert one["within"] is None
