"""Frames as float arrays on the host, and back to bytes, without torch: the engine's batch
where every stage takes numpy arrays (a network in ONNX Runtime on a CPU), and the rounding
``device.to_host_uint8`` uses on a CPU."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np


def frames_to_batch(frames: Sequence[np.ndarray]) -> np.ndarray:
    """uint8 H x W x C frames of one size -> a float32 [N, C, H, W] view, 0..255 (what
    ``device.frames_to_device`` makes on a CPU, as an array)."""
    return np.stack(frames).astype(np.float32).transpose(0, 3, 1, 2)


def to_uint8(a: np.ndarray, nhwc: bool = False) -> np.ndarray:
    """Float32 [N, C, H, W] -> uint8, rounded half to even and clamped to 0..255 (N x H x W x C
    where ``nhwc``), C-contiguous.  OpenCV's saturating cast: the same bytes as torch's round
    and clamp (tested), in one pass; as a 2-D image of at most 4 channels."""
    a = np.ascontiguousarray(a.transpose(0, 2, 3, 1) if nhwc else a)
    rows = a.reshape(-1, a.shape[-2], a.shape[-1]) if nhwc and a.shape[-1] <= 4 else \
        a.reshape(-1, a.shape[-1])
    return cv2.add(rows, 0.0, dtype=cv2.CV_8U).reshape(a.shape)
