"""Frames to and from the device: uint8 batches through pinned memory, 4:2:0 planes converted
on the device, float pixels rounded back to uint8 on the host."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch

from .host import to_uint8


def upload(images: Sequence[np.ndarray], device: torch.device) -> torch.Tensor:
    """uint8 NHWC on the device; through pinned memory, without blocking, on CUDA."""
    if device.type != "cuda":
        return torch.from_numpy(np.stack(images))
    host = torch.empty((len(images), *images[0].shape), dtype=torch.uint8, pin_memory=True)
    for i, image in enumerate(images):
        host[i].copy_(torch.from_numpy(image))
    return host.to(device, non_blocking=True)


def frames_to_device(frames: Sequence, device: torch.device, dtype: torch.dtype,
                     colour: tuple[int, bool] | None) -> torch.Tensor:
    """Frames of one size -> RGB [N, 3, H, W] (0..255) in ``dtype`` on the device: uint8 RGB
    frames as they are, 4:2:0 ``Planes`` converted there (``colour``: their matrix and range)."""
    from ..media.video import Planes
    from ..ops.colour import yuv420_to_rgb

    if all(isinstance(f, Planes) for f in frames):
        y, u, v = (upload([getattr(f, name) for f in frames], device) for name in "yuv")
        return yuv420_to_rgb(y, u, v, *colour).to(dtype)
    if any(isinstance(f, Planes) for f in frames):  # a clip that changes format mid-way
        return torch.cat([frames_to_device([f], device, dtype, colour) for f in frames])
    if device.type == "cpu" and dtype == torch.float32:  # numpy: see ``to_host_uint8``
        return torch.from_numpy(np.stack(frames).astype(np.float32)).permute(0, 3, 1, 2)
    return upload(frames, device).permute(0, 3, 1, 2).to(dtype)  # no float32 copy on the way


def planes_from_device(x: torch.Tensor, colour: tuple[int, bool]) -> list:
    """float RGB [N, 3, H, W] -> the encoder's 4:2:0 ``Planes`` (rounded there), on the host."""
    from ..media.video import Planes
    from ..ops.colour import rgb_to_yuv420

    y, u, v = (download(p) for p in rgb_to_yuv420(x, *colour))
    return [Planes(*p) for p in zip(y, u, v)]


def planes_to_device(frames: Sequence, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """4:2:0 ``Planes`` of one size -> float32 luma [N, 1, H, W] and chroma [N, 2, h, w] on the
    device, as they are (no colour conversion)."""
    luma = np.stack([f.y[None] for f in frames])
    if device.type == "cpu":  # numpy (see ``to_host_uint8``); chroma U, V interleaved in memory
        chroma = np.stack([cv2.merge([f.u, f.v]) for f in frames]).astype(np.float32)
        return torch.from_numpy(luma.astype(np.float32)), torch.from_numpy(chroma).permute(0, 3, 1, 2)
    chroma = np.stack([np.stack([f.u, f.v]) for f in frames])
    return upload(luma, device).to(torch.float32), upload(chroma, device).to(torch.float32)


def planes_to_host(luma: torch.Tensor, chroma: torch.Tensor) -> list:
    """float luma [N, 1, H, W] and chroma [N, 2, h, w] -> the encoder's uint8 ``Planes``."""
    from ..media.video import Planes

    y, uv = to_host_uint8(luma), to_host_uint8(chroma)
    return [Planes(y[i, 0], uv[i, 0], uv[i, 1]) for i in range(len(y))]


def download(y: torch.Tensor) -> np.ndarray:
    """A uint8 tensor -> a C-contiguous host array of its shape."""
    if y.device.type != "cuda":
        return y.contiguous().numpy()
    host = torch.empty(y.shape, dtype=torch.uint8, pin_memory=True)
    host.copy_(y, non_blocking=True)
    torch.cuda.current_stream(y.device).synchronize()
    return host.numpy()


def to_host_uint8(x: torch.Tensor, nhwc: bool = False) -> np.ndarray:
    """Float pixels [N, C, H, W] -> uint8 on the host (N x H x W x C where ``nhwc``), rounded
    half to even and clamped to 0..255.

    On a CPU "device" in numpy, as the engine's other float <-> uint8 conversions there:
    they are memory-bound copies, which torch's intra-op pool (sized for the models) does
    no faster, and after which its threads spin beside the encoder (see ops/smooth_host.py).
    """
    if x.device.type == "cpu" and x.dtype == torch.float32:
        return to_uint8(x.numpy(), nhwc)
    y = x.float().round_().clamp_(0, 255).to(torch.uint8)
    return download(y.permute(0, 2, 3, 1) if nhwc else y)


def sync(device: torch.device) -> None:
    """Make the step timings honest on CUDA, where kernels run asynchronously."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
