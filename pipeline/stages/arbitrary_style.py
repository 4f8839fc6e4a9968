"""arbitrary_style: any painting as the style, no training per style (AdaIN).

Huang & Belongie 2017: the frame's VGG19 relu4_1 features take on the
painting's per-channel mean and std, and a trained decoder paints the
result.  ``style`` is one image, or a blend ``{a.jpg: 0.7, b.jpg: 0.3}``
(interpolated in feature space, as in the paper); ``alpha`` moves from the
frame's own features (0) to the stylized ones (1).  The paintings'
statistics are computed once, when the stage is built, never per frame: a
style file that changes or disappears mid-job changes nothing.

The network half is ``NetworkStage``'s: padded to a multiple of 8 (the
encoder's three poolings) and cropped back, alpha kept, ``strength`` and
``preserve_color`` applied on the device.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import MediaError, WeightsError
from ..machine.context import RunContext
from ..media.images import read_image
from ..models.adain import CONTENT_LAYER, AdaINEncoder, AdaINStylizer, style_statistics
from ..models.checkpoints import load_adain_decoder
from ..models.vgg import load_perceptual
from ..ops.resize import resize, target_size
from ..typed_yaml import ParamError
from .network import NetworkStage
from .registry import register

# fp32 activation bytes per padded pixel at the peak of encoder + decoder in inference mode:
# the 64-channel full-resolution maps (two live at once, plus a padded copy) on each side.
# ``python benchmarks/stage_memory.py --cases arbitrary_style`` (peak RSS, CPU, torch 2.13)
# measured 768 B/px at 512^2 and 813 at 1024^2.
_ADAIN_BYTES_PER_PIXEL = 850


@dataclass(frozen=True)
class ArbitraryStyleParams:
    weights: Path  # a decoder trained by `run_pipeline.py train arbitrary`
    style: Path | dict[Path, float]  # a painting, or a blend {painting: weight}
    alpha: float = 1.0  # 0: the frame's own features, 1: the painting's statistics
    style_size: int = 512  # the painting's short side when its statistics are taken (the paper's)
    strength: float = 1.0  # 0..1: the stylized image blended with its input (0: the input)
    preserve_color: bool = False  # the input's colours with the style's luminance

    def __post_init__(self) -> None:
        blend = self.styles
        if any(w < 0 for w in blend.values()) or sum(blend.values()) <= 0:
            raise ParamError("style", f"a blend's weights must be >= 0 and not all 0; got {self.style}")
        if isinstance(self.alpha, bool) or not 0.0 <= self.alpha <= 1.0:
            raise ParamError("alpha", f"alpha must be in [0, 1], got {self.alpha}")
        if isinstance(self.strength, bool) or not 0.0 <= self.strength <= 1.0:
            raise ParamError("strength", f"strength must be in [0, 1], got {self.strength}")
        if self.style_size < 16:
            raise ParamError("style_size", f"style_size must be at least 16 pixels, got {self.style_size}")

    @property
    def styles(self) -> dict[Path, float]:
        return self.style if isinstance(self.style, dict) else {self.style: 1.0}


@register
class ArbitraryStyle(NetworkStage):
    name = "arbitrary_style"
    Params = ArbitraryStyleParams
    loader = staticmethod(load_adain_decoder)
    quiet_defaults = {}

    def __init__(self, params: ArbitraryStyleParams, ctx: RunContext) -> None:
        super().__init__(params, ctx)  # the decoder, on the device
        encoder = AdaINEncoder(load_perceptual(taps=(CONTENT_LAYER,)))
        encoder = encoder.to(device=ctx.device, dtype=ctx.dtype)
        stats = []
        for path, weight in params.styles.items():
            mean, std = style_statistics(encoder, self._painting(path, ctx))
            stats.append((mean.float(), std.float(), float(weight)))
        self.net = AdaINStylizer(encoder, self.net, stats, params.alpha)
        self.size_multiple = AdaINStylizer.size_multiple

    def _painting(self, path: Path, ctx: RunContext) -> torch.Tensor:
        try:
            a = read_image(path)
        except MediaError as exc:  # reported at the stage's line in the job, like weights
            raise WeightsError(path, f"the style image cannot be read: {exc.reason}",
                               hint="point 'style' at a JPEG, PNG, WebP, BMP or TIFF file") from None
        x = torch.from_numpy(np.ascontiguousarray(a[..., :3])).permute(2, 0, 1)[None].float()
        size = target_size(a.shape[0], a.shape[1], short_side=self.params.style_size, multiple_of=1)
        return resize(x, size, interpolation="bicubic").clamp(0, 255).to(ctx.device, ctx.dtype)

    def describe(self) -> str:
        p = self.params
        styles = ", ".join(path.name if len(p.styles) == 1 else f"{path.name} {w:g}"
                           for path, w in p.styles.items())
        extra = f", alpha {p.alpha:g}" if p.alpha != 1.0 else ""
        return super().describe()[:-1] + f", style {styles}{extra})"

    def bytes_per_pixel(self) -> float:
        return _ADAIN_BYTES_PER_PIXEL

    def to_net(self, rgb: torch.Tensor) -> torch.Tensor:
        return rgb

    def from_net(self, y: torch.Tensor) -> torch.Tensor:
        return y * 255.0
