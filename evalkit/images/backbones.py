"""torchvision classification backbones as evalkit models: images ``(N, c, H, W)`` -> logits ``(N, C)``.

A backbone model is ``ImageInput -> torchvision network`` with the network's ImageNet head replaced
by a ``C``-logit linear layer. :class:`ImageInput` is part of the model (so a logged or exported
model carries its own preprocessing): it repeats a grayscale channel to the 3 channels the networks
take, resizes to ``image_size`` (bilinear) and, for ImageNet weights (``--pretrained`` or
``--weights FILE``), normalises with the weights' own ImageNet mean / std (inputs then are pixels in
[0, 1]).

torchvision is an optional dependency (``pip install 'evalkit[images]'``); it is imported only when
a backbone is built (:func:`import_torchvision`).
"""

from __future__ import annotations

from evalkit.errors import InfraError, InputError

#: backbone name -> one line for ``--model`` help and ``evalkit models``
BACKBONES: dict[str, str] = {
    "resnet18": "torchvision ResNet-18 (11.2 M parameters), head -> C logits",
    "resnet50": "torchvision ResNet-50 (23.5 M parameters), head -> C logits",
    "densenet121": "torchvision DenseNet-121 (7.0 M parameters; the usual chest X-ray choice), head -> C logits",
    "efficientnet_b0": "torchvision EfficientNet-B0 (4.0 M parameters), head -> C logits",
    "convnext_tiny": "torchvision ConvNeXt-Tiny (27.8 M parameters), head -> C logits",
}
#: the attribute holding each family's ImageNet head (a Linear, or a Sequential ending in one)
HEADS = {"resnet": "fc", "densenet": "classifier", "efficientnet": "classifier", "convnext": "classifier"}
#: the ImageNet statistics of torchvision's weights (RGB, pixels in [0, 1])
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: smallest side a backbone is fed when ``--image-size`` is not given (smaller images are upsampled)
MIN_AUTO_SIZE = 32

def import_torchvision():
    """``torchvision`` (models, transforms.v2), imported on first use (beside a CPU build of torch,
    a CUDA-built torchvision imports without its C++ ops: :func:`evalkit.torch_compat.declare_torchvision_ops`).

    Raises:
        InputError: torchvision is not installed (one line naming ``pip install 'evalkit[images]'``).
    """
    from evalkit.torch_compat import declare_torchvision_ops

    declare_torchvision_ops()
    try:
        import torchvision
    except ModuleNotFoundError as e:
        raise InputError("image backbones need torchvision: pip install 'evalkit[images]'") from e
    return torchvision


def auto_image_size(input_shape) -> int:
    """The side images are fed at when ``--image-size`` is not given: the larger input side, at least
    :data:`MIN_AUTO_SIZE` (``(1, 16, 16)`` -> 32; ``(3, 224, 224)`` -> 224)."""
    return max(MIN_AUTO_SIZE, int(max(input_shape[1:])))


def build_backbone(name: str, input_shape, n_labels: int, *, image_size: int | None = None,
                   pretrained: bool = False, weights: str | None = None):
    """A backbone model for images of ``input_shape`` ``(c, H, W)`` (c = 1 or 3), float32 in, logits
    ``(N, n_labels)`` out.

    Args:
        name: a key of :data:`BACKBONES`.
        image_size: side the images are resized to (default :func:`auto_image_size`).
        pretrained: torchvision's ImageNet weights (from torchvision's cache, or downloaded).
        weights: a local state_dict file (ImageNet head or a ``n_labels`` head), read with
            ``torch.load(weights_only=True)``; wins over ``pretrained``.

    Raises:
        InputError: unknown name, bad input shape, a weights file that is missing, unreadable or
            does not fit the network (one line naming ``--weights``).
        InfraError: ``pretrained`` weights not cached and not downloadable (one line naming ``--weights FILE``).
    """
    import torch.nn as nn

    if name not in BACKBONES:
        raise InputError(f"--model: unknown backbone {name!r}; expected one of: {', '.join(BACKBONES)}")
    if len(input_shape) != 3 or input_shape[0] not in (1, 3):
        raise InputError(f"--model {name}: expects images (N, 1 or 3, H, W), but the features have shape "
                         f"(N, {', '.join(map(str, input_shape))})")
    tv = import_torchvision()
    net = getattr(tv.models, name)(weights=None)
    imagenet = bool(weights) or pretrained
    if weights:
        _load_weights(net, name, n_labels, weights)
    elif pretrained:
        net.load_state_dict(_pretrained_state(tv, name))
    if _head(net).out_features != n_labels:
        _set_head(net, name, nn.Linear(_head(net).in_features, n_labels))
    from evalkit.images.layers import ImageInput

    size = int(image_size) if image_size else auto_image_size(input_shape)
    return nn.Sequential(ImageInput(size, imagenet), net)


def _family(name: str) -> str:
    return next(f for f in HEADS if name.startswith(f))


def _head(net):
    head = getattr(net, HEADS[_family(type(net).__name__.lower())])
    return head[-1] if hasattr(head, "__getitem__") else head


def _set_head(net, name: str, layer) -> None:
    attr = HEADS[_family(name)]
    head = getattr(net, attr)
    if hasattr(head, "__getitem__"):
        head[-1] = layer
    else:
        setattr(net, attr, layer)


def _load_weights(net, name: str, n_labels: int, path: str) -> None:
    """Load the state_dict file ``path`` into ``net``: as is (ImageNet head), or after the head is
    replaced by a ``n_labels`` one (a state_dict saved from an evalkit backbone's network)."""
    import torch.nn as nn

    state = _read_state(path)
    head = _head(net)
    keys = [k for k in state if k.endswith("weight") and getattr(state[k], "ndim", 0) == 2]
    if keys and state[keys[-1]].shape[0] != head.out_features:
        _set_head(net, name, nn.Linear(head.in_features, int(state[keys[-1]].shape[0])))
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        why = _mismatch(net.state_dict(), state) or str(e).splitlines()[0]
        raise InputError(f"--weights {path}: not a state_dict of {name}: {why}") from None


def _mismatch(expected: dict, state: dict) -> str:
    """What differs between a network's state_dict and a file's, in one line: counts of missing,
    unexpected and reshaped keys with the first few of each (torch's own message lists every key)."""
    def shape(v) -> tuple:
        return tuple(getattr(v, "shape", ()))

    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    reshaped = [f"{k} {shape(state[k])} in the file, {shape(expected[k])} expected" for k in expected
                if k in state and shape(state[k]) != shape(expected[k])]
    parts = []
    for what, keys in (("missing", missing), ("unexpected", unexpected), ("of another shape", reshaped)):
        if keys:
            more = f", ... {len(keys) - 3} more" if len(keys) > 3 else ""
            parts.append(f"{len(keys)} key(s) {what} ({', '.join(keys[:3])}{more})")
    return "; ".join(parts)


def _read_state(path: str) -> dict:
    import pickle

    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(f"--weights {path}: no such file") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as e:
        raise InputError(f"--weights {path}: not a readable state_dict ({type(e).__name__})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InputError(f"--weights {path}: expected a state_dict (a dict of tensors), got {type(state).__name__}")
    return state


def _pretrained_state(tv, name: str) -> dict:
    """torchvision's ImageNet state_dict of ``name``: from its cache (``$TORCH_HOME/hub/checkpoints``),
    else downloaded. Raises InfraError (exit 3) when neither works."""
    import os

    import torch

    url = tv.models.get_model_weights(name).DEFAULT.url
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))
    if os.path.exists(cached):
        return torch.load(cached, map_location="cpu", weights_only=True)
    try:
        return torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=False, weights_only=True)
    except Exception as e:  # no network, proxy, DNS, HTTP errors: all the same to the user
        raise InfraError(f"--pretrained: the ImageNet weights of {name} are not in torchvision's cache "
                         f"({cached}) and could not be downloaded ({type(e).__name__}); give a local "
                         f"state_dict with --weights FILE") from None


def check_backbone_options(arch: str, config, streamed: bool = False) -> None:
    """Refuse the backbone options of ``config`` (a RunConfig) for an ``arch`` that is not a backbone,
    and ``--unfreeze-after`` without ``--freeze-backbone``. ``streamed``: the data is an image table,
    whose images ``--image-size`` sets the streamed side of for any model.

    Raises:
        InputError: (exit 2) naming the option.
    """
    if arch not in BACKBONES:
        given = [flag for flag, v in (("--pretrained", config.pretrained), ("--weights", config.weights),
                                      ("--freeze-backbone", config.freeze_backbone),
                                      ("--image-size", config.image_size and not streamed),
                                      ("--unfreeze-after", config.unfreeze_after)) if v]
        if given:
            raise InputError(f"{given[0]}: only for torchvision backbones (--model {' / '.join(BACKBONES)}), "
                             f"not --model {arch}")
    if config.unfreeze_after and not config.freeze_backbone:
        raise InputError(f"--unfreeze-after {config.unfreeze_after}: needs --freeze-backbone (nothing is frozen)")


def set_backbone_trainable(model, trainable: bool) -> None:
    """Freeze (``trainable=False``) or unfreeze every parameter of a backbone model but its head."""
    net = model[1]
    head = {id(p) for p in _head(net).parameters()}
    for p in net.parameters():
        if id(p) not in head:
            p.requires_grad_(trainable)


def is_backbone(model) -> bool:
    """Whether ``model`` was built by :func:`build_backbone`."""
    return type(model).__name__ == "Sequential" and len(model) == 2 and type(model[0]).__name__ == "ImageInput"
