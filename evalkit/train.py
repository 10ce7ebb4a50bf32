"""The training loop: seeded, device-aware, early stopping, progress through a callback. Returns the best model."""

from __future__ import annotations

import copy
import math
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from evalkit.config import DEFAULT_BETA
from evalkit.data.sparse import dense_rows, is_sparse
from evalkit.errors import InputError

#: validation rows scored per forward pass (bounds the memory of densified sparse batches)
VAL_BATCH = 4096


#: the checkpoint file of the training in progress (``evalkit run --resume``: :func:`checkpointing`)
CHECKPOINT: ContextVar[str | None] = ContextVar("evalkit_checkpoint", default=None)


@contextmanager
def checkpointing(path: str | None):
    """Within the block, :func:`train_model` checkpoints to ``path`` after every epoch (and resumes
    from it when it exists), unless given its own ``checkpoint``."""
    token = CHECKPOINT.set(path)
    try:
        yield
    finally:
        CHECKPOINT.reset(token)


@dataclass
class TrainResult:
    """A trained model (the best epoch's weights), the per-epoch history, the best epoch (1-based) and whether early stopping ended training."""
    model: object
    history: list[dict] = field(default_factory=list)  # one dict per epoch: epoch, train_loss, val_loss[, val_metric]
    best_epoch: int = 0
    stopped_early: bool = False


def apply_torch_settings(threads: int, device: str) -> tuple:
    """Training's process-wide torch settings, set in this one place: ``threads`` intra-op threads on
    the CPU and deterministic algorithms (warn only) on the CPU. Returns the previous settings, for
    :func:`torch_settings` to restore."""
    import torch

    before = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled())
    if device == "cpu":
        torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(device == "cpu", warn_only=True)
    return before


@contextmanager
def torch_settings(threads: int, device: str):
    """:func:`apply_torch_settings` for the ``with`` block; the previous settings are restored on leaving."""
    import torch

    threads_before, deterministic, warn_only = apply_torch_settings(threads, device)
    try:
        yield
    finally:
        torch.set_num_threads(threads_before)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy and torch (CPU and CUDA) with ``seed``."""
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class preserved_rng:
    """Context manager: the states of Python's ``random``, numpy's and torch's (CPU) global
    generators are restored on leaving, whatever ran inside (e.g. a :func:`seed_everything`)."""

    def __enter__(self) -> "preserved_rng":
        import random

        import torch

        self._states = (random.getstate(), np.random.get_state(), torch.get_rng_state())
        return self

    def __exit__(self, *exc) -> None:
        import random

        import torch

        py, npy, th = self._states
        random.setstate(py)
        np.random.set_state(npy)
        torch.set_rng_state(th)


def predict_logits(model, X: np.ndarray, device: str = "cpu", batch_size: int = 4096) -> np.ndarray:
    """Logits ``(N, C)`` float32 for features ``X`` ``(N, F)``: :func:`evalkit.model_io.predict`, the one
    inference loop (batched under ``torch.inference_mode``). A CSR ``X`` is densified one batch at a time."""
    from evalkit.model_io import predict

    if is_sparse(X):
        return np.concatenate([predict(model, dense_rows(X, slice(i, i + batch_size)), device=device,
                                       batch_size=batch_size) for i in range(0, X.shape[0], batch_size)])
    return predict(model, X, device=device, batch_size=batch_size)


def _monitor_value(monitor: str, val_logits: np.ndarray, val_Y: np.ndarray, beta: float) -> float:
    """Validation metric to maximise (at a fixed 0.5 cut for F-beta; threshold-free for mAP)."""
    if monitor == "val_map":  # (not the metric engine: a fold worker process never imports torchmetrics)
        from evalkit.metrics.threshold_free import mean_average_precision

        return mean_average_precision(val_Y, val_logits)
    from evalkit.metrics import compute_metrics

    res = compute_metrics(val_Y, val_logits, scores_kind="logits", threshold=0.5, beta=beta, threshold_free="none")
    avg = monitor.removeprefix("val_").split("_")[0]  # val_micro_f2 / val_macro_f2: the F-beta of that average
    return float(getattr(res, avg).fbeta)


class _EarlyStopping:
    """The epoch bookkeeping both training loops share: the history, the best epoch's weights, the
    ``monitor`` (``val_loss`` lowest; ``val_map`` / ``val_micro_f2`` / ``val_macro_f2`` highest;
    ``none``: every epoch counts as the best) and ``patience``."""

    def __init__(self, model, monitor: str, patience: int, Y_val: np.ndarray, beta: float, on_epoch) -> None:
        self.model, self.monitor, self.patience, self.Y_val, self.beta = model, monitor, patience, Y_val, beta
        self.on_epoch = on_epoch
        self.maximise = monitor not in ("val_loss", "none")
        self.best = -math.inf if self.maximise else math.inf
        self.best_state = copy.deepcopy(model.state_dict())
        self.out = TrainResult(model=model)
        self.bad = 0

    def after_epoch(self, epoch: int, train_loss: float, val_loss: float, val_logits) -> bool:
        """Record one epoch (``val_logits``: ``(N_val, C)`` tensor); True when training should stop."""
        row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss}
        if self.maximise:
            row["val_metric"] = _monitor_value(self.monitor, val_logits.float().cpu().numpy(), self.Y_val, self.beta)
            current, improved = row["val_metric"], row["val_metric"] > self.best
        else:
            current, improved = val_loss, val_loss < self.best
        self.out.history.append(row)
        if self.monitor == "none" or improved:
            self.best, self.bad, self.out.best_epoch = current, 0, epoch
            self.best_state = copy.deepcopy(self.model.state_dict())
        else:
            self.bad += 1
        if self.on_epoch:
            self.on_epoch(row)
        if self.monitor != "none" and self.bad >= self.patience:
            self.out.stopped_early = True
            return True
        return False

    def result(self) -> TrainResult:
        """The model with the best epoch's weights, in eval mode, and its history."""
        self.model.load_state_dict(self.best_state)
        self.model.eval()
        return self.out


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
    amp: str = "off",
    checkpoint: str | None = None,
) -> TrainResult:
    """Train ``model`` (logits out) with mini-batch Adam/AdamW; keep the weights of the best epoch.

    Shapes: ``X_* (N, F)`` float32 (dense, or a ``scipy.sparse.csr_matrix`` that stays sparse: each
    mini-batch is densified on its own), ``Y_* (N, C)`` in {0,1}. Early stopping watches ``monitor``
    (``val_loss``: lowest validation loss; ``val_map`` / ``val_micro_f2`` / ``val_macro_f2``: highest
    validation metric; ``none``: train all epochs) with ``patience`` epochs. ``input_noise`` adds
    N(0, input_noise^2) noise to each training batch's (standardised) features. Shuffling uses a seeded
    ``torch.Generator``, so a CPU run is reproducible for a given ``seed``. ``amp`` (``bf16`` /
    ``fp16``, CUDA only: :class:`_Precision`) trains under autocast, images channels_last; on the CPU
    it is ignored and training stays exact float32. ``checkpoint``: a file written (atomically) after
    every epoch with everything the loop needs to go on (weights, optimizer, generators, early
    stopping); when it exists at the start, training continues after its epoch, and a seeded CPU run
    killed at any point ends with the same model and history as an uninterrupted one.

    Raises:
        InputError: the loss becomes NaN/inf (e.g. learning rate too high).
    """
    import torch

    checkpoint = checkpoint or CHECKPOINT.get()
    if getattr(X_train, "ndim", None) == 4 and not isinstance(X_train, np.ndarray):  # an image table, on disk
        from evalkit.images.stream import train_streaming

        args = {k: v for k, v in locals().items() if k not in ("torch", "train_streaming")}
        return train_streaming(**args)
    model = model.to(device)
    loss_fn = loss_fn.to(device)
    if optimizer == "lbfgs":
        return _train_lbfgs(model, loss_fn, X_train, Y_train, X_val, Y_val, l2=weight_decay, epochs=epochs,
                            patience=patience, monitor=monitor, beta=beta, device=device, on_epoch=on_epoch)
    opt_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[optimizer]
    opt = opt_cls(model.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    sparse = is_sparse(X_train)
    # sparse (CSR) features stay sparse: each mini-batch is densified on its own (memory ~ non-zeros)
    Xt = X_train if sparse else torch.from_numpy(X_train).to(device)
    Yt = torch.from_numpy(Y_train.astype(np.float32)).to(device)
    Yv = torch.from_numpy(Y_val.astype(np.float32)).to(device)
    n = X_train.shape[0]
    stop = _EarlyStopping(model, monitor, patience, Y_val, beta, on_epoch)
    prec = _Precision(amp, device, images=len(X_train.shape) == 4)
    model = prec.prepare(model)
    done = _resume(checkpoint, model, opt, gen, stop) if checkpoint else 0
    for epoch in range(done + 1, epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=gen).to(device)
        total, seen = 0.0, 0
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            if idx.numel() == 1 and n > 1:  # BatchNorm cannot train on a single sample
                continue
            opt.zero_grad(set_to_none=True)
            xb = torch.from_numpy(dense_rows(Xt, np.sort(idx.cpu().numpy()))).to(device) if sparse else Xt[idx]
            if sparse:
                idx = torch.sort(idx).values  # the rows of xb, in order
            if input_noise > 0:  # Gaussian input noise (Bishop 1995: equivalent to Tikhonov regularisation)
                xb = xb + input_noise * torch.randn(xb.shape, generator=gen).to(device)
            with prec.autocast():
                loss = loss_fn(model(prec.batch(xb)), Yt[idx])
            prec.step(loss, opt)
            total += loss.item() * idx.numel()
            seen += idx.numel()
        train_loss = total / max(seen, 1)
        if not math.isfinite(train_loss):
            raise InputError(f"training diverged at epoch {epoch} (loss {train_loss}); lower --lr (now {lr})")
        model.eval()
        with torch.inference_mode(), prec.autocast():
            val_logits = torch.cat([model(prec.batch(torch.from_numpy(dense_rows(X_val, slice(i, i + VAL_BATCH))).to(device)))
                                    for i in range(0, X_val.shape[0], VAL_BATCH)]).float()
            val_loss = float(loss_fn(val_logits, Yv))
        ended = stop.after_epoch(epoch, train_loss, val_loss, val_logits)
        if checkpoint:
            _save_checkpoint(checkpoint, epoch if not ended else epochs, model, opt, gen, stop)
        if ended:
            break
    return stop.result()


def _save_checkpoint(path: str, epoch: int, model, opt, gen, stop: _EarlyStopping) -> None:
    """The loop's state after ``epoch`` (``epochs`` once early stopping ended it) in ``path``: written
    to a temporary file, then renamed over it (a kill never leaves half a checkpoint)."""
    import os

    import torch

    state = {"epoch": epoch, "model": model.state_dict(), "optimizer": opt.state_dict(), "generator": gen.get_state(),
             "torch_rng": torch.get_rng_state(), "best": stop.best, "bad": stop.bad, "best_state": stop.best_state,
             "history": stop.out.history, "best_epoch": stop.out.best_epoch, "stopped_early": stop.out.stopped_early}
    torch.save(state, f"{path}.tmp")
    os.replace(f"{path}.tmp", path)


def _resume(path: str, model, opt, gen, stop: _EarlyStopping) -> int:
    """Restore the loop from the checkpoint ``path`` if there is one; the epochs it had done (0: none)."""
    import os

    import torch

    if not os.path.exists(path):
        return 0
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a file that is not a checkpoint
        raise InputError(f"{path}: not a readable training checkpoint ({type(e).__name__})") from None
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    gen.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    stop.best, stop.bad, stop.best_state = state["best"], state["bad"], state["best_state"]
    stop.out.history, stop.out.best_epoch = state["history"], state["best_epoch"]
    stop.out.stopped_early = state["stopped_early"]
    return int(state["epoch"])


class _Precision:
    """Mixed precision of a training loop on CUDA: ``amp`` ``bf16`` / ``fp16`` autocasts forward
    passes (fp16 with a gradient scaler), image batches and the model go channels_last. ``off``, or
    any CPU device: plain float32, nothing changed."""

    def __init__(self, amp: str, device: str, images: bool):
        import torch

        self.cuda = str(device).startswith("cuda")
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp) if self.cuda else None
        self.channels_last = self.cuda and images
        self.scaler = torch.amp.GradScaler("cuda") if self.dtype == torch.float16 else None

    def prepare(self, model):
        import torch

        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def batch(self, xb):
        import torch

        return xb.contiguous(memory_format=torch.channels_last) if self.channels_last else xb

    def autocast(self):
        import contextlib

        import torch

        return torch.autocast("cuda", dtype=self.dtype) if self.dtype is not None else contextlib.nullcontext()

    def step(self, loss, opt) -> None:
        if self.scaler is None:
            loss.backward()
            opt.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(opt)
        self.scaler.update()


#: L-BFGS iterations per reported "epoch" of :func:`_train_lbfgs`
LBFGS_STEPS = 10
#: relative loss decrease over one such "epoch" below which L-BFGS stops (converged)
LBFGS_TOL = 1e-3


def _train_lbfgs(model, loss_fn, X_train, Y_train, X_val, Y_val, *, l2: float, epochs: int, patience: int,
                 monitor: str, beta: float, device: str, on_epoch) -> TrainResult:
    """Full-batch L-BFGS for a linear model (``torch.nn.Linear``): one-vs-rest logistic regression
    with an L2 penalty ``l2 / 2 * ||W||^2`` per label against the *summed* loss over samples, as
    scikit-learn's ``LogisticRegression(C=1 / l2)``. Sparse (CSR) features are multiplied sparse
    (never densified). An "epoch" is :data:`LBFGS_STEPS` L-BFGS iterations; early stopping and the
    best-epoch weights work as in :func:`train_model`.

    Raises:
        InputError: the model is not linear, or the loss becomes NaN/inf.
    """
    import torch

    if not isinstance(model, torch.nn.Linear):
        raise InputError("--optimizer lbfgs: fits linear models only (--model linear)")

    def as_torch(X):
        import warnings

        if is_sparse(X):
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            X = X.tocsr()
            return torch.sparse_csr_tensor(torch.from_numpy(X.indptr.astype(np.int64)),
                                           torch.from_numpy(X.indices.astype(np.int64)),
                                           torch.from_numpy(X.data.astype(np.float32)), size=X.shape,
                                           check_invariants=False).to(device)
        return torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).to(device)

    Xt, Xv = as_torch(X_train), as_torch(X_val)
    Yt = torch.from_numpy(Y_train.astype(np.float32)).to(device)
    Yv = torch.from_numpy(Y_val.astype(np.float32)).to(device)
    n, c = Yt.shape

    def forward(X):
        return (torch.sparse.mm(X, model.weight.t()) if X.layout == torch.sparse_csr else X @ model.weight.t()) + model.bias

    opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=LBFGS_STEPS, history_size=10,
                            line_search_fn="strong_wolfe")
    penalty = 0.5 * l2 / (n * c)  # loss_fn averages over n x c elements

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(forward(Xt), Yt) + penalty * (model.weight ** 2).sum()
        loss.backward()
        return loss

    stop = _EarlyStopping(model, monitor, patience, Y_val, beta, on_epoch)
    previous = math.inf
    for epoch in range(1, epochs + 1):
        model.train()
        train_loss = float(opt.step(closure).detach())
        if not math.isfinite(train_loss):
            raise InputError(f"training diverged at epoch {epoch} (loss {train_loss})")
        model.eval()
        with torch.inference_mode():
            val_logits = forward(Xv)
            val_loss = float(loss_fn(val_logits, Yv))
        if stop.after_epoch(epoch, train_loss, val_loss, val_logits):
            break
        if previous - train_loss <= LBFGS_TOL * max(abs(train_loss), 1e-3):  # converged (a convex problem)
            break
        previous = train_loss
    return stop.result()


# the loop's parts that the streaming loop of image tables (evalkit.images.stream) shares
EarlyStopping, Precision, save_checkpoint, resume_checkpoint = _EarlyStopping, _Precision, _save_checkpoint, _resume
