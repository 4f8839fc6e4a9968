"""Checkpoints in the upstream layouts, legacy keys and all, give the network's own pixels.

pytorch/examples fast_neural_style files carry ``in*.running_mean/var``;
junyanz CycleGAN files saved from DataParallel carry ``module.``, and older
InstanceNorm layers carry ``running_*`` and ``num_batches_tracked``.  A job
using such a file must produce exactly the rounded output of a direct forward
pass, with the upstream pre- and post-processing.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.models.cyclegan import ResnetGenerator, UnetGenerator
from tests.conftest import lively_transformer_net, make_photos, run_cli, write_job


def _legacy_instance_norm_keys(sd: dict, norm_prefixes: list[str], channels: list[int]) -> dict:
    sd = dict(sd)
    for prefix, c in zip(norm_prefixes, channels):
        sd[f"{prefix}.running_mean"] = torch.randn(c)
        sd[f"{prefix}.running_var"] = torch.rand(c) + 0.5
        sd[f"{prefix}.num_batches_tracked"] = torch.tensor(7)
    return sd


def _fast_style_file(folder: Path):
    net = lively_transformer_net(seed=3)
    sd = net.state_dict()
    names = [k[: -len(".weight")] for k in sd if k.split(".")[-2].startswith("in") and k.endswith(".weight")]
    sd = _legacy_instance_norm_keys(sd, names, [sd[f"{n}.weight"].numel() for n in names])
    sd = {f"module.{k}": v for k, v in sd.items()}
    path = folder / "mosaic.pth"
    torch.save(sd, path)
    return path, lambda x: net(x)


def _upstream_cyclegan(net):
    def forward(x):  # ToTensor + Normalize(0.5, 0.5), then tensor2im without the truncation
        return (net((x / 255.0 - 0.5) / 0.5) + 1.0) / 2.0 * 255.0
    return forward


def _resnet_file(folder: Path):
    torch.manual_seed(4)
    net = ResnetGenerator(ngf=8, n_blocks=6).eval()
    sd = net.state_dict()
    norms = ["model.2", "model.5", "model.8"] + [f"model.{i}.conv_block.{j}" for i in range(10, 16) for j in (2, 6)]
    channels = [8, 16, 32] + [32] * 12
    sd = {f"module.{k}": v for k, v in _legacy_instance_norm_keys(sd, norms, channels).items()}
    path = folder / "latest_net_G_A.pth"
    torch.save(sd, path)
    return path, _upstream_cyclegan(net)


def _unet_file(folder: Path):
    torch.manual_seed(5)
    net = UnetGenerator(num_downs=7, ngf=4, norm="batch")
    for m in net.modules():  # non-trivial running statistics, used in eval mode
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    net.eval()
    path = folder / "unet_128.pth"
    torch.save({f"_orig_mod.{k}": v for k, v in net.state_dict().items()}, path)
    return path, _upstream_cyclegan(net)


@pytest.mark.parametrize("stage, make", [("fast_style", _fast_style_file), ("cyclegan", _resnet_file),
                                         ("cyclegan", _unet_file)], ids=["fast_style", "resnet", "unet"])
def test_job_output_equals_direct_forward_pass(tmp_path: Path, stage: str, make) -> None:
    # 30x42: not a multiple of 4 (nor of 128), so pad-and-crop is exercised too.
    make_photos(tmp_path / "photos", 2, size=(30, 42))
    weights, forward = make(tmp_path)
    job = write_job(tmp_path, f"""
        sources: [{{images: photos/}}]
        output: out
        stages: [decode, {{{stage}: {{weights: {weights.name}}}}}, {{encode: {{image: {{format: png}}}}}}]
        """)
    result = run_cli(str(job))
    assert result.returncode == 0, result.stderr
    for name in ("img000.png", "img001.png"):
        src = np.array(Image.open(tmp_path / "photos" / name))
        x = torch.from_numpy(src).permute(2, 0, 1)[None].float()
        multiple = 128 if "unet" in weights.name else 4
        pad_h, pad_w = (-x.shape[2]) % multiple, (-x.shape[3]) % multiple
        mode = "reflect" if pad_h < x.shape[2] and pad_w < x.shape[3] else "replicate"
        padded = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        with torch.no_grad():
            y = forward(padded)[..., : x.shape[2], : x.shape[3]]
        expected = y[0].round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
        out = np.array(Image.open(tmp_path / "out" / name))
        assert out.shape == src.shape
        np.testing.assert_array_equal(out, expected)
        assert len(np.unique(out)) > 20, "a constant output would make this test vacuous"
