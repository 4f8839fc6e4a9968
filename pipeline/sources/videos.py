"""``- videos: clips/``: video files (a file, a folder tree or a glob), decoded frame by frame."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ..media.video import DecodedFrame, VideoInfo, probe_video, read_frames
from ..media.video_read import VIDEO_EXTENSIONS
from .base import Source
from .registry import register_source


@register_source
class VideoFiles(Source):
    key = "videos"
    way = "video"
    extensions = VIDEO_EXTENSIONS

    def probe(self, path: Path) -> VideoInfo:
        return probe_video(path)

    def frames(self, info: VideoInfo, *, after_pts: int | None, skip: int, threads: int,
               planes: bool = False) -> Iterator[DecodedFrame]:
        """Frames in presentation order, pts strictly increasing; to resume, all but the first
        ``skip``, found by seeking past ``after_pts`` (the last skipped frame's) where exact;
        ``threads`` for the decoder (0: FFmpeg's choice); ``planes``: 4:2:0 frames unconverted."""
        return read_frames(info, after_pts=after_pts, skip=skip, threads=threads, planes=planes)
