"""``- images: photos/``: image files (a file, a folder tree or a glob), each read whole."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..media.images import IMAGE_EXTENSIONS, read_image
from .base import Source
from .registry import register_source


@register_source
class ImageFiles(Source):
    key = "images"
    way = "image"
    extensions = IMAGE_EXTENSIONS

    def read(self, path: Path) -> np.ndarray:
        return read_image(path)
