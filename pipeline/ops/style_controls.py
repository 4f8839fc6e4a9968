"""The controls every style stage has: keep the input's colours, and blend with the input.

``preserve_color``: Gatys, Bethge, Hertzmann, Shechtman 2016, "Preserving Color in
Neural Artistic Style Transfer", luminance-only transfer: the stylized image's
luminance with the input's chroma.  In YCbCr (BT.601, full range, as JPEG) every
RGB channel is Y plus a function of (Cb, Cr) alone, so keeping the input's Cb and Cr
and taking the stylized Y is adding the luma difference to each input channel.
``strength``: the stylized image blended with its input, value by value in the
RGB the stages see (0..255, the file's sRGB values): 0 is the input, 1 the style.
Both are element-wise, on the device, over the whole batch.  The style stages and
``stylize-still`` (its ``preserve_color``) use this one kernel.
"""
from __future__ import annotations

import torch

# BT.601 luma weights (ITU-R BT.601; JPEG's YCbCr uses the same)
_LUMA = (0.299, 0.587, 0.114)


def luma(rgb: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] -> [N, 1, H, W] BT.601 luma, in the input's range."""
    r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    return _LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b


def apply_controls(styled: torch.Tensor, content: torch.Tensor, strength: float = 1.0,
                   preserve_color: bool = False) -> torch.Tensor:
    """``styled`` and ``content``: [N, 3, H, W] RGB in 0..255, same shape and dtype.
    Colours first (the input's chroma), then the blend; clamped to 0..255 (where the
    input's chroma with the style's luminance leaves the RGB gamut, chroma gives way)."""
    out = styled
    if preserve_color:
        out = content + (luma(styled) - luma(content))
    if strength != 1.0:
        out = torch.lerp(content, out, strength)
    return out.clamp(0, 255) if out is not styled else out
