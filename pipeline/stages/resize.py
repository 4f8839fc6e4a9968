"""resize: by short side, long side, exact size or scale, to a multiple of 4."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ..ops.resize import resize, target_size
from ..typed_yaml import ParamError
from .base import Stage
from .registry import register


@dataclass(frozen=True)
class ResizeParams:
    short_side: int | None = None
    long_side: int | None = None
    width: int | None = None
    height: int | None = None
    scale: float | None = None
    multiple_of: int = 4  # the networks need sides divisible by 4
    upscale: bool = True  # False: images already smaller than the target keep their size
    interpolation: Literal["bicubic", "bilinear", "area", "nearest"] = "bicubic"

    def __post_init__(self) -> None:
        modes = [k for k in ("short_side", "long_side", "scale") if getattr(self, k) is not None]
        if self.width is not None or self.height is not None:
            modes.append("width/height")
        if len(modes) != 1:
            raise ValueError("give exactly one of short_side, long_side, width+height or scale"
                             + (f" (got {', '.join(modes)})" if modes else ""))
        for key in ("short_side", "long_side", "width", "height", "multiple_of"):
            value = getattr(self, key)
            if value is not None and value <= 0:
                raise ParamError(key, f"{key} must be positive, got {value}")
        if self.scale is not None and self.scale <= 0:
            raise ParamError("scale", f"scale must be positive, got {self.scale}")


@register
class Resize(Stage):
    name = "resize"
    Params = ResizeParams

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return resize(x, self.output_size(x.shape[-2], x.shape[-1]),
                      interpolation=self.params.interpolation)

    def peak_bytes(self, channels: int, height: int, width: int, itemsize: int) -> int:
        # ops.resize: input and output in the working dtype, float32 copies of
        # both unless that is the working dtype, and the antialiasing pass's
        # intermediate (one side resized).  benchmarks/stage_memory.py, fp32,
        # scale 0.5 at 1024^2: 9 MiB above the input, as this says.
        out_h, out_w = self.output_size(height, width)
        a, b = channels * height * width, channels * out_h * out_w
        f32 = 0 if itemsize == 4 else (a + b) * 4
        return (a + b) * itemsize + f32 + channels * height * out_w * 4

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        p = self.params
        return target_size(height, width, short_side=p.short_side, long_side=p.long_side,
                           width=p.width, height=p.height, scale=p.scale,
                           multiple_of=p.multiple_of, upscale=p.upscale)
