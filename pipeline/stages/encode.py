"""encode: a uint8 array -> an image file in the format the job names."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Literal

import numpy as np

from ..media.images import output_suffix, resolve_format, write_image
from ..typed_yaml import ParamError
from .base import Stage
from .registry import register


@dataclass(frozen=True)
class ImageEncodeParams:
    format: Literal["same", "png", "jpg", "webp", "bmp", "tiff"] = "same"
    quality: int | None = None  # jpg / webp, 1..100; None: the format's default (95)
    lossless: bool = False  # webp only

    def __post_init__(self) -> None:
        if self.quality is not None and not 1 <= self.quality <= 100:
            raise ParamError("quality", f"quality must be between 1 and 100, got {self.quality}")
        if self.lossless and self.format not in ("webp", "same"):
            raise ParamError("lossless", "lossless applies to webp only")


@dataclass(frozen=True)
class EncodeParams:
    image: ImageEncodeParams = field(default_factory=ImageEncodeParams)


@register
class Encode(Stage):
    name = "encode"
    kind = "encode"
    Params = EncodeParams

    def output_relpath(self, source_rel: PurePath) -> PurePath:
        """Same relative folder and stem; the suffix follows the format."""
        return source_rel.with_suffix(output_suffix(self.params.image.format, source_rel.suffix))

    def write(self, image: np.ndarray, path: Path, source_suffix: str) -> None:
        """Write to ``path`` exactly (a temporary name chosen by the executor)."""
        opts = self.params.image
        write_image(image, path, resolve_format(opts.format, source_suffix),
                    quality=opts.quality, lossless=opts.lossless)
