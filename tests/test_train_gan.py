"""``train gan`` (issue 15 item 2): DCGAN and the MLP GAN on tiny generated images.

A few steps make the generator fool the discriminator (its accuracy on a fixed batch falls
from what it scores on the untrained generator's images), resume is exact, bad images are
skipped and reported, and the exported file is the PyTorch-GAN layout our loader reads.
"""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from pipeline.commands.train_gan import _D
from pipeline.errors import JobError
from pipeline.models.checkpoints import inspect_checkpoint, read_safetensors_metadata
from pipeline.train.data import RandomCrops, scan_images
from pipeline.train.noise_gan import GanTrainer, GanTrainOptions, train_gan
from tests.conftest import make_photos


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("gan_images")
    make_photos(folder, 12, size=(20, 24))
    return folder


def _opts(images: Path, out: Path, **kw) -> GanTrainOptions:
    base = dict(images=images, out=out, image_size=8, batch_size=16, steps=4, log_every=2,
                sample_every=2, checkpoint_every=2, device="cpu", precision="fp32")
    return GanTrainOptions(**{**base, **kw})


@pytest.mark.parametrize("arch, steps", [("dcgan", 40), ("mlp", 30)])
def test_a_few_steps_make_the_generator_fool_the_discriminator(images, tmp_path, arch, steps) -> None:
    opts = _opts(images, tmp_path / "g.safetensors", arch=arch, steps=steps)
    trainer = GanTrainer(opts, torch.device("cpu"), "fp32")
    start = copy.deepcopy(trainer.G)
    crops = RandomCrops(scan_images(images, 8)[0], 8, seed=1, max_scale=1.0)
    fixed, z = crops.batch(999, 16), torch.randn(16, 100, generator=torch.Generator().manual_seed(5))
    for step in range(steps):
        trainer.train_step(crops.batch(step, 16), step)
    # The trained discriminator still tells the untrained generator's images from real ones;
    # the trained generator's, much less.
    against_start = trainer.accuracy(fixed, z, start)
    against_now = trainer.accuracy(fixed, z)
    assert against_start >= 0.9 and against_now <= against_start - 0.3, (against_start, against_now)


def test_resume_is_exact_and_the_file_is_the_pytorch_gan_layout(images, tmp_path) -> None:
    whole = train_gan(_opts(images, tmp_path / "whole.safetensors"))
    half = _opts(images, tmp_path / "half.safetensors", steps=2)
    train_gan(half)
    with pytest.raises(JobError, match="already holds a training run"):
        train_gan(half)
    with pytest.raises(JobError, match="lr was '0.0002', now '0.001'"):
        train_gan(dataclasses.replace(half, steps=4, resume=True, lr=1e-3))
    resumed = train_gan(dataclasses.replace(half, steps=4, resume=True))
    a, b = load_file(str(whole)), load_file(str(resumed))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    def rows(name: str) -> list[list[str]]:  # without the seconds column
        return [line.split(",")[:-1] for line in (tmp_path / name / "losses.csv").read_text().splitlines()]
    assert rows("whole_train")[0] == ["step", "G", "D", "D_acc", "lr"]
    assert len(rows("whole_train")) == 3 and rows("half_train") == rows("whole_train")
    assert sorted(p.name for p in (tmp_path / "whole_train" / "samples").iterdir()) == \
        ["step_0000002.png", "step_0000004.png"]
    arch, sd = inspect_checkpoint(whole, ("dcgan",), "a generator")
    assert arch.latent_dim == 100 and arch.image_shape == (3, 8, 8)
    assert "l1.0.weight" in sd and "conv_blocks.9.weight" in sd  # PyTorch-GAN's dcgan keys
    meta = read_safetensors_metadata(whole)
    assert meta["family"] == "dcgan" and meta["image_shape"] == "3x8x8" and meta["images"] == "12"


def test_the_mlp_gan_makes_grayscale_images(images, tmp_path) -> None:
    out = train_gan(_opts(images, tmp_path / "mlp.safetensors", arch="mlp", steps=2))
    arch, sd = inspect_checkpoint(out, ("gan_mlp",), "a generator")
    assert arch.image_shape == (1, 8, 8) and sd["model.11.weight"].shape == (64, 1024)


def test_the_command_reports_skipped_files_and_bad_options(images, tmp_path) -> None:
    from pipeline.cli import train_app

    folder = tmp_path / "data"
    folder.mkdir()
    for p in images.iterdir():
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "broken.png").write_bytes(b"not a png")
    make_photos(folder / "small", 1, size=(6, 6))
    out = tmp_path / "g.safetensors"
    result = CliRunner().invoke(train_app, [
        "gan", str(folder), "--out", str(out), "--image-size", "8", "--batch-size", "4",
        "--steps", "2", "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "skipped 2 file(s)" in result.output and "broken.png" in result.output
    assert "6x6 is smaller than the 8x8 crop" in result.output and out.is_file()
    bad = CliRunner().invoke(train_app, ["gan", str(folder), "--out", str(out), "--arch", "wgan"])
    assert bad.exit_code == 2 and "arch must be one of dcgan, mlp" in bad.output
    odd = CliRunner().invoke(train_app, ["gan", str(folder), "--out", str(out), "--image-size", "30"])
    assert odd.exit_code == 2 and "multiple of 4" in odd.output


def test_command_defaults_mirror_the_options() -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(GanTrainOptions)}
    assert {k: defaults[k] for k in _D} == _D
