"""PyTorch-GAN (eriklindernoren) generator files run in the `cyclegan` stage unchanged.

The state dicts are built here key by key in that collection's layouts, and the expected
pixels come from a functional forward pass written from its ``models.py`` (F.conv2d on
the file's tensors), not from our modules: a wrong key, index or eps shows up as other
pixels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from pipeline.errors import WeightsError
from pipeline.models.checkpoints import inspect_checkpoint, load_cyclegan, load_fast_style
from tests.conftest import make_photos, run_cli_here, write_job


def _conv(cout: int, cin: int, k: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    # 1/sqrt(fan-in): activations stay O(1), so the Tanh output is far from flat.
    w = torch.randn(cout, cin, k, k, generator=gen) / (cin * k * k) ** 0.5
    return {"weight": w, "bias": torch.randn(cout, generator=gen) * 0.1}


def _batchnorm(c: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    return {"weight": 1 + 0.1 * torch.randn(c, generator=gen), "bias": 0.1 * torch.randn(c, generator=gen),
            "running_mean": 0.2 * torch.rand(c, generator=gen) - 0.1,
            "running_var": 0.5 + torch.rand(c, generator=gen), "num_batches_tracked": torch.tensor(9)}


def _put(sd: dict, prefix: str, tensors: dict) -> None:
    sd.update({f"{prefix}.{name}": t for name, t in tensors.items()})


# ----------------------------------------------------------------- ResNet, current layout

def resnet_state_dict(blocks: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """``GeneratorResNet(input_shape=(3, H, W), num_residual_blocks=blocks)``'s keys."""
    gen, sd = torch.Generator().manual_seed(seed), {}
    _put(sd, "model.1", _conv(64, 3, 7, gen))
    _put(sd, "model.4", _conv(128, 64, 3, gen))
    _put(sd, "model.7", _conv(256, 128, 3, gen))
    for i in range(blocks):
        _put(sd, f"model.{10 + i}.block.1", _conv(256, 256, 3, gen))
        _put(sd, f"model.{10 + i}.block.5", _conv(256, 256, 3, gen))
    j = 10 + blocks  # Upsample, conv, IN, ReLU; twice
    _put(sd, f"model.{j + 1}", _conv(128, 256, 3, gen))
    _put(sd, f"model.{j + 5}", _conv(64, 128, 3, gen))
    _put(sd, f"model.{j + 9}", _conv(3, 64, 7, gen))
    return sd


def _conv_of(sd: dict):
    def conv(t, key, **kw):
        return F.conv2d(t, sd[f"{key}.weight"], sd[f"{key}.bias"], **kw)
    return conv


def _norm_relu(t: torch.Tensor) -> torch.Tensor:
    return F.relu(F.instance_norm(t))


def _resnet_trunk(sd: dict, blocks: int, x: torch.Tensor, block_key: str) -> torch.Tensor:
    """Both ResNet layouts up to their upsampling: c7s1, two stride-2 convs, the blocks
    (``model.{10+i}.{block_key}.1`` and ``.5``)."""
    conv = _conv_of(sd)
    x = _norm_relu(conv(F.pad(x, (3, 3, 3, 3), mode="reflect"), "model.1"))
    x = _norm_relu(conv(x, "model.4", stride=2, padding=1))
    x = _norm_relu(conv(x, "model.7", stride=2, padding=1))
    for i in range(blocks):
        key = f"model.{10 + i}.{block_key}"
        y = _norm_relu(conv(F.pad(x, (1, 1, 1, 1), mode="reflect"), f"{key}.1"))
        x = x + F.instance_norm(conv(F.pad(y, (1, 1, 1, 1), mode="reflect"), f"{key}.5"))
    return x


def resnet_forward(sd: dict, blocks: int, x: torch.Tensor) -> torch.Tensor:
    conv, block = _conv_of(sd), _norm_relu
    x = _resnet_trunk(sd, blocks, x, "block")
    j = 10 + blocks
    for key in (f"model.{j + 1}", f"model.{j + 5}"):
        x = block(conv(F.interpolate(x, scale_factor=2, mode="nearest"), key, padding=1))
    return torch.tanh(conv(F.pad(x, (3, 3, 3, 3), mode="reflect"), f"model.{j + 9}"))


# ----------------------------------------------------------------- ResNet, older layout

def old_resnet_state_dict(blocks: int, seed: int = 1) -> dict[str, torch.Tensor]:
    """The collection's earlier GeneratorResNet: ConvTranspose2d upsampling, ``conv_block``."""
    gen, sd = torch.Generator().manual_seed(seed), {}
    _put(sd, "model.1", _conv(64, 3, 7, gen))
    _put(sd, "model.4", _conv(128, 64, 3, gen))
    _put(sd, "model.7", _conv(256, 128, 3, gen))
    for i in range(blocks):
        _put(sd, f"model.{10 + i}.conv_block.1", _conv(256, 256, 3, gen))
        _put(sd, f"model.{10 + i}.conv_block.5", _conv(256, 256, 3, gen))
    j = 10 + blocks  # ConvTranspose2d weights are [in, out, k, k]
    up1, up2 = _conv(256, 128, 3, gen), _conv(128, 64, 3, gen)
    up1["bias"], up2["bias"] = up1["bias"][:128], up2["bias"][:64]
    _put(sd, f"model.{j}", up1)
    _put(sd, f"model.{j + 3}", up2)
    _put(sd, f"model.{j + 7}", _conv(3, 64, 7, gen))
    return sd


def old_resnet_forward(sd: dict, blocks: int, x: torch.Tensor) -> torch.Tensor:
    conv, block = _conv_of(sd), _norm_relu
    x = _resnet_trunk(sd, blocks, x, "conv_block")
    j = 10 + blocks
    for key in (f"model.{j}", f"model.{j + 3}"):
        x = block(F.conv_transpose2d(x, sd[f"{key}.weight"], sd[f"{key}.bias"], stride=2, padding=1,
                                     output_padding=1))
    return torch.tanh(conv(F.pad(x, (3, 3, 3, 3), mode="reflect"), f"model.{j + 7}"))


# ----------------------------------------------------------------- U-Net

UPSTREAM_UNET = (64, 128, 256, 512, 512, 512)


def unet_state_dict(widths: tuple[int, ...], norm: str, seed: int = 2) -> dict[str, torch.Tensor]:
    """``GeneratorUNet``: downN.model = conv, LeakyReLU, [norm]; upN.model = Upsample, conv,
    LeakyReLU, norm; final = Upsample, conv, Tanh.  norm "batch" is pix2pix's BatchNorm2d(c, 0.8)."""
    gen, sd, cin = torch.Generator().manual_seed(seed), {}, 3
    for i, cout in enumerate(widths, 1):
        _put(sd, f"down{i}.model.0", _conv(cout, cin, 3, gen))
        if norm == "batch" and i > 1:
            _put(sd, f"down{i}.model.2", _batchnorm(cout, gen))
        cin = cout
    for i in range(1, len(widths)):
        cout = widths[-i - 1]
        _put(sd, f"up{i}.model.1", _conv(cout, cin, 3, gen))
        if norm == "batch":
            _put(sd, f"up{i}.model.3", _batchnorm(cout, gen))
        cin = 2 * cout
    _put(sd, "final.1", _conv(3, cin, 3, gen))
    return sd


def unet_forward(sd: dict, widths: tuple[int, ...], norm: str, x: torch.Tensor) -> torch.Tensor:
    def normed(t, key):
        if norm == "instance":
            return F.instance_norm(t)
        return F.batch_norm(t, sd[f"{key}.running_mean"], sd[f"{key}.running_var"], sd[f"{key}.weight"],
                            sd[f"{key}.bias"], training=False, eps=0.8)

    skips = []
    for i in range(1, len(widths) + 1):
        x = F.leaky_relu(F.conv2d(x, sd[f"down{i}.model.0.weight"], sd[f"down{i}.model.0.bias"],
                                  stride=2, padding=1), 0.2)
        skips.append(x if i == 1 else normed(x, f"down{i}.model.2"))
        x = skips[-1]
    x = skips.pop()
    for i in range(1, len(widths)):
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = F.leaky_relu(F.conv2d(x, sd[f"up{i}.model.1.weight"], sd[f"up{i}.model.1.bias"], padding=1), 0.2)
        x = torch.cat((normed(x, f"up{i}.model.3"), skips.pop()), 1)
    x = F.interpolate(x, scale_factor=2, mode="nearest")
    return torch.tanh(F.conv2d(x, sd["final.1.weight"], sd["final.1.bias"], padding=1))


def pix2pix_state_dict(widths: tuple[int, ...], seed: int = 5) -> dict[str, torch.Tensor]:
    """pix2pix's current GeneratorUNet: downN.model.0 = 4x4 conv (no bias), upN.model.0 = 4x4
    transposed conv (no bias, weights [in, out, k, k]), final.2 = 4x4 conv after a zero pad."""
    gen, sd, cin = torch.Generator().manual_seed(seed), {}, 3
    for i, cout in enumerate(widths, 1):
        sd[f"down{i}.model.0.weight"] = torch.randn(cout, cin, 4, 4, generator=gen) / (16 * cin) ** 0.5
        cin = cout
    for i in range(1, len(widths)):
        cout = widths[-i - 1]
        sd[f"up{i}.model.0.weight"] = torch.randn(cin, cout, 4, 4, generator=gen) / (4 * cin) ** 0.5
        cin = 2 * cout
    _put(sd, "final.2", {"weight": torch.randn(3, cin, 4, 4, generator=gen) / (16 * cin) ** 0.5,
                         "bias": 0.1 * torch.randn(3, generator=gen)})
    return sd


def pix2pix_forward(sd: dict, widths: tuple[int, ...], x: torch.Tensor) -> torch.Tensor:
    skips, n = [], len(widths)
    for i in range(1, n + 1):
        x = F.conv2d(x, sd[f"down{i}.model.0.weight"], stride=2, padding=1)
        x = F.leaky_relu(F.instance_norm(x) if 1 < i < n else x, 0.2)
        skips.append(x)
    x = skips.pop()
    for i in range(1, n):
        x = F.relu(F.instance_norm(F.conv_transpose2d(x, sd[f"up{i}.model.0.weight"], stride=2, padding=1)))
        x = torch.cat((x, skips.pop()), 1)
    x = F.pad(F.interpolate(x, scale_factor=2, mode="nearest"), (1, 0, 1, 0))
    return torch.tanh(F.conv2d(x, sd["final.2.weight"], sd["final.2.bias"], padding=1))


PIX2PIX = (8, 16, 32, 32, 32)

# name -> (state dict, forward on [-1, 1], padded multiple, least padded side, plan text)
CASES = {
    "resnet_9blocks": (lambda: resnet_state_dict(9), lambda sd, x: resnet_forward(sd, 9, x), 4, 0,
                       "PyTorch-GAN GeneratorResNet, 9 blocks"),
    "resnet_6blocks": (lambda: resnet_state_dict(6, seed=3), lambda sd, x: resnet_forward(sd, 6, x), 4, 0,
                       "PyTorch-GAN GeneratorResNet, 6 blocks"),
    "older_resnet": (lambda: old_resnet_state_dict(9), lambda sd, x: old_resnet_forward(sd, 9, x), 4, 0,
                     "cyclegan resnet_9blocks ngf=64 norm=instance"),
    "unet_cyclegan": (lambda: unet_state_dict(UPSTREAM_UNET, "instance"),
                      lambda sd, x: unet_forward(sd, UPSTREAM_UNET, "instance", x), 64, 128,
                      "PyTorch-GAN GeneratorUNet, 6 levels"),
    "unet_pix2pix": (lambda: unet_state_dict((8, 16, 32, 32), "batch"),
                     lambda sd, x: unet_forward(sd, (8, 16, 32, 32), "batch", x), 16, 0,
                     "PyTorch-GAN GeneratorUNet, 4 levels ngf=8 norm=batch"),
    "unet_pix2pix_current": (lambda: pix2pix_state_dict(PIX2PIX), lambda sd, x: pix2pix_forward(sd, PIX2PIX, x),
                             32, 32, "PyTorch-GAN pix2pix GeneratorUNet, 5 levels ngf=8"),
}


def _pad(x: torch.Tensor, multiple: int, least: int) -> torch.Tensor:
    """Bottom/right, reflect where the image is big enough, else replicate (per axis)."""
    for axis in (2, 3):
        size = x.shape[axis]
        target = max(-(-size // multiple) * multiple, least)
        amount = target - size
        if amount:
            pad = (0, 0, 0, amount) if axis == 2 else (0, amount, 0, 0)
            x = F.pad(x, pad, mode="reflect" if amount < size else "replicate")
    return x


@pytest.mark.parametrize("case", list(CASES))
def test_job_output_equals_the_upstream_forward_pass(tmp_path: Path, case: str) -> None:
    make_sd, forward, multiple, least, plan = CASES[case]
    sd = make_sd()
    weights = tmp_path / f"G_AB_{case}.pth"
    torch.save({f"module.{k}": v for k, v in sd.items()} if case == "resnet_6blocks" else sd, weights)
    # 30x42: a multiple of neither 4 nor 64, so pad-and-crop is exercised.
    make_photos(tmp_path / "photos", 2, size=(30, 42))
    job = write_job(tmp_path, f"""
        sources: [{{images: photos/}}]
        output: out
        stages: [decode, {{cyclegan: {{weights: {weights.name}}}}}, {{encode: {{image: {{format: png}}}}}}]
        """)
    shown = run_cli_here("validate", str(job))
    assert shown.returncode == 0 and plan in shown.stdout, shown.stdout + shown.stderr
    result = run_cli_here(str(job))
    assert result.returncode == 0, result.stderr
    for name in ("img000.png", "img001.png"):
        src = np.array(Image.open(tmp_path / "photos" / name))
        x = torch.from_numpy(src).permute(2, 0, 1)[None].float()
        with torch.no_grad():  # upstream's Normalize(0.5, 0.5) in, (y + 1) / 2 * 255 out
            y = (forward(sd, _pad((x / 255 - 0.5) / 0.5, multiple, least)) + 1) / 2 * 255
        expected = y[0, :, :30, :42].round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
        out = np.array(Image.open(tmp_path / "out" / name))
        assert out.shape == src.shape
        # fp32 summation order differs between F.conv2d calls and the module's: allow one level.
        assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1
        assert (out == expected).mean() > 0.99
        assert len(np.unique(out)) > 20, "a flat output would make this test vacuous"


def test_the_older_layout_is_junyanz_resnet(tmp_path: Path) -> None:
    path = tmp_path / "G_AB_old.pth"
    torch.save(old_resnet_state_dict(6), path)
    arch, _ = inspect_checkpoint(path)
    assert arch.family == "cyclegan_resnet" and arch.n_blocks == 6 and arch.norm == "instance"


def test_wrong_places_name_the_family(tmp_path: Path) -> None:
    path = tmp_path / "G_AB_200.pth"
    torch.save(resnet_state_dict(1), path)
    with pytest.raises(WeightsError, match="PyTorch-GAN CycleGAN ResNet generator") as err:
        load_fast_style(path)
    assert str(path) in str(err.value) and "cyclegan" in err.value.hint
    # That collection's discriminator (D_A_200.pth): conv 4x4 ... ZeroPad2d, conv to one map.
    gen, disc = torch.Generator().manual_seed(0), {}
    for idx, (cin, cout) in zip((0, 2, 5, 8, 12), ((3, 64), (64, 128), (128, 256), (256, 512), (512, 1))):
        _put(disc, f"model.{idx}", _conv(cout, cin, 4, gen))
    d_path = tmp_path / "D_A_200.pth"
    torch.save(disc, d_path)
    with pytest.raises(WeightsError, match="discriminator") as err:
        load_cyclegan(d_path)
    assert "G_AB_" in err.value.hint


def test_a_grayscale_generator_is_refused_clearly(tmp_path: Path) -> None:
    sd = resnet_state_dict(1)
    sd["model.1.weight"] = sd["model.1.weight"][:, :1]
    sd["model.12.weight"], sd["model.12.bias"] = sd["model.12.weight"][:1], sd["model.12.bias"][:1]
    path = tmp_path / "G_gray.pth"
    torch.save(sd, path)
    with pytest.raises(WeightsError, match="1-channel images") as err:
        load_cyclegan(path)
    assert str(path) in str(err.value)


def test_a_missing_block_is_named(tmp_path: Path) -> None:
    sd = resnet_state_dict(3)
    del sd["model.11.block.5.weight"]
    path = tmp_path / "G_cut.pth"
    torch.save(sd, path)
    with pytest.raises(WeightsError, match="missing: model.11.block.5.weight"):
        load_cyclegan(path)
