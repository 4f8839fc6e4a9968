"""strength and preserve_color on the style stages (issue 14, item 1)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.context import RunContext
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
