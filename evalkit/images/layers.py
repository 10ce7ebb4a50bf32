"""torch modules of the image models (imports torch: import this module lazily)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from evalkit.images.backbones import IMAGENET_MEAN, IMAGENET_STD


class ImageInput(nn.Module):
    """The preprocessing inside a backbone model: images ``(N, 1 or 3, H, W)`` float32 ->
    ``(N, 3, size, size)``: a grayscale channel repeated to 3, a bilinear resize to ``size`` x ``size``
    (when the input differs) and, when ``imagenet``, ``(x - mean) / std`` with torchvision's ImageNet
    statistics (inputs are then pixels in [0, 1])."""

    def __init__(self, size: int, imagenet: bool):
        super().__init__()
        self.size, self.imagenet = int(size), bool(imagenet)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x):
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-2] != self.size or x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return (x - self.mean) / self.std if self.imagenet else x

    def extra_repr(self) -> str:
        return f"size={self.size}, imagenet={self.imagenet}"
