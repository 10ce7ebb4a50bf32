"""A spec grid prints one line per cell as it ends and the grouped summary; --verbose prints each
cell's tables as a single run does (issue 22)."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from evalkit.cli.ui import ConsoleRenderer
from evalkit.workflows.events import Event

SPEC = """experiment = "grid-output"
dataset = "yeast"
model = "linear"
log_model = false
folds = 1
epochs = 1

[grid]
loss = ["bce", "focal"]
seed = [0]
"""


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "two.toml"
    path.write_text(SPEC)
    return path


def _lines(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def test_a_two_cell_grid_prints_one_line_per_cell_with_its_test_metrics(spec):
    from evalkit.workflows.grid import run_spec

    buf = io.StringIO()
    result = run_spec(str(spec), track=False,
                      on_event=ConsoleRenderer(Console(file=buf, width=250), quiet_cells=True))
    out = buf.getvalue()
    cells = _lines(out, "cell ")
    assert [c.split(":")[0] for c in cells] == ["cell 1/2 loss=bce seed=0", "cell 2/2 loss=focal seed=0"]
    for line, res in zip(cells, result.results):
        s = res.report["summary"]
        expected = {"micro-F2": s["micro"]["f2"], "macro-F2": s["macro"]["f2"], "mAP": s["mean_average_precision"],
                    "subset acc": s["subset_accuracy"]}
        for name, value in expected.items():
            assert re.search(rf"{name} (\d\.\d{{4}})", line)[1] == f"{value:.4f}", (name, line)
        assert re.search(r"\((\d+\.\d) s\)$", line)
    assert "Per class" not in out and "Dataset yeast" not in out and "Test split" not in out
    assert "Grid two.toml: 2 runs by loss" in out


def test_cli_grid_is_quiet_unless_verbose(cli, spec, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    quiet = cli("run", spec, "--no-track")
    assert quiet.exit_code == 0, quiet.output
    assert len(_lines(quiet.output, "cell ")) == 2
    assert "Per class" not in quiet.output and "grid cell 1/2" not in quiet.output
    verbose = cli("run", spec, "--no-track", "--verbose")
    assert verbose.exit_code == 0, verbose.output
    assert verbose.output.count("Per class") == 2 and verbose.output.count("Dataset yeast") == 2
    assert "grid cell 1/2: loss=bce seed=0" in verbose.output
    assert len(quiet.output.splitlines()) < len(verbose.output.splitlines()) / 3


def test_quiet_cells_keep_each_warning_once_named_after_its_cell_and_drop_notes():
    buf = io.StringIO()
    r = ConsoleRenderer(Console(file=buf, width=250), quiet_cells=True)
    events = [Event("note", {"text": "before the grid"}),
              Event("grid_cell", {"i": 1, "n": 2, "label": "loss=bce"}),
              Event("note", {"text": "a cell's note"}), Event("warning", {"text": "Class14 never predicted"}),
              Event("fold", {"k": 1, "folds": 2, "n_train": 5, "n_out_of_fold": 5}),
              Event("grid_cell_done", {"i": 1, "n": 2, "label": "loss=bce", "values": {}, "seconds": 1.3,
                                       "run_id": None, "report": None}),
              Event("grid_cell", {"i": 2, "n": 2, "label": "loss=focal"}),
              Event("warning", {"text": "Class14 never predicted"}), Event("warning", {"text": "another"}),
              Event("grid_cell_done", {"i": 2, "n": 2, "label": "loss=focal", "values": {}, "seconds": 2.0,
                                       "run_id": None, "report": None}),
              Event("warning", {"text": "after the grid"})]
    for e in events:
        r(e)
    assert buf.getvalue().splitlines() == [
        "note: before the grid",
        "warning: cell 1/2 loss=bce: Class14 never predicted",
        "cell 1/2 loss=bce:   (1.3 s)",
        "warning: cell 2/2 loss=focal: another",
        "cell 2/2 loss=focal:   (2.0 s)",
        "warning: after the grid",
    ]


@pytest.mark.parametrize("argv,kept", [(["run", "s.toml", "--verbose"], True), (["--verbose", "run", "s.toml"], True),
                                       (["evaluate", "--predictions", "p.npz", "--verbose"], False),
                                       (["compare", "--verbose"], False)])
def test_the_entry_point_passes_verbose_on_to_run_only(monkeypatch, argv, kept):
    """``evalkit run SPEC --verbose`` printed no cell's tables: the entry point took ``--verbose`` (MLflow's
    log lines) off the line before ``run``, whose own ``--verbose`` (-v) it is too, could see it."""
    import sys

    import evalkit.cli as cli_module
    import evalkit.cli.exit_compat as exit_compat

    seen = []
    monkeypatch.setattr(cli_module, "app", lambda: seen.append(list(sys.argv[1:])))
    monkeypatch.setattr(exit_compat, "exit_now", lambda code: None)
    monkeypatch.setattr(cli_module.app_module, "quiet_logging", lambda verbose: seen.append(verbose))
    monkeypatch.setattr(sys, "argv", ["evalkit", *argv])
    monkeypatch.setattr("evalkit.cli.outputs.guard_stdout", lambda: None)
    cli_module.main()
    assert seen[0] is True  # MLflow's log lines shown either way
    assert ("--verbose" in seen[1]) is kept and [a for a in seen[1] if a != "--verbose"] == [a for a in argv if a != "--verbose"]
