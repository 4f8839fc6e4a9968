"""Tiny video clips made on the fly with PyAV, for tests.

``make_clip`` writes a few frames of a smooth, natural-looking moving pattern
(a colour gradient with a drifting disc) with an optional sine-tone audio
track; options cover variable frame rate, 10-bit pixel formats, rotation
metadata, colour tags and a scene cut.  ``decode_all`` and ``audio_duration``
read clips back without going through the pipeline's own media layer, so tests
can use them as an independent reference.

Keep clips tiny (the default is 24 frames of 64x48): the test machine has two
shared cores.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

_AUDIO_RATE = 48000
_TONE_HZ = 440.0


def _pattern(index: int, width: int, height: int, content: str, total: int) -> np.ndarray:
    """One upright RGB frame of the test pattern (HxWx3 uint8)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = x / max(width - 1, 1), y / max(height - 1, 1)
    t = index / max(total, 1)
    if content == "cut" and index >= total // 2:
        # An unrelated scene: diagonal stripes in other colours, moving the other way.
        s = 0.5 + 0.5 * np.sin((u * 5.0 + v * 3.0 - t * 4.0) * np.pi)
        r, g, b = 40 + 150 * s, 160 - 100 * v, 200 - 120 * s * u
    else:
        r = 60 + 150 * u + 20 * np.sin(2 * np.pi * (v + t))
        g = 80 + 100 * v + 30 * u
        b = 170 - 90 * u * v
        # A soft disc drifting left to right and bobbing.
        cx = width * (0.2 + 0.6 * t)
        cy = height * (0.5 + 0.2 * np.sin(2 * np.pi * t))
        rad = max(min(width, height) * 0.22, 2.0)
        d = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
        a = np.clip(rad - d + 0.5, 0.0, 1.0)  # anti-aliased edge
        r, g, b = r * (1 - a) + 240 * a, g * (1 - a) + 200 * a, b * (1 - a) + 60 * a
    rgb = np.stack([r, g, b], axis=-1)
    return np.ascontiguousarray(np.clip(rgb + 0.5, 0, 255).astype(np.uint8))


def _default_audio_codec(suffix: str) -> str:
    return "libopus" if suffix == ".webm" else "aac"


def make_clip(
    path: str | Path,
    *,
    frames: int = 24,
    size: tuple[int, int] = (64, 48),
    fps: int = 24,
    audio: bool = True,
    vfr: bool = False,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    rotation: int = 0,
    content: str = "moving",
    audio_codec: str | None = None,
    gop_size: int | None = None,
    color: dict[str, int] | None = None,
) -> Path:
    """Write a tiny clip to ``path`` (container from its suffix) and return the path.

    size: (width, height) of the *upright* picture.  vfr: frame durations cycle
    through 1, 2, 3 ticks of a 1/(2*fps) time base (so the average rate is
    about fps).  rotation: 0/90/180/270, degrees the player must rotate the
    stored picture *clockwise* to show it upright (FFmpeg's ``rotate`` tag); the
    stored frames are the upright pattern rotated the other way, so a reader
    that honours the display matrix gets the same picture as with rotation=0.
    content: "moving" or "cut" (a scene cut half way).  gop_size: keyframe
    interval (None: the encoder's default; B-frames stay on).  color: optional
    codec-context colour tags, e.g. {"color_primaries": 1, "color_trc": 1,
    "colorspace": 1, "color_range": 1} (FFmpeg AVCOL_* values).
    audio_codec: None picks aac (opus for .webm); e.g. "pcm_s16le" for .mkv/.mov.
    """
    path = Path(path)
    if content not in ("moving", "cut"):
        raise ValueError(f"content must be 'moving' or 'cut', not {content!r}")
    if rotation % 90 or rotation not in (0, 90, 180, 270):
        raise ValueError(f"rotation must be 0, 90, 180 or 270, not {rotation!r}")
    width, height = size
    stored_w, stored_h = (height, width) if rotation in (90, 270) else (width, height)

    if vfr:
        time_base = Fraction(1, 2 * fps)
        durations = [(1, 2, 3)[i % 3] for i in range(frames)]
    else:
        time_base = Fraction(1, fps)
        durations = [1] * frames
    total_s = float(sum(durations) * time_base)

    with av.open(str(path), mode="w") as out:
        vs = out.add_stream(codec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = stored_w, stored_h, pix_fmt
        vs.time_base = time_base
        vs.codec_context.time_base = time_base
        vs.thread_count = 1
        if gop_size is not None:
            vs.codec_context.gop_size = gop_size
        if codec in ("libx264", "libx265"):
            vs.codec_context.options = {"preset": "ultrafast"} if codec == "libx264" else {
                "preset": "ultrafast", "x265-params": "log-level=error"}
            if gop_size is not None:
                # ultrafast disables B-frames; keep some so decode order != presentation order.
                vs.codec_context.options = {**vs.codec_context.options, "bframes": "2"} \
                    if codec == "libx264" else vs.codec_context.options
        for key, value in (color or {}).items():
            setattr(vs.codec_context, key, value)
        if rotation:
            # set_display_rotation takes counter-clockwise degrees (av_display_rotation_set);
            # FFmpeg's "rotate=R" tag (clockwise) is the matrix angle -R.
            vs.set_display_rotation(-rotation)

        astream = None
        if audio:
            acodec = audio_codec or _default_audio_codec(path.suffix.lower())
            astream = out.add_stream(acodec, rate=_AUDIO_RATE)
            astream.layout = "mono"

        pts = 0
        for i in range(frames):
            rgb = _pattern(i, width, height, content, frames)
            if rotation:
                rgb = np.ascontiguousarray(np.rot90(rgb, k=rotation // 90))  # counter-clockwise
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame = frame.reformat(format=pix_fmt, dst_colorspace=_sws_space(color, height),
                                   dst_color_range=_range(color))
            frame.pts = pts
            frame.time_base = time_base
            for key, value in (color or {}).items():
                setattr(frame, key, value)
            pts += durations[i]
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)

        if astream is not None:
            _write_tone(out, astream, total_s)
    return path


def _sws_space(color: dict[str, int] | None, height: int) -> int:
    """swscale matrix for the RGB -> YUV step: the tagged one, else BT.601 (what readers assume)."""
    spc = (color or {}).get("colorspace")
    return 1 if spc == 1 else 5  # SWS_CS_ITU709 / SWS_CS_ITU601


def _range(color: dict[str, int] | None) -> int | None:
    rng = (color or {}).get("color_range")
    return rng if rng in (1, 2) else None


def _write_tone(out: av.container.OutputContainer, astream, total_s: float) -> None:
    ctx = astream.codec_context
    fmt = ctx.format.name if ctx.format is not None else "fltp"
    n_total = int(round(total_s * _AUDIO_RATE))
    chunk = ctx.frame_size or 1024
    # aac and opus accept a short last frame, so the track ends with the video.
    for t0 in range(0, n_total, chunk):
        n = min(chunk, n_total - t0)
        tone = 0.3 * np.sin(2 * np.pi * _TONE_HZ * np.arange(t0, t0 + n) / _AUDIO_RATE)
        if fmt.startswith("s16"):
            data = (tone * 32767).astype(np.int16)[None, :]
        else:
            data = tone.astype(np.float32)[None, :]
        af = av.AudioFrame.from_ndarray(data, format=fmt, layout="mono")
        af.sample_rate = _AUDIO_RATE
        af.pts = t0
        af.time_base = Fraction(1, _AUDIO_RATE)
        for packet in astream.encode(af):
            out.mux(packet)
    for packet in astream.encode():
        out.mux(packet)


def decode_all(path: str | Path) -> tuple[list[np.ndarray], list[int]]:
    """Every frame of the first video stream as upright-agnostic RGB (no rotation applied) and its pts.

    A plain PyAV reference decode: frames converted with ``to_ndarray(format="rgb24")``.
    """
    rgbs, pts = [], []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            rgbs.append(frame.to_ndarray(format="rgb24"))
            pts.append(frame.pts)
    return rgbs, pts


def audio_duration(path: str | Path) -> float | None:
    """Seconds of audio in the first audio stream (decoded samples / rate), or None if no audio."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        samples, rate = 0, None
        for frame in container.decode(stream):
            samples += frame.samples
            rate = frame.sample_rate
        return samples / rate if rate else 0.0


def make_clip_with_pts(path: str | Path, pts: list[int], *, dts: list[int] | None = None,
                       size: tuple[int, int] = (64, 48), fps: int = 25,
                       gop_size: int | None = None) -> Path:
    """A Matroska clip (H.264 without B-frames, no audio) whose frames carry exactly ``pts``, in
    milliseconds (Matroska's time base), repeated or decreasing values included, as VFR phone and
    screen recordings sometimes do.

    The frames (the usual test pattern, one per entry) are encoded with increasing pts, then
    their packets are muxed with ``pts`` and ``dts``; only Matroska's muxer takes repeated
    timestamps, and ``dts`` must not decrease nor exceed ``pts`` (the default: each pts's minimum
    with all later ones).  Without B-frames the decoder returns the frames in this order, with
    these pts.
    """
    path = Path(path)
    if dts is None:
        dts = [min(pts[i:]) for i in range(len(pts))]
    width, height = size
    n = len(pts)
    time_base = Fraction(1, 1000)
    with av.open(str(path), mode="w", format="matroska") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.time_base = time_base
        vs.codec_context.time_base = time_base
        vs.thread_count = 1
        vs.codec_context.options = {"preset": "ultrafast"}  # no B-frames
        if gop_size is not None:
            vs.codec_context.gop_size = gop_size
        packets = []
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(_pattern(i, width, height, "moving", n), format="rgb24")
            frame = frame.reformat(format="yuv420p", dst_colorspace=_sws_space(None, height))
            frame.pts, frame.time_base = i, time_base
            packets += vs.encode(frame)
        packets += vs.encode()
        assert [p.pts for p in packets] == list(range(n)), "the encoder reordered frames"
        for packet in packets:
            i = packet.pts
            packet.pts, packet.dts = pts[i], dts[i]
            out.mux(packet)
    return path
