"""fast_style: Johnson et al. 2016 TransformerNet, RGB 0..255 in and out.

A multi-style network (conditional instance norm, Dumoulin et al. 2017: one
(scale, shift) per style in each norm) paints the style ``style`` names: an
index, or a blend ``{index: weight}`` whose normalization parameters are
interpolated.  A single-style checkpoint takes no ``style`` (or 0).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import WeightsError
from ..models.checkpoints import load_fast_style
from ..typed_yaml import ParamError
from .network import NetworkParams, NetworkStage
from .registry import register


@dataclass(frozen=True)
class FastStyleParams(NetworkParams):
    style: int | dict[int, float] | None = None  # a multi-style net's style, or a blend

    def __post_init__(self) -> None:
        super().__post_init__()
        weights = {self.style: 1.0} if isinstance(self.style, int) else self.style or {}
        if any(i < 0 for i in weights) or any(w < 0 for w in weights.values()) or (
                weights and sum(weights.values()) <= 0):
            raise ParamError("style", f"style must be an index >= 0 or a blend of them with "
                                      f"weights >= 0, not all 0; got {self.style}")


@register
class FastStyle(NetworkStage):
    name = "fast_style"
    Params = FastStyleParams
    loader = staticmethod(load_fast_style)
    quiet_defaults = {**NetworkStage.quiet_defaults, "style": None}

    def __init__(self, params: FastStyleParams, ctx) -> None:
        super().__init__(params, ctx)
        self.style = getattr(params, "style", None)  # plain NetworkParams: style 0
        if self.style is not None:
            try:
                self.net.set_style(self.style)
            except ValueError as exc:
                raise WeightsError(params.weights, str(exc),
                                   hint="name one of the network's styles by its index") from None

    def describe(self) -> str:
        text = super().describe()
        return text if self.style is None else f"{text[:-1]}, style {self.style})"

    def to_net(self, rgb: torch.Tensor) -> torch.Tensor:
        return rgb

    def from_net(self, y: torch.Tensor) -> torch.Tensor:
        return y
