"""Images too big for the machine fail alone, at decode, before they are decoded.

The chain's estimate walks ``output_size`` and names the stage that sets the
peak; a gate with a small budget refuses one image and lets the others run;
the real CLI refuses a 12000x12000 PNG (144 Mpx, between Pillow's warning and
error limits) the same way on every run instead of being killed for memory.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from pipeline.machine.context import RunContext
from pipeline.errors import MediaError
from pipeline.engine import Engine
from pipeline.record.ledger import Ledger
from pipeline.media.images import image_size, read_image
from pipeline.machine.memory import (BUDGET_ENV, Budget, MemoryGate, chain_peak, estimate, measure_budget,
                             parse_size)
from pipeline.job.plan import Unit
from pipeline.stages import get_stage
from tests.conftest import make_photos, natural_image, run_cli, write_job

CPU = RunContext(device=torch.device("cpu"), precision="fp32", batch_size=None)
GiB = 2**30


def _stage(name: str, ctx: RunContext = CPU, **options):
    cls = get_stage(name)
    return cls(cls.Params(**options), ctx)


def test_resize_before_the_network_shrinks_the_estimate(style_weights: Path) -> None:
    style = _stage("fast_style", weights=style_weights)
    full, at = chain_peak([style], 3, 9000, 12000, 4)
    assert at == "fast_style"
    assert full > 9000 * 12000 * 900  # the network's activations, about 1 KB a pixel in fp32
    resized, at = chain_peak([_stage("resize", long_side=1024), style], 3, 9000, 12000, 4)
    # Still fast_style's peak (at 1024x768, with the full-size input held beside it), 40x smaller.
    assert at == "fast_style" and resized < full / 20
    # 16-bit halves the activations.
    assert chain_peak([style], 3, 9000, 12000, 2)[0] < 0.6 * full


def test_the_stage_that_sets_the_peak_is_named(style_weights: Path) -> None:
    style, tv = _stage("fast_style", weights=style_weights), _stage("tv_denoise", weight=0.1)
    # Downscaled before the network, denoised at full size after an upscale: tv_denoise peaks.
    chain = [_stage("resize", scale=0.25), style, _stage("resize", scale=4), tv]
    peak, at = chain_peak(chain, 3, 4000, 4000, 4)
    assert at == "tv_denoise"
    # Its own peak at the size it is given, plus the chain's input held beside it.
    assert peak == tv.peak_bytes(3, 4000, 4000, 4) + 3 * 4000 * 4000 * 4
    assert chain_peak([], 3, 10, 10, 4) == (0, "")


def test_decoding_is_counted_and_can_be_the_peak(style_weights: Path) -> None:
    style = _stage("fast_style", weights=style_weights)
    cpu = estimate([style], 3, 1000, 1000, 4, shared=True)
    assert cpu.stage == "fast_style" and cpu.device_bytes == 3 * 10**6 + style.peak_bytes(3, 1000, 1000, 4)
    cuda = estimate([style], 3, 1000, 1000, 4, shared=False)  # decoding is on the host there
    assert cuda.device_bytes == style.peak_bytes(3, 1000, 1000, 4) and cuda.host_bytes == 7 * 10**6
    assert estimate([], 3, 1000, 1000, 4, shared=True).stage == "decode"


def test_a_small_budget_refuses_with_a_clear_reason(style_weights: Path) -> None:
    gate = MemoryGate([_stage("fast_style", weights=style_weights)], CPU,
                      budget=Budget(torch.device("cpu"), 20 * GiB, 20 * GiB))
    assert gate.fits(4000, 3000) and gate.shortfall(4000, 3000) is None
    reason = gate.shortfall(12000, 12000)
    assert reason.startswith("12000x12000 (144 Mpx) needs about 1")  # 136 GiB or so
    assert "GiB at fast_style but about 20 GiB is free on cpu" in reason
    # The suggested size is one that fits.
    assert "add 'resize: {long_side: 4096}' before fast_style" in reason
    assert "use a machine with more memory" in reason
    with pytest.raises(MediaError) as info:
        gate.check_size("big.png", 12000, 12000)
    assert info.value.stage == "decode" and info.value.reason == reason


def test_cuda_budgets_device_and_host_apart(style_weights: Path) -> None:
    cuda = RunContext(device=torch.device("cuda", 0), precision="bf16", batch_size=None)
    gate = MemoryGate([_stage("fast_style", weights=style_weights)], cuda,
                      budget=Budget(torch.device("cuda", 0), 100 * GiB, 200 * 2**20))
    assert gate.itemsize == 2
    reason = gate.shortfall(8000, 8000)  # 64 Mpx: fits the device in bf16, not the host's 200 MiB
    assert "needs about 427 MiB at decode but about 200 MiB is free on the host" in reason
    assert "downscale it with an image tool" in reason


def test_budget_is_measured_or_set_by_the_environment(monkeypatch) -> None:
    monkeypatch.delenv(BUDGET_ENV, raising=False)
    measured = measure_budget(torch.device("cpu"))
    total = next(int(line.split()[1]) * 1024 for line in open("/proc/meminfo")
                 if line.startswith("MemTotal:"))
    assert 0 < measured.host_bytes == measured.device_bytes < total and measured.source == "free"
    monkeypatch.setenv(BUDGET_ENV, "6GiB")
    assert measure_budget(torch.device("cpu")).host_bytes == 6 * GiB
    assert [parse_size(s) for s in ("512MiB", "2G", "1.5 GB", "4096", "3k")] == \
        [512 * 2**20, 2 * GiB, int(1.5 * GiB), 4096, 3072]
    with pytest.raises(ValueError, match=BUDGET_ENV):
        parse_size("lots")


def test_image_size_reads_the_header_with_orientation(tmp_path: Path) -> None:
    path = tmp_path / "turned.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees to display
    Image.fromarray(natural_image(20, 36, seed=1)).save(path, exif=exif)
    assert image_size(path) == (20, 36)
    assert read_image(path).shape[:2] == (36, 20)
    with pytest.raises(MediaError):
        image_size(tmp_path / "missing.png")


def test_pillows_own_limit_still_fails_at_decode(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    Image.new("1", (14000, 14000)).save(path)  # 196 Mpx, over Pillow's error limit; 25 MB here
    gate = MemoryGate([], CPU, budget=Budget(torch.device("cpu"), GiB, GiB))
    gate.check_image(path)  # no verdict from the gate: decoding says why
    with pytest.raises(MediaError, match="too large to decode safely"):
        read_image(path)


def test_the_engine_fails_the_big_image_alone(tmp_path: Path) -> None:
    sizes = [(24, 32), (600, 800), (24, 28)]
    units = []
    for i, (h, w) in enumerate(sizes):
        path = tmp_path / "src" / f"{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(natural_image(h, w, seed=i)).save(path)
        units.append(Unit(source=path, output_rel=Path(f"{i}.png"), source_index=0))
    stages = [_stage("decode"), _stage("tv_denoise", weight=0.1), _stage("encode")]
    ledger = Ledger(tmp_path / "out", {"test": 1})
    try:
        engine = Engine(stages, CPU, ledger, workers=2)
        engine.memory_gate = MemoryGate(engine.middle, CPU,
                                          budget=Budget(torch.device("cpu"), 8 * 2**20, 8 * 2**20))
        summary = engine.run(units)
    finally:
        ledger.close()
    assert summary.done == 2
    [failure] = summary.failures
    assert failure.source == units[1].source and failure.stage == "decode"
    assert failure.reason.startswith("800x600 (0.5 Mpx) needs about") and "at tv_denoise" in failure.reason
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["0.png", "2.png"]


def test_cli_refuses_a_huge_png_alone_and_again_on_rerun(tmp_path: Path, style_weights: Path,
                                                         monkeypatch) -> None:
    make_photos(tmp_path / "photos", 2)
    # 12000x12000 (144 Mpx: over Pillow's warning limit, under its error limit), mostly zeros:
    # a ~140 KB file that decodes to 432 MB and needs over 100 GiB in fast_style.
    Image.new("L", (12000, 12000)).save(tmp_path / "photos" / "huge.png")
    job = write_job(tmp_path, f"""
        sources:
          - images: photos/
        output: out
        device: cpu
        stages:
          - decode
          - fast_style: {{weights: {style_weights}}}
          - encode: {{image: {{format: png}}}}
        """)
    # A fixed budget, so the verdict does not depend on this machine's memory.
    monkeypatch.setenv(BUDGET_ENV, "16GiB")
    for attempt in range(2):
        result = run_cli(str(job))
        assert result.returncode == 1, result.stderr
        assert f"done {2 - 2 * attempt}, skipped {2 * attempt}" in result.stderr
        assert "failed 1" in result.stderr
        assert "huge.png [decode]: 12000x12000 (144 Mpx) needs about" in result.stderr
        assert f"at fast_style but the budget is 16 GiB ({BUDGET_ENV}=16GiB)" in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["img000.png", "img001.png"]
    records = [json.loads(line) for line in (tmp_path / "out" / ".ledger.jsonl").read_text().splitlines()]
    failed = [r for r in records if "failed" in r]
    assert len(failed) == 2 and all(r["failed"].endswith("huge.png") and r["stage"] == "decode"
                                    and "needs about" in r["reason"] for r in failed)
