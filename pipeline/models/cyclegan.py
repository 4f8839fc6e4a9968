"""CycleGAN / pix2pix generators and the PatchGAN discriminator.

Jun-Yan Zhu, Taesung Park, Phillip Isola, Alexei A. Efros, "Unpaired
Image-to-Image Translation using Cycle-Consistent Adversarial Networks",
ICCV 2017 (the ResNet generator, after Johnson et al. 2016), and
Phillip Isola, Jun-Yan Zhu, Tinghui Zhou, Alexei A. Efros, "Image-to-Image
Translation with Conditional Adversarial Networks", CVPR 2017 (the U-Net
generator and the 70x70 PatchGAN discriminator).

Module trees match junyanz/pytorch-CycleGAN-and-pix2pix ``models/networks.py``
index for index, because the ``nn.Sequential`` positions *are* the checkpoint
keys (``model.10.conv_block.1.weight``); moving a ReLU would break every
published ``latest_net_G.pth``.  Generators take RGB in [-1, 1] and end in Tanh.

``norm`` is "instance" (InstanceNorm2d without affine or running stats),
"batch" (BatchNorm2d with both) or "none".  As upstream, convolutions carry a
bias only with instance norm: batch norm's shift makes a bias redundant, and
upstream's rule also gives "none" no bias, so we keep that to match its files.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

NORMS = ("instance", "batch", "none")


def norm_layer(norm: str) -> Callable[[int], nn.Module]:
    """Channels -> normalisation module for ``norm`` (see module docstring)."""
    if norm == "instance":
        return lambda c: nn.InstanceNorm2d(c, affine=False, track_running_stats=False)
    if norm == "batch":
        return lambda c: nn.BatchNorm2d(c, affine=True, track_running_stats=True)
    if norm == "none":
        return lambda c: nn.Identity()
    raise ValueError(f"unknown norm {norm!r}; expected one of {', '.join(NORMS)}")


def _use_bias(norm: str) -> bool:
    return norm == "instance"


class ConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` (same parameters, same keys) whose CPU forward gives the same
    bits at any thread count.  oneDNN's kernel splits its sums by the thread count: at 3
    threads its output differed from 1 thread's in the last bits (measured, torch 2.13 on
    a 2-core Xeon), and the load follower changes the count mid-run, so a resumed run could
    have written other bytes.  ATen's own kernel (``slow_conv_transpose2d``) does not, and
    was as fast there; other devices, and autocast (training), keep torch's choice."""

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if x.device.type != "cpu" or output_size is not None or self.groups != 1 \
                or self.padding_mode != "zeros" or torch.is_autocast_enabled("cpu"):
            return super().forward(x, output_size)
        return torch.ops.aten.slow_conv_transpose2d(
            x, self.weight, self.kernel_size, self.bias, self.stride, self.padding,
            self.output_padding, self.dilation)


class ResnetBlock(nn.Module):
    """pad, conv, norm, ReLU, [dropout], pad, conv, norm; plus the input."""

    def __init__(self, dim: int, norm: str = "instance", use_dropout: bool = False) -> None:
        super().__init__()
        make_norm, bias = norm_layer(norm), _use_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), make_norm(dim), nn.ReLU(True),
        ]
        if use_dropout:  # shifts the second conv from index 5 to 6
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), make_norm(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """c7s1-ngf, two stride-2 downsamples, ``n_blocks`` ResnetBlocks, two
    transposed-conv upsamples, c7s1-output, Tanh (``resnet_9blocks`` /
    ``resnet_6blocks`` upstream; reflection padding only)."""

    #: Two stride-2 stages: sides divisible by 4 come back unchanged.
    size_multiple = 4

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 64,
                 norm: str = "instance", use_dropout: bool = False, n_blocks: int = 9) -> None:
        super().__init__()
        make_norm, bias = norm_layer(norm), _use_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, bias=bias), make_norm(ngf), nn.ReLU(True),
        ]
        for mult in (1, 2):
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=bias),
                       make_norm(ngf * mult * 2), nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4, norm, use_dropout) for _ in range(n_blocks)]
        for mult in (4, 2):
            layers += [ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1,
                                          output_padding=1, bias=bias),
                       make_norm(ngf * mult // 2), nn.ReLU(True)]
        # The output conv always has a bias: no norm follows it.
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class UnetSkipConnectionBlock(nn.Module):
    """One U-Net level: down, ``submodule``, up, then concatenated with its input.

    The outermost level has no norm or skip and ends in Tanh; the innermost
    has no submodule and no down-norm (its output is 1x1 at the nominal size).
    """

    def __init__(self, outer_nc: int, inner_nc: int, input_nc: int | None = None,
                 submodule: nn.Module | None = None, outermost: bool = False,
                 innermost: bool = False, norm: str = "batch", use_dropout: bool = False) -> None:
        super().__init__()
        self.outermost = outermost
        make_norm, bias = norm_layer(norm), _use_bias(norm)
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, 4, stride=2, padding=1, bias=bias)
        if outermost:
            up_conv = ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1)
            layers = [downconv, submodule, nn.ReLU(True), up_conv, nn.Tanh()]
        elif innermost:
            up_conv = ConvTranspose2d(inner_nc, outer_nc, 4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), downconv, nn.ReLU(True), up_conv, make_norm(outer_nc)]
        else:
            up_conv = ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), downconv, make_norm(inner_nc), submodule,
                      nn.ReLU(True), up_conv, make_norm(outer_nc)]
            if use_dropout:  # last, so it moves no parameter keys
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """U-Net with ``num_downs`` halvings (``unet_128`` = 7, ``unet_256`` = 8).

    Built inside out as upstream does; the ``num_downs - 5`` innermost
    non-innermost levels have ``ngf * 8`` channels and take the dropout.
    """

    def __init__(self, input_nc: int = 3, output_nc: int = 3, num_downs: int = 8, ngf: int = 64,
                 norm: str = "batch", use_dropout: bool = False) -> None:
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"num_downs must be at least 5, got {num_downs}")
        self.num_downs = num_downs
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, norm=norm,
                                            use_dropout=use_dropout)
        for mult in (4, 2, 1):
            block = UnetSkipConnectionBlock(ngf * mult, ngf * mult * 2, submodule=block, norm=norm)
        self.model = UnetSkipConnectionBlock(output_nc, ngf, input_nc=input_nc, submodule=block,
                                             outermost=True, norm=norm)

    @property
    def size_multiple(self) -> int:
        """Each level halves the sides; skips only concatenate at equal sizes."""
        return 2 ** self.num_downs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    """PatchGAN discriminator: with ``n_layers=3`` each output logit sees a
    70x70 patch.  Here so that its checkpoints can be recognised and refused
    clearly (it is a ``latest_net_D.pth``, not a stylizer)."""

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3,
                 norm: str = "instance") -> None:
        super().__init__()
        make_norm, bias = norm_layer(norm), _use_bias(norm)
        layers: list[nn.Module] = [nn.Conv2d(input_nc, ndf, 4, stride=2, padding=1),
                                   nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1  # the last feature layer keeps resolution
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=bias),
                       make_norm(ndf * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
