"""The generators of eriklindernoren/PyTorch-GAN, laid out key for key.

Many people learn CycleGAN from that collection rather than from junyanz's repository, and
keep its ``saved_models/<dataset>/G_AB_<epoch>.pth`` files.  Its modules differ from
junyanz's in ways that change the state-dict keys, so they get their own classes here
(``nn.Sequential`` positions *are* the keys):

* ``GeneratorResNet`` (``implementations/cyclegan/models.py``, current layout): residual
  blocks hold ``block`` (not ``conv_block``); each upsampling stage is ``Upsample(x2)``
  then a 3x3 convolution (four modules, not three), so a 9-block net ends at
  ``model.28``; the outer pads are ``ReflectionPad2d(channels)`` (3 for RGB, which the
  7x7 convolutions need); InstanceNorm without affine.  The collection's *older* layout
  (transposed convolutions, ``conv_block``, ``ReflectionPad2d(3)``) is junyanz's
  ``resnet_Nblocks`` with instance norm key for key and module for module, so it loads
  as that family (tested).
* ``GeneratorUNet`` (the older ``cyclegan/models.py`` and ``pix2pix/models.py``):
  ``downN`` = 3x3 stride-2 conv, LeakyReLU 0.2, [norm], [dropout]; ``upN`` = Upsample x2,
  3x3 conv, LeakyReLU 0.2, norm, [dropout], concatenated with the skip; ``final`` =
  Upsample x2, 3x3 conv, Tanh.  The norm is InstanceNorm (CycleGAN's; no keys) or
  ``BatchNorm2d(c, 0.8)`` (pix2pix's: upstream passes 0.8 positionally, which is *eps*;
  the forward pass must use it to give the same pixels).  Channel widths and the number
  of levels are read from the keys (upstream: 6 downs, 64..512).

Both take RGB in [-1, 1] (upstream normalises with mean 0.5, std 0.5) and end in Tanh.
"""
from __future__ import annotations

import torch
from torch import nn

# pix2pix's BatchNorm2d(out_size, 0.8): the second positional argument is eps.
PIX2PIX_BATCHNORM_EPS = 0.8


class ResidualBlock(nn.Module):
    """pad, conv, IN, ReLU, pad, conv, IN; plus the input (keys ``block.1``, ``block.5``)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(features, features, 3), nn.InstanceNorm2d(features),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1), nn.Conv2d(features, features, 3), nn.InstanceNorm2d(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class GeneratorResNet(nn.Module):
    """c7s1-ngf, two stride-2 downsamples, ``n_blocks`` residual blocks, two nearest
    x2 upsamples each followed by a 3x3 conv, c7s1-channels, Tanh."""

    #: Two stride-2 stages: sides divisible by 4 come back unchanged.
    size_multiple = 4

    def __init__(self, channels: int = 3, n_blocks: int = 9, ngf: int = 64) -> None:
        super().__init__()
        if channels != 3:
            # Upstream pads by `channels`: with 1 channel its 7x7 convs shrink every image,
            # and our stages feed RGB; such a file is not something a job can run.
            raise ValueError(f"a generator for {channels}-channel images; the cyclegan stage "
                             "runs RGB (3-channel) generators")
        layers: list[nn.Module] = [nn.ReflectionPad2d(channels), nn.Conv2d(channels, ngf, 7),
                                   nn.InstanceNorm2d(ngf), nn.ReLU(inplace=True)]
        features = ngf
        for _ in range(2):
            layers += [nn.Conv2d(features, features * 2, 3, stride=2, padding=1),
                       nn.InstanceNorm2d(features * 2), nn.ReLU(inplace=True)]
            features *= 2
        layers += [ResidualBlock(features) for _ in range(n_blocks)]
        for _ in range(2):
            layers += [nn.Upsample(scale_factor=2), nn.Conv2d(features, features // 2, 3, padding=1),
                       nn.InstanceNorm2d(features // 2), nn.ReLU(inplace=True)]
            features //= 2
        layers += [nn.ReflectionPad2d(channels), nn.Conv2d(features, channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels, PIX2PIX_BATCHNORM_EPS)
    return nn.InstanceNorm2d(channels)


class UNetDown(nn.Module):
    def __init__(self, cin: int, cout: int, norm: str | None) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, stride=2, padding=1),
                                   nn.LeakyReLU(0.2, inplace=True)]
        if norm:  # upstream's first level has none; dropout (eval: inert) comes after it
            layers.append(_norm(norm, cout))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class UNetUp(nn.Module):
    def __init__(self, cin: int, cout: int, norm: str) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(cin, cout, 3, padding=1),
                                   nn.LeakyReLU(0.2, inplace=True), _norm(norm, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.model(x), skip), 1)


class GeneratorUNet(nn.Module):
    """``downs`` = the output channels of down1..downN (upstream: 64, 128, 256, 512, 512,
    512); up k takes down N-k+1's output (plus, past the first, its own skip) to down
    N-k's channels; ``final`` maps the last concatenation to RGB."""

    def __init__(self, downs: tuple[int, ...] = (64, 128, 256, 512, 512, 512), norm: str = "instance",
                 in_channels: int = 3, out_channels: int = 3) -> None:
        super().__init__()
        if len(downs) < 2:
            raise ValueError(f"a U-Net needs at least 2 levels, got {len(downs)}")
        self.levels, self.norm = len(downs), norm
        cin = in_channels
        for i, cout in enumerate(downs, 1):
            setattr(self, f"down{i}", UNetDown(cin, cout, norm if i > 1 else None))
            cin = cout
        for i in range(1, len(downs)):
            skip = downs[-i - 1]
            setattr(self, f"up{i}", UNetUp(cin, skip, norm))
            cin = skip * 2
        self.final = nn.Sequential(nn.Upsample(scale_factor=2),
                                   nn.Conv2d(cin, out_channels, 3, padding=1), nn.Tanh())

    @property
    def size_multiple(self) -> int:
        """Each level halves the sides; skips only concatenate at equal sizes."""
        return 2 ** self.levels

    @property
    def min_side(self) -> int:
        """InstanceNorm needs more than one pixel, and the deepest level has one: at least
        2x2 there (upstream trains at 256, where it is 4x4).  BatchNorm in eval uses its
        running statistics and takes any size."""
        return 2 ** (self.levels + 1) if self.norm == "instance" else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i in range(1, self.levels + 1):
            x = getattr(self, f"down{i}")(x)
            skips.append(x)
        x = skips.pop()
        for i in range(1, self.levels):
            x = getattr(self, f"up{i}")(x, skips.pop())
        return self.final(x)
