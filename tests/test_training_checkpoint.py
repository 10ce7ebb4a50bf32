"""Training checkpoints: a run killed (SIGKILL) mid-epoch continues from its last checkpoint and ends
with the same model and history as an uninterrupted run (seeded, CPU)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

TRAIN = textwrap.dedent("""
    import sys
    import numpy as np
    import torch
    from evalkit.losses import build_loss
    from evalkit.models import build_model
    from evalkit.train import seed_everything, torch_settings, train_model

    def train(checkpoint, epochs):
        rng = np.random.default_rng(0)
        X = rng.normal(size=(3000, 40)).astype(np.float32)
        Y = (X[:, :4] + 0.5 * rng.normal(size=(3000, 4)) > 0).astype(np.uint8)
        with torch_settings(1, "cpu"):
            seed_everything(0)
            model = build_model("mlp", 40, 4, hidden=[256, 256], dropout=0.3)
            return train_model(model, build_loss("bce", Y[:2400], {}), X[:2400], Y[:2400], X[2400:], Y[2400:],
                               epochs=epochs, batch_size=16, patience=100, monitor="val_map", seed=0, input_noise=0.5,
                               checkpoint=checkpoint)

    if __name__ == "__main__":
        train(sys.argv[1], int(sys.argv[2]))
""")
EPOCHS = 8


def _load_train(tmp_path):
    (tmp_path / "trainer.py").write_text(TRAIN)
    sys.path.insert(0, str(tmp_path))
    try:
        import trainer
    finally:
        sys.path.remove(str(tmp_path))
    return trainer


def _epoch_of(path) -> int:
    import torch

    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])
    except (FileNotFoundError, EOFError, RuntimeError):
        return 0


def test_a_run_killed_mid_epoch_resumes_to_the_same_model_and_history(tmp_path):
    import torch

    ckpt = tmp_path / "fold1.pt"
    (tmp_path / "trainer.py").write_text(TRAIN)
    proc = subprocess.Popen([sys.executable, "-P", str(tmp_path / "trainer.py"), str(ckpt), str(EPOCHS)],
                            env=os.environ.copy())
    try:
        while proc.poll() is None and _epoch_of(ckpt) < 2:
            try:
                proc.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                pass
        assert proc.poll() is None, "the training process ended before it could be killed"
        proc.send_signal(signal.SIGKILL)  # mid-epoch 3 (or later): no chance to write anything more
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    killed_at = _epoch_of(ckpt)
    assert 2 <= killed_at < EPOCHS
    trainer = _load_train(tmp_path)
    resumed = trainer.train(str(ckpt), EPOCHS)
    whole = trainer.train(None, EPOCHS)
    assert [r["epoch"] for r in resumed.history] == list(range(1, EPOCHS + 1))
    assert resumed.history == whole.history and resumed.best_epoch == whole.best_epoch
    for k, v in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[k], v), k
    assert _epoch_of(ckpt) == EPOCHS


def test_a_file_that_is_not_a_checkpoint_is_refused_in_one_line(tmp_path):
    from evalkit.errors import InputError

    trainer = _load_train(tmp_path)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match=r"bad\.pt: not a readable training checkpoint"):
        trainer.train(str(tmp_path / "bad.pt"), 1)
    assert np.isfinite(trainer.train(str(tmp_path / "new.pt"), 1).history[0]["val_loss"])
