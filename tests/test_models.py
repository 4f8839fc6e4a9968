"""Model definitions and checkpoint loading, with tiny random nets.

Key layouts are pinned to the upstream projects' names so their published
files keep loading; every refusal must name the file.
"""
from __future__ import annotations

import pickle
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from pipeline.errors import WeightsError
from pipeline.models.checkpoints import (
    Architecture, clean_state_dict, detect_family, inspect_checkpoint, load_cyclegan,
    load_fast_style, read_safetensors_metadata, read_state_dict,
)
from pipeline.models.adain import AdaINDecoder
from pipeline.models.cyclegan import NLayerDiscriminator, ResnetGenerator, UnetGenerator
from pipeline.models.inception_predictor import InceptionStylePredictor
from pipeline.models.magenta import GhiasiTransformer, MobileNetStylePredictor
from pipeline.models.families import detect_families, families, get_family, register_family
from pipeline.models.pytorch_gan import (DCGANDiscriminator, DCGANGenerator, GeneratorResNet,
                                         GeneratorUNet, MLPDiscriminator, MLPGenerator, Pix2PixUNet)
from pipeline.models.transformer_net import TransformerNet
from pipeline.models.vgg import VGG, load_perceptual, load_vgg
from tests.conftest import lively_transformer_net, make_photos, run_cli_here, write_job


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _save(sd: dict, path: Path) -> Path:
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path), metadata={"arch": "test"})
    else:
        torch.save(sd, path)
    return path


def _image(lo: float, hi: float, h: int = 32, w: int = 40) -> torch.Tensor:
    return torch.rand(2, 3, h, w) * (hi - lo) + lo


def _randomize_norm_stats(model: nn.Module) -> None:
    # Fresh BatchNorm stats are 0/1 and would hide a loader that drops them.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)


def _same_outputs(a: nn.Module, b: nn.Module, x: torch.Tensor) -> bool:
    with torch.no_grad():
        return torch.equal(a.eval()(x), b.eval()(x))


def _assert_names_file(err: pytest.ExceptionInfo, path: Path) -> None:
    assert str(path) in str(err.value)
    assert err.value.path == path


# ----------------------------------------------------------------- key layouts

def test_transformer_net_layout_and_shape():
    net = TransformerNet()
    sd = net.state_dict()
    assert len(sd) == 62
    for key in ("conv1.conv2d.weight", "in1.weight", "in3.bias", "res1.conv1.conv2d.weight",
                "res5.in2.bias", "deconv1.conv2d.weight", "in5.weight", "deconv3.conv2d.bias"):
        assert key in sd
    assert not any("running" in k for k in sd)
    assert sd["conv1.conv2d.weight"].shape == (32, 3, 9, 9)
    assert sd["deconv3.conv2d.weight"].shape == (3, 32, 9, 9)
    assert net.size_multiple == 4
    with torch.no_grad():
        assert net(_image(0, 255)).shape == (2, 3, 32, 40)


@pytest.mark.parametrize("n_blocks, last", [(9, 26), (6, 23)])
def test_resnet_generator_layout(n_blocks, last):
    sd = ResnetGenerator(ngf=8, n_blocks=n_blocks).state_dict()
    assert sd["model.1.weight"].shape == (8, 3, 7, 7) and "model.1.bias" in sd
    assert sd["model.10.conv_block.1.weight"].shape == (32, 32, 3, 3)
    assert sd["model.10.conv_block.5.weight"].shape == (32, 32, 3, 3)
    assert sd[f"model.{10 + n_blocks}.weight"].shape == (32, 16, 3, 3)  # ConvTranspose: in, out
    assert sd[f"model.{last}.weight"].shape == (3, 8, 7, 7) and f"model.{last}.bias" in sd
    assert not any("running" in k for k in sd)  # instance norm keeps no statistics
    assert max(int(k.split(".")[1]) for k in sd) == last


def test_resnet_generator_batch_norm_and_dropout_layout():
    sd = ResnetGenerator(ngf=8, norm="batch", use_dropout=True, n_blocks=6).state_dict()
    assert "model.1.bias" not in sd and "model.2.running_mean" in sd
    assert "model.10.conv_block.6.weight" in sd and "model.10.conv_block.5.weight" not in sd
    assert "model.23.bias" in sd  # the output conv keeps its bias


@pytest.mark.parametrize("num_downs", [7, 8])  # unet_128, unet_256
def test_unet_generator_layout(num_downs):
    net = UnetGenerator(num_downs=num_downs, ngf=8)
    sd = net.state_dict()
    assert sd["model.model.0.weight"].shape == (8, 3, 4, 4) and "model.model.0.bias" not in sd
    assert sd["model.model.3.weight"].shape == (16, 3, 4, 4) and "model.model.3.bias" in sd
    assert sd["model.model.1.model.1.weight"].shape == (16, 8, 4, 4)
    assert sd["model.model.1.model.2.running_var"].shape == (16,)
    innermost = "model.model.1" + ".model.3" * (num_downs - 2) + ".model"
    assert sd[innermost + ".1.weight"].shape == (64, 64, 4, 4)
    assert sd[innermost + ".3.weight"].shape == (64, 64, 4, 4)
    assert sd[innermost + ".4.weight"].shape == (64,)
    assert net.size_multiple == 2 ** num_downs


def test_generators_keep_size_and_range():
    res, unet = ResnetGenerator(ngf=8, n_blocks=2).eval(), UnetGenerator(num_downs=5, ngf=4).eval()
    with torch.no_grad():
        y = res(_image(-1, 1))
        z = unet(_image(-1, 1, 32, 64))
    assert y.shape == (2, 3, 32, 40) and y.abs().max() <= 1
    assert z.shape == (2, 3, 32, 64) and z.abs().max() <= 1


def test_patchgan_layout():
    sd = NLayerDiscriminator(ndf=8).state_dict()
    assert sd["model.0.weight"].shape == (8, 3, 4, 4)
    assert sd["model.11.weight"].shape == (1, 64, 4, 4)
    assert detect_family(sd) == "patchgan_discriminator"


# ----------------------------------------------------------------- round trips

def _tiny_models():
    unet = UnetGenerator(num_downs=5, ngf=4, norm="batch")
    _randomize_norm_stats(unet)
    return [
        ("fast_style", TransformerNet(), (0, 255)),
        ("resnet", ResnetGenerator(ngf=8, n_blocks=2), (-1, 1)),
        ("unet", unet, (-1, 1)),
    ]


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
@pytest.mark.parametrize("case", range(3))
def test_round_trip(tmp_path, suffix, case):
    kind, model, (lo, hi) = _tiny_models()[case]
    path = _save(model.state_dict(), tmp_path / f"w{suffix}")
    loaded = load_fast_style(path) if kind == "fast_style" else load_cyclegan(path)
    assert type(loaded) is type(model)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    assert loaded.size_multiple == model.size_multiple
    assert isinstance(loaded.arch, Architecture)
    assert _same_outputs(model, loaded, _image(lo, hi, 32, 32))


def test_safetensors_metadata(tmp_path):
    path = _save(TransformerNet().state_dict(), tmp_path / "w.safetensors")
    assert read_safetensors_metadata(path) == {"arch": "test"}
    assert read_safetensors_metadata(_save({"x": torch.zeros(1)}, tmp_path / "w.pth")) == {}


def test_safetensors_named_pth_still_loads(tmp_path):
    path = tmp_path / "w.pth"
    save_file(TransformerNet().state_dict(), str(path))
    assert isinstance(load_fast_style(path), TransformerNet)


def test_legacy_fast_style_checkpoint(tmp_path):
    net = TransformerNet()
    sd = dict(net.state_dict())
    for name in ["in1", "in2", "in3", "in4", "in5"] + [f"res{i}.in{j}" for i in range(1, 6) for j in (1, 2)]:
        channels = sd[f"{name}.weight"].shape[0]
        sd[f"{name}.running_mean"] = torch.randn(channels)
        sd[f"{name}.running_var"] = torch.rand(channels) + 0.5
        sd[f"{name}.num_batches_tracked"] = torch.tensor(7)
    for prefix in ("module.", "_orig_mod.", "module._orig_mod."):
        path = _save({prefix + k: v for k, v in sd.items()}, tmp_path / "legacy.pth")
        assert _same_outputs(net, load_fast_style(path), _image(0, 255))


def test_legacy_cyclegan_checkpoint(tmp_path):
    net = ResnetGenerator(ngf=8, n_blocks=3)
    sd = {f"_orig_mod.module.{k}": v for k, v in net.state_dict().items()}
    # PyTorch < 0.4 wrote statistics for parameterless InstanceNorm layers.
    for idx in (2, 5, 8):
        channels = net.model[idx - 1].out_channels
        sd[f"module.model.{idx}.running_mean"] = torch.randn(channels)
        sd[f"module.model.{idx}.running_var"] = torch.rand(channels)
        sd[f"module.model.{idx}.num_batches_tracked"] = torch.tensor(3)
    sd["module.model.10.conv_block.2.running_mean"] = torch.randn(32)
    path = _save(sd, tmp_path / "latest_net_G.pth")
    assert _same_outputs(net, load_cyclegan(path), _image(-1, 1))


def test_clean_keeps_batch_norm_statistics():
    sd = UnetGenerator(num_downs=5, ngf=4, norm="batch").state_dict()
    cleaned = clean_state_dict({"module." + k: v for k, v in sd.items()})
    assert "model.model.1.model.2.running_mean" in cleaned
    assert "model.model.1.model.2.running_var" in cleaned
    assert not any(k.endswith("num_batches_tracked") for k in cleaned)
    assert set(cleaned) == {k for k in sd if not k.endswith("num_batches_tracked")}


@pytest.mark.parametrize("wrapper", ["state_dict", "model", "state_dict_ema", "params", "netG", "netG_A"])
def test_wrapped_checkpoints_unwrap(tmp_path, wrapper):
    sd = TransformerNet().state_dict()
    path = _save({wrapper: sd, "epoch": 4, "optimizer": {"lr": 1e-3}}, tmp_path / "w.pth")
    assert set(read_state_dict(path)) == set(sd)


# ----------------------------------------------------------------- inference

@pytest.mark.parametrize("n_blocks, ngf, norm, dropout", [
    (9, 8, "instance", False), (6, 4, "batch", True), (2, 6, "none", False), (3, 8, "instance", True),
])
def test_infer_resnet(tmp_path, n_blocks, ngf, norm, dropout):
    net = ResnetGenerator(ngf=ngf, norm=norm, use_dropout=dropout, n_blocks=n_blocks)
    arch, _ = inspect_checkpoint(_save(net.state_dict(), tmp_path / "g.pth"))
    assert arch == Architecture("cyclegan_resnet", ngf=ngf, norm=norm, use_dropout=dropout,
                                n_blocks=n_blocks)
    expected = f"cyclegan resnet_{n_blocks}blocks ngf={ngf} norm={norm}"
    assert arch.describe() == expected + (" dropout" if dropout else "")


def test_infer_resnet_channels(tmp_path):
    net = ResnetGenerator(input_nc=1, output_nc=3, ngf=4, n_blocks=1)
    loaded = load_cyclegan(_save(net.state_dict(), tmp_path / "g.pth"))
    assert loaded.arch.describe() == "cyclegan resnet_1blocks ngf=4 norm=instance in=1 out=3"


@pytest.mark.parametrize("num_downs, ngf, norm", [(5, 4, "batch"), (7, 2, "instance"), (8, 2, "none")])
def test_infer_unet(tmp_path, num_downs, ngf, norm):
    net = UnetGenerator(num_downs=num_downs, ngf=ngf, norm=norm, use_dropout=True)
    loaded = load_cyclegan(_save(net.state_dict(), tmp_path / "g.pth"))
    assert loaded.arch == Architecture("cyclegan_unet", ngf=ngf, norm=norm, num_downs=num_downs)
    assert loaded.arch.describe() == f"cyclegan unet_{2 ** num_downs} ngf={ngf} norm={norm}"
    assert loaded.size_multiple == 2 ** num_downs


def test_detect_family():
    assert detect_family(TransformerNet().state_dict()) == "fast_style"
    assert detect_family(ResnetGenerator(ngf=4, n_blocks=1).state_dict()) == "cyclegan_resnet"
    assert detect_family(UnetGenerator(num_downs=5, ngf=2).state_dict()) == "cyclegan_unet"
    assert detect_family({"features.0.weight": torch.zeros(64, 3, 3, 3)}) == "vgg"
    assert detect_family({"block1_conv1_W_q": torch.zeros(3, dtype=torch.uint8)}) == "vgg"
    assert detect_family({"fc.weight": torch.zeros(2, 2)}) is None


# One small state dict per registered family: a new family must add its own here.
FAMILY_EXAMPLES = {
    "fast_style": lambda: TransformerNet().state_dict(),
    "cyclegan_resnet": lambda: ResnetGenerator(ngf=4, n_blocks=1).state_dict(),
    "cyclegan_unet": lambda: UnetGenerator(num_downs=5, ngf=2).state_dict(),
    "pytorch_gan_resnet": lambda: GeneratorResNet(n_blocks=1, ngf=4).state_dict(),
    "pytorch_gan_unet": lambda: GeneratorUNet((4, 8, 8)).state_dict(),
    "pytorch_gan_pix2pix_unet": lambda: Pix2PixUNet((4, 8, 8)).state_dict(),
    "gan_mlp": lambda: MLPGenerator(16, (1, 8, 8)).state_dict(),
    "dcgan": lambda: DCGANGenerator(16, 8, 3).state_dict(),
    "gan_discriminator": lambda: DCGANDiscriminator(8, 3).state_dict(),
    "adain_decoder": lambda: AdaINDecoder().state_dict(),
    "patchgan_discriminator": lambda: NLayerDiscriminator(ndf=4).state_dict(),
    "vgg": lambda: {"features.0.weight": torch.zeros(64, 3, 3, 3)},
    "adain_vgg": lambda: {"0.weight": torch.zeros(3, 3, 1, 1), "2.weight": torch.zeros(64, 3, 3, 3)},
    "ghiasi_transformer": lambda: GhiasiTransformer((4, 8, 8), blocks=1).state_dict(),
    "mobilenet_style_predictor": lambda: MobileNetStylePredictor().state_dict(),
    "inception_style_predictor": lambda: InceptionStylePredictor().state_dict(),
}


def test_every_family_recognises_its_own_example_alone():
    assert set(FAMILY_EXAMPLES) == {f.name for f in families()}
    for name, example in FAMILY_EXAMPLES.items():
        assert detect_families(example()) == [name]
    assert detect_families(MLPDiscriminator((1, 8, 8)).state_dict()) == ["gan_discriminator"]


def test_family_table_refuses_a_duplicate():
    with pytest.raises(ValueError, match="'fast_style' is registered twice"):
        register_family(get_family("fast_style"))


# ----------------------------------------------------------------- refusals

def _refuses(path: Path, loader=load_fast_style, match: str = "") -> WeightsError:
    with pytest.raises(WeightsError, match=match) as err:
        loader(path)
    _assert_names_file(err, path)
    return err.value


def test_missing_file(tmp_path):
    err = _refuses(tmp_path / "nope.pth", match="not found")
    assert "job file" in err.hint


def test_directory(tmp_path):
    _refuses(tmp_path, match="directory")


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.pth"
    path.touch()
    _refuses(path, match="empty")


@pytest.mark.parametrize("legacy", [False, True])
def test_truncated_pth(tmp_path, legacy):
    full = tmp_path / "full.pth"
    torch.save(TransformerNet().state_dict(), full, _use_new_zipfile_serialization=not legacy)
    path = tmp_path / "cut.pth"
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    _refuses(path, match="truncated or corrupt")


def test_truncated_safetensors(tmp_path):
    full = _save(TransformerNet().state_dict(), tmp_path / "full.safetensors")
    path = tmp_path / "cut.safetensors"
    path.write_bytes(full.read_bytes()[:5000])
    _refuses(path, match="truncated or corrupt")


@pytest.mark.parametrize("name, content, what", [
    ("random.pth", random.Random(1).randbytes(4096), "binary"),
    ("notes.pth", b"these are not weights\n", "text file"),
    ("page.pth", b"<!DOCTYPE html><html><body>Sign in</body></html>", "HTML"),
    ("lfs.safetensors", b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\n", "Git LFS"),
    ("random.safetensors", random.Random(2).randbytes(4096), "corrupt"),
])
def test_not_a_checkpoint(tmp_path, name, content, what):
    path = tmp_path / name
    path.write_bytes(content)
    _refuses(path, match=what)


class _Payload:
    """Unpickling this would create a marker file: it must never happen."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


@pytest.mark.parametrize("protocol", [2, 4])
def test_pickle_with_code_is_not_run(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps(_Payload(marker), protocol=protocol))
    err = _refuses(path, match="code objects")
    assert "never execute" in err.reason and "open" in err.reason
    assert not marker.exists()


def test_whole_module_pickle_refused(tmp_path):
    path = tmp_path / "model.pth"
    torch.save(TransformerNet(), path)  # the class, not its state_dict
    err = _refuses(path, match="code objects")
    assert "TransformerNet" in err.reason


def test_no_tensors(tmp_path):
    path = _save({"epoch": 3, "optimizer": {"lr": 0.1}}, tmp_path / "train_state.pth")
    _refuses(path, match="no tensors")


def test_cyclegan_given_to_fast_style(tmp_path):
    path = _save(ResnetGenerator(ngf=4, n_blocks=1).state_dict(), tmp_path / "latest_net_G.pth")
    err = _refuses(path, match="looks like a CycleGAN ResNet generator, not a fast style")
    assert "`cyclegan`" in err.hint


def test_fast_style_given_to_cyclegan(tmp_path):
    path = _save(TransformerNet().state_dict(), tmp_path / "candy.pth")
    err = _refuses(path, load_cyclegan, match="looks like a fast style \\(TransformerNet\\)")
    assert "`fast_style`" in err.hint


def test_unet_given_to_fast_style(tmp_path):
    path = _save(UnetGenerator(num_downs=5, ngf=2).state_dict(), tmp_path / "facades.pth")
    _refuses(path, match="U-Net generator")


@pytest.mark.parametrize("loader", [load_fast_style, load_cyclegan])
@pytest.mark.parametrize("sd", [
    {"features.0.weight": torch.zeros(4, 3, 3, 3), "features.0.bias": torch.zeros(4),
     "classifier.0.weight": torch.zeros(2, 4)},
    {"block1_conv1_W_q": torch.zeros(4, dtype=torch.uint8), "block1_conv1_b": torch.zeros(4)},
])
def test_vgg_refused(tmp_path, loader, sd):
    _refuses(_save(sd, tmp_path / "vgg19.pth"), loader, match="VGG")


def test_discriminator_refused(tmp_path):
    path = _save(NLayerDiscriminator(ndf=4).state_dict(), tmp_path / "latest_net_D.pth")
    err = _refuses(path, load_cyclegan, match="PatchGAN discriminator")
    assert "latest_net_G" in err.hint


def test_unknown_layout(tmp_path):
    _refuses(_save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "w.pth"), match="unrecognised")


def test_shape_mismatch_lists_keys(tmp_path):
    sd = dict(TransformerNet().state_dict())
    sd["conv1.conv2d.weight"] = torch.zeros(32, 3, 7, 7)  # a 7x7 first layer: not ours
    del sd["in5.bias"]
    err = _refuses(_save(sd, tmp_path / "odd.pth"), match="does not fit")
    assert "conv1.conv2d.weight" in err.reason and "in5.bias" in err.reason


# ----------------------------------------------------------------- non-finite weights

@pytest.mark.parametrize("bad, counts", [(float("nan"), "1 NaN and 0 Inf"), (float("inf"), "0 NaN and 1 Inf")])
def test_non_finite_fast_style_weights_are_refused(tmp_path, bad, counts):
    sd = lively_transformer_net().state_dict()
    sd["res3.conv1.conv2d.weight"][0, 0, 0, 0] = bad
    err = _refuses(_save(sd, tmp_path / "diverged.pth"),
                   match=f"tensor 'res3.conv1.conv2d.weight' holds {counts} values")
    assert "training diverged" in err.hint


def test_nan_cyclegan_weights_are_refused(tmp_path):
    sd = ResnetGenerator(ngf=8, n_blocks=2).state_dict()
    sd["model.1.weight"][1] = float("nan")  # a whole filter: 3 * 7 * 7 values
    _refuses(_save(sd, tmp_path / "latest_net_G.pth"), load_cyclegan,
             match="tensor 'model.1.weight' holds 147 NaN and 0 Inf values")


def test_non_finite_refusal_names_the_first_three_tensors(tmp_path):
    sd = TransformerNet().state_dict()
    keys = list(sd)[:5]
    for key in keys:
        sd[key].fill_(float("-inf"))
    err = _refuses(_save(sd, tmp_path / "w.pth"), match="holds 0 NaN and")
    assert all(f"'{k}'" in err.reason for k in keys[:3]) and f"'{keys[3]}'" not in err.reason
    assert err.reason.endswith("and 2 more tensors")


def test_nan_vgg_weights_are_refused(tmp_path):
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in VGG(16).state_dict().items()}
    sd = {k: torch.zeros(s) for k, s in shapes.items()}
    sd["features.28.bias"][0] = float("nan")
    path = _save(sd, tmp_path / "vgg16.pth")
    for load in (load_vgg, load_perceptual):
        _refuses(path, load, match="tensor 'features.28.bias' holds 1 NaN and 0 Inf values")


def test_nan_weights_fail_the_job_before_any_work(tmp_path):
    make_photos(tmp_path / "photos", 1, size=(8, 8))
    sd = lively_transformer_net().state_dict()
    sd["conv1.conv2d.weight"][0] = float("nan")
    weights = _save(sd, tmp_path / "nan.pth")
    job = write_job(tmp_path, f"""
        sources: [{{images: photos/}}]
        output: out
        stages: [{{fast_style: {{weights: {weights}}}}}]
        """)
    result = run_cli_here(str(job))
    assert result.returncode == 2, result.stderr
    assert f"{weights}: tensor 'conv1.conv2d.weight' holds 243 NaN" in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("*.png"))


def _picture(fmt: str) -> bytes:
    from io import BytesIO

    from PIL import Image
    out = BytesIO()
    Image.new("RGB", (8, 8), (200, 40, 40)).save(out, fmt)
    return out.getvalue()


def _archive(kind: str) -> bytes:
    import gzip
    import io
    import tarfile
    import zipfile
    out = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(out, "w") as z:
            z.writestr("style/model.pth", b"x")
            z.writestr("README.txt", b"x")
    elif kind == "tar":
        with tarfile.open(fileobj=out, mode="w") as t:
            info = tarfile.TarInfo("model.pth")
            info.size = 1
            t.addfile(info, io.BytesIO(b"x"))
    else:
        return gzip.compress(b"not weights" * 10)
    return out.getvalue()


def _clip(tmp_path: Path, suffix: str) -> bytes:
    from clips import make_clip
    return make_clip(tmp_path / f"clip{suffix}", frames=2, size=(16, 16), audio=False).read_bytes()


@pytest.mark.parametrize("name, make, what, hint", [
    ("style.pth", lambda d: _picture("JPEG"), "a JPEG image", "images:"),
    ("style.safetensors", lambda d: _picture("JPEG"), "a JPEG image", "train style"),
    ("style.pth", lambda d: _picture("PNG"), "a PNG image", "images:"),
    ("style.pth", lambda d: _picture("GIF"), "a GIF image", "images:"),
    ("style.pth", lambda d: _picture("WEBP"), "a WebP image", "images:"),
    ("style.pth", lambda d: _picture("BMP"), "a BMP image", "images:"),
    ("style.pth", lambda d: _picture("TIFF"), "a TIFF image", "images:"),
    ("clip.pth", lambda d: _clip(d, ".mp4"), r"a video \(MP4", "videos:"),
    ("clip.pth", lambda d: _clip(d, ".mov"), r"a video \(QuickTime MOV\)", "videos:"),
    ("clip.pth", lambda d: _clip(d, ".mkv"), r"a video \(Matroska/WebM\)", "videos:"),
    ("clip.pth", lambda d: _clip(d, ".avi"), r"a video \(AVI\)", "videos:"),
    ("model.zip.pth", lambda d: _archive("zip"), "a ZIP archive without PyTorch's data.pkl",
     "unzip it and point `weights:` at style/model.pth"),
    ("model.pth", lambda d: _archive("gzip"), "gzip-compressed", "unpack it"),
    ("model.pth", lambda d: _archive("tar"), "a tar archive", "unpack it"),
    ("paper.pth", lambda d: b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "a PDF document", "download"),
    ("page.pth", lambda d: b"\xef\xbb\xbf \n <!doctype HTML><html>", "an HTML page", "web page"),
    ("config.pth", lambda d: b'{"model_type": "fast_style"}\n', "a JSON file", "beside it"),
    ("lfs.pth", lambda d: b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 9\n",
     "a Git LFS pointer", "git lfs pull"),
    ("notes.pth", lambda d: b"these are not weights\n", "a text file", "torch.save"),
    ("empty.safetensors", lambda d: b"", r"empty \(0 bytes\)", "fetch the file again"),
])
def test_a_file_that_is_not_a_checkpoint_is_named(tmp_path, name, make, what, hint):
    path = tmp_path / name
    path.write_bytes(make(tmp_path))
    err = _refuses(path, match=what)
    assert hint in err.hint
    assert "truncated or corrupt" not in str(err) and "cut short" not in str(err)
