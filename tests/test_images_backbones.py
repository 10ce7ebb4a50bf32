"""torchvision backbones as --model: C-logit heads, grayscale to 3 channels, resize, --weights FILE,
--pretrained offline, --freeze-backbone / --unfreeze-after."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

import torch

from evalkit.errors import InputError
from evalkit.images.backbones import BACKBONES, build_backbone, import_torchvision

try:
    import_torchvision()
except InputError:
    pytest.skip("torchvision is not installed (pip install 'evalkit[images]')", allow_module_level=True)


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_backbone_gives_one_logit_per_label_for_grayscale_images(name):
    torch.manual_seed(0)
    model = build_backbone(name, (1, 16, 16), 7).eval()
    with torch.inference_mode():
        out = model(torch.rand(2, 1, 16, 16))
    assert out.shape == (2, 7) and out.dtype == torch.float32
    assert model[0].size == 32  # 16 px images are fed at 32 px by default


def test_image_input_repeats_gray_resizes_and_normalises_with_imagenet_statistics():
    from evalkit.images.layers import ImageInput

    x = torch.full((1, 1, 4, 4), 0.5)
    out = ImageInput(8, imagenet=True)(x)
    assert out.shape == (1, 3, 8, 8)
    expected = (0.5 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(out[0, :, 3, 5], expected)
    assert torch.equal(ImageInput(4, imagenet=False)(x), x.expand(-1, 3, -1, -1))


def test_weights_file_with_an_imagenet_head_is_loaded_and_the_head_replaced(tmp_path):
    tv = import_torchvision()
    torch.manual_seed(1)
    imagenet = tv.models.resnet18(weights=None)
    path = tmp_path / "r18.pt"
    torch.save(imagenet.state_dict(), path)
    model = build_backbone("resnet18", (3, 32, 32), 5, weights=str(path))
    assert torch.equal(model[1].conv1.weight, imagenet.conv1.weight)
    assert torch.equal(model[1].layer4[1].bn2.running_var, imagenet.layer4[1].bn2.running_var)
    assert model[1].fc.out_features == 5 and model[0].imagenet


def test_weights_file_with_the_runs_own_head_is_loaded_whole(tmp_path):
    torch.manual_seed(2)
    trained = build_backbone("resnet18", (1, 16, 16), 4)
    path = tmp_path / "mine.pt"
    torch.save(trained[1].state_dict(), path)
    model = build_backbone("resnet18", (1, 16, 16), 4, weights=str(path))
    assert torch.equal(model[1].fc.weight, trained[1].fc.weight)


def test_weights_file_of_another_network_or_missing_is_refused_in_one_line(tmp_path):
    tv = import_torchvision()
    path = tmp_path / "dense.pt"
    torch.save(tv.models.densenet121(weights=None).state_dict(), path)
    with pytest.raises(InputError, match=r"^--weights .*dense\.pt: not a state_dict of resnet18: ") as e:
        build_backbone("resnet18", (3, 32, 32), 3, weights=str(path))
    # counts and the first three keys, not torch's list of every key (it was ~10 kB on one line)
    assert re.search(r": \d+ key\(s\) missing \(conv1\.weight, bn1\.weight, bn1\.bias, \.\.\. \d+ more\); "
                     r"\d+ key\(s\) unexpected \(features\.conv0\.weight, ", str(e.value)), str(e.value)
    assert len(str(e.value)) < 400 and "\n" not in str(e.value)
    resnet = build_backbone("resnet18", (3, 32, 32), 5)[1].state_dict()
    resnet["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    torch.save(resnet, tmp_path / "odd.pt")
    with pytest.raises(InputError, match=r"odd\.pt: not a state_dict of resnet18: 1 key\(s\) of another shape "
                                         r"\(layer1\.0\.conv1\.weight \(64, 64, 1, 1\) in the file, \(64, 64, 3, 3\) "
                                         r"expected\)$"):
        build_backbone("resnet18", (3, 32, 32), 5, weights=str(tmp_path / "odd.pt"))
    with pytest.raises(InputError, match=r"^--weights .*nope\.pt: no such file$"):
        build_backbone("resnet18", (3, 32, 32), 3, weights=str(tmp_path / "nope.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match=r"junk\.pt: not a readable state_dict"):
        build_backbone("resnet18", (3, 32, 32), 3, weights=str(tmp_path / "junk.pt"))


def test_pretrained_offline_without_cache_exits_3_naming_weights_file(store, cli, tmp_path, monkeypatch):
    import urllib.error

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # an empty cache
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    res = cli("run", "--dataset", "digits-grid", "--model", "resnet18", "--pretrained", "--epochs", "1")
    assert res.exit_code == 3
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--weights FILE" in lines[0] and "resnet18" in lines[0], res.stderr
    assert "Traceback" not in res.output
    import mlflow

    assert mlflow.MlflowClient(store).search_runs(["0", "1"], "") == []  # no run left behind


def test_missing_torchvision_names_the_images_extra(monkeypatch):
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(InputError, match=r"pip install 'evalkit\[images\]'"):
        build_backbone("resnet18", (3, 32, 32), 3)


def _fit(config_update: dict, epochs: int):
    from evalkit.config import RunConfig
    from evalkit.data.core import Dataset
    from evalkit.train import seed_everything
    from evalkit.workflows.events import Emitter
    from evalkit.workflows.training import build, fit

    rng = np.random.default_rng(0)
    X = rng.random((40, 1, 16, 16), dtype=np.float32)
    Y = (rng.random((40, 3)) < 0.4).astype(np.uint8)
    data = Dataset("toy", X, Y, [], ["a", "b", "c"])
    config = RunConfig(model="resnet18", epochs=epochs, batch_size=8, monitor="none", input_noise=0.0, **config_update)
    seed_everything(0)
    model, loss = build(config, data, Y)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit(model, loss, data, data, config, "cpu", Emitter())
    after = model.state_dict()
    return before, after


def test_freeze_backbone_trains_the_head_only():
    before, after = _fit({"freeze_backbone": True}, epochs=1)
    assert torch.equal(before["1.conv1.weight"], after["1.conv1.weight"])
    assert torch.equal(before["1.layer3.0.conv2.weight"], after["1.layer3.0.conv2.weight"])
    assert not torch.equal(before["1.fc.weight"], after["1.fc.weight"])


def test_unfreeze_after_trains_the_whole_network_from_the_next_epoch():
    before, after = _fit({"freeze_backbone": True, "unfreeze_after": 1}, epochs=2)
    assert not torch.equal(before["1.conv1.weight"], after["1.conv1.weight"])


def test_a_resnet18_run_from_a_weights_file_is_logged_and_evaluate_model_repeats_its_metrics(store, cli, tmp_path):
    import json

    import mlflow

    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 48), ("val", 16), ("test", 24)):
        Y = (rng.random((n, 3)) < 0.4).astype(np.uint8)
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 12, 12), dtype=np.uint8)
        arrays[f"{split}_labels"] = Y
    np.savez(tmp_path / "tiny.npz", **arrays)
    torch.manual_seed(0)
    torch.save(import_torchvision().models.resnet18(weights=None).state_dict(), tmp_path / "imagenet.pt")
    res = cli("run", "--dataset", "tiny.npz", "--model", "resnet18", "--weights", "imagenet.pt", "--image-size", "16",
              "--epochs", "1", "--folds", "1", "--batch-size", "16", "-o", "r.json")
    assert res.exit_code == 0, res.output
    run = mlflow.MlflowClient(store).search_runs(["1"])[0]
    assert run.info.status == "FINISHED"
    assert (run.data.params["model"], run.data.params["standardize"], run.data.params["image_size"]) == ("resnet18", "False", "16")
    res = cli("evaluate", "--model", f"runs:/{run.info.run_id}/model", "--dataset", "tiny.npz", "-o", "e.json")
    assert res.exit_code == 0, res.output
    first, again = (json.loads((tmp_path / f).read_text())["summary"] for f in ("r.json", "e.json"))
    for key in ("micro", "macro"):
        assert again[key]["f2"] == pytest.approx(first[key]["f2"], abs=1e-6)
    assert again["mean_average_precision"] == pytest.approx(first["mean_average_precision"], abs=1e-6)


def test_pretrained_weights_come_from_torchvisions_cache_without_a_download(tmp_path, monkeypatch):
    import os

    tv = import_torchvision()
    url = tv.models.get_model_weights("resnet18").DEFAULT.url
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.manual_seed(3)
    cached = tv.models.resnet18(weights=None)
    torch.save(cached.state_dict(), tmp_path / "hub" / "checkpoints" / os.path.basename(url))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **k: pytest.fail("downloaded"))
    model = build_backbone("resnet18", (1, 28, 28), 14, pretrained=True)
    assert torch.equal(model[1].layer1[0].conv1.weight, cached.layer1[0].conv1.weight)
    assert model[0].imagenet and model[1].fc.out_features == 14


@pytest.mark.parametrize(("args", "message"), [
    (("--model", "mlp", "--pretrained"), "--pretrained: only for torchvision backbones (--model resnet18"),
    (("--model", "cnn", "--weights", "w.pt"), "--weights: only for torchvision backbones"),
    (("--model", "resnet18", "--unfreeze-after", "2"), "--unfreeze-after 2: needs --freeze-backbone"),
])
def test_backbone_options_elsewhere_are_refused_before_a_run_starts(store, cli, args, message):
    import mlflow

    res = cli("run", "--dataset", "digits-grid", "--epochs", "1", *args)
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in res.output
    assert mlflow.MlflowClient(store).search_runs(["0", "1"], "") == []
