"""Bad input: one line naming the file / field / option and what was expected, exit 2, no traceback,
no MLflow run left behind and no partial --output file.

Table-driven: :data:`CASES` is the list the manual's "Bad input" table (docs/reference/exit-codes.md) shows (kind -> message). Each case
builds its files in a temporary directory and runs the CLI in-process against a fresh store.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

RUN = ("run", "--epochs", "1", "--hidden", "8", "--no-log-model")


@dataclass(frozen=True)
class Case:
    kind: str  # what is wrong (the manual's table)
    make: Callable[[Path], list]  # tmp dir -> CLI args (without --output)
    message: str  # regex the one-line message must match
    output: bool = True  # the command takes --output


# ----------------------------------------------------------------------------- file builders

def _w(p: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text)
    return p


def _csv(tmp: Path, text: str, name="d.csv") -> Path:
    return _w(tmp / name, text)


GOOD_CSV = "f1,f2,label_a,label_b\n" + "".join(f"{i * 0.1:.1f},{i % 3},{i % 2},{(i // 2) % 2}\n" for i in range(40))

ARFF_HEAD = "@relation t\n@attribute f1 numeric\n@attribute a {0,1}\n@attribute b {0,1}\n@data\n"
ARFF_ROWS = "".join(f"{i * 0.5},{i % 2},{(i // 2) % 2}\n" for i in range(30))
XML_OK = '<labels xmlns="http://mulan.sourceforge.net/labels"><label name="a"/><label name="b"/></labels>'


def _arff(tmp: Path, body: str = ARFF_HEAD + ARFF_ROWS, xml: str | None = XML_OK) -> Path:
    if xml is not None:
        _w(tmp / "d.xml", xml)
    return _w(tmp / "d.arff", body)


def _npz_data(tmp: Path, **arrays) -> Path:
    rng = np.random.default_rng(0)
    base = {"X": rng.normal(size=(30, 3)).astype(np.float32), "Y": (rng.random((30, 2)) < 0.5).astype(np.uint8)}
    base.update(arrays)
    np.savez(tmp / "d.npz", **{k: v for k, v in base.items() if v is not None})
    return tmp / "d.npz"


def _pred(tmp: Path, n=20, c=3, **arrays) -> Path:
    rng = np.random.default_rng(1)
    y = (rng.random((n, c)) < 0.5).astype(np.uint8)
    base = {"targets": y, "probabilities": rng.random((n, c)), "labels": np.array([f"L{i}" for i in range(c)])}
    base.update(arrays)
    np.savez(tmp / "p.npz", **{k: v for k, v in base.items() if v is not None})
    return tmp / "p.npz"


def _nan_probs(tmp):
    p = np.random.default_rng(1).random((20, 3))
    p[3, 1] = np.nan
    return _pred(tmp, probabilities=p)


def _state_dict(tmp: Path, n_features: int, n_labels: int) -> Path:
    import torch

    torch.save(torch.nn.Linear(n_features, n_labels).state_dict(), tmp / "m.pt")
    return tmp / "m.pt"


def _labelmap(tmp: Path, pairs: dict) -> Path:
    return _w(tmp / "map.json", json.dumps(pairs))


def _eval_model(tmp: Path, *extra) -> list:
    return ["evaluate", "--model", _state_dict(tmp, 103, 14), "--arch", "linear", "--dataset", "yeast", *extra]


def _spec(tmp: Path, text: str, name="job.toml") -> Path:
    return _w(tmp / name, text)


# ----------------------------------------------------------------------------- the table

CASES: dict[str, Case] = {
    # data files (run --dataset FILE)
    "missing-file": Case("data file does not exist", lambda t: [*RUN, "--dataset", t / "nope.csv"],
                         r"nope\.csv: no such file"),
    "unknown-builtin": Case("unknown built-in dataset name", lambda t: [*RUN, "--dataset", "yeest"],
                            r"yeest: no such file \(and not a built-in dataset: yeast"),
    "arff-malformed": Case("ARFF file malformed", lambda t: [*RUN, "--dataset", _arff(t, ARFF_HEAD + "1,0\nx,y,z,w\n")],
                           r"d\.arff: not a valid ARFF file: Bad @DATA instance"),
    "arff-no-xml": Case("MULAN ARFF without its label XML (and no MEKA -C)",
                        lambda t: [*RUN, "--dataset", _arff(t, xml=None)], r"d\.arff: cannot tell which attributes are labels: no MULAN label file \(d\.xml\)"),
    "xml-unknown-label": Case("label XML names attributes the ARFF does not have",
                              lambda t: [*RUN, "--dataset", _arff(t, xml=XML_OK.replace('"b"', '"zz"'))],
                              r"d\.xml: label\(s\) 'zz' are not attributes of .*d\.arff"),
    "xml-malformed": Case("label XML is not XML", lambda t: [*RUN, "--dataset", _arff(t, xml="<labels><label")],
                          r"d\.xml: not a valid MULAN label file"),
    "csv-no-label-columns": Case("CSV: no label columns found",
                                 lambda t: [*RUN, "--dataset", _csv(t, GOOD_CSV), "--label-prefix", "y_"],
                                 r"d\.csv: no label columns: no column name starts with 'y_'"),
    "csv-labels-not-chosen": Case("CSV: label columns not specified",
                                  lambda t: [*RUN, "--dataset", _csv(t, GOOD_CSV)],
                                  r"d\.csv: which columns are the labels\?"),
    "csv-targets-not-binary": Case("CSV: targets not in {0,1}",
                                   lambda t: [*RUN, "--dataset", _csv(t, GOOD_CSV.replace(",1,0\n", ",2,0\n", 1)),
                                              "--label-prefix", "label_"],
                                   r"d\.csv: label column 'label_a' must hold 0 or 1, found"),
    "csv-nan-feature": Case("CSV: missing / NaN feature value",
                            lambda t: [*RUN, "--dataset", _csv(t, GOOD_CSV.replace("0.3,0", "nan,0", 1)),
                                       "--label-prefix", "label_"],
                            r"d\.csv: feature column 'f1' has .*missing"),
    "csv-malformed": Case("CSV: malformed (ragged rows)",
                          lambda t: [*RUN, "--dataset", _csv(t, "f1,label_a\n1,0\n2,1,5,6\n"), "--label-prefix", "label_"],
                          r"d\.csv: not a readable CSV file: Error tokenizing data"),
    "csv-empty": Case("CSV: empty file", lambda t: [*RUN, "--dataset", _csv(t, ""), "--label-prefix", "label_"],
                      r"d\.csv: empty file"),
    "parquet-unreadable": Case("Parquet file unreadable", lambda t: [*RUN, "--dataset", _w(t / "d.parquet", b"not parquet"),
                                                                      "--label-prefix", "label_"],
                               r"d\.parquet: not a readable Parquet file"),
    "npz-unreadable": Case("NPZ file unreadable", lambda t: [*RUN, "--dataset", _w(t / "d.npz", b"garbage")],
                           r"d\.npz: not a readable \.npz archive"),
    "npz-inf-feature": Case("NPZ: NaN or inf in features",
                            lambda t: [*RUN, "--dataset", _npz_data(t, X=np.full((30, 3), np.inf, np.float32))],
                            r"d\.npz: X has 90 NaN or infinite values"),
    "npz-targets-not-binary": Case("NPZ: targets not in {0,1}",
                                   lambda t: [*RUN, "--dataset", _npz_data(t, Y=np.full((30, 2), 3, np.uint8))],
                                   r"d\.npz: Y must hold 0 or 1, found 3"),
    "npz-row-mismatch": Case("NPZ: features and targets have different N",
                             lambda t: [*RUN, "--dataset", _npz_data(t, Y=np.zeros((29, 2), np.uint8))],
                             r"d\.npz: X has 30 rows but Y has 29"),
    "one-label": Case("one label (C < 2): multi-label splits and metrics need 2",
                      lambda t: [*RUN, "--dataset", _npz_data(t, Y=np.tile([[0], [1]], (15, 1)).astype(np.uint8))],
                      r"d\.npz: 1 label column\(s\) \['label_0'\]; expected at least 2 labels"),
    # options of run
    "unknown-loss": Case("unknown loss", lambda t: [*RUN, "--loss", "hinge"], r"--loss: unknown loss 'hinge'"),
    "unknown-loss-option": Case("unknown loss option", lambda t: [*RUN, "--loss", "focal", "--loss-option", "zeta=1"],
                                r"--loss-option zeta: loss 'focal' has no option 'zeta'"),
    "unknown-model": Case("unknown model architecture", lambda t: [*RUN, "--model", "resnet"],
                          r"--model: unknown architecture 'resnet'"),
    "bad-hidden": Case("malformed hidden sizes", lambda t: [*RUN, "--hidden", "a,b"], r"--hidden: expected"),
    "unknown-threshold-strategy": Case("unknown threshold strategy", lambda t: [*RUN, "--threshold", "magic"],
                                       r"--threshold: unknown strategy 'magic'"),
    "threshold-out-of-range": Case("threshold outside (0, 1)", lambda t: [*RUN, "--threshold", "fixed:1.5"],
                                   r"--threshold: a fixed threshold must lie in \(0, 1\), got 1.5"),
    "top-k-too-large": Case("top-k larger than the number of labels", lambda t: [*RUN, "--threshold", "top-k:99"],
                            r"--threshold: top-k:99 asks for more labels than the data has"),
    "tracking-uri-malformed": Case("tracking URI malformed", lambda t: [*RUN, "--tracking-uri", "mlflow-server:5000"],
                                   r"--tracking-uri: 'mlflow-server:5000' is not a tracking URI"),
    "spec-run-invalid": Case("experiment spec TOML: invalid field",
                             lambda t: ["run", _spec(t, 'dataset = "yeast"\nepochs = "many"\n', "x.toml")],
                             r"x\.toml:2: epochs: "),
    # evaluate --predictions FILE
    "pred-nan-scores": Case("NaN or inf in scores", lambda t: ["evaluate", "--predictions", _nan_probs(t)],
                            r"p\.npz: 'probabilities' column 1 is nan in data row 4; expected probabilities in \[0, 1\]"),
    "pred-prob-out-of-range": Case("probabilities outside [0, 1]",
                                   lambda t: ["evaluate", "--predictions", _pred(t, probabilities=np.full((20, 3), 1.5))],
                                   r"p\.npz: 'probabilities' column 0 is 1\.5 in data row 1; expected probabilities in \[0, 1\] "
                                   r"\(declare logits for raw model outputs\)"),
    "pred-both-scores": Case("logits and probabilities both given",
                             lambda t: ["evaluate", "--predictions", _pred(t, logits=np.zeros((20, 3)))],
                             r"p\.npz: expected exactly one of arrays 'logits' or 'probabilities', found \['logits', 'probabilities'\]"),
    "pred-no-scores": Case("neither logits nor probabilities given",
                           lambda t: ["evaluate", "--predictions", _pred(t, probabilities=None)],
                           r"p\.npz: expected exactly one of arrays 'logits' or 'probabilities', found neither"),
    "pred-shape-mismatch": Case("shape mismatch between scores and targets",
                                lambda t: ["evaluate", "--predictions", _pred(t, probabilities=np.full((20, 4), 0.5))],
                                r"p\.npz: 'probabilities' has shape \(20, 4\) but 'targets' has \(20, 3\)"),
    "pred-zero-samples": Case("zero samples", lambda t: ["evaluate", "--predictions", _pred(t, n=0)],
                              r"p\.npz: no samples"),
    "pred-targets-not-binary": Case("predictions: targets not in {0,1}",
                                    lambda t: ["evaluate", "--predictions", _pred(t, targets=np.full((20, 3), 2))],
                                    r"targets: expected values in \{0, 1\}, found 2"),
    "pred-missing-file": Case("predictions file does not exist",
                              lambda t: ["evaluate", "--predictions", t / "nope.npz"], r"nope\.npz: file not found"),
    # gates
    "gate-unknown-metric": Case("unknown metric in a gate",
                                lambda t: ["evaluate", "--predictions", _pred(t), "--gate", "test/macro_f3>=0.5"],
                                r"--gate: unknown metric 'test/macro_f3'; "),
    "gate-malformed": Case("malformed gate expression",
                           lambda t: ["evaluate", "--predictions", _pred(t), "--gate", "test/macro_f2 = 0.5"],
                           r"--gate: malformed gate 'test/macro_f2 = 0.5'; expected METRIC OP NUMBER"),
    "max-drop-without-baseline": Case("--max-drop without --baseline",
                                      lambda t: ["evaluate", "--predictions", _pred(t), "--max-drop", "test/macro_f2=0.01"],
                                      r"--max-drop: needs --baseline"),
    "baseline-unknown-run": Case("--baseline names no run",
                                 lambda t: ["evaluate", "--predictions", _pred(t), "--baseline", "0123456789abcdef",
                                            "--max-drop", "test/macro_f2=0.01"],
                                 r"--baseline 0123456789abcdef: no run id starts with 0123456789abcdef in sqlite:"),
    "eval-threshold-out-of-range": Case("evaluate: threshold outside (0, 1)",
                                        lambda t: ["evaluate", "--predictions", _pred(t), "--threshold", "1.5"],
                                        r"--threshold: a fixed threshold must lie in \(0, 1\), got 1\.5"),
    "evaluate-spec-invalid-toml": Case("job spec: TOML syntax error",
                                       lambda t: ["evaluate", "--spec", _spec(t, "[evaluate]\ngates = [\n")],
                                       r"job\.toml:2: invalid TOML: ", output=False),
    "evaluate-spec-unknown-key": Case("job spec: unknown or ill-typed key",
                                      lambda t: ["evaluate", "--spec", _spec(t, '[evaluate]\ntrigger = "hourly"\n')],
                                      r"job\.toml:2: evaluate\.trigger: Input should be 'manual' or 'scheduled'", output=False),
    # evaluate --model
    "model-width-mismatch": Case("model output width differs from the number of labels",
                                 lambda t: ["evaluate", "--model", _state_dict(t, 103, 3), "--arch", "linear",
                                            "--dataset", "yeast"],
                                 r"--model .*m\.pt: the model outputs 3 scores per sample but the dataset has"),
    "model-not-a-model": Case("model file is not a model", lambda t: ["evaluate", "--model", _w(t / "m.pt", b"junk"),
                                                                      "--dataset", "yeast"],
                              r"--model .*m\.pt: not a model file"),
    "labelmap-unknown-labels": Case("label map names unknown labels",
                                    lambda t: _eval_model(t, "--label-map", _labelmap(t, {"NoSuch": "x", "Class1": "x"})),
                                    r"map\.json: unknown source label\(s\)"),
    "labelmap-cycle": Case("label map has a cycle",
                           lambda t: _eval_model(t, "--label-map", _labelmap(t, {"Class1": "Class2", "Class2": "Class1"})),
                           r"map\.json: target label\(s\) .* are also sources"),
    # hostile and unusual input: sizes, names, files, specs, numbers
    "hidden-too-wide": Case("absurd layer size", lambda t: [*RUN, "--hidden", "2000000000"],
                            r"--hidden: .*hidden layer sizes must lie in 1\.\.65536"),
    "npz-duplicate-labels": Case("duplicate label names in a data file",
                                 lambda t: [*RUN, "--dataset", _npz_data(t, labels=np.array(["a", "a"]))],
                                 r"d\.npz: duplicate label names 'a'; expected distinct names"),
    "threshold-empty-block": Case("threshold file with an empty threshold block",
                                  lambda t: ["evaluate", "--predictions", _pred(t), "--threshold",
                                             _w(t / "t.json", '{"threshold": {}}')],
                                  r"t\.json: threshold: expected 3 thresholds \(one per label\), got 1"),
    "threshold-directory": Case("--threshold names a directory",
                                lambda t: ["evaluate", "--predictions", _pred(t), "--threshold", t],
                                r"--threshold: .* is a directory; expected a JSON or CSV file"),
    "threshold-csv-unknown-label": Case("threshold CSV names an unknown label",
                                        lambda t: ["evaluate", "--predictions", _pred(t), "--threshold",
                                                   _w(t / "t.csv", "label,threshold\nL0,0.3\nL1,0.3\nL2,0.3\nZ,0.3\n")],
                                        r"t\.csv: unknown labels \['Z'\]; expected labels of the data"),
    "threshold-csv-duplicate-label": Case("threshold CSV gives a label twice",
                                          lambda t: ["evaluate", "--predictions", _pred(t), "--threshold",
                                                     _w(t / "t.csv", "label,threshold\nL0,0.3\nL0,0.4\nL1,0.3\nL2,0.3\n")],
                                          r"t\.csv: label 'L0' is given twice; expected each label once"),
    "spec-not-utf8": Case("experiment spec is not UTF-8", lambda t: ["run", _w(t / "s.toml", b"epochs = 1\n\xff\xfe\n")],
                          r"s\.toml:2: not UTF-8 text", output=False),
    "spec-lr-inf": Case("experiment spec: infinite learning rate",
                        lambda t: ["run", _spec(t, "epochs = 1\nlr = inf\n", "s.toml")],
                        r"s\.toml:2: lr: expected a finite number", output=False),
    "spec-beta-inf": Case("experiment spec: infinite beta",
                          lambda t: ["run", _spec(t, "epochs = 1\nbeta = inf\n", "s.toml")],
                          r"s\.toml:2: beta: expected a finite number", output=False),
    "test-size-too-large": Case("--test-size leaves no training rows",
                                lambda t: [*RUN, "--dataset", _csv(t, "\n".join(GOOD_CSV.splitlines()[:6]) + "\n"), "--label-prefix", "label_",
                                           "--test-size", "0.99"],
                                r"--test-size / --val-size 0\.99: cannot split \d+ samples into two non-empty parts"),
    "builtin-reader-option": Case("reader option given for a built-in dataset",
                                  lambda t: [*RUN, "--label-columns", "a,b"],
                                  r"yeast is a built-in dataset and takes no reader options"),
    "markup-in-path": Case("a path that looks like rich markup",
                           lambda t: ["evaluate", "--predictions", "[bold red]x[/].npz"],
                           r"\[bold red\]x\[/\]\.npz: file not found"),
    "labelmap-whitespace-collision": Case("label map keys that collide after trimming spaces",
                                          lambda t: _eval_model(t, "--label-map",
                                                                _w(t / "map.json", '{"Class1": "a", " Class1": "b"}')),
                                          r"map\.json: source label 'Class1' is given twice"),
    "model-infinite-outputs": Case("model returns infinite scores",
                                   lambda t: ["evaluate", "--model", _inf_model(t), "--dataset", "yeast"],
                                   r"--model .*inf\.pt: the model's outputs contain NaN or infinite values"),
    "predictions-size-bomb": Case("a tiny predictions file declaring a huge array",
                                  lambda t: ["evaluate", "--predictions", _bomb(t)],
                                  r"p\.npz: array 'targets' declares shape \(1, 100000000000\) uint8 \(93\.1 GiB\) but its "
                                  r"archive member holds 8 B; refusing to load it"),
    "predictions-zero-labels": Case("predictions with zero labels",
                                    lambda t: ["evaluate", "--predictions", _pred(t, c=0, labels=None)],
                                    r"p\.npz: 'targets' has shape \(20, 0\): no labels"),
    "predictions-duplicate-labels": Case("predictions with duplicate label names",
                                         lambda t: ["evaluate", "--predictions", _pred(t, c=2, labels=np.array(["a", "a"]))],
                                         r"p\.npz: duplicate label names 'a'; expected distinct names"),
    "predictions-directory": Case("--predictions names a directory", lambda t: ["evaluate", "--predictions", t],
                                  r"is a directory; expected a predictions file"),
    # usage: one line too, not click's usage block
    "usage-unknown-option": Case("an option that does not exist", lambda t: [*RUN, "--bogus"],
                                 r"evalkit run: No such option: --bogus.* \(see evalkit run --help\)$", output=False),
    "usage-wrong-type": Case("an option value of the wrong type", lambda t: [*RUN[:1], "--epochs", "abc"],
                             r"evalkit run: Invalid value for '--epochs': .*integer \(see evalkit run --help\)$",
                             output=False),
    "usage-unknown-command": Case("a command that does not exist", lambda t: ["evalute", "--predictions", "p.npz"],
                                  r"evalkit: No such command 'evalute'\. Did you mean 'evaluate'\? \(see evalkit --help\)$", output=False),
    # click raises this one without a context: the line must still name the subcommand
    "usage-missing-value": Case("an option given without its value", lambda t: ["compare", "--metric"],
                                r"evalkit compare: Option '--metric' requires an argument \(see evalkit compare --help\)$",
                                output=False),
    # values numpy, MLflow or a reader would only refuse after work has started (or with a traceback)
    "seed-negative": Case("negative seed", lambda t: [*RUN, "--seed", "-1"],
                          r"--seed: Input should be greater than or equal to 0 \(got -1\)"),
    "seed-too-large": Case("seed above 4294967295", lambda t: [*RUN, "--seed", "4294967296"],
                           r"--seed: Input should be less than 4294967296 \(got 4294967296\)"),
    "experiment-empty": Case("empty experiment name", lambda t: [*RUN, "--experiment", ""],
                             r"--experiment: expected a non-empty experiment name \(got ''\)"),
    "eval-experiment-blank": Case("evaluate: experiment name of spaces only",
                                  lambda t: ["evaluate", "--predictions", _pred(t), "--experiment", "  "],
                                  r"--experiment: expected a non-empty experiment name \(got '  '\)"),
    "dataset-empty": Case("empty data file name", lambda t: [*RUN, "--dataset", ""],
                          r"--dataset: expected a built-in dataset name \(yeast, digits-grid\) or a data file \(got ''\)"),
    "dataset-directory": Case("--dataset names a directory", lambda t: [*RUN, "--dataset", _dir(t / "somedir")],
                              r"--dataset .*somedir: is a directory; expected a data file \(\.arff, \.csv, "),
    "spec-reader-option-unknown": Case("experiment spec: misspelt reader option",
                                       lambda t: ["run", _spec(t, 'epochs = 1\n[reader_options]\nlabel_prefx = "y_"\n',
                                                               "s.toml")],
                                       r"s\.toml:3: reader_options\.label_prefx: unknown reader option; expected one of "
                                       r"label_file, meka_labels, label_columns, label_prefix, ", output=False),
    "spec-reader-option-type": Case("experiment spec: reader option of the wrong type",
                                    lambda t: ["run", _spec(t, "epochs = 1\n[reader_options]\nlabel_prefix = 5\n", "s.toml")],
                                    r"s\.toml:3: reader_options\.label_prefix: expected a string \(got 5\)", output=False),
    "spec-table-not-a-table": Case("experiment spec: a number where a table belongs",
                                   lambda t: ["run", _spec(t, "epochs = 1\ngrid = 5\n", "s.toml")],
                                   r"s\.toml:2: grid: expected a \[grid\] table of field = \[values\]", output=False),
    # an empty text value is refused, never read as "not given" (Path("") is the working folder)
    "output-empty": Case("empty --output", lambda t: [*RUN, "-o", ""],
                         r"--output: expected a file path for the report JSON \(got ''\)", output=False),
    "resume-empty": Case("empty --resume", lambda t: ["run", "--resume", ""],
                         r"--resume: expected the id of the run to resume \(got ''\)"),
    "predictions-empty": Case("evaluate: empty predictions file name", lambda t: ["evaluate", "--predictions", ""],
                              r"--predictions: expected a predictions file \(\.npz, \.parquet or \.csv\) \(got ''\)"),
    "image-root-empty": Case("empty --image-root", lambda t: [*RUN, "--image-root", ""],
                             r"--image-root: expected a folder of images \(got ''\)"),
    "spec-output-empty": Case("experiment spec: empty output", lambda t: ["run", _spec(t, 'epochs = 1\noutput = ""\n', "s.toml")],
                              r"s\.toml:2: output: expected a file path for the report JSON \(got ''\)", output=False),
    "arch-cnn-features": Case("evaluate: --arch cnn for a state_dict on feature data",
                              lambda t: ["evaluate", "--model", _state_dict(t, 103, 14), "--arch", "cnn", "--dataset", "yeast"],
                              r"--arch cnn: expects images \(N, C, H, W\) \(e\.g\. from an \.npz file or digits-grid\), "
                              r"but the features have shape \(N, 103\)"),
    "gate-alpha-unreachable": Case("evaluate: --gate-alpha no paired p-value can be below",
                                   lambda t: ["evaluate", "--predictions", _pred(t), "--baseline", "last", "--max-drop",
                                              "macro_f2=significant", "--gate-alpha", "0.001"],
                                   r"--gate-alpha 0\.001: a significant gate could never fail: its 1000 paired "
                                   r"resamples give p >= 0\.001998; expected an alpha above that"),
}


def _dir(path: Path) -> Path:
    path.mkdir()
    return path


def _bomb(tmp: Path) -> Path:
    """A few hundred bytes that declare a (1, 10**11) array."""
    import zipfile

    def npy(shape, descr):
        header = "{'descr': '%s', 'fortran_order': False, 'shape': %r, }" % (descr, shape)
        header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
        return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + b"\x00" * 8

    with zipfile.ZipFile(tmp / "p.npz", "w") as z:
        z.writestr("targets.npy", npy((1, 10**11), "|u1"))
        z.writestr("probabilities.npy", npy((1, 10**11), "<f8"))
    return tmp / "p.npz"


def _inf_model(tmp: Path) -> Path:
    """A TorchScript model whose outputs are +inf."""
    import torch

    class Inf(torch.nn.Module):
        def forward(self, x):
            return torch.full((x.shape[0], 14), float("inf"))

    torch.jit.script(Inf()).save(str(tmp / "inf.pt"))
    return tmp / "inf.pt"


def _runs_in_store(db: Path) -> int:
    if not db.exists():
        return 0
    con = sqlite3.connect(db)
    try:
        return con.execute("select count(*) from runs").fetchone()[0]
    finally:
        con.close()


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, store, cli, tmp_path):
    case = CASES[name]
    out = tmp_path / "out.json"
    args = [str(a) for a in case.make(tmp_path)]
    res = cli(*args, *(["--output", str(out)] if case.output else []))
    text = res.output
    assert res.exit_code == 2, f"exit {res.exit_code}:\n{text}"
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, text  # one line
    assert re.search(case.message, errors[0]), errors[0]
    assert "Traceback" not in text
    assert not out.exists(), "partial --output file left behind"
    assert _runs_in_store(tmp_path / "mlruns" / "mlflow.db") == 0, "bad input left an MLflow run behind"


@pytest.fixture(scope="module")
def debug_run(tmp_path_factory):
    """``evalkit --debug evaluate`` with a malformed gate, in a subprocess (--debug is read by main())."""
    import subprocess
    import sys

    tmp = tmp_path_factory.mktemp("debug")
    return subprocess.run([sys.executable, "-m", "evalkit", "--debug", "evaluate", "--predictions", str(_pred(tmp)),
                           "--gate", "bogus", "--no-track"], capture_output=True, text=True, cwd=tmp,
                          timeout=600)  # a guard against a hang, not a speed check


def test_debug_shows_the_traceback_of_that_error(debug_run):
    err = debug_run.stderr
    assert "Traceback (most recent call last)" in err
    # the traceback ends in the bad input itself, not in some other failure
    last = err.strip().splitlines()[-1]
    assert re.fullmatch(r"evalkit\.errors\.InputError: --gate: malformed gate 'bogus'; expected METRIC OP NUMBER.*", last), err


def test_debug_keeps_the_documented_exit_code(debug_run):
    assert debug_run.returncode == 2, debug_run.stderr


MANUAL_PAGE = Path(__file__).resolve().parents[1] / "docs" / "reference" / "exit-codes.md"


def manual_rows() -> list[tuple[int, str, str]]:
    """(number, kind, message) of each row of the manual's "Bad input" table."""
    text = MANUAL_PAGE.read_text()
    section = text.split("\n## Bad input\n", 1)[1].split("\n#", 1)[0]
    rows = []
    for line in section.splitlines():
        m = re.fullmatch(r"\| (\d+) \| (.+?) \| `(.+)` \|", line.strip())
        if m:
            rows.append((int(m[1]), m[2], m[3].replace("\\|", "|")))
    return rows


def test_manual_table_lists_exactly_the_tested_cases():
    rows = manual_rows()
    assert [n for n, _, _ in rows] == list(range(1, len(rows) + 1)), "table rows are not numbered 1..N"
    # every tested kind has its row in the manual and every row is tested, in the same order
    assert [kind for _, kind, _ in rows] == [c.kind for c in CASES.values()]
    # the message the manual shows is one the test accepts (so the manual and the test cannot drift apart)
    for (n, kind, message), case in zip(rows, CASES.values()):
        assert re.search(case.message, message), f"manual row {n} ({kind}): {message!r} !~ {case.message!r}"


def markdown_table() -> str:
    """The manual's table: ``python -c 'import tests.test_bad_input as t; print(t.markdown_table())'``."""
    rows = ["| kind of bad input | message (regex) |", "|---|---|"]
    for c in CASES.values():
        msg = c.message.replace("|", "\\|")
        rows.append(f"| {c.kind} | `{msg}` |")
    return "\n".join(rows)
