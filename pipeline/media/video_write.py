"""Writing video with PyAV: ``SegmentWriter`` encodes segments, ``join_segments`` remuxes them.

Rules:

* Each segment is its own file, encoded by a fresh encoder (so it starts with a
  keyframe and segments can be encoded in any order or in parallel).  Frames
  keep their source pts in the source's time base, so a variable frame rate
  survives (Matroska and WebM store milliseconds: pts are rounded to 1 ms
  there).  AVI cannot store B-frames or free timestamps: for AVI the encoder
  gets no B-frames and a 1/rate time base, and pts are rounded to frame slots.
* Colour: RGB goes to ``pix_fmt`` with the source's matrix and range, chosen by
  the reading rule (tagged matrix; else BT.709 at >= 720 coded lines, else
  BT.601; limited range unless the source is full range).  The output is
  always tagged with the matrix and range used; primaries and transfer are the
  source's, or BT.709 for untagged HD sources.  RGB pixel formats (gbrp...)
  get no matrix.
* Rotation: frames arrive upright, so no display matrix is written.
* ``join_segments`` copies the segments' video packets, in order, into one
  file (no re-encode) and adds the source's first audio track: copied, or
  re-encoded to AAC (Opus for WebM) when the container cannot hold its codec.
  Decode timestamps are forced strictly increasing across joins.
* Frame size: chroma-subsampled pixel formats need even sides (4:2:0 both,
  4:2:2 and 4:1:1 the width).  ``check_frame_size`` is the rule; the writer
  applies it to its first frame, and the video way to each clip's output
  size before decoding it, so an odd-sized clip fails at once.
* Encoder and muxer failures raise ``MediaError(path, reason, stage="encode")``.
"""
from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from pipeline.errors import MediaError, os_reason
from pipeline.media.video_options import VideoEncodeOptions, muxer_accepts, parse_bitrate
from pipeline.media.video_read import Planes, VideoInfo

# libswscale flags for RGB -> YUV: SWS_BILINEAR | SWS_FULL_CHR_H_INT | SWS_FULL_CHR_H_INP |
# SWS_ACCURATE_RND.  Measured at 1080p: about the cost of the default flags in this direction, and
# an RGB -> YUV -> RGB round trip's mean error drops from -1.3 levels to under 0.1.
ENCODE_SWS_FLAGS = 0x2 | 0x2000 | 0x4000 | 0x40000
_SWS = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}  # AVCOL_SPC_* -> SWS_CS_* matrix


def colour_plan(info: VideoInfo) -> tuple[int, int, dict[str, int]]:
    """(swscale matrix, AVColorRange, codec colour tags) for encoding frames of ``info``'s source."""
    coded_height = info.width if info.rotation in (90, 270) else info.height
    hd = coded_height >= 720
    spc = info.colorspace if info.colorspace in _SWS else (1 if hd else 6)
    rng = 2 if info.color_range == 2 else 1
    tags = {"colorspace": spc, "color_range": rng}
    for name in ("color_primaries", "color_trc"):
        value = getattr(info, name)
        if value is None and hd:
            value = 1
        if value is not None:
            tags[name] = value
    return _SWS[spc], rng, tags


def _muxer_options(container_format: str, time_base: Fraction) -> dict[str, str]:
    """``bitexact``: Matroska and WebM otherwise write random segment and track UIDs (every run a
    different file), and every muxer stamps FFmpeg's version (an upgrade would change the bytes).
    MP4/MOV write a start offset as an edit in the movie time scale (1/1000 by default), which
    rounds a segment's first pts (4096/12288 s came back as 4092): use the track's time scale."""
    options = {"fflags": "+bitexact"}
    if container_format in ("mp4", "mov") and time_base.numerator == 1:
        scale = time_base.denominator
        while scale < 10000:  # movenc's own rule for the track time scale
            scale *= 2
        options["movie_timescale"] = str(scale)
    return options


def _encode_error(path: Path, exc: Exception, what: str) -> MediaError:
    return MediaError(path, f"{what}: {os_reason(exc)}", stage="encode",
                      hint="check the encoder options (codec, pix_fmt, crf/bitrate) and free disk space")


def check_frame_size(width: int, height: int, opts: VideoEncodeOptions, path: Path, *,
                     source: tuple[int, int] | None = None) -> None:
    """Raise MediaError(path, stage="encode") unless ``opts.pix_fmt`` can hold ``width`` x ``height``
    frames: chroma-subsampled formats need an even width (4:2:0, 4:2:2, 4:1:1, nv*) and, for
    4:2:0, an even height.  ``source``: the (width, height) the frames were made from, named in
    the reason when the stages changed it.  The remedy is in the reason itself, so a run's
    summary line shows it."""
    fmt = opts.pix_fmt
    odd = []
    if ("420" in fmt or "422" in fmt or "411" in fmt or fmt.startswith("nv")) and width % 2:
        odd.append("width")
    if ("420" in fmt or fmt in ("nv12", "nv21")) and height % 2:
        odd.append("height")
    if not odd:
        return
    made = f" (made from the {source[0]}x{source[1]} source by the stages)" \
        if source is not None and tuple(source) != (width, height) else ""
    raise MediaError(path, f"pix_fmt {fmt} needs an even {' and '.join(odd)}, but the frames to encode are "
                     f"{width}x{height}{made}; make the sides even with resize's multiple_of (e.g. the "
                     f"stage resize: {{scale: 1, multiple_of: 2}} before encode) or use pix_fmt yuv444p",
                     stage="encode")


class SegmentWriter:
    """Encodes one segment of frames to its own file: ``path`` (any name, e.g. ``.00003.mp4.partial``),
    muxer ``container_format`` (a CONTAINER_FORMATS value)."""

    def __init__(self, path: Path, info: VideoInfo, opts: VideoEncodeOptions, container_format: str) -> None:
        self.path = Path(path)
        self.info = info
        self.opts = opts
        self.container_format = container_format
        self._out = None
        self._stream = None
        self._size: tuple[int, int] | None = None
        self._reformatter = VideoReformatter()
        self._is_rgb = av.VideoFormat(opts.pix_fmt).is_rgb
        self._matrix, self._range, self._tags = colour_plan(info)
        self._avi = container_format == "avi"
        self._time_base = Fraction(1, 1) / info.rate if self._avi else info.time_base
        self._last_pts: int | None = None
        self._frames = 0

    def _open(self, width: int, height: int) -> None:
        fmt = self.opts.pix_fmt
        check_frame_size(width, height, self.opts, self.path)
        try:
            self._out = av.open(str(self.path), mode="w", format=self.container_format,
                                container_options=_muxer_options(self.container_format, self._time_base))
            stream = self._out.add_stream(self.opts.codec, rate=self.info.rate)
            stream.width, stream.height, stream.pix_fmt = width, height, fmt
            stream.time_base = self._time_base
            ctx = stream.codec_context
            ctx.time_base = self._time_base
            ctx.thread_count = self.opts.threads
            if self.opts.bitrate is not None:
                ctx.bit_rate = parse_bitrate(self.opts.bitrate)
            if self._avi:
                ctx.max_b_frames = 0
            ctx.options = self.opts.codec_options()
            if not self._is_rgb:
                for name, value in self._tags.items():
                    setattr(ctx, name, value)
            self._stream = stream
            # The header now (as the first mux would): the file exists from the first frame,
            # not only once the encoder's lookahead gives a packet (a watcher sees it encode).
            self._out.start_encoding()
        except (av.FFmpegError, ValueError, OSError) as exc:
            self.abort()
            raise _encode_error(self.path, exc, f"cannot start the {self.opts.codec} encoder") from exc
        self._size = (width, height)

    def write(self, rgb: np.ndarray | Planes, pts: int, duration: int | None) -> None:
        """Encode one upright HxWx3 uint8 RGB frame with its source pts (in ``info.time_base``);
        or the source's own 4:2:0 planes (``Planes``), as they are, when ``pix_fmt`` is yuv420p."""
        planes = rgb if isinstance(rgb, Planes) else None
        if planes is not None and self.opts.pix_fmt != "yuv420p":
            raise ValueError(f"planes go to a yuv420p encoder only, not {self.opts.pix_fmt}")
        if planes is None and (rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8):
            raise ValueError(f"SegmentWriter.write wants HxWx3 uint8 RGB, got {rgb.shape} {rgb.dtype}")
        height, width = rgb.shape[:2]
        if self._out is None:
            self._open(width, height)
        elif (width, height) != self._size:
            raise MediaError(self.path, f"frame size changed from {self._size[0]}x{self._size[1]} to "
                             f"{width}x{height} within a segment", stage="encode",
                             hint="every frame of a video must be resized to the same size")
        if self._avi:  # frame slots of 1/rate
            pts = round((pts - self.info.start_pts) * self.info.time_base / self._time_base)
            if self._last_pts is not None and pts <= self._last_pts:
                pts = self._last_pts + 1
            duration = None
        self._last_pts = pts
        try:
            if planes is not None:  # the source's planes: its matrix and range, which the tags say
                frame = _frame_of(planes)
                for name, value in self._tags.items():
                    setattr(frame, name, value)
            else:
                frame = self._from_rgb(rgb)
            frame.pts = pts
            frame.time_base = self._time_base
            if duration:
                frame.duration = duration
            self._out.mux(self._stream.encode(frame))
        except av.FFmpegError as exc:
            self.abort()
            raise _encode_error(self.path, exc, f"encoding frame {self._frames} (pts {pts}) failed") from exc
        self._frames += 1

    def _from_rgb(self, rgb: np.ndarray) -> av.VideoFrame:
        """RGB to ``pix_fmt`` through libswscale, with the source's matrix and range."""
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        if self._is_rgb:
            return self._reformatter.reformat(frame, format=self.opts.pix_fmt,
                                              interpolation=ENCODE_SWS_FLAGS)
        frame = self._reformatter.reformat(frame, format=self.opts.pix_fmt, dst_colorspace=self._matrix,
                                           dst_color_range=self._range, interpolation=ENCODE_SWS_FLAGS)
        for name, value in self._tags.items():
            setattr(frame, name, value)
        return frame

    def close(self) -> None:
        """Flush the encoder and close the file."""
        if self._out is None:
            raise MediaError(self.path, "no frames were written to this segment", stage="encode")
        try:
            self._out.mux(self._stream.encode(None))
            self._out.close()
        except av.FFmpegError as exc:
            self.abort()
            raise _encode_error(self.path, exc, "finishing the segment failed") from exc
        self._out = None

    def abort(self) -> None:
        """Close without flushing or caring about errors (for error paths); the file may be partial."""
        out, self._out = self._out, None
        if out is not None:
            try:
                out.close()
            except Exception:  # noqa: BLE001 - already failing
                pass

    def __enter__(self) -> SegmentWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _frame_of(planes: Planes) -> av.VideoFrame:
    """A yuv420p frame holding ``planes`` (copied into its padded lines)."""
    height, width = planes.y.shape
    frame = av.VideoFrame(width, height, "yuv420p")
    for plane, values in zip(frame.planes, (planes.y, planes.u, planes.v)):
        lines = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        lines[:, :plane.width] = values
    return frame


def _rescale(value: int | None, src: Fraction, dst: Fraction) -> int | None:
    return None if value is None else round(value * src / dst)


def _video_packets(segments: list[Path], ostream, out_path: Path) -> Iterator[tuple[float, av.Packet]]:
    """The segments' video packets in order, rescaled to the output time base, dts strictly increasing."""
    dst = ostream.time_base
    prev_dts: int | None = None
    reference = None
    for index, seg in enumerate(segments):
        try:
            container = av.open(str(seg))
        except (av.FFmpegError, OSError) as exc:
            raise MediaError(out_path, f"segment {index} ({seg.name}) cannot be opened: {os_reason(exc)}", stage="encode",
                             hint="run again: the segment will be encoded anew") from exc
        with container:
            if not container.streams.video:
                raise MediaError(out_path, f"segment {index} ({seg.name}) has no video stream", stage="encode")
            stream = container.streams.video[0]
            params = (stream.codec_context.name, stream.width, stream.height, bytes(stream.codec_context.extradata or b""))
            if reference is None:
                reference = params
            elif params != reference:
                raise MediaError(out_path, f"segment {index} ({seg.name}) was encoded with other parameters "
                                 f"({params[:3]} vs {reference[:3]} or different codec headers)", stage="encode",
                                 hint="the options or frame size changed between runs; restart this video")
            src = stream.time_base
            packets = [p for p in container.demux(stream) if p.size]
            if any(p.dts is None for p in packets):
                if any(p.pts is None for p in packets):
                    raise MediaError(out_path, f"segment {index} ({seg.name}) has packets without timestamps",
                                     stage="encode", hint="restart this video")
                _fill_dts(packets)
            for packet in packets:
                pts, dts = _rescale(packet.pts, src, dst), _rescale(packet.dts, src, dst)
                if prev_dts is not None and dts <= prev_dts:
                    dts = prev_dts + 1
                    if pts is not None and dts > pts:
                        raise MediaError(out_path, f"segment {index} ({seg.name}) overlaps the previous one "
                                         f"in time (dts {dts} > pts {pts})", stage="encode",
                                         hint="restart this video")
                prev_dts = dts
                packet.pts, packet.dts = pts, dts
                packet.time_base = dst
                packet.stream = ostream
                yield float(dts * dst), packet


def _fill_dts(packets: list[av.Packet]) -> None:
    """Give every packet a dts (Matroska stores none for reordered frames): dts_i is the i-th
    smallest pts shifted back by the reorder delay, so dts <= pts and dts increases strictly."""
    pts = [p.pts for p in packets]
    order = sorted(pts)
    rank = {v: i for i, v in enumerate(order)}
    delay = max(0, max(i - rank[v] for i, v in enumerate(pts)))
    step = min((b - a for a, b in zip(order, order[1:]) if b > a), default=1)
    for i, packet in enumerate(packets):
        packet.dts = order[i - delay] if i >= delay else order[0] - (delay - i) * step


def _audio_packets(source: av.container.InputContainer, astream, reencode: bool) -> Iterator[tuple[float, av.Packet]]:
    src = source.streams.audio[0]
    if not reencode:
        for packet in source.demux(src):
            if packet.size == 0 or packet.pts is None and packet.dts is None:
                continue
            key = packet.dts if packet.dts is not None else packet.pts
            packet.stream = astream
            yield float(key * src.time_base), packet
        return
    def encoded(frame):
        for packet in astream.encode(frame):
            key = packet.dts if packet.dts is not None else packet.pts
            yield (float(key * packet.time_base) if key is not None else 0.0), packet
    for frame in source.decode(src):
        yield from encoded(frame)
    yield from encoded(None)


def _merge(a: Iterator, b: Iterator) -> Iterator[av.Packet]:
    """Interleave two (seconds, packet) streams by time."""
    sentinel = (float("inf"), None)
    x, y = next(a, sentinel), next(b, sentinel)
    while x[1] is not None or y[1] is not None:
        if y[1] is None or (x[1] is not None and x[0] <= y[0]):
            yield x[1]
            x = next(a, sentinel)
        else:
            yield y[1]
            y = next(b, sentinel)


def join_segments(segments: list[Path], info: VideoInfo, out_path: Path, container_format: str, *,
                  audio: str = "copy") -> None:
    """Remux the segments' video, in order, and the source's audio into ``out_path`` (see module docstring)."""
    if not segments:
        raise MediaError(out_path, "no segments to join", stage="encode")
    if audio not in ("copy", "none"):
        raise ValueError(f"audio must be 'copy' or 'none', not {audio!r}")
    out_path = Path(out_path)
    source = None
    if audio == "copy" and info.has_audio:
        try:
            source = av.open(str(info.path))
        except (av.FFmpegError, OSError) as exc:
            raise MediaError(info.path, f"cannot reopen the source for its audio: {os_reason(exc)}", stage="encode",
                             hint="the source changed or vanished during the run") from exc
    try:
        with av.open(str(segments[0])) as first:
            template = first.streams.video[0]
            reencode = source is not None and not muxer_accepts(
                container_format, source.streams.audio[0].codec_context.name)
            try:
                out, ostream, astream = _open_output(out_path, container_format, template, source, reencode)
            except av.FFmpegError:
                if source is None or reencode:
                    raise
                # The muxer refused the copied audio in its header: re-encode it instead.
                reencode = True
                out, ostream, astream = _open_output(out_path, container_format, template, source, reencode)
        try:
            video = _video_packets(segments, ostream, out_path)
            sound = _audio_packets(source, astream, reencode) if astream is not None else iter(())
            for packet in _merge(video, sound):
                out.mux(packet)
        finally:
            out.close()
    except av.FFmpegError as exc:
        raise MediaError(out_path, f"joining {len(segments)} segments failed: {os_reason(exc)}", stage="encode",
                         hint="check free disk space; run again to retry") from exc
    finally:
        if source is not None:
            source.close()


def _open_output(out_path: Path, container_format: str, template, source, reencode: bool):
    """Open ``out_path`` with a video stream like ``template`` and the source's audio; write the header."""
    out = av.open(str(out_path), mode="w", format=container_format,
                  container_options=_muxer_options(container_format, template.time_base))
    try:
        ostream = out.add_stream_from_template(template)
        ostream.time_base = template.time_base
        if template.average_rate and ostream.codec_context is not None:
            ostream.codec_context.framerate = template.average_rate
        astream = None
        if source is not None:
            src = source.streams.audio[0]
            if not reencode:
                astream = out.add_stream_from_template(src)
            elif container_format == "webm":
                astream = out.add_stream("libopus", rate=48000, layout=src.layout.name)
            else:
                astream = out.add_stream("aac", rate=src.rate, layout=src.layout.name)
        out.start_encoding()
    except BaseException:
        out.close()
        raise
    return out, ostream, astream
