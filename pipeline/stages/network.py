"""What fast_style and cyclegan share: load once, pad, run, crop, keep alpha."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar

import torch
from torch import nn

from ..context import RunContext
from ..ops.pad import crop_to, pad_to_multiple
from .base import Stage, join_alpha, split_alpha


@dataclass(frozen=True)
class NetworkParams:
    weights: Path


class NetworkStage(Stage):
    Params = NetworkParams
    #: reads a checkpoint into a frozen, eval-mode module with ``size_multiple``
    loader: ClassVar[Callable[[Path], nn.Module]]

    def __init__(self, params: NetworkParams, ctx: RunContext) -> None:
        super().__init__(params, ctx)
        net = type(self).loader(params.weights)  # WeightsError names the file
        self.net = net.to(device=ctx.device, dtype=ctx.dtype)
        self.size_multiple = int(getattr(net, "size_multiple", 4))

    def describe(self) -> str:
        arch = getattr(self.net, "arch", None)
        extra = f", {arch.describe() if hasattr(arch, 'describe') else arch}" if arch else ""
        return f"{self.name}(weights={self.params.weights.name}{extra})"

    def to_net(self, rgb: torch.Tensor) -> torch.Tensor:
        """0..255 -> the network's input range."""
        raise NotImplementedError

    def from_net(self, y: torch.Tensor) -> torch.Tensor:
        """The network's output range -> 0..255."""
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 0:  # norm layers reject empty batches; the answer is known
            return x.clone()
        rgb, alpha = split_alpha(x)
        net_dtype = next(self.net.parameters()).dtype
        with torch.inference_mode():
            # Upstream nets silently change odd sizes; pad to their multiple, crop back.
            padded, size = pad_to_multiple(rgb.to(net_dtype), self.size_multiple)
            y = self.from_net(self.net(self.to_net(padded)))
            y = crop_to(y, size).clamp(0, 255).to(x.dtype)
        return join_alpha(y, alpha)
