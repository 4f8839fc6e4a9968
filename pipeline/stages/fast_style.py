"""fast_style: Johnson et al. 2016 TransformerNet, RGB 0..255 in and out."""
from __future__ import annotations

import torch

from ..models.checkpoints import load_fast_style
from .network import NetworkStage
from .registry import register


@register
class FastStyle(NetworkStage):
    name = "fast_style"
    loader = staticmethod(load_fast_style)

    def to_net(self, rgb: torch.Tensor) -> torch.Tensor:
        return rgb

    def from_net(self, y: torch.Tensor) -> torch.Tensor:
        return y
