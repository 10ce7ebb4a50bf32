"""Training and scoring on image tables, streamed: :class:`~evalkit.images.lazy.LazyImages` go through
:func:`~evalkit.images.loader.image_loader` batch by batch (imports torch: import lazily).

:func:`train_streaming` is :func:`evalkit.train.train_model` for images on disk: the same optimiser,
early stopping, mixed precision and per-epoch checkpoint (``--resume``), with the loader's epoch order
(:class:`~evalkit.images.loader.EpochOrder`) instead of an in-memory permutation. Each epoch's order,
augmentation and the model's own randomness are seeded from ``(seed, epoch)``, so a seeded CPU run
resumed after any epoch ends with the same model as an uninterrupted one. :func:`image_batches` feeds
:func:`evalkit.model_io.predict` (the one inference loop). With ``--skip-bad-images`` a bad image's
row is left out of training and scored as NaN (callers drop those rows and count them:
``X.loading.bad``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from evalkit.errors import InputError
from evalkit.images.lazy import LazyImages, RowsView

#: input pixels (c x S x S x images) of one scoring batch at most, for the activations' sake (a 32-channel
#: layer of the cnn on 28-px images holds 128 bytes a pixel); a batch has at least :data:`MIN_BATCH` images
SCORE_PIXELS, MIN_BATCH = 1 << 19, 8


def stream_loader(X: LazyImages, Y: np.ndarray | None, *, train: bool, batch_size: int, seed: int = 0):
    """The :func:`~evalkit.images.loader.image_loader` of ``X`` (labels ``Y`` ``(N, C)``) with ``X``'s
    loading settings (workers, augmentation, skipping bad images)."""
    from evalkit.images.loader import image_loader

    how = X.loading
    return image_loader(RowsView(X, Y), size=X.size, channels=X.channels, train=train, batch_size=batch_size,
                        seed=seed, workers=how.workers, augment=how.augment, skip_bad=how.skip_bad)


def _note_bad(X: LazyImages, loader, b: int, kept) -> None:
    """Record the paths of batch ``b``'s skipped images in ``X.loading.bad``."""
    if bool(kept.all()):
        return
    items = list(loader.sampler)[b * loader.batch_size:(b + 1) * loader.batch_size]
    X.loading.bad.update(X.paths[i] for (_, i), ok in zip(items, kept.tolist()) if not ok)


def image_batches(X: LazyImages, batch_size: int):
    """``(images (n, c, S, S) float32, kept (n_batch,) bool)`` of ``X`` in table order (evaluation
    transform), at most ``batch_size`` rows and :data:`SCORE_PIXELS` pixels per batch."""
    rows = max(MIN_BATCH, SCORE_PIXELS // max(1, X.channels * X.size * X.size))
    loader = stream_loader(X, None, train=False, batch_size=max(1, min(batch_size, rows)))
    try:
        for b, (xb, _, kept) in enumerate(loader):
            _note_bad(X, loader, b, kept)
            yield xb, kept
    finally:  # an error or an interrupt too: no worker is left to the interpreter's exit
        loader.close()


def train_streaming(model, loss_fn, X_train: LazyImages, Y_train, X_val: LazyImages, Y_val, *, optimizer: str,
                    lr: float, weight_decay: float, epochs: int, batch_size: int, patience: int, monitor: str,
                    beta: float, seed: int, device: str, on_epoch, amp: str, checkpoint: str | None, **_):
    """:func:`evalkit.train.train_model` on images streamed from disk (``X_*``: :class:`LazyImages`,
    ``Y_*`` ``(N, C)`` in {0, 1}); returns :class:`~evalkit.train.TrainResult`.

    Raises:
        InputError: ``--optimizer lbfgs`` (full batch: not for streamed images); the loss becomes
            NaN / inf; a bad image without ``--skip-bad-images`` (one line naming the file and row).
    """
    from evalkit.train import EarlyStopping, Precision, resume_checkpoint, save_checkpoint

    if optimizer == "lbfgs":
        raise InputError("--optimizer lbfgs: full-batch, for --model linear on features; image tables train with "
                         "adam or adamw")
    model, loss_fn = model.to(device), loss_fn.to(device)
    opt = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[optimizer](model.parameters(), lr=lr,
                                                                          weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)  # the stream seeds itself per epoch; kept for the checkpoint
    stop = EarlyStopping(model, monitor, patience, Y_val, beta, on_epoch)
    prec = Precision(amp, device, images=True)
    model = prec.prepare(model)
    done = resume_checkpoint(checkpoint, model, opt, gen, stop) if checkpoint else 0
    loader = stream_loader(X_train, Y_train, train=True, batch_size=batch_size, seed=seed)
    val_loader = stream_loader(X_val, None, train=False, batch_size=batch_size)
    try:
        Yv = torch.from_numpy(np.asarray(Y_val, dtype=np.float32))
        for epoch in range(done + 1, epochs + 1):
            loader.sampler.set_epoch(epoch)
            torch.manual_seed(loader.sampler.key())  # the model's own randomness (dropout) follows the epoch
            train_loss = _train_epoch(model, loss_fn, loader, X_train, opt, prec, device)
            if not math.isfinite(train_loss):
                raise InputError(f"training diverged at epoch {epoch} (loss {train_loss}); lower --lr (now {lr})")
            val_logits = _scores(model, X_val, val_loader, prec, device)
            keep = torch.isfinite(val_logits).all(dim=1)
            stop.Y_val = np.asarray(Y_val)[keep.numpy()]
            val_loss = float(loss_fn(val_logits[keep].to(device), Yv[keep].to(device)))
            ended = stop.after_epoch(epoch, train_loss, val_loss, val_logits[keep])
            if checkpoint:
                save_checkpoint(checkpoint, epoch if not ended else epochs, model, opt, gen, stop)
            if ended:
                break
    finally:  # an error or an interrupt too: no worker is left to the interpreter's exit
        loader.close()
        val_loader.close()
    return stop.result()


def _train_epoch(model, loss_fn, loader, X: LazyImages, opt, prec, device: str) -> float:
    """One epoch over ``loader``; the mean training loss (a batch of one image is skipped: BatchNorm)."""
    model.train()
    total, seen = 0.0, 0
    for b, (xb, yb, kept) in enumerate(loader):
        _note_bad(X, loader, b, kept)
        if len(xb) == 0 or (len(xb) == 1 and len(X) > 1):
            continue
        opt.zero_grad(set_to_none=True)
        with prec.autocast():
            loss = loss_fn(model(prec.batch(xb.to(device))), yb.to(device))
        prec.step(loss, opt)
        total += loss.item() * len(xb)
        seen += len(xb)
    return total / max(seen, 1)


def _scores(model, X: LazyImages, loader, prec, device: str):
    """Logits ``(N, C)`` float32 (CPU) of ``X`` through its evaluation ``loader`` (kept for every
    epoch: its workers start once); NaN rows for skipped images."""
    model.eval()
    outs, kept = [], []
    with torch.inference_mode(), prec.autocast():
        for b, (xb, _, ok) in enumerate(loader):
            _note_bad(X, loader, b, ok)
            kept.append(ok)
            outs.append(model(prec.batch(xb.to(device))).float().cpu() if len(xb) else None)
    return place_rows(outs, kept)


def place_rows(outs: list, where: list, n_labels: int | None = None):
    """The outputs of :func:`evalkit.model_io.predict`'s image batches, ``(N, C)``: ``outs[k]`` (the
    readable rows of batch ``k``, or None) put at the rows ``where[k]`` (its kept mask), NaN elsewhere.

    Raises:
        InputError: not one image of the table could be read.
    """
    widths = [o.shape[1] for o in outs if o is not None and o.ndim == 2]
    if not widths:
        raise InputError("image table: not one image could be read (every row skipped by --skip-bad-images)")
    parts = []
    for out, kept in zip(outs, where):
        full = torch.full((len(kept), widths[0]), float("nan"))
        if out is not None:
            full[kept] = out
        parts.append(full)
    return torch.cat(parts)
