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


def test_tune_input_files_are_checked_before_ray_starts_or_a_run_is_created(tmp_path, store, cli, monkeypatch):
    (tmp_path / "d.csv").write_text("f1,y_a,y_b\n" + "".join(f"{i},{i % 2},{(i // 2) % 2}\n" for i in range(20)))
    _no_ray(monkeypatch)
    search = '[reader_options]\nlabel_prefix = "y_"\n[search]\nlr = { loguniform = [1e-3, 1e-2] }\n'
    p = write(tmp_path, 'dataset = "nope.csv"\nepochs = 1\n' + search)
    r = cli("tune", str(p))
    assert r.exit_code == 2
    assert r.output.strip() == "error: dataset nope.csv: no such file (and not a built-in dataset: yeast, digits-grid)"
    p = write(tmp_path, 'dataset = "d.csv"\ntest_dataset = "t.csv"\nepochs = 1\n' + search)
    r = cli("tune", str(p), "--no-track")
    assert r.exit_code == 2 and r.output.strip().startswith("error: test_dataset t.csv: no such file"), r.output
    p = write(tmp_path, 'dataset = "d.csv"\nepochs = 1\n[reader_options]\nlabel_prefix = "y_"\n[search]\n'
                        'dataset = { choice = ["d.csv", "gone.csv"] }\n')
    r = cli("tune", str(p))
    assert r.exit_code == 2
    assert r.output.strip() == f"error: {p}:6: search.dataset gone.csv: no such file (and not a built-in dataset: " \
                               "yeast, digits-grid)", r.output
    assert _runs_in(store) == 0
    from evalkit.workflows.tune import run_tune  # the Python API checks the same, before any run

    with pytest.raises(InputError, match=r"s\.toml:6: search\.dataset gone\.csv: no such file"):
        run_tune(str(p))
    assert _runs_in(store) == 0


def test_tune_data_errors_are_one_line_exit_2_before_ray_starts(tmp_path, store, cli, monkeypatch):
    """A label cell of 2 failed every trial inside Ray with the same error, then exit 3; the data
    choices of the search are read once before Ray starts."""
    rows = "".join(f"{i},{i % 2},{(i // 2) % 2}\n" for i in range(20))
    (tmp_path / "d.csv").write_text("f1,y_a,y_b\n" + rows)
    (tmp_path / "bad.csv").write_text("f1,y_a,y_b\n" + rows.replace("3,1,1\n", "3,1,2\n"))
    _no_ray(monkeypatch)
    options = '[reader_options]\nlabel_prefix = "y_"\n'
    p = write(tmp_path, 'dataset = "bad.csv"\nepochs = 1\n' + options + '[search]\nlr = { loguniform = [1e-3, 1e-2] }\n')
    r = cli("tune", str(p))
    assert (r.exit_code, r.output.strip()) == (2, f"error: {tmp_path / 'bad.csv'}: label column 'y_b' must hold 0 or 1, "
                                                  "found 2 (data row 4)"), r.output
    p = write(tmp_path, 'dataset = "d.csv"\nepochs = 1\n' + options + '[search]\ndataset = { choice = ["d.csv", "bad.csv"] }\n')
    r = cli("tune", str(p))
    assert r.exit_code == 2 and "label column 'y_b' must hold 0 or 1, found 2 (data row 4)" in r.output, r.output
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


@pytest.mark.parametrize("body, expected", [
    ("epochs = 1\ngrid = 5\n", "s.toml:2: grid: expected a [grid] table of field = [values]"),
    ("epochs = 1\nexecutor = 3\n", "s.toml:2: executor: expected an [executor] table"),
    ("epochs = 1\nreader_options = 7\n", "s.toml:2: reader_options: Input should be a valid dictionary (got 7)"),
    ('epochs = 1\nreader_options = "a"\n', "s.toml:2: reader_options: Input should be a valid dictionary (got 'a')"),
])
def test_a_key_that_should_be_a_table_is_one_line_naming_it(tmp_path, store, cli, monkeypatch, body, expected):
    # (the CLI read these keys as tables to name spec keys in its errors: TypeError, exit 1)
    calls = _no_training(monkeypatch)
    r = cli("run", str(write(tmp_path, body)))
    assert r.exit_code == 2, r.output
    assert r.output.strip() == f"error: {tmp_path / expected}"
    assert calls == [] and _runs_in(store) == 0


def test_evaluate_reader_options_that_is_no_table_is_one_line(tmp_path, cli):
    spec = write(tmp_path, '[evaluate]\npredictions = "p.npz"\nreader_options = 7\n', "job.toml")
    r = cli("evaluate", "--spec", spec)
    assert r.exit_code == 2, r.output
    assert r.output.strip() == f"error: {spec}:3: evaluate.reader_options: Input should be a valid dictionary (got 7)"


@pytest.mark.parametrize("body, expected", [
    ('[reader_options]\nlabel_prefx = "y_"\n', r"s\.toml:2: reader_options\.label_prefx: unknown reader option; "
     r"expected one of label_file, meka_labels, label_columns, label_prefix, label_list_column, label_sep, "
     r"drop_columns, image_column, image_root, empty_label$"),
    ("[reader_options]\nlabel_prefix = 5\n", r"s\.toml:2: reader_options\.label_prefix: expected a string \(got 5\)$"),
    ("epochs = 1\n[reader_options]\nlabel_columns = [1, 2]\n",
     r"s\.toml:3: reader_options\.label_columns: expected names as a string \"a,b\" or a list of strings"),
    ("[reader_options]\ndrop_columns = 3\n", r"s\.toml:2: reader_options\.drop_columns: expected names"),
    ("[reader_options]\nmeka_labels = true\n",
     r"s\.toml:2: reader_options\.meka_labels: expected an integer number of labels \(got True\)"),
    ('[reader_options]\nmeka_labels = "x"\n', r"s\.toml:2: reader_options\.meka_labels: expected an integer"),
    ("[reader_options]\nlabel_sep = 1\n", r"s\.toml:2: reader_options\.label_sep: expected a string"),
    ('[grid]\nseed = [0, 1]\n[reader_options]\nimage_root = ["a"]\n',
     r"s\.toml:4: reader_options\.image_root: expected a string \(got \['a'\]\) \(grid cell seed=0\)"),
])
def test_reader_options_are_checked_by_name_and_type(tmp_path, body, expected):
    with pytest.raises(InputError, match=expected):
        load_spec(write(tmp_path, body))


def test_reader_options_of_every_documented_type_are_accepted(tmp_path):
    from pathlib import Path

    from evalkit.cli.options import READER_FLAGS
    from evalkit.config import READER_OPTIONS, EvaluateJobConfig, RunConfig

    assert READER_OPTIONS == tuple(READER_FLAGS)  # the flags and the checked table name the same options
    options = {"label_file": "l.xml", "meka_labels": 3, "label_columns": ["a", "b"], "label_prefix": "y_",
               "label_list_column": "labels", "label_sep": "|", "drop_columns": "id,name", "image_column": "path",
               "image_root": "imgs", "empty_label": "No Finding"}
    assert RunConfig(dataset="d.csv", reader_options=options).reader_options == options
    assert EvaluateJobConfig(model="m.pt", reader_options=options).reader_options == options
    assert RunConfig(reader_options={"label_file": Path("l.xml"), "meka_labels": "2"}).reader_options == \
        {"label_file": "l.xml", "meka_labels": 2}  # the Python API's paths and the reader's "N" still work


def test_evaluate_spec_names_a_misspelt_reader_option(tmp_path):
    from evalkit.spec import load_evaluate_spec

    spec = write(tmp_path, '[evaluate]\nmodel = "m.pt"\n[evaluate.reader_options]\nlabel_colums = "a,b"\n', "job.toml")
    with pytest.raises(InputError, match=r"job\.toml:4: evaluate\.reader_options\.label_colums: unknown reader option"):
        load_evaluate_spec(spec)


@pytest.mark.parametrize("body, expected", [
    ("seed = -1\n", r"s\.toml:1: seed: Input should be greater than or equal to 0 \(got -1\)"),
    ("seed = 4294967296\n", r"s\.toml:1: seed: Input should be less than 4294967296"),
    ('experiment = ""\n', r"s\.toml:1: experiment: expected a non-empty experiment name \(got ''\)"),
    ('experiment = "   "\n', r"s\.toml:1: experiment: expected a non-empty experiment name"),
    ('epochs = 1\ndataset = ""\n', r"s\.toml:2: dataset: expected a built-in dataset name \(yeast, digits-grid\) "
     r"or a data file \(got ''\)"),
    ('test_dataset = " "\n', r"s\.toml:1: test_dataset: expected a built-in dataset name"),
    ('[grid]\ndataset = ["yeast", ""]\n', r"s\.toml:2: grid\.dataset: expected a built-in dataset name"),
])
def test_seed_experiment_and_dataset_values_are_checked_in_the_config(tmp_path, body, expected):
    with pytest.raises(InputError, match=expected):
        load_spec(write(tmp_path, body))


def test_largest_seed_is_accepted(tmp_path):
    assert load_spec(write(tmp_path, "seed = 4294967295\n")).configs()[0].seed == 2**32 - 1


def test_negative_seed_of_a_later_cell_is_refused_before_the_first_runs(tmp_path, store, cli, monkeypatch):
    # (cell 1 used to train, then numpy refused seed -1 in cell 2 with a traceback)
    p = write(tmp_path, "epochs = 1\n\n[grid]\nseed = [0, -1]\n")
    calls = _no_training(monkeypatch)
    r = cli("run", str(p))
    assert r.exit_code == 2, r.output
    assert r.output.strip() == f"error: {p}:4: grid.seed: Input should be greater than or equal to 0 (got -1)"
    assert calls == [] and _runs_in(store) == 0


def test_empty_experiment_is_refused_before_training(tmp_path, store, cli, monkeypatch):
    # (an empty experiment name failed only at tracking time, after training: exit 3)
    calls = _no_training(monkeypatch)
    p = write(tmp_path, 'epochs = 1\nexperiment = ""\n')
    r = cli("run", str(p))
    assert (r.exit_code, r.output.strip()) == (2, f"error: {p}:2: experiment: expected a non-empty experiment name "
                                                   "(got '')")
    job = write(tmp_path, '[evaluate]\npredictions = "p.npz"\nexperiment = " "\n', "job.toml")
    r = cli("evaluate", "--spec", job)
    assert (r.exit_code, r.output.strip()) == (2, f"error: {job}:3: evaluate.experiment: expected a non-empty "
                                                   "experiment name (got ' ')")
    assert calls == [] and _runs_in(store) == 0


def test_dataset_that_is_a_directory_is_named_as_written(tmp_path, store, cli, monkeypatch):
    # (was `/path/sub: unsupported file type '(none)'`; `dataset = ""` named the spec's own folder)
    (tmp_path / "sub").mkdir()
    calls = _no_training(monkeypatch)
    p = write(tmp_path, 'epochs = 1\ndataset = "sub"\n')
    r = cli("run", str(p))
    assert r.exit_code == 2, r.output
    assert r.output.strip() == f"error: dataset {tmp_path / 'sub'}: is a directory; expected a data file (.arff, " \
        ".csv, .tsv, .parquet, .npz, ...: see evalkit datasets)"
    r = cli("run", "--test-dataset", "sub", "--epochs", "1")
    assert (r.exit_code, r.output.splitlines()[0]) == (2, "error: --test-dataset sub: is a directory; expected a data "
                                                           "file (.arff, .csv, .tsv, .parquet, .npz, ...: see evalkit "
                                                           "datasets)")
    assert calls == [] and _runs_in(store) == 0
