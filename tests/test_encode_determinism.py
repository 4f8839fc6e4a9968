"""The same frames give the same video bytes in every run, in one process and across processes.

Two causes were found (issue 28, item 14): x264's AVX-512 code reads memory it never wrote, so its
output followed whatever the heap held (tests that churn memory between encodes, as torch does,
saw one run in five differ); and Matroska/WebM wrote random segment and track UIDs.  The churn
below stands in for a pipeline's other work between frames.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from clips import make_clip
from pipeline.media import video_options
from pipeline.media.video import SegmentWriter, VideoEncodeOptions, join_segments, probe_video, read_frames


def _churn() -> None:
    """Leave 100 KB of random bytes in freed heap memory (what torch's and numpy's allocations do)."""
    bytearray(os.urandom(100_000))


def _encode(info, frames, path: Path, opts: VideoEncodeOptions, fmt: str) -> Path:
    writer = SegmentWriter(path, info, opts, fmt)
    for frame in frames:
        _churn()
        writer.write(frame.rgb, frame.pts, frame.duration)
    writer.close()
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    # 64 px wide: one of the widths at which x264's AVX-512 mbtree code showed its garbage.
    path = make_clip(tmp_path_factory.mktemp("det") / "c.mp4", frames=48, fps=24, size=(64, 48))
    info = probe_video(path)
    return info, list(read_frames(info))


def test_one_clip_encoded_20_times_in_one_process_gives_the_same_bytes(clip, tmp_path) -> None:
    info, frames = clip
    opts = VideoEncodeOptions(preset="veryfast", threads=2)
    digests = {_digest(_encode(info, frames, tmp_path / f"{k}.mp4", opts, "mp4")) for k in range(20)}
    assert len(digests) == 1, f"20 encodes of one clip gave {len(digests)} different files"


def test_x264_gets_the_avx2_cap_exactly_when_the_cpu_has_avx512(monkeypatch) -> None:
    opts = VideoEncodeOptions(preset="veryfast")
    monkeypatch.setattr(video_options, "_has_avx512", lambda: True)
    assert opts.codec_options()["x264-params"] == "asm=AVX2,Cache64"
    monkeypatch.setattr(video_options, "_has_avx512", lambda: False)
    assert "x264-params" not in opts.codec_options()
    assert "x264-params" not in VideoEncodeOptions(codec="libx265").codec_options()


@pytest.mark.parametrize("fmt, codec", [("matroska", "libx264"), ("webm", "libvpx-vp9")])
def test_matroska_and_webm_outputs_are_the_same_bytes_every_run(clip, tmp_path, fmt, codec) -> None:
    info, frames = clip
    opts = VideoEncodeOptions(codec=codec, preset="veryfast" if codec == "libx264" else None)
    digests = set()
    for run in range(3):
        segments = [_encode(info, frames[a:a + 24], tmp_path / f".{run}.{a}.partial", opts, fmt)
                    for a in (0, 24)]
        out = tmp_path / f"out{run}.{fmt}"
        join_segments(segments, info, out, fmt, audio="none")
        digests.add(_digest(out))
    assert len(digests) == 1, f"{fmt}: 3 runs gave {len(digests)} different files"
