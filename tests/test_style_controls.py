"""strength and preserve_color on the style stages (issue 14, item 1)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.machine.context import RunContext
from pipeline.models.cyclegan import ResnetGenerator
from pipeline.ops.style_controls import apply_controls, luma
from pipeline.stages import get_stage
from pipeline.typed_yaml import ParamError
from tests.conftest import lively_transformer_net, natural_image

CPU = RunContext(device=torch.device("cpu"), precision="fp32", batch_size=None)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("controls")
    torch.save(lively_transformer_net().state_dict(), folder / "s.pth")
    torch.manual_seed(1)
    torch.save(ResnetGenerator(ngf=8, n_blocks=2).state_dict(), folder / "g.pth")
    return {"fast_style": folder / "s.pth", "cyclegan": folder / "g.pth"}


def _stage(name: str, weights: dict[str, Path], **controls):
    cls = get_stage(name)
    return cls(cls.Params(weights=weights[name], **controls), CPU)


def _batch() -> torch.Tensor:
    images = [natural_image(28, 36, seed=i) for i in range(2)]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()


def _chroma(rgb: torch.Tensor) -> torch.Tensor:
    """BT.601 Cb, Cr (full range, without the 128 offset)."""
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    return torch.stack([-0.168736 * r - 0.331264 * g + 0.5 * b, 0.5 * r - 0.418688 * g - 0.081312 * b])


@pytest.mark.parametrize("name", ["fast_style", "cyclegan"])
def test_strength_zero_is_the_input_and_one_is_the_stage_without_it(name: str, weights) -> None:
    x = _batch()
    plain = _stage(name, weights)(x)
    assert torch.equal(_stage(name, weights, strength=0.0)(x), x)
    assert torch.equal(_stage(name, weights, strength=1.0)(x), plain)
    half = _stage(name, weights, strength=0.5)(x)
    torch.testing.assert_close(half, (x + plain) / 2, atol=1e-3, rtol=0)  # a blend in RGB


@pytest.mark.parametrize("name", ["fast_style", "cyclegan"])
def test_preserve_color_keeps_the_inputs_chroma_and_takes_the_styles_luma(name: str, weights) -> None:
    x = _batch()
    styled = _stage(name, weights)(x)
    kept = _stage(name, weights, preserve_color=True)(x)
    inside = ((kept > 0) & (kept < 255)).all(1)  # where no channel was clamped
    assert inside.float().mean() > 0.5
    assert (_chroma(kept) - _chroma(x)).abs()[:, inside].max() < 1e-3
    assert (luma(kept) - luma(styled))[:, 0][inside].abs().max() < 1e-3
    assert not torch.equal(kept, styled)  # the style's colours are gone
    # after the engine's rounding to uint8, chroma is the input's within rounding
    rounded = kept.round()
    assert (_chroma(rounded) - _chroma(x)).abs()[:, inside].max() <= 1.0


def test_the_controls_leave_old_fingerprints_alone_and_name_themselves(weights) -> None:
    plain = _stage("fast_style", weights)
    controlled = _stage("fast_style", weights, strength=0.4, preserve_color=True)
    assert "strength" not in plain.fingerprint() and "preserve_color" not in plain.fingerprint()
    assert controlled.fingerprint()["strength"] == 0.4 and controlled.fingerprint()["preserve_color"]
    assert "strength 0.4" in controlled.describe() and "colours kept" in controlled.describe()


def test_strength_out_of_range_is_refused() -> None:
    params = get_stage("fast_style").Params
    with pytest.raises(ParamError, match=r"strength must be in \[0, 1\]"):
        params(weights=Path("w.pth"), strength=1.5)


def test_apply_controls_is_one_formula_on_any_batch() -> None:
    torch.manual_seed(0)
    content, styled = torch.rand(3, 3, 5, 7) * 255, torch.rand(3, 3, 5, 7) * 255
    out = apply_controls(styled, content, 0.25, True)
    expected = (content + 0.25 * (luma(styled) - luma(content))).clamp(0, 255)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=0)
    assert apply_controls(styled, content) is styled


def test_gatys_takes_strength_too(tmp_path: Path) -> None:
    from pipeline.media.images import write_image

    style = tmp_path / "style.png"
    write_image(natural_image(32, 32, seed=5), style, "png")
    cls = get_stage("gatys")
    x = _batch()[:1, :, :24, :24]
    plain = cls(cls.Params(style=style, steps=2), CPU)
    assert torch.equal(cls(cls.Params(style=style, steps=2, strength=0.0), CPU)(x), x)
    half = cls(cls.Params(style=style, steps=2, strength=0.5), CPU)(x)
    torch.testing.assert_close(half, (x + plain(x)) / 2, atol=1e-3, rtol=0)
    assert "strength" not in plain.fingerprint()


def test_sheet_shows_the_image_under_each_style_and_strength(tmp_path: Path, weights) -> None:
    from pipeline.media.images import read_image, write_image
    from tests.conftest import run_cli_here

    photo = tmp_path / "photo.png"
    write_image(natural_image(40, 60, seed=3), photo, "png")
    out = tmp_path / "sheets" / "look.png"
    result = run_cli_here("sheet", str(photo), "-w", str(weights["fast_style"]), "-w",
                          str(weights["cyclegan"]), "--strengths", "0.5,1", "--preserve-color",
                          "--size", "32", "-o", str(out))
    assert result.returncode == 0, result.stderr
    sheet = read_image(out)
    tile_w = 48  # 40x60 at a shorter side of 32
    rows, columns = 1 + 2, 2 * 2  # the input once, then a row per style: two strengths, each again
    assert sheet.shape[0] == rows * (32 + 22) + (rows - 1) * 4  # with colours kept
    assert sheet.shape[1] == columns * tile_w + (columns - 1) * 4
    from pipeline.ops.resize import resize_to
    small = resize_to(natural_image(40, 60, seed=3), 48, 32)
    assert np.array_equal(sheet[:32, :tile_w], small)  # the input, once, at the top
    # the fast_style row at strength 1 is what the stage gives (rounded), as a job would write
    stage = _stage("fast_style", weights)
    x = torch.from_numpy(small).permute(2, 0, 1)[None].float()
    expected = stage(x)[0].round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    top, at = 32 + 22 + 4, 1 * (tile_w + 4)
    assert np.array_equal(sheet[top:top + 32, at:at + tile_w], expected)
    kept = _stage("fast_style", weights, strength=0.5, preserve_color=True)(x)  # column 2
    kept = kept[0].round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    at = 2 * (tile_w + 4)
    assert np.array_equal(sheet[top:top + 32, at:at + tile_w], kept)
    assert not any(np.array_equal(sheet[y:y + 32, :tile_w], small)  # not again on any row
                   for y in range(top, sheet.shape[0] - 32, 32 + 22 + 4))
    bad = run_cli_here("sheet", str(photo), "-w", str(tmp_path / "nope.pth"), "-o", str(out))
    assert bad.returncode == 2 and "nope.pth" in bad.stderr
    bad = run_cli_here("sheet", str(photo), "--strengths", "2", "-o", str(out))
    assert bad.returncode == 2 and "--strengths" in bad.stderr
