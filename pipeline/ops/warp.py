"""Flow warping and blending kernels for temporal smoothing; never mutate inputs.

Flow is ``[N, 2, H, W]`` float in pixels, channel 0 = dx, 1 = dy: output pixel
(x, y) samples the input at (x + dx, y + dy) (a *backward* warp), with border
replication outside the frame.  Pixel centres sit on integers, so zero flow
is the identity and an integer flow moves pixels exactly.

Pure torch, for any device.  On a CPU the smoothing runs the same arithmetic
through OpenCV instead (``smooth_host.py``: a fraction of the cost there).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["warp", "resize_flow", "resize_plane", "blend"]


def _work(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def warp(x: torch.Tensor, flow: torch.Tensor, mode: str = "bicubic") -> torch.Tensor:
    """``x`` [N, C, H, W] sampled at pixel + ``flow`` [N, 2, H, W]; same dtype as ``x``.

    Computed in float32 (float64 kept); ``mode`` is grid_sample's (bicubic,
    bilinear, nearest).  Bicubic may overshoot the input's range: clamp after.
    """
    if x.dim() != 4 or flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(f"warp expects x [N, C, H, W] and flow [N, 2, H, W], got "
                         f"{tuple(x.shape)} and {tuple(flow.shape)}")
    n, _, h, w = x.shape
    if flow.shape[0] != n or flow.shape[-2:] != (h, w):
        raise ValueError(f"flow {tuple(flow.shape)} does not match x {tuple(x.shape)}")
    if x.numel() == 0:
        return x.clone()
    src = _work(x)
    f = flow.to(device=x.device, dtype=src.dtype)
    ys = torch.arange(h, device=x.device, dtype=src.dtype)
    xs = torch.arange(w, device=x.device, dtype=src.dtype)
    # align_corners=True: -1 and 1 are the centres of the first and last pixels.
    gx = (xs.view(1, 1, w) + f[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys.view(1, h, 1) + f[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1)
    out = F.grid_sample(src, grid, mode=mode, padding_mode="border", align_corners=True)
    return out.to(x.dtype)


def resize_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Flow [N, 2, h, w] -> [N, 2, H, W]: bilinear, vectors scaled by W/w and H/h.

    Pixel-centre aligned (``align_corners=False``), as ``cv2.resize`` is, so a
    flow computed on an area-downscaled frame maps back onto the full frame.
    """
    if flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(f"resize_flow expects [N, 2, h, w], got {tuple(flow.shape)}")
    h, w = flow.shape[-2:]
    H, W = size
    if (h, w) == (H, W):
        return flow.clone()
    if flow.numel() == 0:
        return flow.new_zeros((flow.shape[0], 2, H, W))
    out = _bilinear(_work(flow), (H, W))
    scale = torch.tensor([W / w, H / h], device=flow.device, dtype=out.dtype).view(1, 2, 1, 1)
    return out.mul_(scale).to(flow.dtype)


def resize_plane(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A map [N, C, h, w] (e.g. confidence) -> [N, C, H, W], bilinear, centre aligned."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x.clone()
    if x.numel() == 0:
        return x.new_zeros((*x.shape[:-2], *size))
    return _bilinear(_work(x), size).to(x.dtype)


def _bilinear(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear, pixel-centre aligned (as ``cv2.resize``)."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def blend(current: torch.Tensor, warped: torch.Tensor, confidence: torch.Tensor,
          strength: float) -> torch.Tensor:
    """``current + strength * confidence * (warped - current)``; confidence broadcasts."""
    return current + (strength * confidence) * (warped - current)


def blend_(current: torch.Tensor, warped: torch.Tensor, confidence: torch.Tensor,
           strength: float) -> torch.Tensor:
    """``blend`` computed in ``warped``'s memory (the same operations, the same bits): at 1080p
    on a CPU it saves two frame-sized temporaries per frame."""
    return warped.sub_(current).mul_(strength * confidence).add_(current)
