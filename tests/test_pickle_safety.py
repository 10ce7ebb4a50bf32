"""A model stored in MLflow in pickle format never runs its code unless --trust-pickle is given:
``models:/NAME@ALIAS``, ``runs:/ID/model`` and a local MLflow model folder are all refused (exit 2,
one line); pickle-free pt2 MLflow models load as before; logging a model unpickles nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

F, C, N = 5, 3, 40
MARKER_ENV = "EVALKIT_TEST_PICKLE_MARKER"


def _plant(marker: str):
    """What the malicious pickle runs when loaded: writes the marker, returns a working model."""
    import torch

    Path(marker).write_text("pwned")
    torch.manual_seed(0)
    return torch.nn.Linear(F, C)


def _evil_module(marker: str):
    import torch

    class Evil(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(F, C)

        def forward(self, x):
            return self.lin(x)

        def __reduce__(self):
            return (_plant, (marker,))

    return Evil()


@pytest.fixture
def evil(store, tmp_path):
    """A malicious pickle-format model logged to the store, registered as evil@champion, and saved as a
    local MLflow model folder. Returns (run URI, models URI, folder, marker path, test data)."""
    import mlflow
    import mlflow.pytorch

    marker = tmp_path / "pwned.txt"
    rng = np.random.default_rng(0)
    data = tmp_path / "test.npz"
    np.savez(data, X=rng.normal(size=(N, F)).astype(np.float32), Y=(rng.random((N, C)) < 0.4).astype(np.uint8))
    mlflow.set_tracking_uri(store)
    model = _evil_module(str(marker))
    pip = ["torch"]  # no requirement inference (it would load the model in a subprocess)
    with mlflow.start_run() as run:  # no input example: MLflow does not load the model to validate it
        mlflow.pytorch.log_model(model, name="model", serialization_format="pickle", pip_requirements=pip,
                                 registered_model_name="evil")
    mlflow.MlflowClient(store).set_registered_model_alias("evil", "champion", "1")
    folder = tmp_path / "evil-folder"
    mlflow.pytorch.save_model(model, str(folder), serialization_format="pickle", pip_requirements=pip)
    assert not marker.exists()  # logging and saving did not unpickle it
    return f"runs:/{run.info.run_id}/model", "models:/evil@champion", folder, marker, data


def test_pickled_mlflow_models_are_refused_everywhere_without_trust_pickle(evil, store, cli):
    runs_uri, models_uri, folder, marker, data = evil
    for spec in (models_uri, runs_uri, str(folder)):
        r = cli("evaluate", "--model", spec, "--test-dataset", data, "--tracking-uri", store, "--no-track")
        assert r.exit_code == 2, (spec, r.output)
        msg = r.stderr.strip()
        assert len(msg.splitlines()) == 1 and msg.startswith("error:"), msg
        flat = " ".join(msg.split())
        assert "refused" in flat and "pickle" in flat and "--trust-pickle" in flat, flat
        assert "Traceback" not in r.output and r.stderr.count("error:") == 1
        assert not marker.exists(), f"{spec}: the pickle ran"


def test_python_api_refuses_too_and_baseline_champion_reads_metrics_only(evil, store):
    from evalkit import evaluate_model
    from evalkit.errors import InputError
    from evalkit.tracking import baseline_run, load_logged_model

    runs_uri, models_uri, folder, marker, data = evil
    with pytest.raises(InputError, match="refused: this MLflow model is stored in pickle format"):
        evaluate_model(models_uri, test_dataset=str(data), tracking_uri=store)
    with pytest.raises(InputError, match="--trust-pickle"):
        load_logged_model(store, runs_uri)
    base = baseline_run(store, "Default", "champion", model_uri=models_uri)  # the run's metrics, no model load
    assert base["run_id"] == runs_uri.split("/")[1]
    assert not marker.exists()


def test_trust_pickle_loads_the_pickled_model(evil, store, cli, tmp_path):
    runs_uri, models_uri, folder, marker, data = evil
    out = tmp_path / "r.json"
    r = cli("evaluate", "--model", models_uri, "--test-dataset", data, "--tracking-uri", store, "--no-track",
            "--trust-pickle", "-o", out)
    assert r.exit_code == 0, r.output
    assert marker.exists()  # trusted: the pickle ran, as the user allowed
    assert json.loads(out.read_text())["model"]["kind"] == "mlflow"


def test_pickle_free_pt2_mlflow_model_loads_without_trust(store, cli, tmp_path):
    import torch

    from evalkit.tracking import RunLogger, load_logged_model

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(F, 4), torch.nn.ReLU(), torch.nn.Linear(4, C))
    X = np.random.default_rng(1).normal(size=(8, F)).astype(np.float32)
    before = os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION")
    with RunLogger(store, "pt2") as run:
        uri = run.log_model(model, X[:2], registered_model_name="ok")
        assert run.registered_model("ok", "champion") == "models:/ok@champion (version 1)"
    assert os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION") == before  # restored after logging
    for spec in (uri, "models:/ok@champion", f"runs:/{run.run_id}/model"):
        loaded = load_logged_model(store, spec)
        with torch.inference_mode():
            np.testing.assert_allclose(loaded(torch.from_numpy(X)).numpy(), model(torch.from_numpy(X)).numpy(),
                                       rtol=1e-5, atol=1e-6)


def test_mlmodel_pointing_outside_the_folder_or_without_pytorch_flavor(tmp_path):
    from evalkit.errors import InputError
    from evalkit.tracking.loading import inspect_model_folder

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "MLmodel").write_text("flavors:\n  pytorch:\n    model_data: ../outside\n")
    with pytest.raises(InputError, match="outside the model folder"):
        inspect_model_folder(tmp_path / "m", "m")
    (tmp_path / "m" / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: x\n")
    with pytest.raises(InputError, match="no pytorch flavor"):
        inspect_model_folder(tmp_path / "m", "m")
