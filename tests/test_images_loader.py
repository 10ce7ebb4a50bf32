"""Images decoded with Pillow batch by batch: modes and formats, bad images, and no image read
twice per epoch or before its batch."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from evalkit.errors import InputError  # noqa: E402
from evalkit.images.backbones import import_torchvision  # noqa: E402

try:
    import_torchvision()
except InputError:
    pytest.skip("torchvision is not installed (pip install 'evalkit[images]')", allow_module_level=True)

from evalkit.images.loader import BadImage, image_loader, read_image  # noqa: E402
from evalkit.images.tables import read_image_table  # noqa: E402


def test_8_and_16_bit_grayscale_and_rgb_become_the_same_pixels_in_0_1(tmp_path):
    rng = np.random.default_rng(0)
    g8 = rng.integers(0, 256, (5, 7), dtype=np.uint8)
    g16 = rng.integers(0, 65536, (5, 7), dtype=np.uint16)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(g8).save(tmp_path / "g8.png")
    Image.fromarray(g16).save(tmp_path / "g16.png")
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(rgb).save(tmp_path / "rgb.bmp")
    Image.fromarray(g8).save(tmp_path / "g8.tiff")
    np.testing.assert_allclose(read_image(str(tmp_path / "g8.png"), 1, 1), g8[None] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(read_image(str(tmp_path / "g16.png"), 1, 1), g16[None] / 65535.0, rtol=1e-6)
    np.testing.assert_allclose(read_image(str(tmp_path / "g16.png"), 1, 3), np.repeat(g16[None] / 65535.0, 3, 0), rtol=1e-6)
    np.testing.assert_allclose(read_image(str(tmp_path / "rgb.png"), 1, 3), rgb.transpose(2, 0, 1) / 255.0, rtol=1e-6)
    np.testing.assert_allclose(read_image(str(tmp_path / "rgb.bmp"), 1, 3), rgb.transpose(2, 0, 1) / 255.0, rtol=1e-6)
    np.testing.assert_allclose(read_image(str(tmp_path / "g8.tiff"), 1, 1), g8[None] / 255.0, rtol=1e-6)
    smooth = np.stack(np.meshgrid(np.arange(16) * 8, np.arange(16) * 16 % 256, indexing="ij") + (np.full((16, 16), 128),), -1)
    Image.fromarray(smooth.astype(np.uint8)).save(tmp_path / "rgb.jpg", quality=95, subsampling=0)
    jpg = read_image(str(tmp_path / "rgb.jpg"), 1, 3)  # lossy: close, not equal
    assert jpg.shape == (3, 16, 16) and jpg.dtype == np.float32
    assert np.abs(jpg - smooth.transpose(2, 0, 1) / 255.0).mean() < 0.02


def test_missing_and_corrupt_images_name_the_file_and_the_row(tmp_path):
    with pytest.raises(BadImage, match=r"nope\.png: row 3: image file not found$"):
        read_image(str(tmp_path / "nope.png"), 3, 1)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(BadImage, match=r"bad\.png: row 7: unreadable image"):
        read_image(str(tmp_path / "bad.png"), 7, 1)


def _table(tmp_path, n: int, bad: tuple = ()):
    rng = np.random.default_rng(1)
    lines = ["path,a,b"]
    for i in range(n):
        if i in bad:
            (tmp_path / f"{i}.png").write_bytes(b"broken")
        else:
            Image.fromarray(rng.integers(0, 256, (12, 12), dtype=np.uint8)).save(tmp_path / f"{i}.png")
        lines.append(f"{i}.png,{i % 2},{(i // 2) % 2}")
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    return read_image_table(tmp_path / "t.csv", label_columns="a,b")


def test_each_image_is_opened_once_per_epoch_and_only_when_its_batch_is_built(tmp_path, monkeypatch):
    import PIL.Image

    table = _table(tmp_path, 10)
    opened: list[str] = []
    real_open = PIL.Image.open
    monkeypatch.setattr(PIL.Image, "open", lambda fp, *a, **k: (opened.append(str(fp)), real_open(fp, *a, **k))[1])
    loader = image_loader(table, size=8, channels=1, train=True, batch_size=4, workers=0, seed=0)
    assert opened == []  # building the loader reads no image
    for epoch in range(2):
        opened.clear()
        seen = 0
        for X, Y, kept in loader:
            seen += len(kept)
            assert len(opened) == seen  # the images of the batches so far, none ahead
            assert X.shape == (len(kept), 1, 8, 8) and Y.shape == (len(kept), 2)
        assert sorted(opened) == sorted(table.paths)  # every image exactly once this epoch


def test_evaluation_batches_are_deterministic_and_in_table_order(tmp_path):
    table = _table(tmp_path, 6)
    runs = [[b for b in image_loader(table, size=12, channels=3, train=False, batch_size=4, workers=0)] for _ in range(2)]
    for (X1, Y1, _), (X2, Y2, _) in zip(*runs):
        assert torch.equal(X1, X2) and torch.equal(Y1, Y2)
    X = torch.cat([X for X, _, _ in runs[0]])
    expected = np.stack([read_image(p, 1, 3) for p in table.paths])
    np.testing.assert_allclose(X.numpy(), expected, rtol=1e-6)  # same size: resize / crop leave pixels as read
    np.testing.assert_array_equal(torch.cat([Y for _, Y, _ in runs[0]]).numpy(), table.Y)


def test_bad_images_stop_the_loader_in_one_line_or_are_skipped_and_counted(tmp_path):
    table = _table(tmp_path, 6, bad=(4,))
    with pytest.raises(BadImage, match=r"4\.png: row 5: unreadable image"):
        list(image_loader(table, size=12, channels=1, train=False, batch_size=4, workers=0))
    batches = list(image_loader(table, size=12, channels=1, train=False, batch_size=4, workers=0, skip_bad=True))
    kept = torch.cat([k for _, _, k in batches])
    assert kept.tolist() == [True, True, True, True, False, True]
    assert sum(len(X) for X, _, _ in batches) == 5


def test_a_bad_image_met_by_a_worker_process_is_still_one_line(tmp_path):
    """torch re-raises a worker's BadImage with the worker's traceback in its message; the CLI printed
    those 18 lines with the default --workers (only --workers 0 gave one)."""
    table = _table(tmp_path, 6, bad=(4,))
    with pytest.raises(BadImage) as info:
        list(image_loader(table, size=12, channels=1, train=False, batch_size=2, workers=1))
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message, message
    assert message.startswith(str(tmp_path / "4.png") + ": row 5: unreadable image ("), message


def test_worker_processes_decode_the_same_batches(tmp_path):
    table = _table(tmp_path, 6)
    inline = [X for X, _, _ in image_loader(table, size=12, channels=1, train=False, batch_size=3, workers=0)]
    workers = [X for X, _, _ in image_loader(table, size=12, channels=1, train=False, batch_size=3, workers=1)]
    assert all(torch.equal(a, b) for a, b in zip(inline, workers)) and len(workers) == 2


def test_streamed_scores_equal_the_in_memory_path(tmp_path):
    from evalkit.images.backbones import build_backbone
    from evalkit.metrics import compute_metrics
    from evalkit.train import predict_logits

    table = _table(tmp_path, 10)
    torch.manual_seed(0)
    model = build_backbone("resnet18", (1, 12, 12), 2).eval()
    with torch.inference_mode():
        streamed = torch.cat([model(X) for X, _, _ in image_loader(table, size=12, channels=1, train=False,
                                                                    batch_size=4, workers=0)]).numpy()
    in_memory = predict_logits(model, np.stack([read_image(p, 1, 1) for p in table.paths]))
    np.testing.assert_allclose(streamed, in_memory, rtol=1e-5, atol=1e-6)
    a = compute_metrics(table.Y, streamed, scores_kind="logits", threshold=0.5, beta=2.0)
    b = compute_metrics(table.Y, in_memory, scores_kind="logits", threshold=0.5, beta=2.0)
    assert a.micro.fbeta == pytest.approx(b.micro.fbeta, abs=1e-12)
