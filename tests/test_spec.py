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
