"""decode: a source file -> uint8 frames, HxWx3 RGB (or HxWx4 RGBA for images).

The conversion rules (EXIF orientation, grayscale, palette, 16-bit, CMYK for
images; pixel formats, 10-bit, rotation and timestamps for video) live in
``pipeline.media`` and are quoted in the README.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from ..media.images import read_image
from ..media.video import DecodedFrame, VideoInfo, probe_video, read_frames
from .base import Stage
from .registry import register


@register
class Decode(Stage):
    name = "decode"
    kind = "decode"

    def read(self, path: Path) -> np.ndarray:
        return read_image(path)

    def probe(self, path: Path) -> VideoInfo:
        return probe_video(path)

    def frames(self, info: VideoInfo, after_pts: int | None = None, skip: int = 0,
               threads: int = 0) -> Iterator[DecodedFrame]:
        """Frames in presentation order, pts strictly increasing; to resume, all but the first
        ``skip``, found by seeking past ``after_pts`` (the last skipped frame's) where exact;
        ``threads`` for the decoder (0: FFmpeg's choice)."""
        return read_frames(info, after_pts=after_pts, skip=skip, threads=threads)
