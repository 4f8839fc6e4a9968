"""A clip in flight and what travels with its frames through the video way (``video.py``):
the reader's ``Frame`` data, the device's ``Computed`` frames for the writer, and the
helpers both ends share (device colour conversion, a saved scratch part read back)."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..hashing import read_sha256
from ..job.plan import Unit
from ..media.video import Planes, VideoInfo
from ..media.video_write import colour_plan
from ..ops.colour_host import MATRICES
from ..record.commits import load_state

if TYPE_CHECKING:
    from ..stages.temporal_smooth import ClipState


@dataclass
class Clip:
    """One clip in flight, set up by ``open`` (``smoothing.prev_out`` then belongs to the
    device thread, ``smoothing.guider`` to the reader)."""

    unit: Unit
    info: VideoInfo
    segment_frames: int
    first_segment: int  # the index of the first segment this run writes
    frames_before: int  # frames already committed by earlier runs
    smoothing: ClipState | None  # the temporal stage's state for this clip (None without one)
    scratch: list = field(default_factory=list)  # saved parts of the open segment, to replay
    resume_from: object = None  # the last Segment or Scratch committed (None: from the start)
    encoders: int = 1  # its segments encoded at once, at most
    # (matrix, full range) of its 4:2:0 frames when the device converts them (pipeline.ops.colour)
    colour: tuple[int, bool] | None = None
    smooth_planes: bool = False  # temporal_smooth runs on its 4:2:0 planes (VideoWay._smooth_planes)
    # the writer is due to save the open segment's frames: the device keeps the state it needs
    want_state: threading.Event = field(default_factory=threading.Event)
    # set by the reader once the clip's frames are all read (before the engine's unit end):
    end_input_state: np.ndarray | None = None  # the guider's state after the last frame
    end_pts_adjusted: bool = False

    @property
    def name(self) -> str:
        return self.unit.key


@dataclass(frozen=True)
class Frame:
    """A piece's ``data``: what the writer needs beside the pixels."""

    pts: int
    duration: int | None
    guide: object  # the temporal guide, a Future of the flow pool (None without a temporal stage)
    pts_adjusted: bool  # the reader bumped some pts of the clip up to this frame
    # the guider's state after this frame, taken at a segment's end or when the writer wants
    # a state (after a frame it is never None, so None here means "not taken")
    input_state: np.ndarray | None = None


@dataclass
class Computed:
    """Consecutive output frames of one clip, what ``run`` hands the clip's writer."""

    frames: np.ndarray  # uint8 N x H x W x 3 (N may be 0: the end of a clip)
    pts: list[int]
    durations: list[int | None]
    ends_segment: bool
    last: bool  # the clip's end
    pts_adjusted: bool
    state: dict[str, np.ndarray] | None  # the state after the last frame, at a commit point


def device_colour(info: VideoInfo) -> tuple[int, bool] | None:
    """(matrix, full range) for converting a clip's 4:2:0 frames on the device, by the reading
    and writing rules (``colour_plan``); None for a matrix only libswscale converts."""
    tags = colour_plan(info)[2]
    if tags["colorspace"] not in MATRICES:
        return None
    return tags["colorspace"], tags["color_range"] == 2


def scratch_frames(images: list) -> np.ndarray | dict[str, np.ndarray]:
    """What a scratch part saves of its frames (``load_scratch`` reads it back): RGB stacked,
    or the decoder's planes stacked plane by plane."""
    if isinstance(images[0], Planes):
        return {name: np.stack([getattr(p, name) for p in images]) for name in "yuv"}
    return np.stack(images)


def load_scratch(path: Path) -> list[tuple[np.ndarray | Planes, int, int | None]]:
    """A scratch part's frames: RGB (``frames``), or the decoder's planes (``y``, ``u``, ``v``)."""
    with np.load(path) as data:
        if "frames" in data.files:
            images = list(data["frames"])
        else:
            images = [Planes(y, u, v) for y, u, v in zip(data["y"], data["u"], data["v"])]
        return [(image, int(pts), None if duration < 0 else int(duration))
                for image, pts, duration in zip(images, data["pts"], data["durations"])]


def resume_problem(last, scratch: list, smoothing, segments: list = ()) -> str:
    """Why a clip's resume files cannot be used ("" when they can): each segment, scratch part
    and state file must hold what the ledger's checksum says was saved (a file of the right
    shape and other content, black frames, would otherwise pass), the state must load and fit
    the smoothing (``load_state_dict``), and each saved part of the open segment must load:
    garbage, a cut file, a pickle or a missing key each failed every rerun before.  Once per
    resumed clip; the parts are read again when replayed (a few seconds of frames)."""
    checked = [(saved.path, saved.sha256) for saved in (*segments, *scratch)]
    if last is not None:  # only the resume point's state is kept
        checked.append((last.state, last.state_sha256))
    for path, digest in checked:
        try:
            if path is not None and digest is not None and read_sha256(path) != digest:
                return f"{path.name} is not the file that was saved (its SHA-256 differs)"
        except OSError as exc:
            return f"{path.name} cannot be read ({exc.strerror or exc})"
    try:
        state = load_state(last.state) if last is not None and last.state is not None else None
        if smoothing is not None:
            smoothing.load_state_dict(state)
        for part in scratch:
            load_scratch(part.path)
    except Exception as exc:  # noqa: BLE001 - whatever a damaged file raises
        return f"a resume file does not load ({type(exc).__name__}: {exc})"
    return ""
