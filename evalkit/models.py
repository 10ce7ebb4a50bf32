"""Model architectures. Every model maps features ``(N, F)`` to logits ``(N, C)``: no sigmoid inside.

The sigmoid is applied explicitly downstream (metric engine, thresholds), so a model never pairs a
sigmoid with ``BCEWithLogitsLoss`` (the classic double-sigmoid bug).
"""

from __future__ import annotations

from collections.abc import Sequence

from evalkit.errors import InputError, field_name

ARCHITECTURES: dict[str, str] = {
    "linear": "one linear layer: logits = X W + b",
    "mlp": "multi-layer perceptron: [Linear -> BatchNorm? -> activation -> Dropout] x len(hidden) -> Linear",
    "cnn": "small CNN for images (N, C, H, W): [Conv3x3 -> BatchNorm -> activation -> MaxPool2] x 3 "
    "(32, 64, 128 channels) -> global average pool -> Dropout -> Linear",
}

CNN_CHANNELS = (32, 64, 128)

ACTIVATIONS = ("relu", "gelu", "tanh", "silu")


def build_model(
    arch: str,
    n_features: int,
    n_labels: int,
    *,
    hidden: Sequence[int] = (256,),
    dropout: float = 0.0,
    activation: str = "relu",
    batch_norm: bool = False,
    input_shape: Sequence[int] | None = None,
    image: dict | None = None,
    field: str = "model",
):
    """Build an untrained model returning logits.

    Args:
        arch: ``"linear"``, ``"mlp"``, ``"cnn"`` or a torchvision backbone of
            :data:`evalkit.images.backbones.BACKBONES` (``"resnet18"`` ...).
        n_features: F, input width (images: ``3 * H * W``). n_labels: C, output width.
        hidden: hidden layer sizes of the MLP (ignored for ``linear``).
        dropout: dropout probability in [0, 1) after each hidden activation.
        activation: one of ``relu``, ``gelu``, ``tanh``, ``silu``.
        batch_norm: add BatchNorm1d after each hidden Linear.
        input_shape: shape of one sample, ``(F,)`` or ``(3, H, W)`` for images; ``cnn`` needs
            ``(channels, H, W)``, ``linear`` / ``mlp`` need flat features.
        image: a torchvision backbone's options (``image_size``, ``pretrained``, ``weights``):
            :func:`evalkit.images.backbones.build_backbone`.
        field: the option that chose ``arch``, named in errors (``"model"`` for ``evalkit run``,
            ``"arch"`` for a state_dict file's ``evalkit evaluate --arch``).

    Returns:
        ``torch.nn.Module`` mapping float32 ``(N, F)`` (``cnn``: ``(N, 3, H, W)``) to logits ``(N, C)``.

    Raises:
        InputError: unknown architecture or activation, bad sizes or dropout.
    """
    import torch.nn as nn

    from evalkit.images.backbones import BACKBONES, build_backbone

    if arch in BACKBONES:
        return build_backbone(arch, tuple(input_shape or (n_features,)), n_labels, **(image or {}))
    if arch not in ARCHITECTURES:
        raise InputError(f"{field_name(field)}: unknown architecture {arch!r}; expected one of: {', '.join([*ARCHITECTURES, *BACKBONES])}")
    if n_labels < 1 or n_features < 1:
        raise InputError(f"{field_name(field)}: need at least one feature and one label (got F={n_features}, C={n_labels})")
    shape = tuple(int(d) for d in input_shape) if input_shape is not None else (n_features,)
    if arch == "cnn":
        if len(shape) != 3:
            raise InputError(f"{field_name(field)} cnn: expects images (N, C, H, W) (e.g. from an .npz file or digits-grid), "
                             f"but the features have shape (N, {', '.join(map(str, shape))})")
        if activation not in ACTIVATIONS:
            raise InputError(f"--activation: unknown activation {activation!r}; expected one of: {', '.join(ACTIVATIONS)}")
        if not 0.0 <= dropout < 1.0:
            raise InputError(f"--dropout: expected a probability in [0, 1), got {dropout}")
        return _cnn(shape[0], n_labels, dropout=dropout, activation=activation)
    flat = [nn.Flatten()] if len(shape) != 1 else []  # images (N, C, H, W): pixels as C*H*W features
    if arch == "linear":
        return nn.Sequential(*flat, nn.Linear(n_features, n_labels)) if flat else nn.Linear(n_features, n_labels)
    if activation not in ACTIVATIONS:
        raise InputError(f"--activation: unknown activation {activation!r}; expected one of: {', '.join(ACTIVATIONS)}")
    if not 0.0 <= dropout < 1.0:
        raise InputError(f"--dropout: expected a probability in [0, 1), got {dropout}")
    if not hidden or any(int(h) < 1 for h in hidden):
        raise InputError(f"--hidden: expected positive layer sizes such as 256 or 512,256, got {list(hidden)}")
    act = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}[activation]
    layers: list = list(flat)
    width = n_features
    for h in hidden:
        layers.append(nn.Linear(width, int(h)))
        if batch_norm:
            layers.append(nn.BatchNorm1d(int(h)))
        layers.append(act())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = int(h)
    layers.append(nn.Linear(width, n_labels))
    return nn.Sequential(*layers)


def _cnn(in_channels: int, n_labels: int, *, dropout: float, activation: str):
    import torch.nn as nn

    act = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}[activation]
    layers: list = []
    width = in_channels
    for ch in CNN_CHANNELS:
        layers += [nn.Conv2d(width, ch, kernel_size=3, padding=1), nn.BatchNorm2d(ch), act(), nn.MaxPool2d(2, ceil_mode=True)]
        width = ch
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(width, n_labels))
    return nn.Sequential(*layers)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available else ``cpu``; ``cuda`` without a GPU -> InputError."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available here; use --device auto or cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise InputError(f"--device: expected auto, cpu or cuda, got {device!r}")
    return device


def probability_average(members):
    """An ensemble of logit models as one logit model: the logit of the mean of the members'
    probabilities, ``log(mean sigmoid(z)) - log(mean sigmoid(-z))`` (computed with logsumexp, so it
    stays exact where probabilities round to 0 or 1). Used for the fold models of cross-fitting.
    """
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class ProbabilityAverage(nn.Module):
        def __init__(self, members):
            super().__init__()
            self.members = nn.ModuleList(members)

        def forward(self, x):
            z = torch.stack([m(x) for m in self.members])
            return torch.logsumexp(F.logsigmoid(z), dim=0) - torch.logsumexp(F.logsigmoid(-z), dim=0)

    return ProbabilityAverage(members)
