"""The video media layer (pipeline.media.video) on tiny clips made on the fly."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from clips import audio_duration, decode_all, make_clip, make_clip_with_pts
from pipeline.errors import MediaError
from pipeline.media import video_read
from pipeline.media.video import (
    CONTAINER_FORMATS,
    VIDEO_EXTENSIONS,
    SegmentWriter,
    VideoEncodeOptions,
    join_segments,
    output_suffix,
    probe_video,
    read_frames,
)

FAST = VideoEncodeOptions(preset="veryfast")  # keeps B-frames, so segments start with dts < pts


def encode_segments(info, frames, tmp: Path, fmt: str, opts=FAST, cuts=(8, 17)) -> list[Path]:
    bounds = [0, *cuts, len(frames)]
    paths = []
    for k, (a, b) in enumerate(zip(bounds, bounds[1:])):
        path = tmp / f".{k:05d}.seg.partial"
        writer = SegmentWriter(path, info, opts, fmt)
        for f in frames[a:b]:
            writer.write(f.rgb, f.pts, f.duration)
        writer.close()
        paths.append(path)
    return paths


def packet_times(path: Path) -> list[tuple[int, int]]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [(p.pts, p.dts) for p in c.demux(s) if p.size]


def mae(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# -- probing and reading ----------------------------------------------------------

def test_probe_fields(tmp_path):
    path = make_clip(tmp_path / "a.mp4", frames=24, fps=24)
    info = probe_video(path)
    assert (info.width, info.height, info.frames, info.rate) == (64, 48, 24, Fraction(24))
    assert info.time_base.numerator == 1 and info.start_pts == 0
    assert info.duration_s == pytest.approx(1.0, abs=0.01)
    assert (info.rotation, info.codec, info.pix_fmt) == (0, "h264", "yuv420p")
    assert info.colorspace is None and info.color_primaries is None
    assert info.has_audio and info.audio_codec == "aac"
    assert ".mp4" in VIDEO_EXTENSIONS and CONTAINER_FORMATS[".mkv"] == "matroska"


def test_read_frames_count_pts_pixels(tmp_path):
    path = make_clip(tmp_path / "a.mkv", frames=20, audio=False)
    info = probe_video(path)
    frames = list(read_frames(info))
    ref_rgb, ref_pts = decode_all(path)
    assert [f.pts for f in frames] == ref_pts and len(frames) == 20
    assert ref_pts == sorted(ref_pts)
    for f, ref in zip(frames, ref_rgb):
        assert f.rgb.dtype == np.uint8 and f.rgb.shape == (48, 64, 3) and f.rgb.flags.c_contiguous
        assert np.array_equal(f.rgb, ref)  # SD, untagged: BT.601 limited, what FFmpeg does


def test_seek_after_pts_is_bit_identical(tmp_path):
    path = make_clip(tmp_path / "g.mp4", frames=40, gop_size=8, audio=False)
    info = probe_video(path)
    straight = list(read_frames(info))
    pts = [f.pts for f in straight]
    for i in (-1, 0, 7, 8, 13, 30, 38, 39):
        after = pts[i] if i >= 0 else -1
        got = list(read_frames(info, after_pts=after))
        want = straight[i + 1:]
        assert [f.pts for f in got] == [f.pts for f in want], i
        assert all(np.array_equal(a.rgb, b.rgb) for a, b in zip(got, want)), i


def bumped(raw: list[int]) -> list[int]:
    """The reading rule for timestamps: one not after the previous frame's becomes previous + 1."""
    out: list[int] = []
    for p in raw:
        out.append(p if not out or p > out[-1] else out[-1] + 1)
    return out


# VFR recordings whose timestamps repeat or go back (ms, Matroska's time base; frames every 40).
REPEATED = [0, 40, 80, 120, 120, 160, 200, 240, 240, 240, 240, 280, 320, 360, 360, 400]
DECREASING = [0, 40, 80, 160, 120, 200, 240, 280]


@pytest.mark.parametrize("raw", [REPEATED, DECREASING], ids=["repeated", "decreasing"])
def test_repeated_or_decreasing_pts_become_strictly_increasing(tmp_path, raw):
    path = make_clip_with_pts(tmp_path / "dup.mkv", raw)
    ref_rgb, ref_pts = decode_all(path)
    assert ref_pts == raw, "the test clip must really carry these timestamps"
    frames = list(read_frames(probe_video(path)))
    assert len(frames) == len(raw)  # every frame, none dropped as a duplicate
    got = [f.pts for f in frames]
    assert all(b > a for a, b in zip(got, got[1:])), got
    assert got == bumped(raw)  # e.g. 120, 120 -> 120, 121; 240 x4 -> 240..243; 160, 120 -> 160, 161
    first = next(i for i, (a, b) in enumerate(zip(raw, got)) if a != b)
    assert [f.pts_adjusted for f in frames] == [i >= first for i in range(len(raw))]  # cumulative
    for f, ref in zip(frames, ref_rgb):
        assert np.array_equal(f.rgb, ref)


def test_resume_points_with_repeated_pts_read_the_same_frames(tmp_path, monkeypatch):
    """Resuming after frame i (skip=i+1, after_pts=its pts while no pts was bumped up to it)
    reproduces a straight decode's frames i+1.. exactly.  Keyframes every 4 frames, and frame 4
    is a keyframe repeating frame 3's pts 120: a seek to 120 would land on it and lose it, so
    from i=3 on the reader counts from the start; before, it seeks."""
    path = make_clip_with_pts(tmp_path / "dup.mkv", REPEATED, gop_size=4)
    info = probe_video(path)
    straight = list(read_frames(info))
    seeks = []
    real_seek = video_read._seek
    monkeypatch.setattr(video_read, "_seek", lambda *a: seeks.append(a[-1]) or real_seek(*a))
    for i, frame in enumerate(straight):
        want = straight[i + 1:]
        seeks.clear()
        after = None if frame.pts_adjusted else frame.pts
        got = list(read_frames(info, after_pts=after, skip=i + 1))
        assert [f.pts for f in got] == [f.pts for f in want], i
        assert [f.pts_adjusted for f in got] == [f.pts_adjusted for f in want], i
        assert all(np.array_equal(a.rgb, b.rgb) for a, b in zip(got, want)), i
        assert seeks == ([frame.pts] if i < 3 else []), i
    assert not straight[3].pts_adjusted and straight[4].pts_adjusted


def test_hd_untagged_uses_bt709(tmp_path):
    path = make_clip(tmp_path / "hd.mp4", frames=2, size=(16, 720), audio=False)
    info = probe_video(path)
    frame = next(read_frames(info))
    with av.open(str(path)) as c:
        raw = next(c.decode(video=0))
    bt709 = raw.reformat(format="rgb24", src_colorspace=1).to_ndarray()
    bt601 = raw.to_ndarray(format="rgb24")
    assert np.array_equal(frame.rgb, bt709) and not np.array_equal(frame.rgb, bt601)
    # Written back with the same rule (BT.709 for untagged HD) and tagged so: a saturated colour
    # survives, and reading it as BT.601 instead would be far off.
    solid = np.empty((720, 16, 3), np.uint8)
    solid[:] = (200, 60, 90)
    writer = SegmentWriter(tmp_path / "solid.mp4", info, FAST, "mp4")
    writer.write(solid, 0, None)
    writer.close()
    out = probe_video(tmp_path / "solid.mp4")
    assert (out.colorspace, out.color_primaries, out.color_trc, out.color_range) == (1, 1, 1, 1)
    back = next(read_frames(out)).rgb
    with av.open(str(out.path)) as c:
        as601 = next(c.decode(video=0)).reformat(format="rgb24", src_colorspace=5).to_ndarray()
    assert np.abs(back.astype(int) - solid).max() <= 3
    assert np.abs(as601.astype(int) - solid).max() >= 10


def test_ten_bit_source_decodes_to_uint8(tmp_path):
    ten = probe_video(make_clip(tmp_path / "10.mp4", frames=4, pix_fmt="yuv420p10le", audio=False))
    eight = probe_video(make_clip(tmp_path / "8.mp4", frames=4, audio=False))
    assert ten.pix_fmt == "yuv420p10le"
    for a, b in zip(read_frames(ten), read_frames(eight)):
        assert a.rgb.dtype == np.uint8 and a.rgb.shape == (48, 64, 3)
        assert mae(a.rgb, b.rgb) < 5.0


def test_rotation_applied_and_not_rewritten(tmp_path):
    rot = probe_video(make_clip(tmp_path / "r.mp4", frames=4, rotation=90, audio=False))
    plain = probe_video(make_clip(tmp_path / "p.mp4", frames=4, audio=False))
    assert rot.rotation == 90 and (rot.width, rot.height) == (64, 48)
    frames = list(read_frames(rot))
    for a, b in zip(frames, read_frames(plain)):
        assert a.rgb.shape == (48, 64, 3) and mae(a.rgb, b.rgb) < 4.0
    out = probe_video(encode_segments(rot, frames, tmp_path, "mp4", cuts=())[0])
    assert out.rotation == 0 and (out.width, out.height) == (64, 48)


# -- writing and joining ---------------------------------------------------------

@pytest.mark.parametrize("name, fmt, codec, audio_codec", [
    ("src.mp4", "mp4", "libx264", "aac"),        # aac copied
    ("src.mkv", "matroska", "libx264", "aac"),
    ("src.webm", "webm", "libvpx-vp9", "opus"),  # vp9 + opus throughout
    ("src.mp4", "webm", "libvpx-vp9", "opus"),   # aac cannot go into webm: re-encoded to opus
    ("src.mov", "mov", "libx264", "pcm_s16le"),  # pcm copied into mov
])
def test_three_segments_join(tmp_path, name, fmt, codec, audio_codec):
    src_audio = "pcm_s16le" if audio_codec == "pcm_s16le" else None
    clip_codec = "libvpx-vp9" if name.endswith(".webm") else "libx264"
    src = make_clip(tmp_path / name, frames=26, codec=clip_codec, audio_codec=src_audio)
    info = probe_video(src)
    frames = list(read_frames(info))
    opts = FAST if codec == "libx264" else VideoEncodeOptions(codec=codec, crf=30)
    segs = encode_segments(info, frames, tmp_path, fmt, opts)
    out_path = tmp_path / f"out{output_suffix(opts, '.' + fmt if fmt != 'matroska' else '.mkv')}"
    join_segments(segs, info, out_path, fmt)

    joined_rgb, joined_pts = decode_all(out_path)
    seg_rgb = [rgb for s in segs for rgb in decode_all(s)[0]]
    assert len(joined_rgb) == len(seg_rgb) == 26
    assert all(np.array_equal(a, b) for a, b in zip(joined_rgb, seg_rgb))  # remuxed, not re-encoded
    times = packet_times(out_path)
    dts = [d for _, d in times if d is not None]
    assert dts == sorted(set(dts)) and all(d <= p for p, d in times if d is not None)

    out = probe_video(out_path)
    assert out.rate == info.rate and out.audio_codec == audio_codec
    assert out.duration_s == pytest.approx(info.duration_s, abs=0.05)
    # Frame times relative to the first frame (containers without negative timestamps may shift
    # every stream by the AAC priming delay, keeping sync).
    src_t = [float((f.pts - frames[0].pts) * info.time_base) for f in frames]
    out_t = [float((p - joined_pts[0]) * out.time_base) for p in joined_pts]
    assert np.allclose(src_t, out_t, atol=0.0011)
    assert audio_duration(out_path) == pytest.approx(audio_duration(src), abs=0.05)
    assert np.mean([mae(a, f.rgb) for a, f in zip(joined_rgb, frames)]) < 6.0


@pytest.mark.parametrize("suffix, fmt", [(".mp4", "mp4"), (".mkv", "matroska")])
def test_vfr_pts_survive(tmp_path, suffix, fmt):
    src = make_clip(tmp_path / f"vfr{suffix}", frames=21, vfr=True)
    info = probe_video(src)
    frames = list(read_frames(info))
    steps = np.diff([f.pts for f in frames])
    assert len(set(steps.tolist())) > 1  # really variable
    out_path = tmp_path / f"out{suffix}"
    join_segments(encode_segments(info, frames, tmp_path, fmt), info, out_path, fmt)
    out = probe_video(out_path)
    got = [f.pts for f in read_frames(out)]
    if out.time_base == info.time_base:
        assert got == [f.pts for f in frames]
    else:
        assert np.allclose([p * float(out.time_base) for p in got],
                           [f.pts * float(info.time_base) for f in frames], atol=0.0011)


def test_colour_tags_carried(tmp_path):
    tags = {"color_primaries": 1, "color_trc": 1, "colorspace": 1, "color_range": 2}
    info = probe_video(make_clip(tmp_path / "c.mov", frames=6, color=tags, audio=False))
    assert (info.color_primaries, info.color_trc, info.colorspace, info.color_range) == (1, 1, 1, 2)
    frames = list(read_frames(info))
    out_path = tmp_path / "out.mov"
    join_segments(encode_segments(info, frames, tmp_path, "mov", cuts=(3,)), info, out_path, "mov")
    out = probe_video(out_path)
    assert (out.color_primaries, out.color_trc, out.colorspace, out.color_range) == (1, 1, 1, 2)
    assert np.mean([mae(a.rgb, b.rgb) for a, b in zip(read_frames(out), frames)]) < 4.5
    # An untagged SD source gets its implicit matrix and range written down.
    plain = probe_video(make_clip(tmp_path / "p.mp4", frames=2, audio=False))
    seg = encode_segments(plain, list(read_frames(plain)), tmp_path, "mp4", cuts=())[0]
    assert (probe_video(seg).colorspace, probe_video(seg).color_range) == (6, 1)


def test_audio_none_and_avi(tmp_path):
    info = probe_video(make_clip(tmp_path / "a.mp4", frames=12))
    frames = list(read_frames(info))
    out_path = tmp_path / "out.avi"
    join_segments(encode_segments(info, frames, tmp_path, "avi", cuts=(5,)), info, out_path, "avi", audio="none")
    out = probe_video(out_path)
    assert not out.has_audio and len(decode_all(out_path)[0]) == 12


def test_writer_errors(tmp_path):
    info = probe_video(make_clip(tmp_path / "a.mp4", frames=2, audio=False))
    writer = SegmentWriter(tmp_path / "s.mp4", info, FAST, "mp4")
    with pytest.raises(MediaError, match="even width"):
        writer.write(np.zeros((48, 63, 3), np.uint8), 0, None)
    writer = SegmentWriter(tmp_path / "s.mp4", info, FAST, "mp4")
    writer.write(np.zeros((48, 64, 3), np.uint8), 0, None)
    with pytest.raises(MediaError, match="frame size changed"):
        writer.write(np.zeros((50, 64, 3), np.uint8), 512, None)
    writer.abort()


# -- options --------------------------------------------------------------------

def test_options_validation():
    assert VideoEncodeOptions().effective_crf == 18
    assert VideoEncodeOptions(bitrate="2500k").effective_crf is None
    with pytest.raises(ValueError, match="libx264"):
        VideoEncodeOptions(codec="libnotacodec")
    with pytest.raises(ValueError, match="not both"):
        VideoEncodeOptions(crf=20, bitrate="8M")
    with pytest.raises(ValueError, match="bitrate"):
        VideoEncodeOptions(bitrate="fast")
    with pytest.raises(ValueError, match="preset"):
        VideoEncodeOptions(preset="warp")
    with pytest.raises(ValueError, match="cannot hold"):
        VideoEncodeOptions(container="webm")
    with pytest.raises(ValueError, match="pix_fmt"):
        VideoEncodeOptions(pix_fmt="rgb48le")
    with pytest.raises(ValueError, match="segment_seconds"):
        VideoEncodeOptions(segment_seconds=0)
    assert output_suffix(VideoEncodeOptions(), ".MOV") == ".mov"
    assert output_suffix(VideoEncodeOptions(), ".webm") == ".mkv"  # webm cannot hold h264
    assert output_suffix(VideoEncodeOptions(container="mp4"), ".mkv") == ".mp4"


# -- bad inputs -----------------------------------------------------------------

def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        s = out.add_stream("aac", rate=48000)
        s.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48000, 0
        out.mux(s.encode(frame))
        out.mux(s.encode(None))
    return path


def _no_frames(path: Path) -> Path:
    """A Matroska file with a video track that holds no frames (and a little audio)."""
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        a = out.add_stream("aac", rate=48000)
        a.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48000, 0
        out.mux(a.encode(frame))
        out.mux(a.encode(None))
    return path


def _cut(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


@pytest.mark.parametrize("make, reason", [
    (lambda d: (d / "empty.mp4").write_bytes(b"") and None or d / "empty.mp4", "empty"),
    (lambda d: (d / "text.mp4").write_text("hello, not a video\n" * 20) and d / "text.mp4", "cannot open|can open"),
    (lambda d: _cut(make_clip(d / "full.mp4", frames=12), d / "cut.mp4"), "can open"),
    (lambda d: _audio_only(d / "sound.mp4"), r"no video stream \(streams: audio aac\)"),
    (lambda d: _no_frames(d / "none.mkv"), "no video frames"),
    (lambda d: d / "missing.mp4", "not found"),
])
def test_bad_inputs_raise_media_error(tmp_path, make, reason):
    path = make(tmp_path)
    with pytest.raises(MediaError, match=reason) as err:
        info = probe_video(path)
        list(read_frames(info))
    assert err.value.stage == "decode" and err.value.path == path and err.value.hint


def test_truncated_mkv_is_reported(tmp_path):
    path = _cut(make_clip(tmp_path / "full.mkv", frames=40, gop_size=8, audio=False), tmp_path / "cut.mkv")
    info = probe_video(path)  # the header survives, so it opens
    with pytest.raises(MediaError, match=r"truncated or corrupt.*after frame \d+") as err:
        list(read_frames(info))
    assert err.value.stage == "decode"


@pytest.fixture
def ffmpeg_quiet_after():
    from pipeline.machine import logs
    yield logs
    logs.configure("warning")  # the default, for the tests after this one


def test_ffmpeg_log_lines_only_at_info_and_below(tmp_path, capfd, ffmpeg_quiet_after):
    logs = ffmpeg_quiet_after
    path = _cut(make_clip(tmp_path / "full.mkv", frames=40, gop_size=8, audio=False), tmp_path / "cut.mkv")
    for level, shown in (("warning", False), ("info", True), ("warning", False)):
        logs.configure(level)
        with pytest.raises(MediaError, match="truncated or corrupt"):
            list(read_frames(probe_video(path)))
        err = capfd.readouterr().err
        assert ("File ended prematurely" in err) is shown, (level, err)
    with pytest.raises(ValueError, match="debug, info, warning"):
        logs.configure("loud")


def test_decoder_threads_do_not_change_the_frames(tmp_path):
    """The thread budget gives the decoder its share (pipeline/machine/threads.py): same frames."""
    path = make_clip(tmp_path / "t.mp4", frames=12, gop_size=4, audio=False)
    info = probe_video(path)
    auto = [(f.pts, f.rgb) for f in read_frames(info)]
    one = [(f.pts, f.rgb) for f in read_frames(info, threads=1)]
    assert [p for p, _ in auto] == [p for p, _ in one]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(auto, one))
