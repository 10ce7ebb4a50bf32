"""The CLI derives its options from the configuration models: every field is reachable, every help
shows the model's real default, and the library prints nothing unless asked to."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from evalkit.cli.options import READER_FLAGS
from evalkit.config import EvaluateJobConfig, RunConfig

FLAG = {"register_model": "--register", "output": "--output", "gates": "--gate", "loss_options": "--loss-option"}


def _help(cli, command: str) -> str:
    res = cli(command, "--help")
    assert res.exit_code == 0
    return re.sub(r"\s+", " ", re.sub(r"[│╭╮╰╯─]", " ", res.output))


def _flag(name: str) -> str:
    return FLAG.get(name, "--" + name.replace("_", "-"))


@pytest.mark.parametrize("model,command", [(RunConfig, "run"), (EvaluateJobConfig, "evaluate")])
def test_every_config_field_is_an_option_with_its_real_default(cli, monkeypatch, model, command):
    monkeypatch.setenv("COLUMNS", "250")
    text = _help(cli, command)
    for name, field in model.model_fields.items():
        if name == "reader_options":
            for rname in READER_FLAGS:
                assert _flag(rname) + " " in text, rname
            continue
        assert _flag(name) + " " in text, name
        default = field.get_default(call_default_factory=True)
        if isinstance(default, bool):
            shown = _flag(name)[2:] if default else "no-" + _flag(name)[2:]
        elif isinstance(default, list):
            shown = ",".join(map(str, default))
        elif isinstance(default, (str, int, float)):
            shown = str(default)
        else:
            continue
        if shown:
            assert f"[default: {shown}]" in text, (name, shown)


def test_run_help_shows_the_threshold_defaults_and_the_grid_table(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    text = _help(cli, "run")
    assert "[default: joint]" in text and "[default: mean-fbeta]" in text
    assert "[grid]" in text  # not eaten as rich markup
    assert "--no-track" in text


def test_every_run_flag_reaches_the_config(monkeypatch, tmp_path):
    """Each RunConfig field given on the command line arrives in the RunConfig the run receives."""
    monkeypatch.chdir(tmp_path)
    for name in ("d.csv", "t.csv", "w.pt"):  # the input files are checked before the run starts
        (tmp_path / name).write_text("")
    import evalkit.workflows.experiment as exp
    from typer.testing import CliRunner

    from evalkit.cli import app

    seen = {}

    def fake_run(config, **kw):
        seen["config"] = config
        seen["track"] = kw.get("track")

    monkeypatch.setattr(exp, "run_experiment", fake_run)
    # --resume with other options is refused before the run (tests/test_images_resume.py): here every flag is given
    monkeypatch.setattr("evalkit.workflows.resume.resumed_config", lambda config, track=True: config)
    args = ["run", "--no-track", "--dataset", "d.csv", "--test-dataset", "t.csv", "--label-columns", "a,b",
            "--drop-columns", "id,name", "--val-size", "0.25", "--test-size", "0.4", "--no-standardize",
            "--model", "linear", "--hidden", "32,16", "--dropout", "0.1", "--activation", "gelu", "--batch-norm",
            "--loss", "focal", "--loss-option", "gamma=1", "--optimizer", "adam", "--lr", "0.01",
            "--weight-decay", "0", "--epochs", "3", "--batch-size", "8", "--patience", "2", "--monitor", "val_loss",
            "--input-noise", "0", "--folds", "2", "--budget", "off", "--seed", "7", "--device", "cpu", "--threads", "2",
            "--fold-processes", "3", "--log-class-metrics", "--image-size", "64", "--pretrained", "--weights", "w.pt", "--freeze-backbone",
            "--unfreeze-after", "2", "--amp", "bf16", "--workers", "3", "--augment", "none", "--skip-bad-images",
            "--resume", "0123abcd", "--image-root", "imgs", "--image-column", "file", "--empty-label", "No Finding",
            "--threshold", "global", "--objective", "micro-fbeta", "--beta", "1", "--experiment", "e",
            "--ci", "0.9", "--ci-resamples", "500", "--ci-method", "bca",
            "--tracking-uri", "sqlite:///x.db", "--tracking-timeout", "3", "--run-name", "r", "--log-model",
            "--register", "m", "--alias", "champion", "-o", "out.json", "--no-log-scores"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    c = seen["config"]
    assert seen["track"] is False
    assert c.reader_options == {"label_columns": "a,b", "drop_columns": ["id", "name"], "image_root": "imgs",
                                "image_column": "file", "empty_label": "No Finding"}
    assert (c.workers, c.augment, c.skip_bad_images, c.resume) == (3, "none", True, "0123abcd")
    assert (c.val_size, c.test_size, c.standardize, c.model, c.hidden) == (0.25, 0.4, False, "linear", [32, 16])
    assert (c.dropout, c.activation, c.batch_norm, c.loss, c.loss_options) == (0.1, "gelu", True, "focal", {"gamma": 1.0})
    assert (c.optimizer, c.lr, c.weight_decay, c.epochs, c.batch_size, c.patience) == ("adam", 0.01, 0.0, 3, 8, 2)
    assert (c.monitor, c.input_noise, c.folds, c.seed, c.device, c.threads) == ("val_loss", 0.0, 2, 7, "cpu", 2)
    assert c.fold_processes == 3
    assert (c.image_size, c.pretrained, c.weights, c.freeze_backbone, c.unfreeze_after) == (64, True, "w.pt", True, 2)
    assert c.amp == "bf16"
    assert (c.threshold, c.objective, c.beta, c.experiment) == ("global", "micro-fbeta", 1.0, "e")
    assert (c.tracking_uri, c.run_name, c.log_model, c.register_model, c.alias, c.output) == \
        ("sqlite:///x.db", "r", True, "m", "champion", "out.json")
    assert c.tracking_timeout == 3.0 and c.log_scores is False
    assert (c.ci, c.ci_resamples, c.ci_method) == (0.9, 500, "bca")
    given = set(RunConfig.model_fields) - {"dataset", "test_dataset", "reader_options", "log_model"}
    assert {k for k in given if getattr(c, k) != RunConfig.model_fields[k].get_default(call_default_factory=True)} \
        == given, "every field was set away from its default above"


def test_library_prints_nothing_and_the_cli_prints_the_tables(tmp_path):
    code = "import evalkit; evalkit.run_experiment(evalkit.RunConfig(epochs=1, folds=1, hidden=[8]), track=False)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""
    cli = subprocess.run([sys.executable, "-m", "evalkit", "run", "--epochs", "1", "--folds", "1", "--hidden", "8",
                          "--no-track"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert cli.returncode == 0, cli.stderr
    assert "Test split: yeast" in cli.stdout and "Per class" in cli.stdout and "subset accuracy" in cli.stdout
    assert not (tmp_path / "mlruns").exists()  # --no-track touches no store


def test_debug_keeps_the_exit_code(tmp_path):
    res = subprocess.run([sys.executable, "-m", "evalkit", "run", "--debug", "--lr", "-1", "--no-track"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert "Traceback" in res.stderr and "--lr: Input should be greater than 0" in res.stderr


def test_version(cli):
    from evalkit import __version__

    res = cli("--version")
    assert res.exit_code == 0 and res.output.strip() == f"evalkit {__version__}"


def test_per_class_table_is_capped_by_support_unless_all():
    from evalkit.cli.ui import PER_CLASS_ROWS, per_class_rows

    rows = [{"label": f"l{i}", "support": (i * 7919) % 1000} for i in range(PER_CLASS_ROWS + 30)]
    shown, left = per_class_rows(rows)
    assert len(shown) == PER_CLASS_ROWS and left == 30
    cutoff = sorted((r["support"] for r in rows), reverse=True)[PER_CLASS_ROWS - 1]
    assert all(r["support"] >= cutoff for r in shown)
    assert [r["label"] for r in shown] == [r["label"] for r in rows if r in shown]  # label order kept
    assert per_class_rows(rows, "all") == (rows, 0)
    assert per_class_rows(rows, "none") == ([], len(rows))
    assert len(per_class_rows(rows, "5")[0]) == 5


PANEL_ORDER = {
    "run": ["Arguments", "Options", "Data", "Model", "Training", "Thresholds and report", "Tracking and output",
            "Ray (the cells of a spec's grid)"],
    "evaluate": ["Options", "Input", "Model file (--model)", "Thresholds and report", "Gates", "Tracking and output"],
    "tune": ["Arguments", "Options", "Search", "Tracking and output", "Ray"],
}


@pytest.mark.parametrize("command", list(PANEL_ORDER))
def test_help_is_grouped_in_panels_with_real_metavars(cli, monkeypatch, command):
    monkeypatch.setenv("COLUMNS", "200")
    res = cli(command, "--help")
    assert res.exit_code == 0
    assert re.findall(r"╭─ (.+?) ─", res.output) == PANEL_ORDER[command]
    # no Python types as metavars, no "[default: None]"
    assert re.findall(r"<(?:bool|str|int|float|list\[str\])>|default: None", res.output) == []
    assert re.search(r"╭─ Options ─+╮\n│ --help +Show this message and exit\. +│\n╰", res.output), res.output
    text = _help(cli, command)
    if command == "run":
        assert "--lr FLOAT Learning rate." in text and "--epochs N Maximum epochs." in text
        assert "--dataset NAME|FILE " in text and "--output -o FILE " in text and "--device auto|cpu|cuda " in text
        assert "needs evalkit[ray])" in text
        assert text.index("Ray (the cells") < text.index("--executor") < text.index("--max-retries")
    if command == "tune":
        assert "--cpus-per-trial FLOAT CPUs reserved per trial" in text and "per cell" not in text


@pytest.mark.parametrize("command", ["run", "evaluate", "tune"])
def test_every_name_in_the_panels_is_an_option_of_its_command(command):
    """A typo in options.PANELS would leave an option in the default panel unnoticed."""
    import typer

    from evalkit.cli import app
    from evalkit.cli.options import PANELS

    cmd = typer.main.get_command(app).commands[command]
    names = {p.name for p in cmd.params}
    assert {n for panel in PANELS[command].values() for n in panel} - names == set()


@pytest.mark.parametrize("command", [(), ("compare",), ("losses",), ("sync-spool",), ("ui",), ("datasets",),
                                     ("datasets", "download"), ("runs", "reap")])
def test_no_command_shows_python_types_as_metavars(cli, monkeypatch, command):
    monkeypatch.setenv("COLUMNS", "200")
    res = cli(*command, "--help")
    assert res.exit_code == 0, res.output
    assert re.findall(r"<(?:bool|str|int|float|list\[str\])>", res.output) == []
    assert re.search(r"--help +Show this message", res.output)


def test_help_paragraphs_reflow_to_the_terminal_width():
    """Typer keeps the line breaks of a docstring's later paragraphs (ragged lines at 80 columns);
    every command's help text has none inside a paragraph."""
    import typer

    from evalkit.cli import app

    def helps(command, name):
        yield name, command.help or ""
        for sub_name, sub in getattr(command, "commands", {}).items():
            yield from helps(sub, f"{name} {sub_name}")

    found = dict(helps(typer.main.get_command(app), "evalkit"))
    assert "the paired difference B - A, its bootstrap interval" in found["evalkit compare"]
    for name, text in found.items():
        for paragraph in text.split("\n\n"):
            assert paragraph.startswith("\b") or "\n" not in paragraph, (name, paragraph)
