"""YUV 4:2:0 <-> RGB on the device (pipeline/ops/colour.py) against libswscale on the CPU.

The reference is libswscale, what the device conversion replaces: the writer's
RGB->YUV (``ENCODE_SWS_FLAGS``, its accurate mode), and for YUV->RGB its accurate
mode too, and the reader's own call (default flags), which is itself 1 to 2
levels off the accurate one on these frames.  Frames are
natural-looking pictures of odd sizes (the last chroma row and column cover
one pixel), in BT.601 and BT.709, limited and full range.
"""
from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from av.video.reformatter import VideoReformatter

from pipeline.media.video import Planes
from pipeline.media.video_write import ENCODE_SWS_FLAGS
from pipeline.ops.colour import rgb_to_yuv420, yuv420_to_rgb

CASES = [(matrix, full) for matrix in (5, 1) for full in (False, True)]  # AVCOL_SPC: 5 BT.601, 1 BT.709
SWS = {5: 5, 1: 1}  # AVCOL_SPC -> SWS_CS


def _smooth(h: int, w: int, seed: int) -> np.ndarray:
    """Gradients and slow waves over the whole range.  No sharp edge: across one, any two 4:2:0
    chroma filters differ by more than a level (measured here: up to 26 at a disc's rim, where
    libswscale and the device agree to the level elsewhere), and the test is of the matrix,
    the range and the siting, not of the filter."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = x / max(w - 1, 1), y / max(h - 1, 1)
    r = 20 + 215 * u + 10 * np.sin(2 * np.pi * (v + seed / 7))
    g = 30 + 190 * v + 15 * np.sin(2 * np.pi * u)
    b = 230 - 200 * u * v
    return np.stack([r, g, b], -1).clip(0, 255).round().astype(np.uint8)


def _cpu_planes(rgb: np.ndarray, matrix: int, full: bool) -> Planes:
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    yuv = VideoReformatter().reformat(frame, format="yuv420p", dst_colorspace=SWS[matrix],
                                      dst_color_range=2 if full else 1,
                                      interpolation=ENCODE_SWS_FLAGS)
    return Planes.of(yuv)


def _cpu_rgb(planes: Planes, matrix: int, full: bool, accurate: bool) -> np.ndarray:
    """libswscale on a frame of these planes: the reader's call (default flags: chroma
    repeated, about 1.3 levels dark) or with the accurate flags the writer uses."""
    h, w = planes.y.shape
    frame = av.VideoFrame(w, h, "yuv420p")
    for plane, values in zip(frame.planes, (planes.y, planes.u, planes.v)):
        np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, :plane.width] = values
    flags = {"interpolation": ENCODE_SWS_FLAGS} if accurate else {}
    return VideoReformatter().reformat(frame, format="rgb24", src_colorspace=SWS[matrix],
                                       src_color_range=2 if full else 1, **flags).to_ndarray()


def _device(planes: Planes) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(p)[None] for p in (planes.y, planes.u, planes.v))


@pytest.mark.parametrize("matrix,full", CASES)
@pytest.mark.parametrize("hw", [(23, 37), (48, 64)])
def test_yuv_to_rgb_agrees_with_the_cpu_within_a_level(matrix: int, full: bool, hw) -> None:
    planes = _cpu_planes(_smooth(*hw, matrix), matrix, full)
    got = yuv420_to_rgb(*_device(planes), matrix, full)[0].permute(1, 2, 0).numpy().round()
    accurate = _cpu_rgb(planes, matrix, full, accurate=True).astype(np.float32)
    assert got.shape == accurate.shape
    assert np.abs(got - accurate).max() <= 1.0
    # The reader's own call (default flags) repeats chroma and rounds down, 1 to 2 levels off
    # the accurate one here: the device differs from it no more than libswscale's accurate
    # mode does.
    fast = _cpu_rgb(planes, matrix, full, accurate=False).astype(np.float32)
    assert np.abs(got - fast).mean() <= np.abs(accurate - fast).mean() + 0.25


@pytest.mark.parametrize("matrix,full", CASES)
@pytest.mark.parametrize("hw", [(23, 37), (48, 64)])
def test_rgb_to_yuv_agrees_with_the_cpu_within_a_level(matrix: int, full: bool, hw) -> None:
    rgb = _smooth(*hw, matrix)
    want = _cpu_planes(rgb, matrix, full)
    y, u, v = rgb_to_yuv420(torch.from_numpy(rgb).permute(2, 0, 1)[None].float(), matrix, full)
    for name, a, b in (("y", y[0], want.y), ("u", u[0], want.u), ("v", v[0], want.v)):
        assert a.shape == b.shape, name
        diff = np.abs(a.numpy().astype(int) - b.astype(int))
        # within a level; 2 at most in a corner of an odd size, where the edge filters differ
        assert (diff <= 1).mean() >= 0.99 and diff.max() <= (1 if name == "y" else 2), \
            (name, diff.max(), diff.mean())


@pytest.mark.parametrize("matrix,full", CASES)
def test_the_flows_small_rgb_from_planes_is_the_area_resized_rgb(matrix: int, full: bool) -> None:
    """temporal_smooth's flow takes its small RGB frames straight from decoded planes (no full
    RGB frame): within a level of the device's conversion of the same area-resized planes, and
    within two of the RGB frame area-resized (both steps are linear but for rounding)."""
    import cv2

    from pipeline.ops.colour_host import yuv420_to_rgb_small

    rgb = _smooth(95, 131, seed=3)
    planes = _cpu_planes(rgb, matrix, full)
    for size in ((24, 33), (47, 65)):
        got = yuv420_to_rgb_small(planes.y, planes.u, planes.v, size, matrix, full)
        assert got.shape == (*size, 3) and got.dtype == np.uint8
        small = [cv2.resize(p, (w, h), interpolation=cv2.INTER_AREA) for p, (h, w) in
                 ((planes.y, size), (planes.u, ((size[0] + 1) // 2, (size[1] + 1) // 2)),
                  (planes.v, ((size[0] + 1) // 2, (size[1] + 1) // 2)))]
        device = yuv420_to_rgb(*(torch.from_numpy(p)[None] for p in small), matrix, full)
        device = device[0].round().to(torch.uint8).permute(1, 2, 0).numpy()
        assert np.abs(got.astype(int) - device).max() <= 1
        full_rgb = yuv420_to_rgb(*_device(planes), matrix, full)[0].permute(1, 2, 0).numpy()
        area = cv2.resize(full_rgb, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        diff = np.abs(got.astype(np.float32) - area)
        assert diff[2:-2, 2:-2].max() <= 3.0 and diff.mean() <= 1.5
