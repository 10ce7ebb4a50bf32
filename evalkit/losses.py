"""Loss registry: every loss takes logits ``(N, C)`` and multi-hot targets ``(N, C)``.

Each entry documents its options and defaults with their source. Target adapters (e.g. the index
format of ``MultiLabelMarginLoss``) live inside the loss module, so the training loop is the same for
every loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from evalkit.errors import InputError

if TYPE_CHECKING:  # numpy loads with the loss builders, not with the registry (the CLI checks --loss first)
    import numpy as np


@dataclass(frozen=True)
class LossSpec:
    """A registered loss: name, one-line summary, when it helps, options ``{name: (default, meaning)}`` and its builder."""
    name: str
    summary: str
    when: str
    options: dict[str, tuple[Any, str]] = field(default_factory=dict)  # option -> (default, doc)
    build: Callable[..., Any] | None = None


def margin_targets(targets):
    """Convert multi-hot ``(N, C)`` targets to ``MultiLabelMarginLoss`` index format.

    Row i holds the indices of its positive labels in increasing order, then ``-1`` padding
    (torch reads indices up to the first -1). Example: ``[0, 1, 1, 0] -> [1, 2, -1, -1]``.

    Args:
        targets: tensor ``(N, C)`` with values in {0, 1}.
    Returns:
        int64 tensor ``(N, C)``.
    """
    import torch

    t = targets.to(torch.bool)
    n, c = t.shape
    cols = torch.arange(c, device=t.device).expand(n, c)
    # positives first (in index order), then negatives; negatives become -1
    key = torch.where(t, cols, cols + c)
    order = torch.sort(key, dim=1).values
    return torch.where(order < c, order, torch.full_like(order, -1))


def _torch_modules():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class MarginLoss(nn.Module):
        """``nn.MultiLabelMarginLoss`` on multi-hot targets (converted with :func:`margin_targets`)."""

        def __init__(self):
            super().__init__()
            self.loss = nn.MultiLabelMarginLoss()

        def forward(self, logits, targets):
            return self.loss(logits, margin_targets(targets))

    class FocalLoss(nn.Module):
        """Sigmoid focal loss (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017).

        FL = -alpha_t (1 - p_t)^gamma log(p_t), elementwise, mean over N x C (as torchvision's
        ``sigmoid_focal_loss(reduction="mean")``; the paper normalises the sum by the number of
        positive anchors, which has no multi-label counterpart). alpha < 0 disables the class weighting.
        Defaults alpha=0.25, gamma=2 are the paper's. Helps when easy negatives dominate the loss.
        """

        def __init__(self, alpha: float = 0.25, gamma: float = 2.0):
            super().__init__()
            self.alpha, self.gamma = alpha, gamma

        def forward(self, logits, targets):
            ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
            # (1 - p_t)^gamma as exp(gamma log(1 - p_t)), log(1 - p_t) = logsigmoid(-z), z = the logit
            # signed by the target: finite gradients at saturated logits for any gamma >= 0 ((1 - p)^gamma
            # with 1 - p rounded to 0 gives inf x 0 = NaN for gamma < 1, torchvision's included)
            z = torch.where(targets > 0.5, logits, -logits)
            loss = ce * torch.exp(self.gamma * F.logsigmoid(-z))
            if self.alpha >= 0:
                loss = (self.alpha * targets + (1 - self.alpha) * (1 - targets)) * loss
            return loss.mean()

    class AsymmetricLoss(nn.Module):
        """Asymmetric loss (Ridnik et al., "Asymmetric Loss For Multi-Label Classification", ICCV 2021).

        L+ = (1-p)^gamma_pos log(p);  L- = p_m^gamma_neg log(1-p_m), p_m = max(p - clip, 0).
        Reduction: the reference implementation returns ``-loss.sum()`` over the batch; we sum over
        labels and average over samples, so the scale does not depend on the batch size. Logs are
        exact (``logsigmoid``): the reference clamps p at eps = 1e-8, which caps a label's loss at 18.4
        and stops the gradient of a positive scored below logit -18 (never corrected); below that the
        two agree. Powers are taken so that no gradient is NaN at saturated logits.
        Defaults gamma_neg=4, gamma_pos=0, clip=0.05 are the paper's recommended setting (the
        reference class defaults to gamma_pos=1). Helps with positive-negative imbalance.
        """

        def __init__(self, gamma_neg: float = 4.0, gamma_pos: float = 0.0, clip: float = 0.05):
            super().__init__()
            self.gamma_neg, self.gamma_pos, self.clip = gamma_neg, gamma_pos, clip

        def forward(self, logits, targets):
            log_p, log_q = F.logsigmoid(logits), F.logsigmoid(-logits)  # log p, log(1 - p)
            loss_pos = torch.where(targets > 0.5, log_p * torch.exp(self.gamma_pos * log_q), 0.0)
            if self.clip > 0:
                p_m = (torch.sigmoid(logits) - self.clip).clamp(min=0)
                clipped = p_m > 0
                safe = torch.where(clipped, p_m, 1.0)  # the power's gradient is taken where p_m > 0 only
                weight = torch.where(clipped, safe**self.gamma_neg, 0.0 if self.gamma_neg > 0 else 1.0)
                log_1m = torch.log1p(-p_m)  # 1 - p_m >= clip > 0
            else:
                weight, log_1m = torch.exp(self.gamma_neg * log_p), log_q
            loss_neg = torch.where(targets > 0.5, 0.0, log_1m * weight)
            return -(loss_pos + loss_neg).sum(dim=1).mean()

    return nn, MarginLoss, FocalLoss, AsymmetricLoss


def pos_weight_from_targets(Y: np.ndarray) -> np.ndarray:
    """pos_weight = negatives / positives per label, from train targets ``(N, C)``.

    A label with no positives in train gets weight 1 (nothing to up-weight), and so does a label
    positive in every row (neg / pos = 0 would zero its loss: it would never be learned).
    """
    import numpy as np

    pos = Y.sum(axis=0).astype(np.float64)
    neg = Y.shape[0] - pos
    return np.where((pos > 0) & (neg > 0), neg / np.maximum(pos, 1), 1.0).astype(np.float32)


def _build_bce(train_Y, **_):
    nn, *_ = _torch_modules()
    return nn.BCEWithLogitsLoss()


def _build_bce_pos_weight(train_Y, **_):
    import torch

    nn, *_ = _torch_modules()
    return nn.BCEWithLogitsLoss(pos_weight=torch.from_numpy(pos_weight_from_targets(train_Y)))


def _build_soft_margin(train_Y, **_):
    nn, *_ = _torch_modules()
    return nn.MultiLabelSoftMarginLoss()


def _build_margin(train_Y, **_):
    _, MarginLoss, _, _ = _torch_modules()
    return MarginLoss()


def _build_focal(train_Y, alpha=0.25, gamma=2.0, **_):
    _, _, FocalLoss, _ = _torch_modules()
    return FocalLoss(alpha=float(alpha), gamma=float(gamma))


def _build_asl(train_Y, gamma_neg=4.0, gamma_pos=0.0, clip=0.05, **_):
    _, _, _, AsymmetricLoss = _torch_modules()
    return AsymmetricLoss(gamma_neg=float(gamma_neg), gamma_pos=float(gamma_pos), clip=float(clip))


LOSSES: dict[str, LossSpec] = {
    s.name: s
    for s in [
        LossSpec("bce", "BCEWithLogitsLoss: sigmoid + binary cross-entropy per label, mean over N x C",
                 "the default; calibrated probabilities", build=_build_bce),
        LossSpec("bce-pos-weight", "BCEWithLogitsLoss with pos_weight = negatives / positives per label (from train)",
                 "rare labels: raises recall (a lower effective cut), helps macro-F2", build=_build_bce_pos_weight),
        LossSpec("soft-margin", "MultiLabelSoftMarginLoss: BCE with logits averaged over labels, then samples",
                 "equivalent to bce up to scaling; provided for comparison", build=_build_soft_margin),
        LossSpec("margin", "MultiLabelMarginLoss (hinge over positive/negative label pairs); multi-hot targets are "
                 "converted to its index format (label indices padded with -1)",
                 "ranking quality; scores are not calibrated probabilities", build=_build_margin),
        LossSpec("focal", "sigmoid focal loss (Lin et al., ICCV 2017), mean over N x C",
                 "many easy negatives; down-weights well-classified labels",
                 options={"alpha": (0.25, "weight of positives in [0,1]; <0 disables (Lin et al. 2017: 0.25)"),
                          "gamma": (2.0, "focusing parameter >= 0 (Lin et al. 2017: 2)")},
                 build=_build_focal),
        LossSpec("asl", "asymmetric loss (Ridnik et al., ICCV 2021); sum over labels, mean over samples",
                 "positive-negative imbalance; usually raises recall and mAP",
                 options={"gamma_neg": (4.0, "focusing on negatives (Ridnik et al. 2021: 4)"),
                          "gamma_pos": (0.0, "focusing on positives (Ridnik et al. 2021 recommend 0; their reference class defaults to 1)"),
                          "clip": (0.05, "probability margin shifting negatives, in [0,1) (Ridnik et al. 2021: 0.05)")},
                 build=_build_asl),
    ]
}


def loss_options(name: str, given: dict[str, Any] | None = None) -> dict[str, Any]:
    """The loss's options: documented defaults overridden by ``given``.

    Raises:
        InputError: unknown loss, or an option the loss does not take.
    """
    spec = get_loss_spec(name)
    opts = {k: v[0] for k, v in spec.options.items()}
    for k, v in (given or {}).items():
        if k not in spec.options:
            known = ", ".join(spec.options) or "none"
            raise InputError(f"--loss-option {k}: loss {name!r} has no option {k!r} (options: {known})")
        try:
            opts[k] = float(v)
        except (TypeError, ValueError):
            raise InputError(f"--loss-option {k}: expected a number, got {v!r}") from None
        check, expected = _OPTION_RANGES.get((name, k), (math.isfinite, "a finite number"))
        if not (math.isfinite(opts[k]) and check(opts[k])):
            raise InputError(f"--loss-option {k}: loss {name!r} expects {expected}, got {v!r}")
    return opts


#: the documented ranges of the loss options: (loss, option) -> (check, what is expected)
_OPTION_RANGES = {
    ("focal", "alpha"): (lambda v: v <= 1, "alpha in [0, 1] (or < 0 to disable the weighting)"),
    ("focal", "gamma"): (lambda v: v >= 0, "gamma >= 0"),
    ("asl", "gamma_neg"): (lambda v: v >= 0, "gamma_neg >= 0"),
    ("asl", "gamma_pos"): (lambda v: v >= 0, "gamma_pos >= 0"),
    ("asl", "clip"): (lambda v: 0 <= v < 1, "clip in [0, 1)"),
}


def get_loss_spec(name: str) -> LossSpec:
    """The :class:`LossSpec` of ``name``. Raises InputError naming the available losses."""
    if name not in LOSSES:
        raise InputError(f"--loss: unknown loss {name!r}; expected one of: {', '.join(LOSSES)}")
    return LOSSES[name]


def build_loss(name: str, train_Y: np.ndarray, options: dict[str, Any] | None = None):
    """Build the loss module ``(logits (N, C), targets (N, C) float) -> scalar``.

    Args:
        name: a key of :data:`LOSSES`.
        train_Y: train targets ``(N, C)`` in {0,1} (used by ``bce-pos-weight``).
        options: overrides of the documented defaults.
    Raises:
        InputError: unknown loss or option.
    """
    spec = get_loss_spec(name)
    return spec.build(train_Y, **loss_options(name, options))
