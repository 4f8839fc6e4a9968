"""Resizing: the target-size arithmetic, the tensor kernel, and a host one for writing.

``target_size`` is pure integer maths so stages can plan output sizes (and
batch same-sized images) before any pixel is touched.  ``resize`` is a pure
kernel over ``[..., C, H, W]`` float tensors in the 0..255 working range.
``resize_to`` resizes a uint8 image on the host (OpenCV), to write an output at
its source's size after the model.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:  # only ``resize`` needs torch: encode's ``resize_to`` runs without it
    import torch

__all__ = ["INTERPOLATIONS", "target_size", "resize", "resize_to"]

# Our names -> torch modes.  "nearest" maps to "nearest-exact": torch's legacy
# "nearest" picks pixels with a half-pixel shift (it disagrees with PIL/OpenCV).
INTERPOLATIONS = {
    "bicubic": "bicubic",
    "bilinear": "bilinear",
    "area": "area",
    "nearest": "nearest-exact",
}


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _round_to_multiple(value: Fraction, multiple: int) -> int:
    """Nearest multiple of ``multiple`` (halves round up), at least one multiple.

    Rounds the exact rational size once, instead of rounding to pixels first
    and then to the multiple (double rounding can land one multiple off).
    """
    steps = math.floor(value / multiple + Fraction(1, 2))
    return max(1, steps) * multiple


def target_size(h: int, w: int, *, short_side: int | None = None,
                long_side: int | None = None, width: int | None = None,
                height: int | None = None, scale: float | None = None,
                multiple_of: int = 4, upscale: bool = True) -> tuple[int, int]:
    """Return ``(new_h, new_w)`` for an ``h`` x ``w`` image.

    Exactly one mode:
      * ``short_side`` / ``long_side``: that side becomes the value, aspect kept;
      * ``width`` and/or ``height``: both given is an exact size (aspect may
        change); only one given keeps the aspect ratio;
      * ``scale``: both sides multiplied by the factor.

    Each side is then rounded to the nearest multiple of ``multiple_of``
    (halves up, never below one multiple); ``multiple_of=1`` keeps exact pixels.

    ``upscale=False`` never enlarges a side: aspect-keeping modes cap the
    factor at 1 (a small image keeps its size), the exact mode caps each side
    at the input's.  The multiple rounding still applies afterwards, so a side
    may grow by up to ``multiple_of // 2`` pixels (the networks need it).
    """
    h = _positive_int("image height", h)
    w = _positive_int("image width", w)
    multiple_of = _positive_int("multiple_of", multiple_of)
    modes = [name for name, v in (("short_side", short_side), ("long_side", long_side),
                                  ("width/height", width if width is not None else height),
                                  ("scale", scale)) if v is not None]
    if not modes:
        raise ValueError("resize needs one of short_side, long_side, width/height or scale")
    if len(modes) > 1:
        raise ValueError(f"resize modes are exclusive, got {' and '.join(modes)}; pick one")

    if scale is not None:
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) \
                or not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"scale must be a positive finite number, got {scale!r}")
        # Via repr so 0.1 means exactly 1/10, as the user wrote it.
        factor_h = factor_w = Fraction(repr(float(scale)))
    elif width is not None and height is not None:
        factor_h = Fraction(_positive_int("height", height), h)
        factor_w = Fraction(_positive_int("width", width), w)
    else:
        if short_side is not None:
            factor = Fraction(_positive_int("short_side", short_side), min(h, w))
        elif long_side is not None:
            factor = Fraction(_positive_int("long_side", long_side), max(h, w))
        elif width is not None:
            factor = Fraction(_positive_int("width", width), w)
        else:
            factor = Fraction(_positive_int("height", height), h)
        factor_h = factor_w = factor

    if not upscale:
        factor_h, factor_w = min(factor_h, Fraction(1)), min(factor_w, Fraction(1))
    return (_round_to_multiple(h * factor_h, multiple_of),
            _round_to_multiple(w * factor_w, multiple_of))


def resize(x: torch.Tensor, size: tuple[int, int], *, interpolation: str = "bicubic",
           antialias: bool = True) -> torch.Tensor:
    """Resize ``[..., C, H, W]`` to ``size = (h, w)``; alpha is resized like RGB.

    Computes in float32 (CPU interpolate lacks or is imprecise for fp16/bf16
    in several modes) and casts back.  Bicubic overshoot is clamped to
    [0, 255].  ``antialias`` applies to bilinear/bicubic downscaling (area is
    an average by construction, nearest never antialiases).  When ``size`` is
    already the input size the result is a copy, so outputs never alias inputs.
    """
    if not x.is_floating_point():
        raise TypeError(f"resize expects a float tensor in 0..255, got {x.dtype}")
    if x.dim() < 3:
        raise ValueError(f"resize expects [..., C, H, W], got shape {tuple(x.shape)}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {interpolation!r}; "
                         f"choose one of {', '.join(INTERPOLATIONS)}")
    new_h, new_w = (_positive_int("height", size[0]), _positive_int("width", size[1]))
    *lead, c, h, w = x.shape
    if (new_h, new_w) == (h, w):
        return x.clone()

    mode = INTERPOLATIONS[interpolation]
    kwargs = {"align_corners": False, "antialias": antialias} \
        if mode in ("bilinear", "bicubic") else {}
    import torch
    import torch.nn.functional as F

    flat = x.reshape(-1, c, h, w).to(torch.float32)
    out = F.interpolate(flat, size=(new_h, new_w), mode=mode, **kwargs)
    if mode == "bicubic":
        out = out.clamp_(0.0, 255.0)  # cubic kernels ring past the input range
    return out.to(x.dtype).reshape(*lead, c, new_h, new_w)


def resize_to(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """uint8 H x W x C (C <= 4) -> ``height`` x ``width``: area averaging where it shrinks on
    both sides (no aliasing), Lanczos (8x8) otherwise; the image itself where the size is
    already right."""
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    shrink = width <= w and height <= h
    out = cv2.resize(image, (width, height),
                     interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LANCZOS4)
    return out.reshape(height, width, *image.shape[2:])
