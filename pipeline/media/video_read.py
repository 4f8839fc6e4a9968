"""Reading video with PyAV: ``probe_video`` and ``read_frames`` (no torch here).

Rules:

* Only the first video stream is read.  ``probe_video`` opens the file and
  decodes its first frame, so an unreadable file, a missing video stream, a
  codec without a decoder and a stream with no frames all fail at probe time
  with ``MediaError(path, reason, stage="decode", hint=...)``.
* Pixel format: every frame is converted by libswscale to 8-bit RGB (rgb24)
  using the frame's own colour matrix and range.  When the matrix is
  unspecified, BT.709 is used for frames at least 720 lines high (coded
  height) and BT.601 below; an unspecified range means limited (MPEG) range,
  except for the yuvj* formats, which are full range.  libswscale itself
  assumes BT.601 for every unspecified frame (PyAV 18 passes the frame's tags
  through), so the BT.709 case is passed explicitly as ``src_colorspace``.
  10- and 12-bit sources are reduced to 8 bits; alpha is dropped.  The
  conversion uses libswscale's default (fast) flags, as ``to_ndarray`` does:
  it reads about 1.3 levels dark on average; the accurate flags remove that
  but cost several times more per frame (the writer uses them, where they are
  cheap).  Transfer
  curve and primaries are not converted: pixels stay in the source's gamut.
* Rotation: a display matrix on the frames (the ``rotate`` tag of phone
  videos) is applied with ``np.rot90``, so frames come out upright and
  ``VideoInfo.width``/``height`` are those of the upright picture.
  ``VideoInfo.rotation`` is the clockwise angle applied (0, 90, 180, 270).
  Flipped display matrices are not supported (the flip is ignored).
* Timestamps: pts are in the stream's time base as stored, except that they
  are made strictly increasing (muxers refuse repeated timestamps): a frame
  whose pts is not after the previous frame's gets the previous one's plus 1
  tick, so raw 5, 6, 6, 6, 7 comes out 5, 6, 7, 8, 9 (the bump cascades).  A
  frame without a pts gets the previous pts plus the previous duration (or
  1/rate).  ``DecodedFrame.pts_adjusted`` says whether any frame so far in
  this decode, this one included, had its pts changed by the bump.
* ``read_frames(info, after_pts=P)`` seeks backward to the keyframe at or
  before P and decodes forward, yielding only frames with (adjusted) pts > P.
  If the first frame decoded after the seek is already past P (an index that
  overshot), or the seek fails, it decodes from the start instead.  Decoding
  from a keyframe is exact, so these frames are bit-identical to the same
  frames of a straight decode, and so are their pts when the file's
  timestamps increase.  Where they repeat or go back, a seek can land on a
  later keyframe with a pts <= P (the index keeps the last of equal
  timestamps), and a bump before P would cascade differently.
* ``read_frames(info, skip=N)`` yields all frames but the first N: it decodes
  from the start and drops N by count (without converting them), which is
  exact whatever the timestamps.  Given ``after_pts=P`` as well (P the pts of
  frame N-1, and no pts up to it bumped: ``pts_adjusted`` false), it seeks
  to P instead, when that is provably the same: exactly N packets of the
  video stream have a pts <= P, so every keyframe the seek can land on is
  among the first N frames.  Counting the packets reads the file but decodes
  nothing.  This is how a clip resumes (see ``pipeline.engine.video``).
* A file that ends early (a truncated Matroska file still opens and decodes
  its first part) is detected when the stream's own duration is known: frames
  ending more than max(3 frames, 0.25 s) short of it raise MediaError.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from pipeline.errors import MediaError, MediaNotFoundError, os_reason

VIDEO_EXTENSIONS: frozenset[str] = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"})

_SWS_ITU709 = 1
_UNSPECIFIED = {"color_primaries": 2, "color_trc": 2, "colorspace": 2, "color_range": 0}


@dataclass(frozen=True)
class VideoInfo:
    """What the pipeline needs to know about a video source (see module docstring)."""

    path: Path
    width: int
    height: int
    frames: int | None
    rate: Fraction
    time_base: Fraction
    start_pts: int
    duration_s: float | None
    rotation: int
    codec: str
    pix_fmt: str
    color_primaries: int | None
    color_trc: int | None
    colorspace: int | None
    color_range: int | None
    has_audio: bool
    audio_codec: str | None


# Sources whose decoded planes can go to the encoder as they are (``read_frames(planes=True)``)
PASS_THROUGH_FORMATS = frozenset({"yuv420p"})


@dataclass(frozen=True)
class Planes:
    """A frame's 8-bit 4:2:0 planes as decoded: Y at full size, U and V at half (rounded up).
    Their matrix and range are the source's, as the reading rule gives them."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        """The picture's (H, W, 3), as an RGB frame of it would have."""
        return (*self.y.shape, 3)

    @classmethod
    def of(cls, frame: av.VideoFrame) -> Planes:
        """Copies of ``frame``'s planes, without their line padding."""
        return cls(*(np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, :p.width].copy()
                     for p in frame.planes))


@dataclass(frozen=True)
class DecodedFrame:
    """One decoded frame: pts/duration in ``VideoInfo.time_base``, upright RGB pixels (or, when
    asked for and possible, the decoded planes as they are: ``planes``, and ``rgb`` None)."""

    pts: int
    duration: int | None
    rgb: np.ndarray | None
    pts_adjusted: bool = False  # some frame up to this one in this decode had its pts bumped
    planes: Planes | None = None


def _open_error(path: Path, exc: Exception) -> MediaError:
    return MediaError(path, f"not a video file PyAV can open: {os_reason(exc)}", stage="decode",
                      hint="check that it is a complete video file (a cut-short MP4 loses its "
                           "index); re-download or re-export it, or remove it from the job")


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise MediaNotFoundError(path, "file not found", stage="decode",
                                 hint="check the path in the job file")
    if path.is_dir():
        raise MediaError(path, "is a directory, not a video file", stage="decode")
    if path.stat().st_size == 0:
        raise MediaError(path, "file is empty (0 bytes)", stage="decode",
                         hint="the copy or download probably failed; fetch the file again")
    try:
        return av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise _open_error(path, exc) from exc


def _video_stream(path: Path, container: av.container.InputContainer,
                  threads: int = 0) -> av.video.stream.VideoStream:
    if not container.streams.video:
        kinds = ", ".join(f"{s.type} {getattr(s.codec_context, 'name', None) or s.codec_tag or '?'}"
                          for s in container.streams) or "none at all"
        raise MediaError(path, f"no video stream (streams: {kinds})", stage="decode",
                         hint="this is not a video; list it under 'images:' or remove it from the job")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise MediaError(path, "no decoder for its video codec in this FFmpeg build", stage="decode",
                         hint="transcode it with ffmpeg to H.264 first")
    stream.thread_type = "AUTO"
    if threads:
        stream.codec_context.thread_count = threads
    return stream


def _tag(value: int, name: str) -> int | None:
    value = int(value)
    return None if value == _UNSPECIFIED[name] else value


def _rotation(frame: av.VideoFrame) -> int:
    """Clockwise degrees to apply so the frame is upright (0, 90, 180, 270)."""
    try:
        ccw = frame.rotation  # counter-clockwise angle of the display matrix
    except Exception:  # noqa: BLE001 - no or malformed display matrix
        return 0
    return int(round(-(ccw or 0) / 90.0)) % 4 * 90


def _first_frame(path: Path, container, stream) -> av.VideoFrame:
    try:
        for frame in container.decode(stream):
            return frame
    except av.FFmpegError as exc:
        raise MediaError(path, f"file is truncated or corrupt: {os_reason(exc)} before the first frame",
                         stage="decode", hint="re-download or re-export the file") from exc
    raise MediaError(path, "no video frames (the video stream is empty)", stage="decode",
                     hint="the file holds no pictures; remove it from the job")


def probe_video(path: Path) -> VideoInfo:
    """Open ``path``, decode its first frame and describe the first video stream."""
    path = Path(path)
    with _open(path) as container:
        stream = _video_stream(path, container)
        ctx = stream.codec_context
        time_base = stream.time_base or Fraction(1, 90000)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate or Fraction(25)
        if stream.duration is not None:
            duration_s = float(stream.duration * time_base)
        elif container.duration is not None:
            duration_s = container.duration / 1_000_000
        else:
            duration_s = None
        if stream.frames:
            frames = int(stream.frames)
        elif duration_s:
            frames = max(1, round(duration_s * rate))
        else:
            frames = None
        audio = container.streams.audio[0] if container.streams.audio else None
        audio_codec = None
        if audio is not None:
            audio_codec = audio.codec_context.name if audio.codec_context else audio.codec_tag
        first = _first_frame(path, container, stream)
        rotation = _rotation(first)
        w, h = first.width, first.height
        if rotation in (90, 270):
            w, h = h, w
        return VideoInfo(
            path=path, width=w, height=h, frames=frames, rate=Fraction(rate),
            time_base=Fraction(time_base),
            start_pts=first.pts if first.pts is not None else (stream.start_time or 0),
            duration_s=duration_s, rotation=rotation, codec=ctx.name,
            pix_fmt=first.format.name,
            color_primaries=_tag(first.color_primaries, "color_primaries"),
            color_trc=_tag(first.color_trc, "color_trc"),
            colorspace=_tag(first.colorspace, "colorspace"),
            color_range=_tag(first.color_range, "color_range"),
            has_audio=audio is not None, audio_codec=audio_codec,
        )


def to_rgb(frame: av.VideoFrame, reformatter: VideoReformatter, rotation: int) -> np.ndarray:
    """The module's pixel-format rule: frame -> upright HxWx3 uint8 C-contiguous RGB."""
    kwargs = {}
    if int(frame.colorspace) == _UNSPECIFIED["colorspace"] and frame.height >= 720:
        kwargs["src_colorspace"] = _SWS_ITU709
    rgb = reformatter.reformat(frame, format="rgb24", **kwargs).to_ndarray()
    if rotation:
        rgb = np.rot90(rgb, k=-(rotation // 90))  # clockwise
    return np.ascontiguousarray(rgb)


def _expected_end(stream) -> float | None:
    """The video stream's own end time in seconds, when the container records it."""
    if stream.duration is not None and stream.time_base:
        start = stream.start_time or 0
        return float((start + stream.duration) * stream.time_base)
    tag = (stream.metadata or {}).get("DURATION")  # Matroska per-track duration
    if tag:
        try:
            h, m, s = tag.split(":")
            return int(h) * 3600 + int(m) * 60 + float(s)
        except ValueError:
            return None
    return None


def _seek(container, stream, target: int) -> bool:
    try:
        container.seek(target, stream=stream, backward=True, any_frame=False)
        return True
    except av.FFmpegError:
        return False


def _seek_is_exact(info: VideoInfo, after_pts: int, skip: int) -> bool:
    """Whether seeking past ``after_pts`` yields the frames after the first ``skip`` (see module
    docstring): exactly ``skip`` video packets have a pts <= ``after_pts``, and none lacks one."""
    try:
        with av.open(str(info.path), mode="r") as container:
            stream = container.streams.video[0]
            count = 0
            for packet in container.demux(stream):
                if not packet.size:
                    continue
                if packet.pts is None:
                    return False
                count += packet.pts <= after_pts
            return count == skip
    except (av.FFmpegError, OSError, IndexError):
        return False  # decoding from the start will say what is wrong, if anything


def read_frames(info: VideoInfo, *, after_pts: int | None = None, skip: int = 0,
                threads: int = 0, planes: bool = False) -> Iterator[DecodedFrame]:
    """Yield the frames of ``info.path`` in presentation order (see module docstring).

    ``threads``: the decoder's threads (0: FFmpeg's choice, every core; the run's thread
    budget passes its share, see pipeline/machine/threads.py; frames are the same either way).
    ``after_pts``: only the frames with pts after it, found by seeking.  ``skip``: all but the
    first ``skip`` frames, counted from the start.  Both: the frames of ``skip``, found by
    seeking to ``after_pts`` where that is exact.  ``planes``: frames in a
    ``PASS_THROUGH_FORMATS`` format, unrotated, come as their planes, unconverted."""
    if after_pts is not None and skip:
        if _seek_is_exact(info, after_pts, skip):
            skip = 0  # seek, and keep the frames after after_pts
        else:
            after_pts = None  # count from the start
    path = info.path
    nominal = max(1, round(1 / (info.rate * info.time_base))) if info.rate else 1
    container = _open(path)
    try:
        stream = _video_stream(path, container, threads)
        reformatter = VideoReformatter()
        seeked = after_pts is not None and after_pts >= info.start_pts and _seek(container, stream, after_pts)
        count = 0  # frames yielded
        decoded = 0  # frames decoded in this pass
        last_pts: int | None = None  # as yielded: strictly increasing
        last_dur: int | None = None
        adjusted = False  # some pts so far in this pass was bumped
        frames = container.decode(stream)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except av.FFmpegError as exc:
                where = f"after frame {decoded}" if after_pts is None else f"after frame {count} past pts {after_pts}"
                raise MediaError(path, f"file is truncated or corrupt: {os_reason(exc)} {where}", stage="decode",
                                 hint="re-download or re-export the file; the frames before it were fine") from exc
            pts = frame.pts
            if pts is None:
                pts = info.start_pts if last_pts is None else last_pts + (last_dur or nominal)
            duration = frame.duration or None
            if seeked and decoded == 0 and pts > after_pts:
                # The index put us past the target: we might miss frames.  Start over from the top.
                container.close()
                container = _open(path)
                stream = _video_stream(path, container, threads)
                frames = container.decode(stream)
                seeked = False
                continue
            if last_pts is not None and pts <= last_pts:  # repeated or decreasing: muxers refuse it
                pts = last_pts + 1
                adjusted = True
            decoded += 1
            last_pts, last_dur = pts, duration
            if (after_pts is not None and pts <= after_pts) or decoded <= skip:
                continue
            if planes and not info.rotation and frame.format.name in PASS_THROUGH_FORMATS:
                yield DecodedFrame(pts=pts, duration=duration, rgb=None, pts_adjusted=adjusted,
                                   planes=Planes.of(frame))
            else:
                yield DecodedFrame(pts=pts, duration=duration, pts_adjusted=adjusted,
                                   rgb=to_rgb(frame, reformatter, info.rotation))
            count += 1
        if decoded == 0 and after_pts is None:
            raise MediaError(path, "no video frames (the video stream is empty)", stage="decode",
                             hint="the file holds no pictures; remove it from the job")
        _check_complete(info, stream, last_pts, last_dur or nominal, nominal,
                        decoded if after_pts is None else count)
    finally:
        container.close()


def _check_complete(info: VideoInfo, stream, last_pts: int | None, last_dur: int, nominal: int,
                    count: int) -> None:
    expected = _expected_end(stream)
    if expected is None or last_pts is None:
        return
    got = float((last_pts + last_dur) * info.time_base)
    slack = max(3 * float(nominal * info.time_base), 0.25)
    if got < expected - slack:
        raise MediaError(info.path, f"file is truncated or corrupt: the video stops at {got:.2f} s but the "
                         f"container says {expected:.2f} s, after frame {count}", stage="decode",
                         hint="re-download or re-export the file")
