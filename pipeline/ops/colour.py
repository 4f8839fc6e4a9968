"""YUV 4:2:0 <-> RGB on the device, so that the CPU neither converts nor copies RGB frames.

Pure torch.  The rules are the reading and writing rules of ``pipeline.media``:
the matrix is BT.601 or BT.709 (as tagged; untagged: BT.709 from 720 coded
lines, BT.601 below), the range limited (Y 16..235, C 16..240) unless the
source is full range.  Chroma is sited at the centre of each 2x2 block: read
with bilinear upsampling, written as the mean of the block (edge blocks of odd
sizes hold fewer pixels).  ``tests/test_colour.py`` checks both against
libswscale, the CPU conversion they replace, on odd sizes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .colour_host import MATRICES


def yuv420_to_rgb(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, matrix: int,
                  full_range: bool) -> torch.Tensor:
    """uint8 planes [N, H, W], [N, ceil(H/2), ceil(W/2)] x2 -> float32 RGB [N, 3, H, W],
    0..255, unrounded, unclamped beyond what the matrix gives (clamped to 0..255)."""
    kr, kb = MATRICES[matrix]
    h, w = y.shape[-2:]
    luma = y.float()
    chroma = torch.stack([u, v], 1).float() - 128.0  # [N, 2, h2, w2]
    if not full_range:
        luma = (luma - 16.0) * (255.0 / 219.0)
        chroma = chroma * (255.0 / 224.0)
    chroma = _upsample(chroma, h, w)
    cb, cr = chroma[:, 0], chroma[:, 1]
    r = luma + (2.0 * (1.0 - kr)) * cr
    b = luma + (2.0 * (1.0 - kb)) * cb
    g = (luma - kr * r - kb * b) / (1.0 - kr - kb)
    return torch.stack([r, g, b], 1).clamp_(0.0, 255.0)


def rgb_to_yuv420(rgb: torch.Tensor, matrix: int, full_range: bool
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """float RGB [N, 3, H, W] in 0..255 -> rounded uint8 planes (Y, U, V) of 4:2:0."""
    luma, chroma = rgb_to_yuv420_float(rgb, matrix, full_range)
    y, uv = round_planes(luma, chroma)
    return y[:, 0], uv[:, 0], uv[:, 1]


def rgb_to_yuv420_float(rgb: torch.Tensor, matrix: int, full_range: bool
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """float RGB [N, 3, H, W] (clamped to 0..255 first) -> the 4:2:0 planes unrounded, float32:
    luma [N, 1, H, W] and chroma (U, V) [N, 2, ceil(H/2), ceil(W/2)], in storage levels."""
    kr, kb = MATRICES[matrix]
    rgb = rgb.float().clamp(0.0, 255.0)
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    luma = kr * r + (1.0 - kr - kb) * g + kb * b
    chroma = torch.stack([(b - luma) / (2.0 * (1.0 - kb)), (r - luma) / (2.0 * (1.0 - kr))], 1)
    chroma = _downsample(chroma)
    if not full_range:
        luma = luma * (219.0 / 255.0) + 16.0
        chroma = chroma * (224.0 / 255.0)
    return luma[:, None], chroma + 128.0


def round_planes(*planes: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Float planes -> uint8, rounded half to even and clamped, as the encoder takes them."""
    return tuple(p.round().clamp_(0, 255).to(torch.uint8) for p in planes)


def _downsample(chroma: torch.Tensor) -> torch.Tensor:
    """Full-size chroma [N, 2, H, W] to ceil(H/2) x ceil(W/2) with a triangle filter (at 2:1,
    [1, 3, 3, 1] / 8 around each pair); an odd side is resized by its extent, W to ceil(W/2),
    as libswscale does."""
    h, w = chroma.shape[-2:]
    return F.interpolate(chroma, size=((h + 1) // 2, (w + 1) // 2), mode="bilinear",
                         align_corners=False, antialias=True)


def _upsample(chroma: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Half-size chroma to (h, w), bilinear with centred samples; an odd side by its extent,
    ceil(W/2) to W, as libswscale does."""
    return F.interpolate(chroma, size=(h, w), mode="bilinear", align_corners=False)
