"""End to end: a spec grid makes one parent run with a child per cell; compare groups the children."""

import json
import textwrap

import pytest


@pytest.fixture
def grid_spec(tmp_path):
    p = tmp_path / "tiny_grid.toml"
    p.write_text(textwrap.dedent("""
        experiment = "grid-test"
        dataset = "yeast"
        hidden = [8]
        epochs = 1
        folds = 2
        log_model = false
        [grid]
        loss = ["bce", "asl"]
        seed = [0, 1]
    """))
    return p


def test_grid_parent_children_and_compare(store, cli, grid_spec, tmp_path):
    r = cli("run", str(grid_spec))
    assert r.exit_code == 0, r.output
    assert "paired t-test" in r.output

    from evalkit.compare import runs_frame

    df = runs_frame(store, "grid-test", params=("loss", "seed"))
    parents = df[df["grid"] == "parent"]
    assert len(parents) == 1
    kids = df[df["parent_run_id"] == parents.iloc[0]["run_id"]]
    assert sorted(zip(kids["loss"], kids["seed"])) == [("asl", "0"), ("asl", "1"), ("bce", "0"), ("bce", "1")]
    # reference metrics at 0.5 are tracked under test_at_0.5/
    import mlflow

    run = mlflow.MlflowClient(store).get_run(kids.iloc[0]["run_id"])
    assert "test_at_0.5/micro_f2" in run.data.metrics
    assert run.data.params["threshold"] == "joint" and run.data.params["folds"] == "2"
    arts = {a.path for a in mlflow.MlflowClient(store).list_artifacts(run.info.run_id, "plots")}
    assert {"plots/per_class_fbeta.png", "plots/pr_curves.png", "plots/threshold_curve.png"} <= arts

    r = cli("compare", "--experiment", "grid-test", "--format", "json")
    assert r.exit_code == 0, r.output
    stats = json.loads(r.output)
    assert stats["group_by"] == "loss" and stats["runs"] == 4
    assert "paired t-test" in stats["test"]
    assert [g["rank"] for g in stats["groups"]] == [1, 2]
    assert all(g["n"] == 2 for g in stats["groups"])
    first = stats["groups"][0]["metrics"][stats["rank_by"]]
    assert first["best"] and first["p_value"] is None
    other = stats["groups"][1]["metrics"][stats["rank_by"]]
    assert other["p_value"] is not None

    plot = tmp_path / "bars.png"
    r = cli("compare", "--experiment", "grid-test", "--format", "markdown", "--plot", str(plot), "--log-plot")
    assert r.exit_code == 0, r.output
    assert r.output.startswith("| rank | loss | runs |")
    assert plot.stat().st_size > 0
    r = cli("compare", "--experiment", "grid-test", "--group-by", "none", "--format", "csv")
    assert r.exit_code == 0 and len(r.output.strip().splitlines()) == 5  # header + 4 children
    # --metric / --rank-by take names as gates do: aliases, without test/
    r = cli("compare", "--experiment", "grid-test", "--metric", "macro_f2", "--metric", "map", "--rank-by", "map",
            "--format", "json")
    assert r.exit_code == 0, r.output
    aliased = json.loads(r.output)
    assert aliased["rank_by"] == "test/macro_map"
    assert set(aliased["groups"][0]["metrics"]) == {"test/macro_f2", "test/macro_map"}
    r = cli("compare", "--experiment", "grid-test", "--group-by", "nope")
    assert r.exit_code == 2 and "--group-by" in r.output
