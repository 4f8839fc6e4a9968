"""Gatys optimization on tiny images, and the ``stylize-still`` command through
a real typer CLI."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from PIL import Image
from typer.testing import CliRunner

from tests.conftest import natural_image
from pipeline.commands.stylize_still import command
from pipeline.media.images import read_image
from pipeline.stages.gatys_optimize import stylize_still
from pipeline.ops.losses import content_loss, gram_matrix, style_loss, tv_loss


def _stripes(h: int, w: int) -> np.ndarray:
    """A saturated red/blue stripe pattern: a style with strong colour and texture."""
    xx = np.arange(w)[None, :].repeat(h, 0)
    red = (xx // 3) % 2 == 0
    img = np.zeros((h, w, 3), np.uint8)
    img[red] = (230, 30, 40)
    img[~red] = (20, 40, 220)
    return img


def _chroma(a: np.ndarray) -> np.ndarray:
    rgb = a[..., :3].astype(np.float64)
    cb = -0.168736 * rgb[..., 0] - 0.331264 * rgb[..., 1] + 0.5 * rgb[..., 2]
    cr = 0.5 * rgb[..., 0] - 0.418688 * rgb[..., 1] - 0.081312 * rgb[..., 2]
    return np.stack([cb, cr], -1)


# --------------------------------------------------------------------------- losses

def test_losses_are_pure_and_shaped():
    f = torch.rand(2, 4, 5, 6)
    g = gram_matrix(f)
    assert g.shape == (2, 4, 4) and g.dtype == torch.float32
    torch.testing.assert_close(g[0], f[0].reshape(4, -1) @ f[0].reshape(4, -1).T / (4 * 5 * 6))
    assert gram_matrix(f.to(torch.bfloat16)).dtype == torch.float32
    target = gram_matrix(f[:1])  # one style image, broadcast over the batch
    loss = style_loss({"a": f, "b": f}, {"a": target, "b": target[0]}, {"a": 1.0, "b": 0.5})
    expected = 1.5 * torch.nn.functional.mse_loss(g, target.expand_as(g))
    torch.testing.assert_close(loss, expected)
    assert style_loss({"a": f}, {"a": g}).item() == 0.0
    assert content_loss(f, f + 1).item() == pytest.approx(1.0)
    x = torch.zeros(1, 3, 4, 4)
    x[..., :, 2:] = 10.0  # one vertical edge: 10 over 1 of 3 column pairs
    assert tv_loss(x).item() == pytest.approx(10 / 3)
    assert tv_loss(torch.ones(1, 3, 1, 5)).item() == 0.0


# --------------------------------------------------------------------------- stylize_still

def test_stylize_lowers_the_loss_and_reports_each_step():
    content, style = natural_image(32, 32, seed=1), _stripes(32, 32)
    seen = []
    out, losses = stylize_still(content, style, steps=5, on_step=lambda i, l: seen.append((i, l)))
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert len(losses) == 6 and seen == list(enumerate(losses[1:]))  # losses[0]: the start
    assert all(b < a for a, b in zip(losses, losses[1:]))
    assert losses[-1] < 0.6 * losses[0]
    assert np.abs(out.astype(int) - content).mean() > 1  # it did change the picture


def test_preserve_color_keeps_the_contents_chroma():
    content, style = natural_image(32, 32, seed=2), _stripes(32, 32)
    kwargs = dict(steps=3, style_weight=1e5)
    plain, _ = stylize_still(content, style, **kwargs)
    kept, _ = stylize_still(content, style, preserve_color=True, **kwargs)
    drift_plain = np.abs(_chroma(plain) - _chroma(content)).mean()
    drift_kept = np.abs(_chroma(kept) - _chroma(content)).mean()
    assert drift_kept < 1.5 < drift_plain  # rounding and clipping only
    # The luminance is the stylized one, not the content's.
    luma = lambda a: a[..., :3].astype(float) @ [0.299, 0.587, 0.114]  # noqa: E731
    assert np.abs(luma(kept) - luma(plain)).mean() < 2.0


def test_max_side_downscales_and_alpha_is_carried_through():
    rgba = np.dstack([natural_image(24, 40, seed=3),
                      np.tile(np.linspace(0, 255, 40).astype(np.uint8), (24, 1))])
    out, _ = stylize_still(rgba, _stripes(16, 16), steps=1, max_side=32)
    assert out.shape == (19, 32, 4)
    assert out[:, 0, 3].mean() < 30 and out[:, -1, 3].mean() > 225  # the alpha ramp survives
    with pytest.raises(ValueError, match="20x12 .* at least 16 px"):
        stylize_still(rgba, _stripes(16, 16), steps=1, max_side=20)


def test_noise_init_is_seeded():
    content, style = natural_image(32, 32, seed=4), _stripes(32, 32)
    a, losses = stylize_still(content, style, steps=0, init="noise", seed=7)
    b, _ = stylize_still(content, style, steps=0, init="noise", seed=7)
    c, _ = stylize_still(content, style, steps=0, init="noise", seed=8)
    assert np.array_equal(a, b) and not np.array_equal(a, c) and losses == []
    assert np.abs(a.astype(int) - content).mean() > 40  # noise, not the photo
    with pytest.raises(ValueError, match="init must be one of"):
        stylize_still(content, style, init="photo")
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        stylize_still(content.astype(np.float32), style)


# --------------------------------------------------------------------------- the command

def cli() -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command("stylize-still")(command)

    @app.callback()
    def main() -> None:  # keeps "stylize-still" a sub-command, as in pipeline/cli.py
        """Commands."""

    return app


@pytest.fixture
def pictures(tmp_path: Path) -> tuple[Path, Path]:
    content, style = tmp_path / "photo.png", tmp_path / "style.jpg"
    Image.fromarray(natural_image(24, 36, seed=5)).save(content)
    Image.fromarray(_stripes(30, 30)).save(style, quality=95)
    return content, style


def test_command_writes_the_output_in_the_suffixs_format(pictures, tmp_path):
    content, style = pictures
    output = tmp_path / "out" / "styled.jpg"
    result = CliRunner().invoke(cli(), ["stylize-still", str(content), str(style), str(output),
                                        "--steps", "1", "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    assert output.read_bytes()[:3] == b"\xff\xd8\xff"  # a JPEG, as the suffix says
    assert read_image(output).shape == (24, 36, 3)
    assert "wrote" in result.output


@pytest.mark.parametrize("problem", ["missing", "corrupt", "too small"])
def test_command_bad_content_exits_2_naming_the_file(pictures, tmp_path, problem):
    _, style = pictures
    content = tmp_path / "bad.png"
    if problem == "too small":
        Image.fromarray(natural_image(8, 8, seed=6)).save(content)
    elif problem == "corrupt":
        good = tmp_path / "good.png"
        Image.fromarray(natural_image(40, 40, seed=6)).save(good)
        content.write_bytes(good.read_bytes()[:200])  # cut short
    output = tmp_path / "out.png"
    result = CliRunner().invoke(cli(), ["stylize-still", str(content), str(style), str(output),
                                        "--steps", "1", "--quiet"])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and str(content) in result.output
    assert not output.exists()


def test_command_bad_weights_and_suffix_exit_2(pictures, tmp_path):
    content, style = pictures
    junk = tmp_path / "vgg.pth"
    junk.write_text("<html>not weights</html>")
    result = CliRunner().invoke(cli(), ["stylize-still", str(content), str(style),
                                        str(tmp_path / "o.png"), "--vgg", str(junk), "--quiet"])
    assert result.exit_code == 2 and "error: " in result.output and str(junk) in result.output
    result = CliRunner().invoke(cli(), ["stylize-still", str(content), str(style),
                                        str(tmp_path / "o.xyz")])
    assert result.exit_code == 2 and "o.xyz" in result.output


@pytest.mark.parametrize("which", [0, 1])
def test_command_refuses_to_write_over_its_inputs(pictures, which):
    before = pictures[which].read_bytes()
    result = CliRunner().invoke(cli(), ["stylize-still", str(pictures[0]), str(pictures[1]),
                                        str(pictures[which]), "--steps", "1", "--quiet"])
    assert result.exit_code == 2 and "image; write the result to another file" in result.output
    assert pictures[which].read_bytes() == before


def test_command_defaults_are_the_functions():
    import inspect

    from pipeline.commands.stylize_still import _D
    from pipeline.stages.gatys_optimize import stylize_still

    signature = inspect.signature(stylize_still).parameters
    assert _D == {k: signature[k].default for k in _D}


def test_help_documents_every_option():
    result = CliRunner().invoke(cli(), ["stylize-still", "--help"])
    assert result.exit_code == 0
    for option in ("--steps", "--content-weight", "--style-weight", "--tv-weight", "--init",
                   "--preserve-color", "--max-side", "--device", "--seed", "--vgg", "--quiet"):
        assert option in result.output, option
