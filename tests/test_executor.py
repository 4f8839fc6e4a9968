"""The executor's policies, with real threads and files and stand-in stages.

Out of memory halves the batch instead of ending the run; one image that
breaks a batch fails alone; batches hold images of one size only.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pipeline.context import RunContext
from pipeline.executor.common import Progress
from pipeline.executor.images import ImageExecutor
from pipeline.ledger import Ledger
from pipeline.plan import Unit
from pipeline.stages import get_stage
from pipeline.stages.base import Stage
from tests.conftest import natural_image

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
        summary = ImageExecutor([decode, stage, encode], CTX, ledger, workers=workers,
                                progress=Record()).run(units)
    finally:
        ledger.close()
    return summary, progress


def test_out_of_memory_halves_the_batch_and_every_image_is_done(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("pipeline.executor.images._POLL_S", 2.0)  # a slow decoder still fills the batch
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

    from pipeline.progress import Bars as _Bars

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
    from pipeline.cli import _speed

    assert _speed(72, 11.2, "frame") == "6.43 frames/s"
    assert _speed(2, 601.4, "image") == "300.7 s/image"  # gatys: not "0.00 images/s"
    assert _speed(0, 5.0, "image") == "0.00 images/s"
