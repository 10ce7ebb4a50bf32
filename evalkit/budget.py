"""The training-budget rule (docs/concepts/training.md, "Training budget"): cross-fitting folds, mini-batch and epochs
from the data size, applied by :meth:`evalkit.config.RunConfig.with_budget`. Pure arithmetic, no imports."""

from __future__ import annotations

from typing import Any

#: multiply-adds of MLP training (all folds) the budget rule allows before it cuts epochs: about
#: 60 s of one CPU core at ~20 GFLOP/s (forward + backward ~ 3x the forward pass)
EPOCH_WORK = 4e11


def budget_folds(n_train: int) -> int:
    """Cross-fitting folds of the budget rule: 5 up to 3,000 training rows, 3 up to 8,000, else 1."""
    return 5 if n_train <= 3_000 else 3 if n_train <= 8_000 else 1


def budget_batch_size(n_fit: int) -> int:
    """Mini-batch of the budget rule: 64, doubled (up to 512) while an epoch would take > 100 steps."""
    batch = 64
    while batch < 512 and n_fit / batch > 100:
        batch *= 2
    return batch


def budget_epochs(epoch_work: float, folds: int, epochs: int = 150) -> int:
    """Maximum epochs of the budget rule: ``epochs``, cut so that ``folds x epochs x epoch_work``
    stays within :data:`EPOCH_WORK` multiply-adds, but never below 20 (early stopping usually ends
    training well before the cap)."""
    cap = int(EPOCH_WORK / max(folds * epoch_work, 1.0))
    return max(min(epochs, 20), min(epochs, cap))


def budget_update(config, n_train: int, n_features: int, n_labels: int) -> dict:
    """The fields of ``config`` (a :class:`~evalkit.config.RunConfig`) the budget rule sets, those given
    explicitly left out. ``n_train``: rows of train + validation. The rule (docs/concepts/training.md, "Training budget"),
    with ``W = n_train x (F + C) x width`` the multiply-adds of one epoch of the MLP (``width`` = the
    sum of the hidden sizes):

    * ``folds``: 5 up to 3,000 rows, 3 up to 8,000, else 1 (one model and a validation split);
    * ``batch_size``: 64, doubled (at most to 512) while an epoch has more than 100 steps;
    * ``epochs``: 150, cut to ``EPOCH_WORK / (folds x W)`` (at least 20) on large problems.
    """
    given = config.model_fields_set
    update: dict = {}
    folds = config.folds if "folds" in given else budget_folds(n_train)
    if "folds" not in given:
        update["folds"] = folds
    per_fold = int(n_train * (1 - config.val_size)) if folds == 1 else n_train * (folds - 1) // folds
    if "batch_size" not in given:
        update["batch_size"] = budget_batch_size(per_fold)
    if "epochs" not in given:
        width = sum(config.hidden) if config.hidden else 1
        update["epochs"] = budget_epochs(per_fold * (n_features + n_labels) * width, folds, config.epochs)
    return update


#: settings an architecture trains with unless the run gives them (command line or spec).
#: Images: no Gaussian input noise (pixel noise blurs strokes; augmentation is the image regulariser).
#: cnn: lr 3e-3: BatchNorm after every convolution tolerates it, and at 1e-3 five epochs leave the
#: CNN under-trained (digits-grid, 5 epochs, folds 1: micro-F2 0.839 at 1e-3, 0.888 at 3e-3).
ARCH_DEFAULTS: dict[str, dict[str, Any]] = {"cnn": {"lr": 3e-3, "input_noise": 0.0}}
#: the settings every image backbone (evalkit.images.backbones) trains with unless given
BACKBONE_DEFAULTS: dict[str, Any] = {"input_noise": 0.0}
