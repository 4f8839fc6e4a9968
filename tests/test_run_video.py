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

from tests.clips import audio_duration, decode_all, make_clip_with_pts
from tests.clips import make_clip as _make_clip
from tests.conftest import REPO, make_photos, run_cli_here, write_job


def make_clip(path: Path, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return _make_clip(path, **kwargs)


def _job(tmp_path: Path, weights: Path, *, output: str = "out", smooth: bool = True,
         segment: float = 0.5, sources: str = "- videos: clips/", name: str | None = None,
         video: str = "", workers: int | None = None) -> Path:
    smooth_stage = "- temporal_smooth: {strength: 0.8}" if smooth else ""
    return write_job(tmp_path, f"""
        sources:
          {sources}
        output: {output}{f"{chr(10)}        workers: {workers}" if workers else ""}
        stages:
          - decode
          - fast_style: {{weights: {weights}}}
          {smooth_stage}
          - encode: {{video: {{codec: libx264, crf: 20, preset: ultrafast,
                              segment_seconds: {segment}{video}}}, audio: copy}}
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
    result = run_cli_here(str(_job(tmp_path, style_weights)))
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
    again = run_cli_here(str(_job(tmp_path, style_weights)))
    assert again.returncode == 0 and "done 0, skipped 1" in again.stderr


def test_variable_frame_rate_survives(tmp_path: Path, style_weights: Path) -> None:
    clip = make_clip(tmp_path / "clips" / "vfr.mkv", frames=20, vfr=True, audio=False)
    result = run_cli_here(str(_job(tmp_path, style_weights, segment=0.3)))
    assert result.returncode == 0, result.stderr
    _, src_pts = decode_all(clip)
    _, out_pts = decode_all(tmp_path / "out" / "vfr.mkv")
    steps = set(np.diff(src_pts).tolist())
    assert len(steps) > 1, "the test clip must really have a variable frame rate"
    assert out_pts == src_pts


def _kill_mid_video(job: Path, sig: int, until=None, output: str = "out") -> tuple[int, str]:
    """Start the job and send ``sig`` once a segment is committed (or ``until(ledger records)``
    holds) but before the video is done.

    Returns the exit status and stderr."""
    until = until or (lambda records: any("segment" in r for r in records))
    proc = subprocess.Popen([sys.executable, str(REPO / "run_pipeline.py"), str(job), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if until(_ledger(job.parent / output)):
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
    assert run_cli_here(str(straight)).returncode == 0
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
    resumed = run_cli_here(str(job))
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


def test_killed_while_segments_encode_at_once_resumes_to_the_same_frames(tmp_path: Path) -> None:
    """No model and a slow preset: the encoders are the bottleneck, several segments encode
    at once, and the SIGKILL lands while they do."""
    make_clip(tmp_path / "clips" / "long.mp4", frames=96, size=(640, 480), fps=24, audio=True,
              gop_size=12)

    def job(output: str, encoders: int) -> Path:
        return write_job(tmp_path, f"""
            sources: [{{videos: clips/}}]
            output: {output}
            encoders: {encoders}
            stages:
              - decode
              - encode: {{video: {{codec: libx264, crf: 20, preset: veryslow, segment_seconds: 0.5}}}}
            """, name=f"{output}.yaml")

    assert run_cli_here(str(job("straight", 1))).returncode == 0
    parallel = job("out", 3)
    proc = subprocess.Popen([sys.executable, str(REPO / "run_pipeline.py"), str(parallel), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    most, deadline = 0, time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        encoding = len([p for p in (tmp_path / "out").rglob("*.partial")])
        most = max(most, encoding)
        if encoding >= 2 and any("segment" in r for r in _ledger(tmp_path / "out")):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.communicate(timeout=120)
    records = _ledger(tmp_path / "out")
    assert most >= 2 and proc.returncode == -signal.SIGKILL, "the kill must land while segments encode at once"
    committed = [r["index"] for r in records if "segment" in r]
    assert committed == list(range(len(committed))) and not any("done" in r for r in records)
    resumed = run_cli_here(str(parallel))
    assert resumed.returncode == 0, resumed.stderr
    a, a_pts = decode_all(tmp_path / "straight" / "long.mp4")
    b, b_pts = decode_all(tmp_path / "out" / "long.mp4")
    assert a_pts == b_pts and len(a) == 96
    for i, (x, y) in enumerate(zip(a, b)):
        np.testing.assert_array_equal(x, y, err_msg=f"frame {i}")
    assert (tmp_path / "out" / "long.mp4").read_bytes() == (tmp_path / "straight" / "long.mp4").read_bytes()
    assert [p.name for p in (tmp_path / "out").rglob("*.partial")] == []


def _bumped(raw: list[int]) -> list[int]:
    """The reading rule: a pts not after the previous frame's becomes the previous one's + 1."""
    out: list[int] = []
    for p in raw:
        out.append(p if not out or p > out[-1] else out[-1] + 1)
    return out


def _pts_ms(path: Path) -> list[int]:
    """The video's pts in milliseconds (the test clips' time base), whatever the container's."""
    import av

    with av.open(str(path)) as container:
        time_base = container.streams.video[0].time_base
    return [round(p * time_base * 1000) for p in decode_all(path)[1]]


# VFR recordings (frames every 40 ms, Matroska's ms time base) whose timestamps repeat and go
# back; at 25 fps, segment_seconds 0.16 makes segments of 4 frames.  What differs is where the
# first segment ends (after frame 3, pts 120), so each resumes another way:
_STEP = [40 * i for i in range(16)]
REPEATED = {
    # no bump up to it, no later frame at <= 120: the reader seeks (keyframes every 3 frames);
    # later 320 repeats and 540 goes back
    "seek.mkv": (_STEP[:9] + [_STEP[8]] + _STEP[10:15] + [_STEP[14] - 20], 3),
    # no bump up to it, but frame 4, a keyframe, repeats 120: a seek would land on it and lose
    # it, so the reader counts from the start
    "repeat.mkv": (_STEP[:4] + [120] + _STEP[4:15], 4),
    # bumped (80, 80, 80 -> 80, 81, 82) and it ends inside the run: counted
    "inside.mkv": (_STEP[:3] + [80, 80] + _STEP[3:14], 4),
}


def test_repeated_timestamps_encode_and_resume_to_the_same_frames(tmp_path: Path,
                                                                   style_weights: Path) -> None:
    """MP4's muxer refuses repeated timestamps ("Invalid argument ... returned 22"): the reader
    makes them strictly increasing, so every frame is encoded; and a clip killed mid-way and
    resumed right after its first segment, whichever way the reader finds its place, comes out
    frame for frame, pts for pts, as the uninterrupted run's."""
    (tmp_path / "clips").mkdir()
    for name, (raw, gop) in REPEATED.items():
        make_clip_with_pts(tmp_path / "clips" / name, raw, gop_size=gop)
    video = ", container: mp4"
    straight = run_cli_here(str(_job(tmp_path, style_weights, output="straight", smooth=False,
                                segment=0.16, video=video, workers=3)))
    assert straight.returncode == 0, straight.stderr
    assert "done 3, skipped 0 (already done), failed 0" in straight.stderr
    for name, (raw, _) in REPEATED.items():
        out = tmp_path / "straight" / name.replace(".mkv", ".mp4")
        assert len(decode_all(out)[0]) == len(raw), name
        assert _pts_ms(out) == _bumped(raw), name  # e.g. 120, 120 -> 120, 121

    # One job per clip, each killed after its first committed segment (in one job, one clip
    # could finish before another had committed a segment: the kill must land mid-video).
    first = {}
    for name in REPEATED:
        out = f"out_{Path(name).stem}"
        job = _job(tmp_path, style_weights, output=out, smooth=False, segment=0.16, video=video,
                   sources=f"- videos: clips/{name}", name=f"{out}.yaml")
        _kill_mid_video(job, signal.SIGKILL, output=out)
        records = _ledger(tmp_path / out)
        assert not any("done" in r for r in records), "the kill must land mid-video"
        _keep_first_segment(tmp_path / out)
        first.update({r["segment"]: r for r in _ledger(tmp_path / out) if "segment" in r})
    # Whether a pts was bumped up to the segment's end: then the resume cannot seek.
    assert {k: (r["frames"], r["pts_adjusted"]) for k, r in first.items()} == {
        "seek.mp4": (4, False), "repeat.mp4": (4, False), "inside.mp4": (4, True)}
    for name in REPEATED:
        out = f"out_{Path(name).stem}"
        resumed = run_cli_here(str(tmp_path / f"{out}.yaml"))
        assert resumed.returncode == 0, resumed.stderr
        assert "done 1" in resumed.stderr
        a = tmp_path / "straight" / name.replace(".mkv", ".mp4")
        b = tmp_path / out / name.replace(".mkv", ".mp4")
        assert _pts_ms(b) == _pts_ms(a), name
        a_frames, b_frames = decode_all(a)[0], decode_all(b)[0]
        assert len(b_frames) == len(a_frames), name
        for i, (x, y) in enumerate(zip(a_frames, b_frames)):
            np.testing.assert_array_equal(x, y, err_msg=f"{name}: frame {i}")


def _keep_first_segment(folder: Path) -> None:
    """Cut each clip's segment records after its first: as if the kill had come right after
    that commit (the later segment files on disk are then simply encoded again)."""
    path = folder / ".ledger.jsonl"
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line torn by the kill
        if record.get("index", 0) == 0:
            kept.append(line)
    path.write_text("\n".join(kept) + "\n")


def test_odd_width_clip_fails_before_decoding(tmp_path: Path, style_weights: Path) -> None:
    """yuv420p cannot hold an odd width: the clip fails at once, naming the size and the
    resize key that fixes it, and the other clip is done."""
    clips = tmp_path / "clips"
    good = make_clip(clips / "good.mp4", frames=8, audio=False)
    odd = make_clip(clips / "odd.mp4", frames=8, size=(63, 48), pix_fmt="yuv444p", audio=False)
    result = run_cli_here(str(_job(tmp_path, style_weights, smooth=False)))
    assert result.returncode == 1, result.stderr
    assert "done 1, skipped 0 (already done), failed 1" in result.stderr
    assert len(decode_all(tmp_path / "out" / "good.mp4")[0]) == len(decode_all(good)[0])
    line = next(l for l in result.stderr.splitlines() if l.strip().startswith(f"failed  {odd}"))
    assert "[encode]" in line and "63x48" in line and "multiple_of: 2" in line, line
    # Failed while probing: recorded before any segment of any clip, none of its own.
    records = [r for r in _ledger(tmp_path / "out") if "failed" in r or "segment" in r]
    assert records[0].get("failed") == str(odd), records
    assert not any(r.get("segment") == "odd.mp4" for r in records)
    # Alone in a job, not one of its frames is decoded: no step has frames to report.
    (clips / "good.mp4").unlink()
    alone = run_cli_here(str(_job(tmp_path, style_weights, smooth=False, output="alone")))
    assert alone.returncode == 1, alone.stderr
    assert "failed 1" in alone.stderr and "multiple_of: 2" in alone.stderr
    assert "per stage" not in alone.stderr, alone.stderr


def test_temporal_smooth_on_an_image_only_job_is_a_config_error(tmp_path: Path,
                                                                 style_weights: Path) -> None:
    make_photos(tmp_path / "photos", 2)
    job = _job(tmp_path, style_weights, sources="- images: photos/")
    result = run_cli_here("validate", str(job))
    assert result.returncode == 2
    assert f"{job}:7:" in result.stderr  # file and line of the stage
    assert "temporal_smooth" in result.stderr and "no video sources" in result.stderr


def test_images_and_videos_in_one_job(tmp_path: Path, style_weights: Path) -> None:
    make_photos(tmp_path / "photos", 2)
    make_clip(tmp_path / "clips" / "c.webm", frames=10, audio=True, codec="libvpx-vp9")
    job = _job(tmp_path, style_weights, sources="- images: photos/\n          - videos: clips/")
    result = run_cli_here(str(job))
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
    result = run_cli_here(str(_job(tmp_path, style_weights)))
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


def test_validate_lists_every_clip_and_flags_a_truncated_one(tmp_path: Path, style_weights: Path) -> None:
    make_clip(tmp_path / "clips" / "good.mp4", frames=30, fps=24, audio=True)
    full = make_clip(tmp_path / "full.mkv", frames=40, gop_size=8, audio=False)
    data = full.read_bytes()
    (tmp_path / "clips" / "cut.mkv").write_bytes(data[: len(data) // 2])  # its header survives
    result = run_cli_here("validate", str(_job(tmp_path, style_weights)))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    good = [line for line in lines if line.startswith("clip ") and "good.mp4" in line]
    assert good and "64x48 24 fps, 30 frames, 1.25 s, audio aac" in good[0], result.stdout
    cut = [line for line in lines if line.startswith("problem ") and "cut.mkv" in line]
    assert cut and "truncated: its frames stop at" in cut[0], result.stdout


def test_a_kill_costs_at_most_about_commit_every_of_work(tmp_path: Path) -> None:
    """A slow job (TV denoise run to 800 iterations: about 0.1 s a frame here) whose one segment
    never closes before the kill: its frames are saved every commit_every seconds, the rerun
    computes only the frames after the last save, and the clip is byte for byte an
    uninterrupted run's."""
    make_clip(tmp_path / "clips" / "slow.mp4", frames=48, fps=24, audio=True, gop_size=6)

    def job(output: str) -> Path:
        return write_job(tmp_path, f"""
            sources: [{{videos: clips/}}]
            output: {output}
            commit_every: 0.5
            stages:
              - tv_denoise: {{weight: 0.2, max_iter: 800, eps: 1.0e-12}}
              - temporal_smooth: {{strength: 0.8}}
              - encode: {{video: {{codec: libx264, preset: ultrafast, segment_seconds: 100}}}}
            """, name=f"{output}.yaml")

    straight = run_cli_here(str(job("straight")))
    assert straight.returncode == 0, straight.stderr
    saved_at: list[float] = []

    def two_intervals_after_a_save(records: list[dict]) -> bool:
        if any("scratch" in r for r in records) and not saved_at:
            saved_at.append(time.monotonic())
        return bool(saved_at) and time.monotonic() - saved_at[0] > 1.0

    returncode, _ = _kill_mid_video(job("out"), signal.SIGKILL, until=two_intervals_after_a_save)
    assert returncode == -signal.SIGKILL, "the run ended before the kill: make it slower"
    records = _ledger(tmp_path / "out")
    assert not any("segment" in r or "done" in r for r in records), "no segment may close first"
    saved = max(r["frames"] for r in records if "scratch" in r)
    assert 0 < saved < 48
    resumed = run_cli_here(str(job("out")))
    assert resumed.returncode == 0, resumed.stderr
    assert f"({48 - saved} frames)" in resumed.stderr  # the saved frames were not recomputed
    assert (tmp_path / "out" / "slow.mp4").read_bytes() == (tmp_path / "straight" / "slow.mp4").read_bytes()
    assert not (tmp_path / "out" / ".segments").exists()


@pytest.mark.parametrize("damage", ["cut", "garbage", "missing_key"])
def test_a_resume_file_that_does_not_load_starts_the_clip_over(tmp_path: Path, style_weights: Path,
                                                               damage: str) -> None:
    """Issue 28 item 8: a state file cut short (BadZipFile), garbage, or missing a key failed
    its clip on every rerun.  The clip starts over, said, and comes out whole."""
    make_clip(tmp_path / "clips" / "long.mp4", frames=48, size=(96, 64), fps=24, audio=False,
              gop_size=12)
    job = _job(tmp_path, style_weights, output="out", segment=0.25)
    _kill_mid_video(job, signal.SIGKILL)
    states = [tmp_path / "out" / r["state"] for r in _ledger(tmp_path / "out") if r.get("state")]
    assert states and states[-1].is_file(), "the kill must leave a state file"
    state = states[-1]
    if damage == "cut":
        state.write_bytes(state.read_bytes()[:100])
    elif damage == "garbage":
        state.write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    else:
        np.savez(state.with_suffix(".tmp.npz"), unrelated=np.zeros(3))
        state.with_suffix(".tmp.npz").replace(state)
    # a process of its own, as a user's rerun: its warning goes to its own stderr
    resumed = subprocess.run([sys.executable, str(REPO / "run_pipeline.py"), str(job)],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "the clip starts over" in resumed.stderr, resumed.stderr  # by the ledger's checksum:
    assert "its SHA-256 differs" in resumed.stderr or "a resume file does not load" in resumed.stderr
    frames, _ = decode_all(tmp_path / "out" / "long.mp4")
    assert len(frames) == 48


@pytest.mark.parametrize("damage", ["zeroed_state", "swapped_segments"])
def test_a_resume_file_of_the_right_shape_but_other_content_starts_the_clip_over(
        tmp_path: Path, style_weights: Path, damage: str) -> None:
    """Issue 28 item 8: files that load but are not what was saved (a state of zeros, two
    segments in each other's place) are caught by the SHA-256 the ledger records for each."""
    make_clip(tmp_path / "clips" / "long.mp4", frames=48, size=(96, 64), fps=24, audio=False,
              gop_size=12)
    straight = _job(tmp_path, style_weights, output="straight", segment=0.25)
    assert run_cli_here(str(straight)).returncode == 0
    job = _job(tmp_path, style_weights, output="out", segment=0.25)
    _kill_mid_video(job, signal.SIGKILL, until=lambda records: sum("segment" in r for r in records) >= 2)
    records = [r for r in _ledger(tmp_path / "out") if "segment" in r]
    assert len(records) >= 2 and all(r["sha256"] for r in records), records
    if damage == "zeroed_state":
        state = tmp_path / "out" / records[-1]["state"]
        with np.load(state) as saved:
            zeros = {name: np.zeros_like(saved[name]) for name in saved.files}
        with open(state, "wb") as f:
            np.savez(f, **zeros)
    else:
        first, second = (tmp_path / "out" / r["path"] for r in records[:2])
        a, b = first.read_bytes(), second.read_bytes()
        first.write_bytes(b)
        second.write_bytes(a)
    resumed = subprocess.run([sys.executable, str(REPO / "run_pipeline.py"), str(job)],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "is not the file that was saved (its SHA-256 differs); the clip starts over" in resumed.stderr, \
        resumed.stderr
    assert (tmp_path / "out" / "long.mp4").read_bytes() == (tmp_path / "straight" / "long.mp4").read_bytes()
