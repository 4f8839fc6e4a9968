"""tv_denoise: Chambolle's total-variation denoising, batched on the device."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..ops.tv_denoise import tv_denoise
from ..typed_yaml import ParamError
from .base import Stage
from .registry import register


@dataclass(frozen=True)
class TvDenoiseParams:
    weight: float = 0.1  # as skimage's denoise_tv_chambolle, on a [0, 1] image
    max_iter: int = 200
    eps: float = 2e-4

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise ParamError("weight", f"weight must be >= 0, got {self.weight}")
        if self.max_iter < 1:
            raise ParamError("max_iter", f"max_iter must be >= 1, got {self.max_iter}")
        if self.eps <= 0:
            raise ParamError("eps", f"eps must be > 0, got {self.eps}")


# Full-size float32 planes per colour channel alive at once in ops.tv_denoise's
# Chambolle loop: image, result, held, out, d, the dual field p and the
# gradient g (two planes each), norm, and the temporaries of p's update and of
# the where/sqrt expressions (counting gives about 15; the allocator holds
# more).  ``python benchmarks/stage_memory.py`` measured, above the input, on
# RGB fp32: 512^2: 352 B/px, 768^2: 357, 1024^2: 336, i.e. about 29 planes.
_CHAMBOLLE_PLANES = 30


@register
class TvDenoise(Stage):
    name = "tv_denoise"
    Params = TvDenoiseParams

    def peak_bytes(self, channels: int, height: int, width: int, itemsize: int) -> int:
        # Input and output in the working dtype; the colour planes in float32.
        return (2 * channels * height * width * itemsize
                + _CHAMBOLLE_PLANES * min(channels, 3) * height * width * 4)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        p = self.params
        return tv_denoise(x, p.weight, eps=p.eps, max_iter=p.max_iter)
