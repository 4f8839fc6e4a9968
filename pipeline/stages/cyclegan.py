"""cyclegan: Zhu et al. 2017 generators (ResNet or U-Net), RGB in [-1, 1], Tanh out."""
from __future__ import annotations

import torch

from ..models.checkpoints import load_cyclegan
from .network import NetworkStage
from .registry import register


@register
class CycleGan(NetworkStage):
    name = "cyclegan"
    loader = staticmethod(load_cyclegan)

    def to_net(self, rgb: torch.Tensor) -> torch.Tensor:
        # As upstream: ToTensor (x / 255) then Normalize(mean=0.5, std=0.5).
        return (rgb / 255.0 - 0.5) / 0.5

    def from_net(self, y: torch.Tensor) -> torch.Tensor:
        # As upstream's tensor2im, but rounded later instead of truncated.
        return (y + 1.0) / 2.0 * 255.0
