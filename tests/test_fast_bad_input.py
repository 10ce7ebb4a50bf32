"""Bad input is answered before anything heavy is imported, and every message names the CLI flag (or
the spec key, when the value came from a spec; the field itself in the Python API).

Speed is proven without a clock: each bad input runs ``python -X importtime -m evalkit ...`` in a
subprocess, and the modules the interpreter reports importing must include none of torch, mlflow,
numpy, pandas, scikit-learn or rich (the wall time is measured by ``benchmarks/bench_cli.py --bad-input``).
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from evalkit.config import EvaluateJobConfig
from evalkit.errors import InputError, field_name

HEAVY = ("torch", "mlflow", "numpy", "pandas", "sklearn", "scipy", "rich", "matplotlib", "ray")

#: name -> (CLI args with {tmp}, files to write, the one-line error it must print)
BAD = {
    "missing data file": (["run", "--dataset", "{tmp}/nope.arff", "--no-track"], {},
                          r"^error: --dataset \S*nope\.arff: no such file \(and not a built-in dataset: yeast"),
    "missing test file": (["run", "--test-dataset", "{tmp}/t.csv", "--no-track"], {},
                          r"^error: --test-dataset \S*t\.csv: no such file"),
    "missing predictions": (["evaluate", "--predictions", "{tmp}/nope.npz", "--no-track"], {},
                            r"^error: --predictions \S*nope\.npz: file not found$"),
    "missing backbone weights": (["run", "--dataset", "digits-grid", "--model", "resnet18", "--weights", "{tmp}/w.pt",
                                  "--no-track"], {},
                                 r"^error: --weights \S*w\.pt: no such file; expected a state_dict file of resnet18$"),
    "missing model file": (["evaluate", "--model", "{tmp}/m.pt", "--no-track"], {},
                           r"^error: --model \S*m\.pt: no such file; expected an MLflow URI"),
    "missing label map": (["evaluate", "--predictions", "{tmp}/p.npz", "--label-map", "{tmp}/map.json", "--no-track"],
                          {"p.npz": ""}, r"^error: --label-map \S*map\.json: no such file"),
    "bad flag value": (["run", "--lr", "-1", "--no-track"], {}, r"^error: --lr: Input should be greater than 0"),
    "unknown loss": (["run", "--loss", "hinge", "--no-track"], {}, r"^error: --loss: unknown loss 'hinge'"),
    "unknown threshold": (["run", "--threshold", "magic", "--no-track"], {}, r"^error: --threshold: unknown strategy"),
    "malformed hidden": (["run", "--hidden", "a,b", "--no-track"], {}, r"^error: --hidden: expected comma-separated"),
    "unreadable spec": (["run", "{tmp}/s.toml", "--no-track"], {"s.toml": "epochs = 1\nlr = [\n"},
                        r"^error: \S*s\.toml:2: TOML syntax"),
    "missing job spec": (["evaluate", "--spec", "{tmp}/job.toml"], {}, r"^error: \S*job\.toml: no such spec file"),
    "spec names a missing file": (["run", "{tmp}/s.toml", "--no-track"], {"s.toml": 'dataset = "gone.csv"\n'},
                                  r"^error: dataset \S*gone\.csv: no such file"),
    "tune spec names a missing file": (["tune", "{tmp}/t.toml", "--no-track"],
                                       {"t.toml": 'dataset = "gone.csv"\n[search]\nlr = { loguniform = [1e-4, 1e-2] }\n'},
                                       r"^error: dataset \S*gone\.csv: no such file"),
    "ray option without a spec": (["run", "--max-retries", "2", "--no-track"], {},
                                  r"^error: --executor / --ray-address / --max-concurrent / --cpus-per-cell / "
                                  r"--gpus-per-cell / --max-retries: apply to the cells of a spec"),
}


def _imported(stderr: str) -> set[str]:
    """Top-level packages named in ``-X importtime`` lines."""
    return {line.split("|")[-1].strip().split(".")[0] for line in stderr.splitlines() if line.startswith("import time:")}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_is_answered_before_heavy_imports(name, tmp_path):
    args, files, message = BAD[name]
    for fname, text in files.items():
        (tmp_path / fname).write_text(text)
    res = subprocess.run([sys.executable, "-P", "-X", "importtime", "-m", "evalkit",
                          *[a.format(tmp=tmp_path) for a in args]],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)  # a guard against a hang
    assert res.returncode == 2, res.stderr[-2000:]
    errors = [line for line in res.stderr.splitlines() if not line.startswith("import time:")]
    assert len(errors) == 1 and re.search(message, errors[0]), errors
    imported = _imported(res.stderr)
    assert "evalkit" in imported and "typer" in imported  # the probe sees imports at all
    assert sorted(imported & set(HEAVY)) == []
    assert not (tmp_path / "mlruns").exists()


def test_version_imports_nothing_heavy_either(tmp_path):
    res = subprocess.run([sys.executable, "-P", "-X", "importtime", "-m", "evalkit", "--version"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stdout.startswith("evalkit ")
    assert sorted(_imported(res.stderr) & set(HEAVY)) == []


# ----------------------------------------------------------------------------- naming

CSV = "f1,label_a,label_b\n" + "".join(f"{i},{i % 2},{(i // 2) % 2}\n" for i in range(30))


def test_field_name_is_the_field_in_python_and_the_flag_or_key_when_named():
    e = InputError(f"x.csv: pass {field_name('label_columns')} or {field_name('track', False)}")
    assert str(e) == "x.csv: pass label_columns or track=False"
    assert e.fields == ("label_columns", "track")
    assert e.named(lambda f, switch=None: f.upper()) == "x.csv: pass LABEL_COLUMNS or TRACK"


def test_labels_not_chosen_names_flags_on_the_command_line_and_keys_in_a_spec(cli, tmp_path):
    data = tmp_path / "d.csv"
    data.write_text(CSV)
    res = cli("run", "--dataset", data, "--no-track")
    assert res.exit_code == 2
    assert res.output.strip().endswith("which columns are the labels? pass --label-columns, --label-prefix or "
                                       "--label-list-column"), res.output
    spec = tmp_path / "s.toml"
    spec.write_text(f'dataset = "{data}"\nepochs = 1\n[reader_options]\nlabel_prefix = ""\n')
    res = cli("run", spec, "--no-track")
    assert res.exit_code == 2
    assert res.output.strip() == (f"error: {spec}:4: reader_options.label_prefix: expected a prefix of the label "
                                  "columns (got '')"), res.output
    res = cli("run", spec, "--no-track", "--label-prefix", "y_")  # a spec's bad value is refused as any other
    assert res.output.strip().startswith(f"error: {spec}:4: reader_options.label_prefix:"), res.output
    spec.write_text(f'dataset = "{data}"\nepochs = 1\n')
    res = cli("run", spec, "--no-track", "--label-prefix", "")  # the flag is named
    assert res.output.strip() == "error: --label-prefix: expected a prefix of the label columns (got '')", res.output


def test_reader_option_for_a_builtin_dataset_names_its_flag(cli):
    res = cli("run", "--label-columns", "a,b", "--no-track")
    assert res.exit_code == 2
    assert res.output.strip() == "error: --label-columns: yeast is a built-in dataset and takes no reader options"


def test_python_api_names_fields(tmp_path):
    from evalkit.data import load_dataset

    with pytest.raises(InputError, match=r"^label_columns: yeast is a built-in dataset"):
        load_dataset("yeast", label_columns="a,b")
    (tmp_path / "d.csv").write_text(CSV)
    with pytest.raises(InputError, match=r"pass label_columns, label_prefix or label_list_column$"):
        load_dataset(str(tmp_path / "d.csv"))
    with pytest.raises(InputError, match=r"^trigger: applies to a tracked run, not to track=False; drop it$"):
        EvaluateJobConfig(predictions="p.npz", trigger="scheduled", track=False)


def test_evaluate_names_flags_or_the_evaluate_table_keys(cli, tmp_path):
    pred = tmp_path / "p.npz"
    pred.write_text("")
    res = cli("evaluate", "--predictions", pred, "--trigger", "scheduled", "--no-track")
    assert res.output.strip() == "error: --trigger: applies to a tracked run, not to --no-track; drop it"
    job = tmp_path / "job.toml"
    job.write_text(f'[evaluate]\npredictions = "{pred}"\ntrigger = "scheduled"\ntrack = false\n')
    res = cli("evaluate", "--spec", job)
    assert res.exit_code == 2
    assert res.output.strip() == "error: evaluate.trigger: applies to a tracked run, not to evaluate.track = false; " \
                                 "drop it", res.output


def test_tune_names_its_own_flag_for_an_executor_setting(cli, tmp_path):
    spec = tmp_path / "t.toml"
    spec.write_text('epochs = 1\n[search]\nlr = { loguniform = [1e-4, 1e-2] }\n')
    pytest.importorskip("ray")
    res = cli("tune", spec, "--cpus-per-trial", "0", "--no-track")
    assert res.exit_code == 2
    assert res.output.strip().startswith("error: --cpus-per-trial: "), res.output


def test_a_grid_cell_naming_a_missing_file_is_refused_before_any_cell_runs(cli, store, tmp_path):
    spec = tmp_path / "g.toml"
    spec.write_text('epochs = 1\n[grid]\ndataset = ["yeast", "no/such/data.csv"]\n')
    res = cli("run", spec)
    assert res.exit_code == 2
    assert res.output.strip() == "error: grid.dataset no/such/data.csv: no such file (and not a built-in dataset: yeast, " \
                                 "digits-grid)", res.output
    import sqlite3

    con = sqlite3.connect(tmp_path / "mlruns" / "mlflow.db")
    try:
        assert con.execute("select count(*) from runs").fetchone()[0] == 0  # no parent run, no cell
    finally:
        con.close()
