"""Model architectures (cnn) and evaluate --model on files: TorchScript, pt2, state_dict, pickles."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest

from evalkit.errors import InputError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit is deprecated in torch 2.13

F, C, N = 5, 3, 60


@pytest.fixture
def data(tmp_path):
    """A small NPZ test file and a trained-looking MLP with its preprocess sidecar record."""
    rng = np.random.default_rng(0)
    X = rng.normal(3.0, 2.0, size=(N, F)).astype(np.float32)
    Y = (rng.random((N, C)) < 0.4).astype(np.uint8)
    Y[0] = 1
    path = tmp_path / "test.npz"
    np.savez(path, X=X, Y=Y, labels=np.array(["a", "b", "c"]))
    return path, X, Y


def _mlp():
    import torch

    from evalkit.models import build_model

    torch.manual_seed(0)
    return build_model("mlp", F, C, hidden=[8], dropout=0.1).eval()


def _expected(model, X, Y, record=None, threshold=0.5):
    """Reference report computed directly with the metric engine."""
    import torch

    from evalkit import evaluate_scores
    from evalkit.model_io import apply_preprocess

    with torch.inference_mode():
        logits = model(torch.from_numpy(apply_preprocess(X, record))).numpy()
    return evaluate_scores(Y, logits=logits, threshold=threshold, label_names=["a", "b", "c"])


def _record(X, thresholds=(0.4, 0.5, 0.6)):
    from evalkit.data.split import standardization_stats as fit_standardization
    from evalkit.model_io import preprocess_record

    mean, std = fit_standardization(X[:30])
    return preprocess_record(dataset={"spec": None}, input_shape=[F], label_names=["a", "b", "c"], standardize=True,
                             mean=mean, std=std, threshold={"strategy": "per-class", "values": list(thresholds)},
                             model={"arch": "mlp", "hidden": [8], "dropout": 0.1, "activation": "relu",
                                    "batch_norm": False})


def test_cnn_on_images_and_shape_errors():
    import torch

    from evalkit.models import build_model

    m = build_model("cnn", 3 * 9 * 7, 4, input_shape=(3, 9, 7), dropout=0.2).eval()
    assert m(torch.zeros(2, 3, 9, 7)).shape == (2, 4)
    with pytest.raises(InputError, match="cnn: expects images"):
        build_model("cnn", 10, 4, input_shape=(10,))
    # linear / mlp take images as their flattened pixels (the baseline a CNN is compared with)
    flat = build_model("mlp", 3 * 9 * 7, 4, input_shape=(3, 9, 7), hidden=[8]).eval()
    assert flat(torch.zeros(2, 3, 9, 7)).shape == (2, 4)
    assert build_model("linear", 3 * 9 * 7, 4, input_shape=(3, 9, 7))(torch.zeros(2, 3, 9, 7)).shape == (2, 4)


def test_cnn_trains_on_npz_images(tmp_path):
    from evalkit import run_experiment
    from evalkit.config import RunConfig

    rng = np.random.default_rng(0)
    Y = (rng.random((48, 2)) < 0.5).astype(np.uint8)
    Y[:4] = [[1, 0], [0, 1], [1, 1], [0, 0]]
    X = rng.normal(size=(48, 3, 8, 8)).astype(np.float32) + Y[:, :1, None, None]
    path = tmp_path / "img.npz"
    np.savez(path, X=X, Y=Y)
    res = run_experiment(RunConfig(dataset=str(path), model="cnn", epochs=1, batch_size=16), track=False)
    assert res.report["dataset"]["n_labels"] == 2


def test_all_file_formats_give_the_same_report(tmp_path, data, cli):
    import torch

    path, X, Y = data
    model = _mlp()
    record = _record(X)
    expected = _expected(model, X, Y, record, threshold=np.array([0.4, 0.5, 0.6]))
    Z = torch.from_numpy(X[:4])
    files = {"sd.pt": lambda p: torch.save(model.state_dict(), p),
             "ts.pt": lambda p: torch.jit.save(torch.jit.script(model), p),
             "m.pt2": lambda p: torch.export.save(torch.export.export(model, (Z,), dynamic_shapes=[{0: torch.export.Dim.AUTO}]), p)}
    for name, save in files.items():
        p = tmp_path / name
        save(str(p))
        (tmp_path / f"{name}.preprocess.json").write_text(json.dumps(record))
        out = tmp_path / f"{name}.json"
        r = cli("evaluate", "--model", p, "--test-dataset", path, "--no-track", "-o", out)
        assert r.exit_code == 0, (name, r.output)
        rep = json.loads(out.read_text())
        assert rep["threshold"]["values"] == [0.4, 0.5, 0.6], name  # the recorded thresholds
        for avg in ("micro", "macro", "samples"):
            for k, v in expected["summary"][avg].items():
                assert rep["summary"][avg][k] == pytest.approx(v, abs=1e-6), (name, avg, k)
        assert rep["summary"]["mean_average_precision"] == pytest.approx(expected["summary"]["mean_average_precision"])


def test_threshold_option_overrides_recorded(tmp_path, data):
    import torch

    from evalkit import evaluate_model

    path, X, Y = data
    model = _mlp()
    p = tmp_path / "sd.pt"
    torch.save(model.state_dict(), p)
    pre = tmp_path / "pre.json"
    pre.write_text(json.dumps(_record(X)))
    rep = evaluate_model(str(p), test_dataset=str(path), preprocess=str(pre), threshold="0.3")
    assert rep["threshold"]["values"] == [0.3, 0.3, 0.3]
    assert rep["model"]["kind"] == "state_dict"


def test_pickled_full_model_refused_without_trust_pickle(tmp_path, data, cli):
    import torch

    path, X, Y = data
    model = _mlp()
    p = tmp_path / "full.pt"
    torch.save(model, p)
    r = cli("evaluate", "--model", p, "--test-dataset", path, "--no-track")
    assert r.exit_code == 2
    msg = " ".join(r.stderr.split())
    assert "refused" in msg and "pickled full model" in msg and "--trust-pickle" in msg
    assert r.stderr.count("error:") == 1 and "Traceback" not in r.stderr
    out = tmp_path / "ok.json"
    r = cli("evaluate", "--model", p, "--test-dataset", path, "--no-track", "--trust-pickle", "-o", out)
    assert r.exit_code == 0, r.output
    rep = json.loads(out.read_text())
    assert rep["model"]["kind"] == "pickle"
    assert rep["summary"]["micro"]["f1"] == pytest.approx(_expected(model, X, Y)["summary"]["micro"]["f1"])


def test_state_dict_needs_arch_and_matching_width(tmp_path, data):
    import torch

    from evalkit import evaluate_model
    from evalkit.models import build_model

    path, X, Y = data
    p = tmp_path / "sd.pt"
    torch.save(_mlp().state_dict(), p)
    with pytest.raises(InputError, match="pass --arch"):
        evaluate_model(str(p), test_dataset=str(path))
    with pytest.raises(InputError, match="does not fit --arch mlp --hidden 16"):
        evaluate_model(str(p), test_dataset=str(path), arch="mlp", hidden=[16])
    rep = evaluate_model(str(p), test_dataset=str(path), arch="mlp", hidden=[8])
    assert "not standardised" in " ".join(rep["notes"])
    wide = tmp_path / "wide.pt"
    torch.save(build_model("linear", F, 7).state_dict(), wide)
    with pytest.raises(InputError, match="outputs 7 scores per sample but the dataset has 3 labels"):
        evaluate_model(str(wide), test_dataset=str(path), arch="linear")
    ts = tmp_path / "wide.ts"
    torch.jit.save(torch.jit.script(build_model("linear", F, 7)), str(ts))
    with pytest.raises(InputError, match="outputs 7 scores per sample but the dataset test has 3 labels"):
        evaluate_model(str(ts), test_dataset=str(path))


def test_double_sigmoid_guard_and_scores_probabilities(tmp_path, data):
    import torch

    from evalkit import evaluate_model

    path, X, Y = data
    model = torch.nn.Sequential(_mlp(), torch.nn.Sigmoid())
    p = tmp_path / "sig.ts"
    torch.jit.save(torch.jit.script(model), str(p))
    rep = evaluate_model(str(p), test_dataset=str(path), amp="bf16")
    assert any("sigmoid would be applied twice" in w for w in rep["warnings"])
    assert any("--amp bf16 ignored on CPU" in n for n in rep["notes"])
    rep = evaluate_model(str(p), test_dataset=str(path), scores="probabilities")
    assert "warnings" not in rep and rep["scores"] == "probabilities"
    with torch.inference_mode():
        probs = model(torch.from_numpy(X)).numpy()
    from evalkit import evaluate_scores

    ref = evaluate_scores(Y, probabilities=probs, label_names=["a", "b", "c"])
    assert rep["summary"]["macro"]["f2"] == pytest.approx(ref["summary"]["macro"]["f2"])
    lin = tmp_path / "lin.ts"
    torch.jit.save(torch.jit.script(_mlp()), str(lin))
    with pytest.raises(InputError, match="--scores probabilities"):
        evaluate_model(str(lin), test_dataset=str(path), scores="probabilities")


def test_missing_and_foreign_files(tmp_path, data):
    from evalkit import evaluate_model

    path, X, Y = data
    with pytest.raises(InputError, match="no such file"):
        evaluate_model(str(tmp_path / "nope.pt"), test_dataset=str(path))
    junk = tmp_path / "junk.pt"
    junk.write_text("not a model")
    with pytest.raises(InputError, match="not a model file"):
        evaluate_model(str(junk), test_dataset=str(path))
    with pytest.raises(InputError, match="give --dataset"):
        evaluate_model(str(junk))


class _Evil:
    def __reduce__(self):  # unpickling it would run a shell command
        import os

        return (os.system, ("touch pwned",))


def test_a_raw_pickle_or_random_bytes_are_named_in_one_line_without_torchs_unsafe_advice(tmp_path, data, cli,
                                                                                         monkeypatch):
    """A protocol-4 pickle (not torch.save) and random bytes: nothing unpickled, one line saying what the
    weights-only reader found, without torch's "re-run with weights_only=False" or its protocol warning."""
    import pickle

    monkeypatch.chdir(tmp_path)
    path, _, _ = data
    (tmp_path / "legacy.pt").write_bytes(pickle.dumps(_Evil(), protocol=4))
    (tmp_path / "noise.pt").write_bytes(np.random.default_rng(0).bytes(300))
    for name in ("legacy.pt", "noise.pt"):
        res = cli("evaluate", "--model", tmp_path / name, "--test-dataset", path, "--no-track")
        assert res.exit_code == 2, res.output
        assert res.output.strip().count("\n") == 0, res.output  # no UserWarning lines either
        assert re.fullmatch(rf"error: --model .*{name}: not a model file \(the weights-only reader says: Unsupported "
                            r"operand \d+\); expected TorchScript, torch\.export \.pt2, or a torch\.save state_dict",
                            res.output.strip()), res.output
    assert not (tmp_path / "pwned").exists()
