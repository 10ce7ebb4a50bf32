"""The training loop: seeded, device-aware, early stopping, rich progress. Returns the best model."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from evalkit.config import DEFAULT_BETA
from evalkit.errors import InputError


@dataclass
class TrainResult:
    """A trained model (the best epoch's weights), the per-epoch history, the best epoch (1-based) and whether early stopping ended training."""
    model: object
    history: list[dict] = field(default_factory=list)  # one dict per epoch: epoch, train_loss, val_loss[, val_metric]
    best_epoch: int = 0
    stopped_early: bool = False


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy and torch (CPU and CUDA) with ``seed``."""
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def predict_logits(model, X: np.ndarray, device: str = "cpu", batch_size: int = 4096) -> np.ndarray:
    """Logits ``(N, C)`` float32 for features ``X`` ``(N, F)``: :func:`evalkit.model_io.predict`, the one
    inference loop (batched under ``torch.inference_mode``)."""
    from evalkit.model_io import predict

    return predict(model, X, device=device, batch_size=batch_size)


def _monitor_value(monitor: str, val_logits: np.ndarray, val_Y: np.ndarray, beta: float) -> float:
    """Validation metric to maximise (at a fixed 0.5 cut for F-beta; threshold-free for mAP)."""
    from evalkit.metrics import compute_metrics

    tf = "exact" if monitor == "val_map" else "none"
    res = compute_metrics(val_Y, val_logits, scores_kind="logits", threshold=0.5, beta=beta, threshold_free=tf)
    if monitor == "val_map":
        return float(res.mean_average_precision)
    avg = monitor.removeprefix("val_").split("_")[0]  # val_micro_f2 / val_macro_f2: the F-beta of that average
    return float(getattr(res, avg).fbeta)


def train_model(
    model,
    loss_fn,
    X_train: np.ndarray,
    Y_train: np.ndarray,
    X_val: np.ndarray,
    Y_val: np.ndarray,
    *,
    optimizer: str = "adamw",
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    epochs: int = 100,
    batch_size: int = 64,
    patience: int = 10,
    monitor: str = "val_loss",
    beta: float = DEFAULT_BETA,
    seed: int = 0,
    input_noise: float = 0.0,
    device: str = "cpu",
    on_epoch: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train ``model`` (logits out) with mini-batch Adam/AdamW; keep the weights of the best epoch.

    Shapes: ``X_* (N, F)`` float32, ``Y_* (N, C)`` in {0,1}. Early stopping watches ``monitor``
    (``val_loss``: lowest validation loss; ``val_map`` / ``val_micro_f2`` / ``val_macro_f2``: highest
    validation metric; ``none``: train all epochs) with ``patience`` epochs. ``input_noise`` adds
    N(0, input_noise^2) noise to each training batch's (standardised) features. Shuffling uses a seeded
    ``torch.Generator``, so a CPU run is reproducible for a given ``seed``.

    Raises:
        InputError: the loss becomes NaN/inf (e.g. learning rate too high).
    """
    import torch

    model = model.to(device)
    loss_fn = loss_fn.to(device)
    opt_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[optimizer]
    opt = opt_cls(model.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    Xt = torch.from_numpy(X_train).to(device)
    Yt = torch.from_numpy(Y_train.astype(np.float32)).to(device)
    Xv = torch.from_numpy(X_val).to(device)
    Yv = torch.from_numpy(Y_val.astype(np.float32)).to(device)
    n = Xt.shape[0]
    maximise = monitor not in ("val_loss", "none")
    best = -math.inf if maximise else math.inf
    best_state = copy.deepcopy(model.state_dict())
    result = TrainResult(model=model)
    bad_epochs = 0
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=gen).to(device)
        total, seen = 0.0, 0
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            if idx.numel() == 1 and n > 1:  # BatchNorm cannot train on a single sample
                continue
            opt.zero_grad(set_to_none=True)
            xb = Xt[idx]
            if input_noise > 0:  # Gaussian input noise (Bishop 1995: equivalent to Tikhonov regularisation)
                xb = xb + input_noise * torch.randn(xb.shape, generator=gen).to(device)
            loss = loss_fn(model(xb), Yt[idx])
            loss.backward()
            opt.step()
            total += loss.item() * idx.numel()
            seen += idx.numel()
        train_loss = total / max(seen, 1)
        if not math.isfinite(train_loss):
            raise InputError(f"training diverged at epoch {epoch} (loss {train_loss}); lower --lr (now {lr})")
        model.eval()
        with torch.inference_mode():
            val_logits = model(Xv)
            val_loss = float(loss_fn(val_logits, Yv))
        row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss}
        if maximise:
            row["val_metric"] = _monitor_value(monitor, val_logits.float().cpu().numpy(), Y_val, beta)
            current, improved = row["val_metric"], row["val_metric"] > best
        else:
            current, improved = val_loss, val_loss < best
        result.history.append(row)
        if monitor == "none" or improved:
            best, bad_epochs, result.best_epoch = current, 0, epoch
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad_epochs += 1
        if on_epoch:
            on_epoch(row)
        if monitor != "none" and bad_epochs >= patience:
            result.stopped_early = True
            break
    model.load_state_dict(best_state)
    model.eval()
    return result
