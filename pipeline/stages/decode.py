"""decode: the head of every chain: a source unit -> uint8 frames, HxWx3 RGB (HxWx4 RGBA for images).

The reading itself belongs to the unit's source (``pipeline.sources``: image
files, video files, ...), which the engine asks; this stage marks where the
chain starts and names the step in messages.  The conversion rules (EXIF
orientation, grayscale, palette, 16-bit, CMYK for images; pixel formats,
10-bit, rotation and timestamps for video) live in ``pipeline.media`` and are
quoted in docs/images.md and docs/video.md.
"""
from __future__ import annotations

from .base import Stage
from .registry import register


@register
class Decode(Stage):
    name = "decode"
    kind = "decode"
    computes = False
