"""Optical flow and its confidence on the CPU, for temporal smoothing.

Numpy and OpenCV only (no torch): the engine runs this in its decode thread,
ahead of the device.  Flow is OpenCV's DIS (T. Kroeger et al., "Fast Optical
Flow using Dense Inverse Search", ECCV 2016) on grayscale frames downscaled by
``scale`` ("auto": half size up to a short side of ``AUTO_SHORT_SIDE`` px, a fixed
working size above that: 1080p flows at 480x270, not 960x540, at a quarter of the
cost); confidence follows Ruder et al., "Artistic style transfer for
videos" (GCPR 2016): a photometric term times a forward-backward consistency
check (Sundaram et al., ECCV 2010), with the constants loosened for DIS as
measured here (DESIGN.md section 6).

Conventions.  Flow is *backward*: ``b(x)`` points from pixel ``x`` of the
current frame to where it was in the previous one, so ``prev(x + b(x)) ~
cur(x)``.  All flow vectors and the consistency tolerance ``fb_beta`` are in
*flow-resolution* pixels (the resolution DIS runs at): DIS's error is roughly
constant in its own pixels, so the check keeps the same strictness at any
``scale``.  DIS output is bit-identical across runs and thread counts.

A guide depends only on two consecutive input frames, so ``Guider`` splits in
two: ``advance`` (in order, cheap: the frame at flow resolution) and ``pair``
(the flow and its confidence for one pair, any thread, any order: the engine
runs pairs in a pool ahead of the device, the same guides whatever its size).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["AUTO_SHORT_SIDE", "Guide", "Guider", "auto_scale", "flow_size", "PRESETS"]

AUTO_SHORT_SIDE = 270  # flow_scale "auto": half size, but a short side of at most this

# A flow error over this many photometric sigmas (72 levels at the default
# 12) is an object the flow misses, not noise: measured on the demo pan (a
# small dark bird crossing a sky) at 3, 4 and 6 sigmas, 6 removed its trail
# and kept E_warp in benchmarks/temporal.py at 0.33 of per-frame (3: 0.41).
_WRONG_SIGMAS = 6.0

PRESETS = {
    "ultrafast": cv2.DISOpticalFlow_PRESET_ULTRAFAST,
    "fast": cv2.DISOpticalFlow_PRESET_FAST,
    "medium": cv2.DISOpticalFlow_PRESET_MEDIUM,
}


@dataclass(frozen=True)
class Guide:
    """What the smoothing of one frame needs from the inputs (read-only arrays)."""

    flow: np.ndarray        # h x w x 2 float32, backward flow, flow-resolution pixels
    confidence: np.ndarray  # h x w float32 in [0, 1]; all zeros when reset
    reset: bool             # True for the first frame and at scene cuts


def auto_scale(frame_hw: tuple[int, int]) -> float:
    """``flow_scale: auto``: 0.5, or less where half size would be over ``AUTO_SHORT_SIDE``."""
    return min(0.5, AUTO_SHORT_SIDE / max(1, min(frame_hw)))


def flow_size(frame_hw: tuple[int, int], scale: float | str) -> tuple[int, int]:
    """(h, w) the flow is computed at: ``frame_hw * scale``, at least 8 px a side."""
    if scale == "auto":
        scale = auto_scale(frame_hw)
    return tuple(max(8, int(round(s * scale))) for s in frame_hw)  # type: ignore[return-value]


class Guider:
    """Per clip, on the CPU: consecutive input frames -> Guides.  Deterministic.

    ``frame_hw`` is the (H, W) of the frames the smoothing stage receives;
    frames given to ``next`` may have any size (the decoded source) and are
    resized with ``cv2.INTER_AREA`` to the flow resolution before anything else.
    """

    def __init__(self, frame_hw: tuple[int, int], *, scale: float | str = 0.5, preset: str = "medium",
                 check_preset: str = "fast", photometric_sigma: float = 12.0,
                 fb_alpha: float = 0.01, fb_beta: float = 2.0,
                 reset_below: float = 0.35, boundary_radius: int = 4,
                 boundary_jump: float = 1.0) -> None:
        for name in (preset, check_preset):
            if name not in PRESETS:
                raise ValueError(f"unknown DIS preset {name!r}; expected one of {', '.join(PRESETS)}")
        if scale != "auto" and not 0 < scale <= 1:
            raise ValueError(f"scale must be in (0, 1] or 'auto', got {scale}")
        if photometric_sigma <= 0:
            raise ValueError(f"photometric_sigma must be > 0, got {photometric_sigma}")
        self.size = flow_size(frame_hw, scale)
        self.preset, self.check_preset = preset, check_preset
        self.sigma = float(photometric_sigma)
        self.fb_alpha, self.fb_beta = float(fb_alpha), float(fb_beta)
        self.reset_below = float(reset_below)
        if boundary_radius < 0 or boundary_jump <= 0:
            raise ValueError("boundary_radius must be >= 0 and boundary_jump > 0")
        self.boundary_radius, self.boundary_jump = int(boundary_radius), float(boundary_jump)
        self._local = threading.local()  # a DIS instance per thread: they are not thread-safe
        h, w = self.size
        self._gx, self._gy = np.meshgrid(np.arange(w, dtype=np.float32),
                                         np.arange(h, dtype=np.float32))
        self._prev: np.ndarray | None = None  # h x w x 3 uint8

    @property
    def state(self) -> np.ndarray | None:
        """The previous frame at flow resolution (uint8 RGB), None before the first."""
        return None if self._prev is None else self._prev.copy()

    def restore(self, state: np.ndarray | None) -> None:
        """Continue after ``state`` (from ``state`` of a Guider with the same settings)."""
        if state is not None:
            h, w = self.size
            if state.dtype != np.uint8 or state.shape != (h, w, 3):
                raise ValueError(f"guider state must be a {h}x{w}x3 uint8 array, got "
                                 f"{state.dtype} {state.shape}: saved with other settings?")
            state = np.ascontiguousarray(state).copy()
        self._prev = state

    def next(self, rgb: np.ndarray) -> Guide:
        """The guide for frame ``rgb`` (H x W x 3 uint8, any size) given the frames before."""
        return self.pair(*self.advance(rgb))

    def advance(self, rgb: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """In order: (the previous frame, this one), both at flow resolution, for ``pair``."""
        cur = self._prepare(rgb)
        prev, self._prev = self._prev, cur
        return prev, cur

    def pair(self, prev: np.ndarray | None, cur: np.ndarray) -> Guide:
        """The guide of ``cur`` after ``prev`` (from ``advance``; None: a clip's first frame).
        Any thread, any order: it reads nothing that ``advance`` changes."""
        h, w = self.size
        if prev is None:
            return _guide(np.zeros((h, w, 2), np.float32), np.zeros((h, w), np.float32), True)
        g_cur = cv2.cvtColor(cur, cv2.COLOR_RGB2GRAY)
        g_prev = cv2.cvtColor(prev, cv2.COLOR_RGB2GRAY)
        back = self._dis(self.preset).calc(g_cur, g_prev, None)  # cur(x) ~ prev(x + back(x))
        # The forward flow only feeds the consistency check, whose tolerance is loose: a cheaper
        # preset there changed nothing measurable (benchmarks/temporal.py at 320x240 and
        # 960x540: E_warp ratio 0.225 -> 0.227 and 0.121 -> 0.122, SSIM the same) and saves a
        # third of the flow's time (benchmarks/render_box.py's flow step, 1080p at 480x270:
        # 42.9 -> 27.0 CPU ms a frame).
        fwd = self._dis(self.check_preset).calc(g_prev, g_cur, None)  # prev(y) ~ cur(y + fwd(y))
        conf = self.confidence(cur, prev, back, fwd)
        if float(conf.mean()) < self.reset_below:    # scene cut: start a new shot
            return _guide(back, np.zeros_like(conf), True)
        return _guide(back, conf, False)

    def _dis(self, preset: str):
        """This thread's DIS instance for ``preset`` (they are not thread-safe)."""
        instances = getattr(self._local, "dis", None)
        if instances is None:
            instances = self._local.dis = {}
        if preset not in instances:
            instances[preset] = cv2.DISOpticalFlow_create(PRESETS[preset])
        return instances[preset]

    def confidence(self, cur: np.ndarray, prev: np.ndarray, back: np.ndarray,
                   fwd: np.ndarray) -> np.ndarray:
        """exp(-(e/sigma)^2) times the forward-backward and in-frame mask eroded 3x3."""
        h, w = self.size
        mx, my = self._gx + back[..., 0], self._gy + back[..., 1]
        warped = cv2.remap(prev, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        diff = cv2.absdiff(warped, cur).astype(np.float32)
        err = (diff[..., 0] + diff[..., 1] + diff[..., 2]) / np.float32(3)  # the mean, in order
        conf = np.exp(-np.square(err / self.sigma))
        # Forward flow at the back-projected point should undo the backward flow.
        f_at = cv2.remap(fwd, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        miss = _squared_norm(f_at + back)
        tol = self.fb_alpha * (_squared_norm(back) + _squared_norm(f_at)) + self.fb_beta
        inside = (mx >= -0.5) & (mx <= w - 0.5) & (my >= -0.5) & (my <= h - 0.5)
        # Erode the binary mask (not the product: a 3x3 minimum of the noisy
        # photometric term would throw away half the good pixels).
        ok = cv2.erode(((miss <= tol) & inside).astype(np.uint8), np.ones((3, 3), np.uint8),
                       borderType=cv2.BORDER_REPLICATE)
        conf = (conf * ok * self._away_from_motion_boundaries(back, err)).astype(np.float32)
        return np.clip(conf, 0.0, 1.0, out=conf)

    def _away_from_motion_boundaries(self, back: np.ndarray, err: np.ndarray) -> np.ndarray | float:
        """Zero within ``boundary_radius`` of a pixel the flow clearly gets wrong
        (error over ``_WRONG_SIGMAS`` sigmas), times exp(-(r/jump)^2), r the spread of the flow
        within that radius.

        A style network paints each pixel from a neighbourhood (halos, strokes
        around edges), so near a moving object the previous output carries
        paint that belongs to the object, not to the background the flow
        follows there: blending it in leaves a comet-like trail.  Pixels near
        an object the flow misses (small objects are below DIS's patch size)
        or whose neighbourhood moves unevenly are therefore trusted less.
        """
        if self.boundary_radius == 0:
            return 1.0
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * self.boundary_radius + 1,) * 2)
        wrong = cv2.dilate((err > _WRONG_SIGMAS * self.sigma).astype(np.uint8), kernel,
                           borderType=cv2.BORDER_REPLICATE)
        spread = np.zeros(back.shape[:2], np.float32)
        for c in range(2):
            channel = np.ascontiguousarray(back[..., c])
            hi = cv2.dilate(channel, kernel, borderType=cv2.BORDER_REPLICATE)
            lo = cv2.erode(channel, kernel, borderType=cv2.BORDER_REPLICATE)
            np.maximum(spread, hi - lo, out=spread)
        return np.exp(-np.square(spread / self.boundary_jump)) * (1 - wrong)

    def _prepare(self, rgb: np.ndarray) -> np.ndarray:
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
            raise ValueError(f"Guider.next expects an H x W x 3 uint8 frame, got {rgb.dtype} "
                             f"{rgb.shape}")
        rgb = np.ascontiguousarray(rgb[..., :3])
        h, w = self.size
        if rgb.shape[:2] == (h, w):
            return rgb.copy()
        return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)


def _squared_norm(v: np.ndarray) -> np.ndarray:
    """|v|^2 of an h x w x 2 field (a sum over a 2-long axis is numpy's slowest reduction)."""
    x, y = v[..., 0], v[..., 1]
    return x * x + y * y


def _guide(flow: np.ndarray, confidence: np.ndarray, reset: bool) -> Guide:
    flow = np.ascontiguousarray(flow, dtype=np.float32)
    confidence = np.ascontiguousarray(confidence, dtype=np.float32)
    flow.flags.writeable = False
    confidence.flags.writeable = False
    return Guide(flow, confidence, reset)
