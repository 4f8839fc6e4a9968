"""temporal_smooth's per-frame blend on the host CPU: numpy and OpenCV on H x W x C float32.

The same arithmetic as the torch kernels of ``warp.py`` (``warp`` bicubic with the
border replicated, ``resize_flow``, ``resize_plane``, ``blend_``; within a tenth of a
level, ``tests/test_temporal_smooth.py``), for a CPU "device".  Why not torch there:

- OpenCV's ``remap`` is the same Keys cubic (a = -0.75) as ``grid_sample``'s bicubic at
  a fraction of the cost (1080p RGB: 29 CPU ms against 263), and ``resize`` the same
  bilinear as ``interpolate`` at a tenth of it;
- the rest is memory-bound element work, where torch's intra-op pool (sized for the
  models) gains nothing and its threads spin after every operation beside a busy
  encoder: a 1080p clip smoothed with no model took 42 CPU s with torch's two threads
  against 34 with one (``benchmarks/render_box.py`` (c)).  OpenCV's pool is 1 thread
  per worker (``pipeline.machine.threads``), so these run in the calling thread only.

Layout: frames H x W x C (C <= 4), contiguous; a *sample map* is the H x W x 2 absolute
position (x + dx, y + dy) each output pixel samples, what ``cv2.remap`` takes.
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

__all__ = ["sample_map", "weight_map", "smooth_step"]


@lru_cache(maxsize=8)
def _grid(h: int, w: int) -> np.ndarray:
    grid = np.empty((h, w, 2), np.float32)
    grid[..., 0] = np.arange(w, dtype=np.float32)[None, :]
    grid[..., 1] = np.arange(h, dtype=np.float32)[:, None]
    grid.flags.writeable = False
    return grid


def sample_map(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Backward flow h x w x 2 (in its own pixels) -> the sample map at ``size`` (H, W):
    bilinear, pixel-centre aligned (as ``cv2.resize`` is), vectors scaled by W/w and H/h
    (before resizing: the same values, on a sixteenth of the pixels at 1080p)."""
    h, w = flow.shape[:2]
    H, W = size
    if (h, w) == (H, W):
        moved = np.array(flow, np.float32)
    else:
        scaled = flow * np.array([W / w, H / h], np.float32)
        moved = cv2.resize(scaled, (W, H), interpolation=cv2.INTER_LINEAR)
    return cv2.add(moved, _grid(H, W), dst=moved)


def weight_map(confidence: np.ndarray, size: tuple[int, int], strength: float) -> np.ndarray:
    """``strength`` times the confidence (h x w) resized to ``size`` (H, W), clamped to 0..1 first."""
    H, W = size
    if confidence.shape[:2] == (H, W):
        conf = np.array(confidence, np.float32)
    else:
        conf = cv2.resize(confidence, (W, H), interpolation=cv2.INTER_LINEAR)
    np.clip(conf, 0.0, 1.0, out=conf)
    conf *= np.float32(strength)
    return conf


def smooth_step(current: np.ndarray, previous: np.ndarray, samples: np.ndarray,
                weight: np.ndarray) -> np.ndarray:
    """``current + weight * (warp_bicubic(previous, samples) - current)``, clamped to 0..255:
    a new H x W x C float32 array.  ``previous`` must be contiguous; neither input changes."""
    if current.ndim != 3 or previous.shape != current.shape or current.shape[2] > 4:
        raise ValueError(f"smooth_step expects two H x W x C frames (C <= 4), got "
                         f"{current.shape} and {previous.shape}")
    if current.shape[2] == 2:  # OpenCV's 2-channel remap has no fast path: 10.6 ms a 1080p
        # frame's chroma against 7.6 for the two planes apart, split and merged (float32)
        out = cv2.merge([_warp(plane, samples) for plane in cv2.split(previous)])
    else:
        out = _warp(previous, samples).reshape(current.shape)  # remap drops a single channel's axis
    if not current.flags.c_contiguous:
        current = np.ascontiguousarray(current)
    if current.shape[2] > 1:  # one weight per pixel, for each channel
        weight = cv2.merge([weight] * current.shape[2])
    weight = weight.reshape(current.shape)
    cv2.subtract(out, current, dst=out)
    cv2.multiply(out, weight, dst=out)
    cv2.add(out, current, dst=out)
    np.clip(out, 0.0, 255.0, out=out)
    return out


def _warp(image: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """Bicubic (Keys, a = -0.75: ``grid_sample``'s), the border replicated."""
    return cv2.remap(image, samples, None, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
