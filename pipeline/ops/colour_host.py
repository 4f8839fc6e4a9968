"""The host side of ``colour.py``: the matrices, and the small RGB frames the flow of
temporal_smooth takes from decoded 4:2:0 planes (a reader thread: OpenCV and numpy, no torch,
so that a job that only transcodes imports none)."""
from __future__ import annotations

import cv2
import numpy as np

# (Kr, Kb) per AVCOL_SPC_* matrix the device converts; others take the CPU path
MATRICES = {1: (0.2126, 0.0722), 5: (0.299, 0.114), 6: (0.299, 0.114)}


def yuv420_to_rgb_small(y: np.ndarray, u: np.ndarray, v: np.ndarray, size: tuple[int, int],
                        matrix: int, full_range: bool) -> np.ndarray:
    """uint8 4:2:0 planes (host) -> uint8 RGB H x W x 3 at ``size`` (h, w), area-averaged: what
    ``cv2.resize(rgb, INTER_AREA)`` of the full RGB frame gives (both steps are linear but for
    rounding; measured on gradients, 1080p to 480x270: 0.7 levels on average, 2.8 at most, more
    on the border where the small chroma's edge spans more pixels), at a sixteenth of the work.

    Host side, for the flow of temporal_smooth (a reader thread): OpenCV and numpy, the
    conversion of ``yuv420_to_rgb`` as one affine map per pixel."""
    h, w = size
    luma = cv2.resize(y, (w, h), interpolation=cv2.INTER_AREA)
    chroma = [cv2.resize(c, ((w + 1) // 2, (h + 1) // 2), interpolation=cv2.INTER_AREA)
              for c in (u, v)]
    # bilinear with centred samples, as ``_upsample``
    chroma = [cv2.resize(c.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
              for c in chroma]
    yuv = cv2.merge([luma.astype(np.float32), *chroma])
    rgb = cv2.transform(yuv, _affine(matrix, full_range))
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _affine(matrix: int, full_range: bool) -> np.ndarray:
    """The 3 x 4 map (Y, U, V, 1) -> (R, G, B) of ``yuv420_to_rgb``, in storage levels."""
    kr, kb = MATRICES[matrix]
    ys, cs = (1.0, 1.0) if full_range else (255.0 / 219.0, 255.0 / 224.0)
    y0 = 0.0 if full_range else 16.0
    kg = 1.0 - kr - kb
    rows = np.array([  # R, G, B as luma + a * Cb + b * Cr (G from luma = kr R + kg G + kb B)
        [ys, 0.0, 2.0 * (1.0 - kr) * cs],
        [ys, -kb * 2.0 * (1.0 - kb) * cs / kg, -kr * 2.0 * (1.0 - kr) * cs / kg],
        [ys, 2.0 * (1.0 - kb) * cs, 0.0],
    ])
    offset = -rows @ np.array([y0, 128.0, 128.0])
    return np.hstack([rows, offset[:, None]]).astype(np.float32)
