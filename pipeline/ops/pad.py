"""Pad to a multiple and crop back, around networks with size constraints.

TransformerNet needs sides divisible by 4 and a U-Net by ``2**num_downs``.
Padding (then cropping the output) keeps the user's exact size without the
distortion a resize would add.  Only bottom/right are padded, so the original
image is always ``padded[..., :h, :w]``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the host version (numpy, for ONNX Runtime) runs without torch
    import torch

__all__ = ["pad_to_multiple", "pad_to_multiple_host", "padded_side", "crop_to"]

_MODES = ("reflect", "replicate", "constant")


def _pad_axis(x: torch.Tensor, amount: int, axis: int, mode: str) -> torch.Tensor:
    if amount == 0:
        return x
    # Reflect mirrors without repeating the edge, so it needs amount < size;
    # tiny images (or huge multiples) fall back to replicating the edge.
    if mode == "reflect" and amount >= x.shape[axis]:
        mode = "replicate"
    import torch.nn.functional as F

    pad = (0, amount, 0, 0) if axis == -1 else (0, 0, 0, amount)
    return F.pad(x, pad, mode=mode)


def pad_to_multiple(x: torch.Tensor, multiple: int, mode: str = "reflect", min_side: int = 0
                    ) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad ``[..., C, H, W]`` bottom/right up to multiples of ``multiple``, and to at least
    ``min_side`` (a network whose deepest map must keep more than one pixel).

    Returns ``(padded, (h, w))`` where ``(h, w)`` is the original size to hand
    to :func:`crop_to`.  ``mode`` is "reflect" (default: no hard edge for
    convolutions to react to), "replicate" or "constant" (zeros).  The result
    is always a new tensor, even when no padding is needed.
    """
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple <= 0:
        raise ValueError(f"multiple must be a positive integer, got {multiple!r}")
    if mode not in _MODES:
        raise ValueError(f"unknown pad mode {mode!r}; choose one of {', '.join(_MODES)}")
    if x.dim() < 3:
        raise ValueError(f"pad_to_multiple expects [..., C, H, W], got shape {tuple(x.shape)}")
    *lead, c, h, w = x.shape
    pad_h, pad_w = padded_side(h, multiple, min_side) - h, padded_side(w, multiple, min_side) - w
    if pad_h == 0 and pad_w == 0:
        return x.clone(), (h, w)
    if h == 0 or w == 0:
        raise ValueError(f"cannot pad an image with an empty side, got shape {tuple(x.shape)}")
    # F.pad's non-constant modes want a batched 4D tensor; flatten the leading dims.
    out = x.reshape(-1, c, h, w)
    out = _pad_axis(out, pad_h, -2, mode)
    out = _pad_axis(out, pad_w, -1, mode)
    return out.reshape(*lead, c, h + pad_h, w + pad_w), (h, w)


def pad_to_multiple_host(x: np.ndarray, multiple: int, min_side: int = 0
                         ) -> tuple[np.ndarray, tuple[int, int]]:
    """``pad_to_multiple`` in reflect mode on a numpy ``[N, C, H, W]`` array: the same values
    (numpy's "reflect" is F.pad's: the edge not repeated; an amount of the side or more
    replicates the edge instead), height first, then width."""
    h, w = x.shape[-2:]
    out = x
    for axis, amount in ((2, padded_side(h, multiple, min_side) - h),
                         (3, padded_side(w, multiple, min_side) - w)):
        if amount:
            widths = [(0, 0)] * 4
            widths[axis] = (0, amount)
            out = np.pad(out, widths, mode="reflect" if amount < out.shape[axis] else "edge")
    return (out if out is not x else x.copy()), (h, w)


def padded_side(side: int, multiple: int, min_side: int = 0) -> int:
    """What ``pad_to_multiple`` makes of one side."""
    return max(-(-side // multiple) * multiple, -(-min_side // multiple) * multiple)


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Top-left ``size = (h, w)`` crop of ``[..., C, H, W]`` as a new contiguous tensor."""
    h, w = size
    if not (0 <= h <= x.shape[-2] and 0 <= w <= x.shape[-1]):
        raise ValueError(f"cannot crop {tuple(x.shape[-2:])} to {(h, w)}")
    import torch

    return x[..., :h, :w].clone(memory_format=torch.contiguous_format)
