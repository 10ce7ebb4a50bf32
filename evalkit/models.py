"""Model architectures. Every model maps features ``(N, F)`` to logits ``(N, C)``: no sigmoid inside.

The sigmoid is applied explicitly downstream (metric engine, thresholds), so a model never pairs a
sigmoid with ``BCEWithLogitsLoss`` (the classic double-sigmoid bug).
"""

from __future__ import annotations

from collections.abc import Sequence

from evalkit.errors import InputError

ARCHITECTURES: dict[str, str] = {
    "linear": "one linear layer: logits = X W + b",
    "mlp": "multi-layer perceptron: [Linear -> BatchNorm? -> activation -> Dropout] x len(hidden) -> Linear",
}

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
):
    """Build an untrained model returning logits.

    Args:
        arch: ``"linear"`` or ``"mlp"``.
        n_features: F, input width. n_labels: C, output width.
        hidden: hidden layer sizes of the MLP (ignored for ``linear``).
        dropout: dropout probability in [0, 1) after each hidden activation.
        activation: one of ``relu``, ``gelu``, ``tanh``, ``silu``.
        batch_norm: add BatchNorm1d after each hidden Linear.

    Returns:
        ``torch.nn.Module`` mapping float32 ``(N, F)`` to logits ``(N, C)``.

    Raises:
        InputError: unknown architecture or activation, bad sizes or dropout.
    """
    import torch.nn as nn

    if arch not in ARCHITECTURES:
        raise InputError(f"--model: unknown architecture {arch!r}; expected one of: {', '.join(ARCHITECTURES)}")
    if n_labels < 1 or n_features < 1:
        raise InputError(f"--model: need at least one feature and one label (got F={n_features}, C={n_labels})")
    if arch == "linear":
        return nn.Linear(n_features, n_labels)
    if activation not in ACTIVATIONS:
        raise InputError(f"--activation: unknown activation {activation!r}; expected one of: {', '.join(ACTIVATIONS)}")
    if not 0.0 <= dropout < 1.0:
        raise InputError(f"--dropout: expected a probability in [0, 1), got {dropout}")
    if not hidden or any(int(h) < 1 for h in hidden):
        raise InputError(f"--hidden: expected positive layer sizes such as 256 or 512,256, got {list(hidden)}")
    act = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}[activation]
    layers: list = []
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
