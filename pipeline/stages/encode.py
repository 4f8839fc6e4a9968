"""encode: uint8 frames -> files: an image in the format the job names, or a video.

A video is written in segments (``open_segment``), each its own small file
that the engine commits as it closes, and joined with the source's audio
once all are done (``join``).  The codec work lives in ``pipeline.media``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePath, PurePosixPath
from typing import Literal

import numpy as np

from ..media.images import (ImageHeader, encode_image, output_suffix, resolve_format, unorient,
                            write_image)
from ..ops.resize import resize_to
from ..media.video import (CONTAINER_FORMATS, SegmentWriter, VideoEncodeOptions, VideoInfo,
                           join_segments)
from ..media.video import output_suffix as video_suffix
from ..typed_yaml import ParamError
from .base import Stage
from .registry import register


@dataclass(frozen=True)
class ImageEncodeParams:
    format: Literal["same", "png", "jpg", "webp", "bmp", "tiff"] = "same"
    quality: int | None = None  # jpg / webp, 1..100; None: the format's default (95)
    lossless: bool = False  # webp only
    # stages: as the stages made it; source: the source's width and height exactly (resized
    # back after the model), so labels in pixel coordinates stay valid
    size: Literal["stages", "source"] = "stages"
    # apply: written upright (EXIF orientation applied, no tag); keep: as the source stores it,
    # with its orientation tag (the model still sees it upright); auto: keep with size: source
    orientation: Literal["auto", "apply", "keep"] = "auto"

    def __post_init__(self) -> None:
        if self.quality is not None and not 1 <= self.quality <= 100:
            raise ParamError("quality", f"quality must be between 1 and 100, got {self.quality}")
        if self.lossless and self.format not in ("webp", "same"):
            raise ParamError("lossless", "lossless applies to webp only")
        if self.keeps_orientation and self.format == "bmp":
            raise ParamError("orientation", "BMP cannot hold an EXIF orientation tag: write png, "
                                            "jpg, webp or tiff, or set orientation: apply")

    @property
    def keeps_orientation(self) -> bool:
        return self.orientation == "keep" or (self.orientation == "auto" and self.size == "source")

    @property
    def needs_source_header(self) -> bool:
        """Whether writing an image needs its source's size and orientation (``ImageHeader``)."""
        return self.size == "source" or self.keeps_orientation


@dataclass(frozen=True)
class EncodeParams:
    image: ImageEncodeParams = field(default_factory=ImageEncodeParams)
    video: VideoEncodeOptions = field(default_factory=VideoEncodeOptions)
    # copy: the source's audio packets as they are (re-encoded only where the
    # output container cannot hold that codec); none: no audio track
    audio: Literal["copy", "none"] = "copy"


@register
class Encode(Stage):
    name = "encode"
    kind = "encode"
    computes = False
    Params = EncodeParams

    def output_relpath(self, source_rel: PurePath, kind: str = "image") -> PurePath:
        """Same relative folder and stem; the suffix follows the format (or container).  A tar
        shard keeps its name (its image members' names follow the format: ``member_name``)."""
        if kind == "shard":
            return source_rel
        if kind == "video":
            return source_rel.with_suffix(video_suffix(self.params.video, source_rel.suffix))
        return source_rel.with_suffix(output_suffix(self.params.image.format, source_rel.suffix))

    def write(self, image: np.ndarray, path: Path, source_suffix: str,
              source: ImageHeader | None = None) -> tuple[int, int]:
        """Write to ``path`` exactly (a temporary name chosen by the engine).  ``source``: the
        source's header, where ``image.needs_source_header`` (upright pixels come in).
        Returns the (width, height) written, as stored."""
        opts = self.params.image
        image, orientation = self._as_stored(image, source)
        write_image(image, path, resolve_format(opts.format, source_suffix),
                    quality=opts.quality, lossless=opts.lossless, orientation=orientation)
        return image.shape[1], image.shape[0]

    def image_bytes(self, image: np.ndarray, name: str, source: ImageHeader | None = None
                    ) -> tuple[bytes, tuple[int, int]]:
        """``write``'s file in memory, for an image named ``name`` in its source (a member of a
        tar shard: its suffix says the source's format); with the (width, height) written."""
        opts = self.params.image
        image, orientation = self._as_stored(image, source)
        data = encode_image(image, resolve_format(opts.format, PurePath(name).suffix),
                            quality=opts.quality, lossless=opts.lossless,
                            orientation=orientation, path=name)
        return data, (image.shape[1], image.shape[0])

    def member_name(self, name: str) -> str:
        """An image member's name in an output shard: the suffix follows the format, the rest
        (the sample's key, the field) stays: ``a/b.left.jpg`` -> ``a/b.left.png``; a name whose
        suffix already says the format is kept as it is (``a.JPG`` stays, not ``a.jpg``)."""
        source = PurePosixPath(name)
        out = self.output_relpath(source, "image")
        return name if out.suffix.lower() == source.suffix.lower() else out.as_posix()

    def _as_stored(self, image: np.ndarray, source: ImageHeader | None
                   ) -> tuple[np.ndarray, int]:
        """At the source's size and orientation where asked: (pixels, EXIF orientation)."""
        opts = self.params.image
        orientation = 1
        if source is not None:
            if opts.size == "source":
                image = resize_to(image, source.width, source.height)
            if opts.keeps_orientation:
                image, orientation = unorient(image, source.orientation), source.orientation
        return image, orientation

    # -- video --------------------------------------------------------------
    def container_format(self, output: PurePath) -> str:
        return CONTAINER_FORMATS[output.suffix.lower()]

    def open_segment(self, path: Path, info: VideoInfo, output: PurePath) -> SegmentWriter:
        """A writer for one segment at ``path``, in the final output's container."""
        return SegmentWriter(path, info, self.params.video, self.container_format(output))

    def join(self, segments: list[Path], info: VideoInfo, path: Path, output: PurePath) -> None:
        """The segments, in order, plus the source's audio, into ``path`` (a temporary name)."""
        join_segments(segments, info, path, self.container_format(output), audio=self.params.audio)
