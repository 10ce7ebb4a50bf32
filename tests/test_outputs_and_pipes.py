"""Outputs never destroy inputs or existing files (``--force``), a closed or full stdout never loses
the report or the MLflow run nor changes the exit code, and terminal text is safe (control
characters escaped); unknown compare metrics, unsupported plot paths and out-of-memory are one line."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from test_gates import write_predictions

EVALKIT = [sys.executable, "-P", "-m", "evalkit"]
TINY = Path(__file__).parent / "data"
FAST = ("--epochs", "2", "--hidden", "32", "--no-log-model", "--folds", "1")


def _env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    return env


def _statuses(tmp_path) -> list[str]:
    db = tmp_path / "mlruns" / "mlflow.db"
    con = sqlite3.connect(db)
    try:
        return [s for (s,) in con.execute("select status from runs")]
    finally:
        con.close()


# -- outputs -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("link", ["same", "symlink", "hardlink"])
def test_output_path_that_is_an_input_is_refused_even_with_force(store, cli, tmp_path, link):
    pred = write_predictions(tmp_path / "v.npz")
    before = pred.read_bytes()
    out = pred
    if link == "symlink":
        out = tmp_path / "alias.npz"
        out.symlink_to(pred)
    elif link == "hardlink":
        out = tmp_path / "hard.npz"
        os.link(pred, out)
    res = cli("evaluate", "--predictions", pred, "-o", out, "--force")
    assert res.exit_code == 2
    assert "-o/--output" in res.output and "is the input of --predictions" in res.output
    assert "Traceback" not in res.output
    assert pred.read_bytes() == before
    assert _statuses(tmp_path) == []  # refused before any run


def test_run_output_that_is_its_test_dataset_is_refused_before_training(store, cli, tmp_path, monkeypatch):
    from evalkit.workflows import training

    shutil.copy(TINY / "tiny.arff", tmp_path / "t.arff")
    shutil.copy(TINY / "tiny.xml", tmp_path / "t.xml")
    before = (tmp_path / "t.arff").read_bytes()
    monkeypatch.setattr(training, "train_task", lambda *a, **k: pytest.fail("trained before the output check"))
    res = cli("run", "--dataset", "t.arff", "--test-dataset", "t.arff", "-o", "t.arff", *FAST)
    assert res.exit_code == 2
    assert "-o/--output t.arff: is the input of --dataset" in res.output
    assert (tmp_path / "t.arff").read_bytes() == before
    assert _statuses(tmp_path) == []


def test_run_output_that_is_the_label_file_found_next_to_the_arff_is_refused_even_with_force(store, cli, tmp_path,
                                                                                            monkeypatch):
    from evalkit.workflows import training

    shutil.copy(TINY / "tiny.arff", tmp_path / "t.arff")
    shutil.copy(TINY / "tiny.xml", tmp_path / "t.xml")  # MULAN: found by its name, not given
    before = (tmp_path / "t.xml").read_bytes()
    monkeypatch.setattr(training, "train_task", lambda *a, **k: pytest.fail("trained before the output check"))
    res = cli("run", "--dataset", "t.arff", "-o", "t.xml", "--force", *FAST)
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert lines == ["error: -o/--output t.xml: is the input of --dataset (the MULAN label file found next to it); "
                     "write the output to another path (an input is never overwritten, even with --force)"]
    assert (tmp_path / "t.xml").read_bytes() == before
    assert _statuses(tmp_path) == []


def test_found_inputs_are_the_label_file_the_reader_would_take_and_none_when_labels_are_given(tmp_path):
    from evalkit.config import RunConfig
    from evalkit.inputs import found_inputs

    for name in ("emotions-train.arff", "emotions-test.arff", "emotions-train.xml", "emotions.xml", "other.xml"):
        (tmp_path / name).write_text("")
    cfg = RunConfig(dataset=str(tmp_path / "emotions-train.arff"), test_dataset=str(tmp_path / "emotions-test.arff"))
    assert found_inputs(cfg) == {"--dataset (the MULAN label file found next to it)": tmp_path / "emotions.xml",
                                 "--test-dataset (the MULAN label file found next to it)": tmp_path / "emotions.xml"}
    assert found_inputs(cfg.model_copy(update={"reader_options": {"meka_labels": 3}})) == {}
    assert found_inputs(cfg.model_copy(update={"reader_options": {"label_file": str(tmp_path / "other.xml")}})) == {}
    assert found_inputs(RunConfig(dataset="yeast")) == {}


def test_run_output_that_is_its_weights_file_is_refused_even_with_force(tmp_path):
    from evalkit.cli.outputs import check_config_outputs
    from evalkit.config import RunConfig
    from evalkit.errors import InputError

    (tmp_path / "w.pt").write_bytes(b"weights")
    cfg = RunConfig(model="resnet18", weights=str(tmp_path / "w.pt"), output=str(tmp_path / "w.pt"))
    with pytest.raises(InputError, match=r"^-o/--output \S*w\.pt: is the input of --weights; "):
        check_config_outputs([cfg], force=True)


@pytest.mark.parametrize("sidecar", ["preprocess.json", "sd.pt.preprocess.json", "sd.preprocess.json"])
def test_evaluate_output_that_is_the_models_preprocessing_record_is_refused_even_with_force(cli, tmp_path, sidecar):
    import torch

    from test_models import C, F, _mlp, _record

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, F)).astype(np.float32)
    np.savez(tmp_path / "test.npz", X=X, Y=(rng.random((40, C)) < 0.4).astype(np.uint8), labels=np.array(["a", "b", "c"]))
    (tmp_path / "mf").mkdir()
    torch.save(_mlp().state_dict(), tmp_path / "mf" / "sd.pt")
    record = tmp_path / "mf" / sidecar  # found next to the model, not given
    record.write_text(json.dumps(_record(X)))
    before = record.read_bytes()
    res = cli("evaluate", "--model", tmp_path / "mf" / "sd.pt", "--test-dataset", tmp_path / "test.npz", "--no-track",
              "-o", record, "--force")
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: -o/--output {record}: is the input of --model (the "
                                                   "preprocessing record found next to it); write the output to another")
    assert record.read_bytes() == before
    res = cli("evaluate", "--model", tmp_path / "mf" / "sd.pt", "--test-dataset", tmp_path / "test.npz", "--no-track",
              "-o", tmp_path / "r.json")
    assert res.exit_code == 0, res.output  # the record is read: the recorded thresholds
    assert json.loads((tmp_path / "r.json").read_text())["threshold"]["values"] == [0.4, 0.5, 0.6]


def test_evaluate_output_that_is_the_dataset_the_models_record_names_is_refused_even_with_force(tmp_path):
    from evalkit.cli.outputs import check_config_outputs
    from evalkit.config import EvaluateJobConfig
    from evalkit.errors import InputError

    shutil.copy(TINY / "tiny.arff", tmp_path / "t.arff")
    shutil.copy(TINY / "tiny.xml", tmp_path / "t.xml")
    (tmp_path / "m.pt").write_bytes(b"model")
    (tmp_path / "m.preprocess.json").write_text(json.dumps({"dataset": {"spec": str(tmp_path / "t.arff")}}))
    for out, what in (("t.arff", "the dataset its preprocessing record names"),
                      ("t.xml", "the MULAN label file found next to the dataset its preprocessing record names")):
        cfg = EvaluateJobConfig(model=str(tmp_path / "m.pt"), output=str(tmp_path / out))
        with pytest.raises(InputError, match=rf"^-o/--output \S*{out}: is the input of --model .*\({what}\)"):
            check_config_outputs([cfg], force=True)


def test_existing_output_is_refused_without_force_and_replaced_with_force(store, cli, tmp_path):
    pred = write_predictions(tmp_path / "v.npz")
    (tmp_path / "r.json").write_text("keep me")
    res = cli("evaluate", "--predictions", pred, "-o", "r.json", "--no-track")
    assert res.exit_code == 2
    assert "-o/--output: r.json already exists; add --force to overwrite it" in res.output
    assert (tmp_path / "r.json").read_text() == "keep me"
    res = cli("evaluate", "--predictions", pred, "-o", "r.json", "--no-track", "--force")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "r.json").read_text())["dataset"]["n_samples"] == 120
    assert not list(tmp_path.glob(".r.json.*"))  # no temporary file left


def test_compare_plot_that_exists_is_refused_without_force(store, cli, tmp_path):
    (tmp_path / "p.png").write_bytes(b"old")
    res = cli("compare", "--plot", "p.png")
    assert res.exit_code == 2
    assert "--plot: p.png already exists; add --force" in res.output
    assert (tmp_path / "p.png").read_bytes() == b"old"


def test_compare_plot_with_an_unsupported_extension_is_refused(store, cli):
    res = cli("compare", "--plot", "out.txt")
    assert res.exit_code == 2
    assert "--plot: out.txt: unsupported extension '.txt'; expected one of .png, .pdf, .svg" in res.output
    assert "Traceback" not in res.output


def test_compare_plot_that_is_a_directory_is_refused(store, cli, tmp_path):
    (tmp_path / "plots").mkdir()
    res = cli("compare", "--plot", "plots")
    assert res.exit_code == 2
    assert "--plot: plots is a directory" in res.output
    assert not (tmp_path / "plots.png").exists()


def test_compare_unknown_metric_names_the_flag_and_the_closest_keys(store, cli, tmp_path):
    pred = write_predictions(tmp_path / "v.npz")
    assert cli("evaluate", "--predictions", pred, "--no-per-class").exit_code == 0
    res = cli("compare", "--metric", "test/micro_f3", "--group-by", "none")
    assert res.exit_code == 2
    line = res.output.strip().splitlines()[-1]
    assert line.startswith("error: --metric test/micro_f3: no run of the experiment has this metric; closest: ")
    assert "test/micro_f2" in line
    assert cli("compare", "--metric", "test/micro_f2", "--group-by", "none").exit_code == 0


# -- terminal text -------------------------------------------------------------------------------------


def test_label_names_with_control_characters_are_shown_escaped(store, cli, tmp_path):
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.6], [0.1, 0.2]])
    np.savez(tmp_path / "ansi.npz", targets=y, probabilities=p, labels=np.array(["a\x1b[31mred", "nul\x00x"]))
    res = cli("evaluate", "--predictions", "ansi.npz", "--no-track", "--per-class", "all")
    assert res.exit_code == 0, res.output
    assert "\x1b" not in res.output and "\x00" not in res.output
    assert "a\\x1b[31mred" in res.output and "nul\\x00x" in res.output


def test_printable_escapes_control_characters_but_keeps_tabs_newlines_and_unicode():
    from evalkit.cli.ui import escape, printable

    assert printable("a\x1b[0m\x00\x7f\x9b\tb\nµ—") == "a\\x1b[0m\\x00\\x7f\\x9b\tb\nµ—"
    assert escape("[bold]x\x07") == "\\[bold]x\\x07"


@pytest.mark.slow
def test_run_says_report_written_after_the_results(store, cli, tmp_path):
    res = cli("run", *FAST, "-o", "r.json")
    assert res.exit_code == 0, res.output
    text = res.output
    assert text.index("Test split") < text.index("MLflow run") < text.index("Report written to r.json")
    assert text.rstrip().endswith("Report written to r.json")


# -- out of memory -------------------------------------------------------------------------------------


def test_out_of_memory_during_a_run_is_one_line_exit_3_and_the_run_failed_with_a_note(store, cli, tmp_path,
                                                                                       monkeypatch):
    import mlflow

    from evalkit.workflows import training

    def no_memory(*a, **k):
        raise MemoryError()

    monkeypatch.setattr(training, "train_task", no_memory)
    res = cli("run", *FAST, "--experiment", "oom")
    assert res.exit_code == 3
    assert "error: out of memory (MemoryError)" in res.output and "Traceback" not in res.output
    client = mlflow.MlflowClient(store)
    [run] = client.search_runs([client.get_experiment_by_name("oom").experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.tags["evalkit.error"].startswith("out of memory")


@pytest.mark.parametrize("error, oom", [
    (MemoryError(), True),
    (ImportError("libtorch_cpu.so: failed to map segment from shared object"), True),
    (OSError(12, "Cannot allocate memory"), True),
    (ImportError("No module named 'nope'"), False),
    (OSError(28, "No space left on device"), False),
])
def test_out_of_memory_is_told_from_other_import_and_os_errors(error, oom):
    from evalkit.errors import out_of_memory

    assert out_of_memory(error) is oom


# -- closed and full stdout (the real CLI in a subprocess) ---------------------------------------------


def _closed_pipe(args, cwd) -> subprocess.CompletedProcess:
    """Run ``evalkit args`` with stdout a pipe whose read end is closed at once (``| head -0``)."""
    proc = subprocess.Popen([*EVALKIT, *args], cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    return subprocess.CompletedProcess(args, proc.wait(timeout=300), "", err)


def _full_stdout(args, cwd) -> subprocess.CompletedProcess:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    with open("/dev/full", "w") as full:
        return subprocess.run([*EVALKIT, *args], cwd=cwd, env=_env(), stdout=full, stderr=subprocess.PIPE,
                              text=True, timeout=300)


@pytest.mark.parametrize("gate, code", [("test/micro_f2>=0", 0), ("test/micro_f2>=1.01", 1)])
def test_evaluate_with_stdout_closed_keeps_report_and_finished_run_with_the_true_exit_code(store, tmp_path, gate,
                                                                                           code):
    pred = write_predictions(tmp_path / "ok.npz")
    res = _closed_pipe(["evaluate", "--predictions", str(pred), "-o", "r.json", "--gate", gate], tmp_path)
    assert res.returncode == code, res.stderr
    assert res.stderr == ""  # a closed pipe ends quietly
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["gates"]["status"] == ("pass" if code == 0 else "fail") and report["run_id"]
    assert _statuses(tmp_path) == ["FINISHED"]


def test_evaluate_with_stdout_full_keeps_results_and_says_so_on_stderr(store, tmp_path):
    pred = write_predictions(tmp_path / "ok.npz")
    res = _full_stdout(["evaluate", "--predictions", str(pred), "-o", "r.json"], tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip() == "warning: stdout: disk full; the output was cut short (the results were kept)"
    assert json.loads((tmp_path / "r.json").read_text())["run_id"]
    assert _statuses(tmp_path) == ["FINISHED"]


@pytest.mark.parametrize("args", [["losses"], ["datasets"], ["--help"], ["--version"]])
def test_a_command_whose_result_is_stdout_fails_when_stdout_is_full(tmp_path, args):
    """``losses``, the ``datasets`` list, ``--help`` keep their output nowhere else: a full stdout is exit 3
    (it was exit 0 with "the results were kept")."""
    res = _full_stdout(args, tmp_path)
    assert res.returncode == 3, res.stderr
    assert res.stderr == "error: stdout: disk full; the output was lost\n"
    closed = _closed_pipe(args, tmp_path)  # `evalkit losses | head -0`: the reader stopped on purpose
    assert (closed.returncode, closed.stderr) == (0, "")


def test_compare_json_into_a_full_stdout_is_exit_3_and_says_the_output_was_lost(store, tmp_path):
    pred = write_predictions(tmp_path / "ok.npz")
    assert _full_stdout(["evaluate", "--predictions", str(pred)], tmp_path).returncode == 0
    res = _full_stdout(["compare", "--group-by", "none", "--format", "json"], tmp_path)
    assert res.returncode == 3, res.stderr
    assert res.stderr == "error: stdout: disk full; the output was lost\n"
    ok = subprocess.run([*EVALKIT, "compare", "--group-by", "none", "--format", "json"], cwd=tmp_path, env=_env(),
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0 and len(json.loads(ok.stdout)) == 1, ok.stderr


@pytest.mark.slow
@pytest.mark.parametrize("stdout", ["closed", "full"])
def test_run_with_stdout_closed_or_full_keeps_report_and_finished_run(store, tmp_path, stdout):
    res = (_closed_pipe if stdout == "closed" else _full_stdout)(["run", *FAST, "-o", "r.json"], tmp_path)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    f2 = json.loads((tmp_path / "r.json").read_text())["summary"]["micro"]["f2"]
    assert _statuses(tmp_path) == ["FINISHED"]
    con = sqlite3.connect(tmp_path / "mlruns" / "mlflow.db")
    try:
        [(logged,)] = con.execute("select value from latest_metrics where key = 'test/micro_f2'").fetchall()
    finally:
        con.close()
    assert logged == pytest.approx(f2)


def test_an_untracked_evaluation_without_a_report_file_fails_when_stdout_is_full(tmp_path):
    """``--no-track`` without ``-o``: the printed report is the only result."""
    pred = write_predictions(tmp_path / "ok.npz")
    res = _full_stdout(["evaluate", "--predictions", str(pred), "--no-track"], tmp_path)
    assert (res.returncode, res.stderr) == (3, "error: stdout: disk full; the output was lost\n")
    res = _full_stdout(["evaluate", "--predictions", str(pred), "--no-track", "-o", "r.json"], tmp_path)
    assert res.returncode == 0 and res.stderr.startswith("warning: stdout: disk full"), res.stderr
    assert json.loads((tmp_path / "r.json").read_text())["summary"]


def test_json_output_writes_undefined_values_as_null():
    """``compare --format json`` wrote Python's bare ``NaN`` for an undefined value: not JSON."""
    import json
    import math

    from evalkit.cli.outputs import json_text

    data = {"a": math.nan, "rows": [{"ci": [1.0, math.inf]}, (2, -math.inf)], "n": 3, "name": "x"}
    assert json.loads(json_text(data)) == {"a": None, "rows": [{"ci": [1.0, None]}, [2, None]], "n": 3, "name": "x"}
    assert "NaN" not in json_text(data) and json_text(data).endswith("}\n")


def test_an_output_set_in_a_spec_is_named_by_its_spec_key(cli, tmp_path, monkeypatch):
    """Errors name a value the way it was given: a spec's `output` (and the spec's inputs) by spec key,
    not `-o/--output` (docs/reference/exit-codes.md, "Which name an error uses")."""
    monkeypatch.chdir(tmp_path)
    write_predictions(tmp_path / "p.npz")
    (tmp_path / "job.toml").write_text('[evaluate]\npredictions = "p.npz"\noutput = "p.npz"\n')
    res = cli("evaluate", "--spec", "job.toml", "--no-track")
    assert res.exit_code == 2
    assert "error: evaluate.output p.npz: is the input of evaluate.predictions; write the output" in res.output
    res = cli("evaluate", "--spec", "job.toml", "--no-track", "-o", "p.npz")  # the flag given: the flag named
    assert res.exit_code == 2 and "error: -o/--output p.npz: is the input of evaluate.predictions" in res.output
    (tmp_path / "s.toml").write_text('experiment = "x"\noutput = "r.json"\nepochs = 1\n')
    (tmp_path / "r.json").write_text("{}")
    res = cli("run", "s.toml", "--no-track")
    assert res.exit_code == 2 and "error: output: r.json already exists; add --force to overwrite it" in res.output
    assert (tmp_path / "r.json").read_text() == "{}"
