"""The engine's policies: the batching policy alone, then real threads and files.

Out of memory halves the batch instead of ending the run (images and clips);
one image that breaks a batch fails alone; batches hold images of one size
only, and a clip's frames in order, never across a segment; a stopped engine
resumes in a fresh one to the same frames.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.job.build import prepare
from pipeline.machine.context import RunContext
from pipeline.engine import Engine, Progress, Summary
from pipeline.engine.batcher import Batch, Batcher, Piece
from pipeline.record.ledger import Ledger
from pipeline.job.plan import Unit
from pipeline.stages import get_stage
from pipeline.stages.base import Stage
from tests.clips import decode_all, make_clip
from tests.conftest import natural_image, write_job

CTX = RunContext(device=torch.device("cpu"), precision="fp32", batch_size=8)


class Recorder(Stage):
    """Inverts colours; remembers batch shapes; fails as told."""

    name = "recorder"

    def __init__(self, oom_above: int = 0, poison_value: int = -1) -> None:
        super().__init__(None, CTX)
        self.batches: list[tuple[int, ...]] = []
        self.oom_above, self.poison_value = oom_above, poison_value

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(tuple(x.shape))
        if self.oom_above and x.shape[0] > self.oom_above:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if self.poison_value >= 0 and (x[:, 0, 0, 0] == self.poison_value).any():
            raise RuntimeError("this image breaks the stage")
        return 255 - x


def _units(tmp_path: Path, sizes: list[tuple[int, int]], poison_index: int = -1) -> list[Unit]:
    units = []
    for i, (h, w) in enumerate(sizes):
        image = natural_image(h, w, seed=i)
        image[0, 0, 0] = 7 if i == poison_index else 100
        path = tmp_path / "src" / f"{i:02d}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(image).save(path)
        units.append(Unit(source=path, output_rel=Path(f"{i:02d}.png"), source_index=0))
    return units


def _run(tmp_path: Path, units: list[Unit], stage: Recorder, workers: int = 2):
    io = get_stage("encode")
    encode = io(io.Params(), CTX)
    decode = get_stage("decode")(get_stage("decode").Params(), CTX)
    ledger = Ledger(tmp_path / "out", {"test": 1})
    progress = []

    class Record(Progress):
        def unit_finished(self, ok: bool, clip: str | None = None) -> None:
            progress.append(ok)

    try:
        summary = Engine([decode, stage, encode], CTX, ledger, workers=workers,
                                progress=Record()).run(units)
    finally:
        ledger.close()
    return summary, progress


def test_out_of_memory_halves_the_batch_and_every_image_is_done(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("pipeline.engine.engine.IDLE_S", 2.0)  # a slow decoder still fills the batch
    units = _units(tmp_path, [(16, 20)] * 12)
    stage = Recorder(oom_above=2)
    summary, progress = _run(tmp_path, units, stage, workers=1)
    assert summary.done == 12 and not summary.failures and progress == [True] * 12
    assert max(b[0] for b in stage.batches) > 2  # it did try bigger batches first
    for unit in units:
        out = np.array(Image.open(tmp_path / "out" / unit.output_rel))
        np.testing.assert_array_equal(out, 255 - np.array(Image.open(unit.source)))


def test_one_bad_image_fails_alone(tmp_path: Path) -> None:
    units = _units(tmp_path, [(16, 20)] * 6, poison_index=3)
    summary, progress = _run(tmp_path, units, Recorder(poison_value=7))
    assert summary.done == 5
    assert [(f.source.name, f.stage) for f in summary.failures] == [("03.png", "recorder")]
    assert "this image breaks the stage" in summary.failures[0].reason
    assert sorted(progress) == [False] + [True] * 5
    assert not (tmp_path / "out" / "03.png").exists()


def test_batches_hold_images_of_one_size(tmp_path: Path) -> None:
    sizes = [(16, 20), (12, 12), (16, 20), (12, 12), (8, 24)] * 3
    stage = Recorder()
    summary, _ = _run(tmp_path, _units(tmp_path, sizes), stage)
    assert summary.done == len(sizes)
    assert sum(b[0] for b in stage.batches) == len(sizes)
    assert all(b[0] <= CTX.batch_size for b in stage.batches)
    assert {b[2:] for b in stage.batches} == {(16, 20), (12, 12), (8, 24)}


def test_job_bar_ends_full_when_a_clip_fails_or_its_header_miscounts(monkeypatch) -> None:
    import io
    import sys

    from pipeline.machine.progress import Bars as _Bars

    class Terminal(io.StringIO):
        def isatty(self) -> bool:  # tqdm draws (and counts) only on a terminal
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    bars = _Bars("job", 2, quiet=False)  # two images
    bars.frames_done(2)
    bars.add_total(30)
    bars.clip_started("a.mp4", 20, 0)  # fails after 5 of 20 frames
    bars.clip_started("b.mp4", 10, 0)  # header said 10, 12 came
    bars.frames_done(5, "a.mp4")
    bars.unit_finished(False, "a.mp4")
    bars.frames_done(12, "b.mp4")
    bars.unit_finished(True, "b.mp4")
    assert (bars._job.n, bars._job.total) == (19, 19)
    bars.close()


def test_summary_speed_reads_as_seconds_per_item_when_slow() -> None:
    from pipeline.commands.run import _speed

    assert _speed(72, 11.2, "frame") == "6.43 frames/s"
    assert _speed(2, 601.4, "image") == "300.7 s/image"  # gatys: not "0.00 images/s"
    assert _speed(0, 5.0, "image") == "0.00 images/s"


# -- the batching policy, alone ------------------------------------------------
def _piece(key: str, shape=(4, 4, 3), ordered: bool = False, cut: bool = False) -> Piece:
    unit = Unit(source=Path(key), output_rel=Path(key), source_index=0,
                kind="video" if ordered else "image")
    return Piece(unit, np.zeros(shape, np.uint8), ordered=ordered, cut=cut)


def _keys(batches: list[Batch]) -> list[list[str]]:
    return [[p.unit.key for p in b.pieces] for b in batches]


def test_independent_pieces_go_by_shape_when_the_batch_is_full() -> None:
    batcher = Batcher(lambda shape: 3)
    assert batcher.add(_piece("a")) == [] and batcher.add(_piece("b", (8, 8, 3))) == []
    assert batcher.add(_piece("c")) == [] and batcher.partial and batcher.waiting == 3
    [full] = batcher.add(_piece("d"))
    assert _keys([full]) == [["a", "c", "d"]] and full.unit is None and not full.last
    assert {u.key for u in full.units} == {"a", "c", "d"}
    assert _keys(batcher.stalled()) == [["b"]] and batcher.waiting == 0


def test_too_many_waiting_sizes_send_the_oldest_group() -> None:
    batcher = Batcher(lambda shape: 8, max_waiting=3)
    for i in range(3):
        assert batcher.add(_piece(f"s{i}", (4 + i, 4, 3))) == []
    assert _keys(batcher.add(_piece("s3", (9, 4, 3)))) == [["s0"]]


def test_a_clips_frames_stay_in_order_and_never_cross_a_cut_or_mix_clips() -> None:
    batcher = Batcher(lambda shape: 4)
    assert batcher.add(_piece("x", ordered=True)) == []
    assert batcher.add(_piece("y", ordered=True)) == []  # another clip, same shape: apart
    [cut] = batcher.add(_piece("x", ordered=True, cut=True))  # a segment's last frame
    assert _keys([cut]) == [["x", "x"]] and cut.unit.key == "x" and not cut.last
    assert not batcher.partial and batcher.stalled() == []  # a clip never goes early on a stall
    batcher.add(_piece("x", ordered=True))
    end = batcher.end(cut.unit)
    assert _keys([end]) == [["x"]] and end.last and end.unit.key == "x"
    empty = batcher.end(cut.unit)  # the frames all went with a cut: the end still comes
    assert empty.pieces == [] and empty.last
    batcher.drop(_piece("y", ordered=True).unit)  # a failed clip's frames are forgotten
    assert batcher.waiting == 0 and batcher.drain() == []


def test_a_split_batch_keeps_its_order_and_only_the_final_part_is_last() -> None:
    pieces = [_piece("x", ordered=True) for _ in range(5)]
    parts = Batch(pieces, pieces[0].unit, last=True).split(2)
    assert [len(p.pieces) for p in parts] == [2, 2, 1]
    assert [p.last for p in parts] == [False, False, True]
    assert [q for p in parts for q in p.pieces] == pieces


# -- clips through the engine --------------------------------------------------
def _job_on_a_clip(tmp_path: Path, output: str, setting: str, middle: list[str],
                   video: str) -> Path:
    """A job on one 20-frame clip (made once per test folder): ``setting`` a top-level line,
    ``middle`` the stages between decode and encode, ``video`` encode's video options."""
    if not (tmp_path / "clips" / "c.mp4").exists():
        (tmp_path / "clips").mkdir(parents=True)
        make_clip(tmp_path / "clips" / "c.mp4", frames=20, fps=10, audio=True)
    stages = "".join(f"\n          - {stage}" for stage in ["decode", *middle])
    return write_job(tmp_path, f"""
        sources: [{{videos: clips/}}]
        output: {output}
        {setting}
        stages:{stages}
          - encode: {{video: {{codec: libx264, preset: ultrafast, {video}}}}}
        """, name=f"{output}.yaml")


def _clip_job(tmp_path: Path, output: str) -> Path:
    return _job_on_a_clip(tmp_path, output, "batch_size: 4",
                          ["tv_denoise: {weight: 0.1}", "temporal_smooth: {}"], "segment_seconds: 0.3")


def _run_clip_job(job: Path, *, middle=None, stop_after_frames: int = 0,
                  encoders: int | None = None, delay: float = 0.0,
                  flow_threads: int | None = None) -> tuple[Summary, Path]:
    prepared = prepare(job)
    stages = list(prepared.stages)
    if middle is not None:
        stages[1:-1] = middle
    ledger = Ledger(prepared.job.output, prepared.fingerprint,
                    keys=[u.key for u in prepared.plan.units])
    engine: list[Engine] = []

    class StopLater(Progress):
        frames = 0

        def frames_done(self, n: int, clip: str | None = None) -> None:
            time.sleep(delay)  # a slow device: the wall-clock saves come due
            self.frames += n
            if stop_after_frames and self.frames >= stop_after_frames:
                engine[0].stop()

    try:
        engine.append(Engine(stages, prepared.ctx, ledger, progress=StopLater(), encoders=encoders,
                             flow_threads=flow_threads, commit_every=prepared.job.commit_every))
        units = [u for u in prepared.plan.units if not ledger.is_done(u.key)]
        summary = engine[0].run(units)
    finally:
        ledger.close()
    return summary, prepared.job.output / "c.mp4"


def test_a_stopped_engine_resumes_in_a_fresh_one_to_the_same_frames(tmp_path: Path) -> None:
    _, whole = _run_clip_job(_clip_job(tmp_path, "whole"))
    job = _clip_job(tmp_path, "stopped")
    first, out = _run_clip_job(job, stop_after_frames=8)
    assert first.interrupted and first.done == 0 and 0 < first.segments and not out.exists()
    second, out = _run_clip_job(job)  # a fresh engine and ledger, from what is on disk
    assert second.done == 1 and second.frames < 20  # it did not start the clip over
    got, want = decode_all(out), decode_all(whole)
    assert got[1] == want[1] and all(np.array_equal(a, b) for a, b in zip(got[0], want[0]))
    lines = [json.loads(line) for line in (out.parent / ".ledger.jsonl").read_text().splitlines()[1:]]
    indices = [r["index"] for r in lines if "segment" in r]
    assert indices == sorted(set(indices))  # every segment committed once


def test_out_of_memory_in_a_clip_splits_its_batches_and_changes_no_frame(tmp_path: Path) -> None:
    whole, plain = _run_clip_job(_clip_job(tmp_path, "plain"), middle=[Recorder()])
    stage = Recorder(oom_above=1)
    split, out = _run_clip_job(_clip_job(tmp_path, "oom"), middle=[stage])
    assert whole.done == split.done == 1 and not split.failures
    assert max(b[0] for b in stage.batches) > 1 and stage.batches[-1][0] == 1
    got, want = decode_all(out), decode_all(plain)
    assert got[1] == want[1] and all(np.array_equal(a, b) for a, b in zip(got[0], want[0]))


def test_segments_encoded_at_once_give_the_bytes_of_a_sequential_encode(tmp_path: Path,
                                                                         monkeypatch) -> None:
    from pipeline.stages.encode import Encode

    real_open, lock = Encode.open_segment, threading.Lock()
    counts = {"open": 0, "most": 0}

    class SlowWriter:  # encoding is the bottleneck: segments wait for their encoders
        def __init__(self, writer) -> None:
            self.writer = writer
            with lock:
                counts["open"] += 1
                counts["most"] = max(counts["most"], counts["open"])

        def write(self, *frame) -> None:
            time.sleep(0.06)
            self.writer.write(*frame)

        def close(self) -> None:
            self.writer.close()
            self._gone()

        def abort(self) -> None:
            self.writer.abort()
            self._gone()

        def _gone(self) -> None:
            with lock:
                counts["open"] -= 1

    monkeypatch.setattr(Encode, "open_segment", lambda self, *a: SlowWriter(real_open(self, *a)))
    one, sequential = _run_clip_job(_clip_job(tmp_path, "one"), encoders=1)
    assert counts["most"] == 1
    four, parallel = _run_clip_job(_clip_job(tmp_path, "four"), encoders=4)
    assert counts["most"] >= 2, counts  # they did overlap
    assert one.done == four.done == 1 and four.segments == one.segments
    assert parallel.read_bytes() == sequential.read_bytes()
    lines = [json.loads(line) for line in (parallel.parent / ".ledger.jsonl").read_text().splitlines()[1:]]
    assert [r["index"] for r in lines if "segment" in r] == list(range(7))  # committed in order


# -- no stage: the decoder's planes go to the encoder as they are ----------------
def _identity_job(tmp_path: Path, output: str, video: str = "") -> Path:
    return _job_on_a_clip(tmp_path, output, "commit_every: 0.001", [], f"segment_seconds: 1{video}")


def _planes(path: Path) -> list[tuple[np.ndarray, ...]]:
    import av

    from pipeline.media.video import Planes

    with av.open(str(path)) as container:
        return [tuple(vars(Planes.of(f)).values()) for f in container.decode(video=0)]


def test_with_no_stage_the_decoded_planes_are_encoded_unconverted(tmp_path: Path) -> None:
    _, out = _run_clip_job(_identity_job(tmp_path, "lossless", ", crf: 0"))
    source, written = _planes(tmp_path / "clips" / "c.mp4"), _planes(out)
    assert len(source) == len(written) == 20
    for a, b in zip(source, written):  # lossless x264: not a level lost to a colour round trip
        assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_a_stopped_pass_through_clip_resumes_from_its_saved_planes(tmp_path: Path) -> None:
    _, whole = _run_clip_job(_identity_job(tmp_path, "whole"))
    job = _identity_job(tmp_path, "stopped")
    first, out = _run_clip_job(job, stop_after_frames=5, delay=0.01)
    lines = [json.loads(line) for line in (out.parent / ".ledger.jsonl").read_text().splitlines()[1:]]
    scratch = [r for r in lines if "scratch" in r]
    assert first.interrupted and scratch and not any("done" in r for r in lines)
    with np.load(out.parent / scratch[-1]["path"]) as saved:
        assert {"y", "u", "v"} <= set(saved.files)  # the planes, not RGB
    second, out = _run_clip_job(job)
    assert second.done == 1 and second.frames < 20
    assert out.read_bytes() == whole.read_bytes()


def test_flow_in_a_pool_of_one_or_four_gives_the_same_video(tmp_path: Path) -> None:
    one, alone = _run_clip_job(_clip_job(tmp_path, "one"), flow_threads=1)
    four, pooled = _run_clip_job(_clip_job(tmp_path, "four"), flow_threads=4)
    assert one.done == four.done == 1 and one.times.frames["flow"] == 20  # a guide per frame
    assert pooled.read_bytes() == alone.read_bytes()


def test_colour_converted_on_the_device_gives_the_frames_of_libswscale(tmp_path: Path,
                                                                       monkeypatch) -> None:
    """On a GPU a clip's 4:2:0 planes are converted on the device, both ways; forced here on
    the CPU, the frames match the libswscale path's within 2 levels on average (its reading
    call rounds about 1.3 levels dark, see tests/test_colour.py; the device does not)."""
    from pipeline.engine.video import VideoWay

    def job(output: str) -> Path:
        return _job_on_a_clip(tmp_path, output, "batch_size: 4", ["tv_denoise: {weight: 0.05}"],
                              "segment_seconds: 1, crf: 0")

    _, cpu = _run_clip_job(job("swscale"))
    monkeypatch.setattr(VideoWay, "device_colour", True)
    seen = []
    real = VideoWay._stages

    def spy(self, clip, frames, *rest):
        seen.extend(type(f).__name__ for f in frames)
        return real(self, clip, frames, *rest)

    monkeypatch.setattr(VideoWay, "_stages", spy)
    _, device = _run_clip_job(job("device"))
    assert set(seen) == {"Planes"} and len(seen) == 20  # every frame went up as planes
    a, b = decode_all(cpu), decode_all(device)
    assert a[1] == b[1] and len(a[0]) == 20
    for x, y in zip(a[0], b[0]):
        assert np.abs(x.astype(int) - y.astype(int)).mean() <= 2.0


def _smoothing_job(tmp_path: Path, output: str, before: list[str]) -> Path:
    return _job_on_a_clip(tmp_path, output, "batch_size: 4", [*before, "temporal_smooth: {}"],
                          "segment_seconds: 0.3, crf: 0")


def _spy_smoothing(monkeypatch) -> tuple[list, list]:
    """(frame types the device got, frames scan_planes smoothed), filled as a job runs."""
    from pipeline.engine.video import VideoWay
    from pipeline.stages.temporal_smooth import TemporalSmooth

    seen, planes = [], []
    stages, scan_planes = VideoWay._stages, TemporalSmooth.scan_planes
    scan_host = TemporalSmooth.scan_planes_host

    def spy_stages(self, clip, frames, *rest):
        seen.extend(type(f).__name__ for f in frames)
        return stages(self, clip, frames, *rest)

    def spy_scan(self, y, uv, guides, prev):
        planes.append(len(guides))
        return scan_planes(self, y, uv, guides, prev)

    def spy_host(self, frames, guides, prev):
        planes.append(len(guides))
        return scan_host(self, frames, guides, prev)

    monkeypatch.setattr(VideoWay, "_stages", spy_stages)
    monkeypatch.setattr(TemporalSmooth, "scan_planes", spy_scan)
    monkeypatch.setattr(TemporalSmooth, "scan_planes_host", spy_host)
    return seen, planes


def _close_videos(a: Path, b: Path, mean: float) -> None:
    (fa, pa), (fb, pb) = decode_all(a), decode_all(b)
    assert pa == pb and len(fa) == 20
    for x, y in zip(fa, fb):
        assert np.abs(x.astype(int) - y.astype(int)).mean() <= mean


def test_smoothing_last_smooths_the_encoders_planes_and_never_makes_rgb(tmp_path: Path,
                                                                        monkeypatch) -> None:
    """temporal_smooth last before a yuv420p encoder blends the 4:2:0 planes it will encode: with
    no stage before it the decoded planes go up as they are (the flow takes small RGB frames
    from them), and the video is the RGB smoothing's within 2 levels on average (the RGB path's
    reading call rounds about 1.3 levels dark, see tests/test_colour.py).  Stopped and resumed in a
    fresh engine, it is byte for byte the uninterrupted run's.  On the CPU the planes are smoothed
    in numpy and OpenCV (no torch, issue 30): the same bytes as through torch, resumed either way."""
    from pipeline.engine.video import VideoWay

    seen, planes = _spy_smoothing(monkeypatch)
    _, straight = _run_clip_job(_smoothing_job(tmp_path, "planes", []))
    assert set(seen) == {"Planes"} and len(seen) == sum(planes) == 20
    first, _ = _run_clip_job(_smoothing_job(tmp_path, "stopped", []), stop_after_frames=8, delay=0.01)
    monkeypatch.setattr(VideoWay, "host_smoothing", False)  # resumed through torch
    second, resumed = _run_clip_job(_smoothing_job(tmp_path, "stopped", []))
    assert first.interrupted and second.done == 1 and second.frames < 20
    assert resumed.read_bytes() == straight.read_bytes()
    _, through_torch = _run_clip_job(_smoothing_job(tmp_path, "torch", []))
    assert through_torch.read_bytes() == straight.read_bytes()
    monkeypatch.setattr(VideoWay, "smooth_planes", False)
    seen.clear(), planes.clear()
    _, rgb = _run_clip_job(_smoothing_job(tmp_path, "rgb", []))
    assert set(seen) == {"ndarray"} and not planes
    _close_videos(straight, rgb, mean=2.0)


def test_after_a_stage_the_smoothing_takes_its_rgb_as_planes(tmp_path: Path, monkeypatch) -> None:
    """With a stage before it, the stage's RGB output becomes the encoder's 4:2:0 planes on the
    device and those are smoothed; with a stage after it, the smoothing is on RGB as before."""
    from pipeline.engine.video import VideoWay

    seen, planes = _spy_smoothing(monkeypatch)
    _, as_planes = _run_clip_job(_smoothing_job(tmp_path, "planes", ["tv_denoise: {weight: 0.1}"]))
    assert sum(planes) == 20 and set(seen) == {"ndarray"}  # decoded as RGB for tv_denoise
    planes.clear()
    _, after = _run_clip_job(_job_on_a_clip(tmp_path, "after", "batch_size: 4",
                                            ["temporal_smooth: {}", "tv_denoise: {weight: 0.1}"],
                                            "segment_seconds: 0.3, crf: 0"))
    assert not planes
    monkeypatch.setattr(VideoWay, "smooth_planes", False)
    _, rgb = _run_clip_job(_smoothing_job(tmp_path, "rgb", ["tv_denoise: {weight: 0.1}"]))
    assert not planes
    _close_videos(as_planes, rgb, mean=1.5)


def test_the_host_conversion_to_uint8_is_torchs_round_and_clamp() -> None:
    """On a CPU the engine rounds its float frames to bytes with OpenCV: the same bytes as
    torch's round (half to even) and clamp, in either layout and memory format."""
    from pipeline.machine.device import to_host_uint8

    g = torch.Generator().manual_seed(0)
    for shape in ((2, 3, 17, 23), (1, 1, 8, 9), (3, 2, 5, 7), (2, 4, 6, 6)):
        x = torch.rand(shape, generator=g) * 400 - 60  # below 0 and above 255 too
        x.view(-1)[::5] = torch.round(x.view(-1)[::5]) + 0.5  # ties
        for nhwc in (False, True):
            want = x.round().clamp(0, 255).to(torch.uint8)
            want = (want.permute(0, 2, 3, 1) if nhwc else want).numpy()
            for layout in (x, x.contiguous(memory_format=torch.channels_last)):
                got = to_host_uint8(layout, nhwc)
                assert got.dtype == np.uint8 and got.flags.c_contiguous
                assert np.array_equal(got, want), (shape, nhwc)


@pytest.mark.parametrize("kind, options", [("10-bit", {"pix_fmt": "yuv420p10le"}),
                                           ("rotated", {"rotation": 90})])
def test_frames_that_are_not_8_bit_planes_are_smoothed_as_planes_too(tmp_path: Path, monkeypatch,
                                                                     kind: str, options) -> None:
    """A 10-bit or rotated clip is decoded to upright 8-bit RGB (the reading rules: no planes from
    it); with the
    smoothing last, its frames become the encoder's planes on the device and are smoothed
    there: the video is the RGB smoothing's within rounding, upright, every frame kept."""
    from pipeline.engine.video import VideoWay

    (tmp_path / "clips").mkdir()
    make_clip(tmp_path / "clips" / "c.mp4", frames=20, fps=10, audio=False, **options)
    seen, planes = _spy_smoothing(monkeypatch)
    _, as_planes = _run_clip_job(_smoothing_job(tmp_path, "planes", []))
    assert set(seen) == {"ndarray"} and sum(planes) == 20
    monkeypatch.setattr(VideoWay, "smooth_planes", False)
    _, rgb = _run_clip_job(_smoothing_job(tmp_path, "rgb", []))
    assert decode_all(as_planes)[0][0].shape == (48, 64, 3)  # made upright (tests/clips.py)
    _close_videos(as_planes, rgb, mean=1.5)


def test_on_a_gpu_a_stage_before_the_smoothing_gets_rgb_from_the_planes(tmp_path: Path,
                                                                        monkeypatch) -> None:
    """Where the device converts colour (a GPU; forced here on the CPU) the planes go up, become
    RGB for the stage before the smoothing, and its output becomes planes again to be smoothed:
    the video is the CPU path's within the reading call's rounding (see the test above)."""
    from pipeline.engine import video

    def job(output: str) -> Path:
        return _smoothing_job(tmp_path, output, ["tv_denoise: {weight: 0.1}"])

    _, cpu = _run_clip_job(job("swscale"))
    monkeypatch.setattr(video.VideoWay, "device_colour", True)
    seen, planes = _spy_smoothing(monkeypatch)
    ran, run_stages = [], video.run_stages

    def spy(stages, x, keys=None):
        ran.extend([s.name for s in stages] * len(x))
        return run_stages(stages, x, keys)

    monkeypatch.setattr(video, "run_stages", spy)
    _, device = _run_clip_job(job("device"))
    assert set(seen) == {"Planes"} and sum(planes) == 20
    assert ran.count("tv_denoise") == 20  # it ran, on every frame
    _close_videos(device, cpu, mean=2.0)
