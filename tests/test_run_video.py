"""Video jobs end to end through the real CLI: timing and audio kept, segments, kills, bad files."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.clips import audio_duration, decode_all
from tests.clips import make_clip as _make_clip
from tests.conftest import REPO, make_photos, run_cli, write_job


def make_clip(path: Path, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return _make_clip(path, **kwargs)


def _job(tmp_path: Path, weights: Path, *, output: str = "out", smooth: bool = True,
         segment: float = 0.5, sources: str = "- videos: clips/", name: str | None = None) -> Path:
    smooth_stage = "- temporal_smooth: {strength: 0.8}" if smooth else ""
    return write_job(tmp_path, f"""
        sources:
          {sources}
        output: {output}
        stages:
          - decode
          - fast_style: {{weights: {weights}}}
          {smooth_stage}
          - encode: {{video: {{codec: libx264, crf: 20, preset: ultrafast,
                              segment_seconds: {segment}}}, audio: copy}}
        """, name=name or f"job_{output}.yaml")


def _ledger(folder: Path) -> list[dict]:
    path = folder / ".ledger.jsonl"
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # a line torn by the kill
    return records


def test_frames_timestamps_and_audio_survive(tmp_path: Path, style_weights: Path) -> None:
    clip = make_clip(tmp_path / "clips" / "a" / "shot.mp4", frames=30, fps=24, audio=True)
    result = run_cli(str(_job(tmp_path, style_weights)))
    assert result.returncode == 0, result.stderr
    assert "done 1, skipped 0 (already done), failed 0" in result.stderr
    assert "per stage: decode" in result.stderr and "smoothing" in result.stderr
    out = tmp_path / "out" / "a" / "shot.mp4"  # the source tree is mirrored
    src_frames, src_pts = decode_all(clip)
    out_frames, out_pts = decode_all(out)
    assert len(out_frames) == len(src_frames) == 30
    assert out_pts == src_pts
    assert out_frames[0].shape == src_frames[0].shape
    assert abs(audio_duration(out) - audio_duration(clip)) < 0.05
    # Segments (0.5 s = 12 frames: 3 of them) were committed, then joined and cleaned away.
    records = _ledger(tmp_path / "out")
    assert [r["index"] for r in records if "segment" in r] == [0, 1, 2]
    assert any(r.get("done") == "a/shot.mp4" for r in records)
    assert not (tmp_path / "out" / ".segments" / "a" / "shot.mp4").exists()
    # The output is stylized, not the source passed through.
    assert np.abs(out_frames[5].astype(int) - src_frames[5].astype(int)).mean() > 10
    again = run_cli(str(_job(tmp_path, style_weights)))
    assert again.returncode == 0 and "done 0, skipped 1" in again.stderr


def test_variable_frame_rate_survives(tmp_path: Path, style_weights: Path) -> None:
    clip = make_clip(tmp_path / "clips" / "vfr.mkv", frames=20, vfr=True, audio=False)
    result = run_cli(str(_job(tmp_path, style_weights, segment=0.3)))
    assert result.returncode == 0, result.stderr
    _, src_pts = decode_all(clip)
    _, out_pts = decode_all(tmp_path / "out" / "vfr.mkv")
    steps = set(np.diff(src_pts).tolist())
    assert len(steps) > 1, "the test clip must really have a variable frame rate"
    assert out_pts == src_pts


def _kill_mid_video(job: Path, sig: int) -> tuple[int, str]:
    """Start the job and send ``sig`` once a segment is committed but before the video is done.

    Returns the exit status and stderr."""
    proc = subprocess.Popen([sys.executable, str(REPO / "run_pipeline.py"), str(job), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if any("segment" in r for r in _ledger(job.parent / "out")):
            proc.send_signal(sig)
            break
        time.sleep(0.02)
    _, stderr = proc.communicate(timeout=120)
    return proc.returncode, stderr


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_mid_video_resumes_to_the_same_frames(tmp_path: Path, style_weights: Path,
                                                     sig: int) -> None:
    make_clip(tmp_path / "clips" / "long.mp4", frames=72, size=(96, 64), fps=24, audio=True,
              gop_size=12)
    straight = _job(tmp_path, style_weights, output="straight", segment=0.25)
    assert run_cli(str(straight)).returncode == 0
    job = _job(tmp_path, style_weights, output="out", segment=0.25)
    returncode, stderr = _kill_mid_video(job, sig)
    records = _ledger(tmp_path / "out")
    committed = [r for r in records if "segment" in r]
    assert committed and not any("done" in r for r in records), "the kill must land mid-video"
    if sig == signal.SIGINT:
        assert returncode == 130
        assert "run the same command again" in stderr
    # Only complete files under their final names: no output yet, segments whole.
    assert not (tmp_path / "out" / "long.mp4").exists()
    resumed = run_cli(str(job))
    assert resumed.returncode == 0, resumed.stderr
    assert "done 1" in resumed.stderr
    first_new = [r["index"] for r in _ledger(tmp_path / "out") if "segment" in r][len(committed)]
    assert first_new == len(committed), "the rerun continues after the last committed segment"
    a, a_pts = decode_all(tmp_path / "straight" / "long.mp4")
    b, b_pts = decode_all(tmp_path / "out" / "long.mp4")
    assert a_pts == b_pts and len(a) == 72
    for i, (x, y) in enumerate(zip(a, b)):
        np.testing.assert_array_equal(x, y, err_msg=f"frame {i}")
    assert abs(audio_duration(tmp_path / "out" / "long.mp4") - 3.0) < 0.05
    leftovers = [p.name for p in (tmp_path / "out").rglob("*") if p.name.endswith(".partial")]
    assert leftovers == []


def test_temporal_smooth_on_an_image_only_job_is_a_config_error(tmp_path: Path,
                                                                 style_weights: Path) -> None:
    make_photos(tmp_path / "photos", 2)
    job = _job(tmp_path, style_weights, sources="- images: photos/")
    result = run_cli("validate", str(job))
    assert result.returncode == 2
    assert f"{job}:7:" in result.stderr  # file and line of the stage
    assert "temporal_smooth" in result.stderr and "no video sources" in result.stderr


def test_images_and_videos_in_one_job(tmp_path: Path, style_weights: Path) -> None:
    make_photos(tmp_path / "photos", 2)
    make_clip(tmp_path / "clips" / "c.webm", frames=10, audio=True, codec="libvpx-vp9")
    job = _job(tmp_path, style_weights, sources="- images: photos/\n          - videos: clips/")
    result = run_cli(str(job))
    assert result.returncode == 0, result.stderr
    assert "done 3" in result.stderr
    assert (tmp_path / "out" / "img000.png").is_file()
    # webm cannot hold the job's libx264, so the output falls back to Matroska; the opus audio fits.
    frames, _ = decode_all(tmp_path / "out" / "c.mkv")
    assert len(frames) == 10
    assert audio_duration(tmp_path / "out" / "c.mkv") is not None


def test_bad_videos_are_skipped_and_reported(tmp_path: Path, style_weights: Path) -> None:
    clips = tmp_path / "clips"
    good = make_clip(clips / "good.mp4", frames=8)
    (clips / "empty.mp4").write_bytes(b"")
    (clips / "notes.mov").write_text("this is not a video\n" * 20)
    whole = make_clip(tmp_path / "whole.mkv", frames=24, audio=False).read_bytes()
    (clips / "cut.mkv").write_bytes(whole[: len(whole) // 3])
    make_clip(clips / "silence.mp4", frames=8, audio=True)
    _drop_video_stream(clips / "silence.mp4", clips / "sound_only.mp4")
    (clips / "silence.mp4").unlink()
    result = run_cli(str(_job(tmp_path, style_weights)))
    assert result.returncode == 1, result.stderr
    assert (tmp_path / "out" / "good.mp4").is_file()
    assert len(decode_all(tmp_path / "out" / "good.mp4")[0]) == len(decode_all(good)[0])
    for name in ("empty.mp4", "notes.mov", "sound_only.mp4"):
        assert f"failed  {clips / name} [decode]" in result.stderr, result.stderr
    assert "no video stream" in result.stderr
    # The truncated mkv keeps what could be decoded, or fails clearly; it never kills the run.
    assert (tmp_path / "out" / "cut.mkv").is_file() or f"{clips / 'cut.mkv'}" in result.stderr
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name.endswith(".partial")]


def _drop_video_stream(src: Path, dst: Path) -> None:
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        audio = inp.streams.audio[0]
        stream = out.add_stream_from_template(audio)
        for packet in inp.demux(audio):
            if packet.dts is None:
                continue
            packet.stream = stream
            out.mux(packet)
