"""Video in and out with PyAV (no torch): the public names of the video media layer.

Reading rules are in :mod:`pipeline.media.video_read`, writing rules in
:mod:`pipeline.media.video_write`, encode options in :mod:`pipeline.media.video_options`.
"""
from pipeline.media.video_options import (
    CONTAINER_FORMATS,
    VideoEncodeOptions,
    VideoOptionsError,
    output_suffix,
)
from pipeline.media.video_read import (PASS_THROUGH_FORMATS, VIDEO_EXTENSIONS, DecodedFrame, Planes,
                                       VideoInfo, probe_video, read_frames)
from pipeline.media.video_write import SegmentWriter, join_segments

__all__ = [
    "CONTAINER_FORMATS", "PASS_THROUGH_FORMATS", "VIDEO_EXTENSIONS", "DecodedFrame", "Planes",
    "SegmentWriter", "VideoEncodeOptions",
    "VideoInfo", "VideoOptionsError", "join_segments", "output_suffix", "probe_video", "read_frames",
]
