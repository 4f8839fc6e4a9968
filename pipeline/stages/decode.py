"""decode: a source file -> uint8 array, HxWx3 RGB or HxWx4 RGBA.

The conversion rules (EXIF orientation, grayscale, palette, 16-bit, CMYK)
live in ``pipeline.media.images`` and are quoted in the README.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..media.images import read_image
from .base import Stage
from .registry import register


@register
class Decode(Stage):
    name = "decode"
    kind = "decode"

    def read(self, path: Path) -> np.ndarray:
        return read_image(path)
