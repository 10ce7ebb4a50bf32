import textwrap

import pytest

from evalkit.errors import InputError
from evalkit.spec import find_line, load_spec


def write(tmp_path, text, name="s.toml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_grid_cells_in_file_order_and_overrides(tmp_path):
    p = write(tmp_path, """
        experiment = "x"
        epochs = 3
        [loss_options]
        [grid]
        loss = ["bce", "asl"]
        seed = [0, 1, 2]
    """)
    spec = load_spec(p)
    cfgs = spec.configs()
    assert [(c.loss, c.seed) for c in cfgs] == [(l, s) for l in ("bce", "asl") for s in (0, 1, 2)]
    assert all(c.epochs == 3 and c.experiment == "x" for c in cfgs)
    # a flag wins over the spec and replaces the grid axis it names
    cfgs = spec.configs({"seed": 7, "epochs": 5})
    assert [(c.loss, c.seed, c.epochs) for c in cfgs] == [("bce", 7, 5), ("asl", 7, 5)]


@pytest.mark.parametrize("body, expected", [
    ('epochs = 3\nlrr = 0.1\n', r"s.toml:2: lrr: unknown field"),
    ('epochs = 3\n\n[grid]\nseed = [0, "a"]\n', r"s.toml:4: grid.seed: Input should be a valid integer"),
    ('[grid]\nloss = ["bce", "nope"]\n', r"s.toml:2: grid.loss: unknown loss 'nope'"),
    ('loss = "focal"\n[loss_options]\ngamma = 2\nbeta = 1\n', r"s.toml:4: loss_options.beta: loss 'focal' has no option 'beta'"),
    ('epochs = 0\n', r"s.toml:1: epochs: Input should be greater than or equal to 1"),
    ('threshold = "top-k:x"\n', r"s.toml:1: threshold: expected top-k:K"),
    ('epochs = 3\nseed = 1\n[grid]\nseed = [1, 2]\n', r"s.toml:4: grid.seed: also set at the top level \(line 2\)"),
    ('[grid]\nseed = 3\n', r"s.toml:2: grid.seed: expected a non-empty list"),
    ('epochs = = 3\n', r"s.toml:1: TOML syntax"),
])
def test_invalid_spec_names_file_line_field(tmp_path, body, expected):
    p = write(tmp_path, body)
    with pytest.raises(InputError, match=expected):
        load_spec(p)


def test_missing_spec_file(tmp_path):
    with pytest.raises(InputError, match="nope.toml: no such spec file"):
        load_spec(tmp_path / "nope.toml")


def test_find_line_prefers_the_right_table():
    text = 'seed = 1\n[grid]\nseed = [1]\n[loss_options]\ngamma = 2\n'
    assert find_line(text, ("seed",)) == 1
    assert find_line(text, ("seed",), section="grid") == 3
    assert find_line(text, ("loss_options", "gamma")) == 5


def test_cli_reports_bad_spec_in_one_line(tmp_path, cli):
    p = write(tmp_path, 'epochs = "many"\n')
    r = cli("run", str(p))
    assert r.exit_code == 2
    assert "s.toml:1: epochs:" in r.output
    assert len(r.output.strip().splitlines()) <= 2


def test_shipped_specs_are_valid():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "experiments"
    specs = sorted(p for name in ("yeast", "emotions", "scene") for p in root.glob(f"{name}*.toml"))
    assert any(s.name == "yeast_losses.toml" for s in specs)
    for s in specs:
        cfgs = load_spec(s).configs()
        assert cfgs, s.name
        assert all(not c.log_model for c in cfgs), f"{s.name}: shipped specs skip the model artifact"


def _no_training(monkeypatch) -> list:
    """Replace every entry to training with a recorder; returns the list of configs it was called with."""
    import evalkit.workflows.executors as executors
    import evalkit.workflows.grid as grid

    calls: list = []

    def fake(config, *args, **kwargs):
        calls.append(config)
        raise AssertionError("a cell ran")

    monkeypatch.setattr(executors, "run_experiment", fake)
    monkeypatch.setattr(grid, "run_experiment", fake)
    return calls


def _runs_in(store: str) -> int:
    import sqlite3

    with sqlite3.connect(store.removeprefix("sqlite:///")) as db:
        return db.execute("select count(*) from runs").fetchone()[0]


def _no_ray(monkeypatch) -> None:
    import evalkit.workflows.ray_session as ray_session

    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(ray_session, "import_ray", refuse)
    monkeypatch.setattr(ray_session, "start_ray", refuse)


@pytest.mark.parametrize("executor", ["sequential", "ray"])
def test_grid_value_error_is_reported_before_any_cell_runs(tmp_path, store, cli, monkeypatch, executor):
    # yeast has 14 labels: top-k:99 can only be refused once the cell's data is known; cell 1 is fine
    p = write(tmp_path, 'epochs = 1\nlog_model = false\n\n[grid]\nthreshold = ["joint", "top-k:99"]\n')
    calls = _no_training(monkeypatch)
    _no_ray(monkeypatch)
    r = cli("run", str(p), "--executor", executor)
    assert r.exit_code == 2
    assert "s.toml:5: grid.threshold: top-k:99 asks for more labels than the data has (14); expected K in 1..14" \
        in r.output
    assert "--threshold" not in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert calls == [] and _runs_in(store) == 0


def test_grid_value_of_a_later_cell_is_refused_before_the_first_runs(tmp_path, store, cli, monkeypatch):
    p = write(tmp_path, 'epochs = 1\n\n[grid]\nseed = [0, 1]\nloss = ["bce", "nope"]\n')
    calls = _no_training(monkeypatch)
    r = cli("run", str(p))
    assert r.exit_code == 2
    assert "s.toml:5: grid.loss: unknown loss 'nope'; expected one of: bce," in r.output
    assert calls == [] and _runs_in(store) == 0


def test_top_k_flag_over_the_label_count_names_the_flag(tmp_path, store, cli, monkeypatch):
    p = write(tmp_path, 'epochs = 1\n\n[grid]\nseed = [0, 1]\n')
    calls = _no_training(monkeypatch)
    r = cli("run", str(p), "--threshold", "top-k:15")
    assert r.exit_code == 2
    assert "--threshold: top-k:15 asks for more labels than the data has (14)" in r.output
    assert calls == [] and _runs_in(store) == 0


def test_deeply_nested_toml_is_one_line_error(tmp_path, cli):
    p = write(tmp_path, "x = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(InputError, match=r"s\.toml:1: TOML syntax: values nested too deeply"):
        load_spec(p)
    r = cli("run", str(p))
    assert r.exit_code == 2
    assert len(r.output.strip().splitlines()) == 1 and "Recursion" not in r.output


def test_grid_over_cell_cap_is_refused_without_expanding(tmp_path, monkeypatch):
    from evalkit.spec import MAX_CELLS, Spec

    def expanded(self):
        raise AssertionError("the grid was expanded")

    monkeypatch.setattr(Spec, "cells", expanded)
    axes = "".join(f"{k} = {list(range(1, 1001))}\n" for k in ("seed", "epochs", "patience", "batch_size"))
    p = write(tmp_path, "log_model = false\n[grid]\n" + axes)
    with pytest.raises(InputError, match=r"s\.toml:2: grid: seed \(1000\) x epochs \(1000\) x patience \(1000\) x "
                                         r"batch_size \(1000\) = 1,000,000,000,000 cells; expected at most 10,000"):
        load_spec(p)
    assert MAX_CELLS == 10_000
    # one cell over the cap (73 x 137 = 10,001) is refused too
    p = write(tmp_path, f"[grid]\nseed = {list(range(73))}\nepochs = {list(range(1, 138))}\n")
    with pytest.raises(InputError, match=r"= 10,001 cells"):
        load_spec(p)


def test_grid_at_the_cell_cap_is_expanded_lazily_and_whole(tmp_path):
    p = write(tmp_path, f"[grid]\nseed = {list(range(100))}\nepochs = {list(range(1, 101))}\n")
    spec = load_spec(p)
    cells = spec.cells()
    assert next(cells) == {"seed": 0, "epochs": 1}  # an iterator, not a list of 10,000 dicts
    assert len(spec.configs()) == 10_000


@pytest.mark.parametrize("body, expected", [
    ("lr = true\n", r"s\.toml:1: lr: expected a number, not a boolean \(got True\)"),
    ("epochs = 3\n[grid]\nseed = [0, false]\n", r"s\.toml:3: grid\.seed: expected a number, not a boolean"),
    ("hidden = [true]\n", r"s\.toml:1: hidden: expected a number, not a boolean"),
    ('loss = "focal"\n[loss_options]\ngamma = true\n', r"s\.toml:3: loss_options\.gamma: expected a number, not a boolean"),
])
def test_bool_is_not_a_learning_rate(tmp_path, body, expected):
    from pydantic import ValidationError

    from evalkit.config import RunConfig

    with pytest.raises(InputError, match=expected):
        load_spec(write(tmp_path, body))
    with pytest.raises(ValidationError, match="expected a number, not a boolean"):
        RunConfig(lr=True)
    assert RunConfig(lr=1).lr == 1.0 and RunConfig(epochs=2).epochs == 2  # numbers still coerce


def test_spec_with_utf8_bom_reads(tmp_path):
    p = tmp_path / "s.toml"
    p.write_bytes("\ufeffepochs = 3\n[grid]\nseed = [4, 5]\n".encode("utf-8"))
    assert [(c.epochs, c.seed) for c in load_spec(p).configs()] == [(3, 4), (3, 5)]
    p.write_bytes("\ufeffepochs = 3\nlrr = 1\n".encode("utf-8"))
    with pytest.raises(InputError, match=r"s\.toml:2: lrr: unknown field"):
        load_spec(p)


@pytest.mark.parametrize("body, expected", [
    ("epochs = 3\n\n[grid]\nseed = [1, 2]\n\n[grid.sub]\nx = [1]\n", r"s\.toml:6: grid\.sub: unknown field"),
    ("epochs = 3\n\n[grid]\nseed = [1, 2]\n\n[grid.loss_options]\ngamma = [1]\n",
     r"s\.toml:6: grid\.loss_options: expected a non-empty list"),
])
def test_error_in_grid_subtable_names_its_line(tmp_path, body, expected):
    with pytest.raises(InputError, match=expected):
        load_spec(write(tmp_path, body))


def test_spec_error_names_the_spec_key_not_a_python_field(tmp_path):
    p = write(tmp_path, "epochs = 3\n[grid]\nhidden = [[8], [0]]\n")
    with pytest.raises(InputError) as e:
        load_spec(p)
    assert str(e.value) == f"{p}:3: grid.hidden: hidden layer sizes must lie in 1..65536 (got [0])"


def test_tune_choice_with_unknown_loss_is_refused_before_ray_starts(tmp_path, store, cli, monkeypatch):
    p = write(tmp_path, 'epochs = 1\n\n[search]\nnum_samples = 2\nloss = { choice = ["bce", "nope"] }\n')
    _no_ray(monkeypatch)
    r = cli("tune", str(p))
    assert r.exit_code == 2
    assert "s.toml:5: search.loss: unknown loss 'nope'; expected one of: bce," in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert _runs_in(store) == 0


def test_tune_range_end_out_of_bounds_is_located(tmp_path):
    from evalkit.workflows.tune import _check_space

    p = write(tmp_path, "epochs = 1\n[search]\ndropout = { uniform = [0.1, 1.0] }\n")
    spec = load_spec(p)
    with pytest.raises(InputError, match=r"s\.toml:3: search\.dropout: Input should be less than 1"):
        _check_space(spec, spec.search_space()[1], None)


def test_tune_top_k_choice_over_the_label_count_is_refused_before_ray_starts(tmp_path, store, cli, monkeypatch):
    p = write(tmp_path, 'epochs = 1\n\n[search]\nthreshold = { choice = ["joint", "top-k:20"] }\n')
    _no_ray(monkeypatch)
    r = cli("tune", str(p))
    assert r.exit_code == 2
    assert "s.toml:4: search.threshold: top-k:20 asks for more labels than the data has (14)" in r.output
    assert _runs_in(store) == 0


def test_evaluate_spec_and_flags_merge_in_one_place_with_the_flags_winning(tmp_path):
    from evalkit.config import EvaluateJobConfig
    from evalkit.spec import load_evaluate_spec

    spec = write(tmp_path, """
        [evaluate]
        model = "m.pt"
        arch = "mlp"
        beta = 2.0
        gates = ["test/macro_f2>=0.5"]

        [evaluate.reader_options]
        label_columns = "a,b"
        drop_columns = ["id"]
        """, "job.toml")
    config = load_evaluate_spec(spec, {"beta": 1.0, "reader_options": {"drop_columns": ["x"]}})
    assert isinstance(config, EvaluateJobConfig)
    assert (config.model, config.arch, config.beta, config.gates) == ("m.pt", "mlp", 1.0, ["test/macro_f2>=0.5"])
    assert config.reader_options == {"label_columns": "a,b", "drop_columns": ["x"]}  # merged key by key
    assert load_evaluate_spec(spec).beta == 2.0


def test_bad_flag_over_an_evaluate_spec_names_the_flag(tmp_path, cli):
    spec = write(tmp_path, """
        [evaluate]
        predictions = "p.npz"
        """, "job.toml")
    res = cli("evaluate", "--spec", spec, "--beta", "-1")
    assert res.exit_code == 2, res.output
    assert "--beta: Input should be greater than 0" in res.output and "Traceback" not in res.output
