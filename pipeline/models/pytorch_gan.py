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

* ``Pix2PixUNet`` (the current ``pix2pix/models.py``'s ``GeneratorUNet``, which users of
  that collection also run as an image-to-image generator): ``downN`` = 4x4 stride-2 conv
  without bias, [InstanceNorm], LeakyReLU 0.2, [dropout] (no norm on the first and the
  last level); ``upN`` = 4x4 stride-2 transposed conv without bias, InstanceNorm, ReLU,
  [dropout], concatenated with the skip; ``final`` = Upsample x2, ZeroPad2d((1, 0, 1, 0)),
  4x4 conv, Tanh (keys ``final.2``).  Upstream: 8 levels, 64..512.

All take RGB in [-1, 1] (upstream normalises with mean 0.5, std 0.5) and end in Tanh.

And the collection's generators from noise, which the ``generate:`` source runs and
``train gan`` trains (so our files and theirs are one family each):

* ``MLPGenerator`` (``implementations/gan``): z (100-d) -> Linear 128, 256, 512, 1024,
  each but the first followed by ``BatchNorm1d(c, 0.8)`` (eps 0.8, as upstream passes it)
  and LeakyReLU 0.2 -> Linear to C*H*W -> Tanh, reshaped to ``(C, H, W)``.
* ``DCGANGenerator`` (``implementations/dcgan``): z -> ``l1`` Linear to 128 x (S/4)^2,
  reshaped -> ``conv_blocks``: BatchNorm2d(128) (eps 1e-5), Upsample x2, conv 3x3 128,
  BatchNorm2d(128, 0.8), LeakyReLU, Upsample x2, conv 3x3 64, BatchNorm2d(64, 0.8),
  LeakyReLU, conv 3x3 to C, Tanh.  (Older copies name ``conv_blocks`` ``conv_model``; the
  loader renames it.)

Their discriminators are here for training: upstream ends them in ``Sigmoid`` and trains
with ``BCELoss``; these return the logit and the trainer uses ``BCEWithLogitsLoss``, the
same loss computed without the overflow of log(sigmoid) (the Sigmoid has no parameters,
so the keys are the same).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .cyclegan import ConvTranspose2d

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


class _SkipUNet(nn.Module):
    """What both PyTorch-GAN U-Nets share: ``down1..downN``, then ``up1..up(N-1)`` each
    joined to the skip of its level, then ``final``; sides a multiple of 2^N."""

    levels: int

    @property
    def size_multiple(self) -> int:
        """Each level halves the sides; skips only concatenate at equal sizes."""
        return 2 ** self.levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i in range(1, self.levels + 1):
            x = getattr(self, f"down{i}")(x)
            skips.append(x)
        x = skips.pop()
        for i in range(1, self.levels):
            x = getattr(self, f"up{i}")(x, skips.pop())
        return self.final(x)


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


class GeneratorUNet(_SkipUNet):
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
    def min_side(self) -> int:
        """InstanceNorm needs more than one pixel, and the deepest level has one: at least
        2x2 there (upstream trains at 256, where it is 4x4).  BatchNorm in eval uses its
        running statistics and takes any size."""
        return 2 ** (self.levels + 1) if self.norm == "instance" else 0



class Pix2PixDown(nn.Module):
    def __init__(self, cin: int, cout: int, normalize: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, 4, 2, 1, bias=False)]
        if normalize:
            layers.append(nn.InstanceNorm2d(cout))
        layers.append(nn.LeakyReLU(0.2))  # dropout (eval: inert) would come last
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Pix2PixUp(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        # our ConvTranspose2d: the same keys, the same bits at any thread count (see cyclegan.py)
        self.model = nn.Sequential(ConvTranspose2d(cin, cout, 4, 2, 1, bias=False),
                                   nn.InstanceNorm2d(cout), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.model(x), skip), 1)


class Pix2PixUNet(_SkipUNet):
    """``downs`` = down1..downN's output channels (upstream: 64, 128, 256, 512 x5)."""

    def __init__(self, downs: tuple[int, ...] = (64, 128, 256) + (512,) * 5,
                 in_channels: int = 3, out_channels: int = 3) -> None:
        super().__init__()
        if len(downs) < 3:
            raise ValueError(f"a U-Net of this layout needs at least 3 levels, got {len(downs)}")
        self.levels = len(downs)
        cin = in_channels
        for i, cout in enumerate(downs, 1):
            setattr(self, f"down{i}", Pix2PixDown(cin, cout, normalize=1 < i < len(downs)))
            cin = cout
        for i in range(1, len(downs)):
            skip = downs[-i - 1]
            setattr(self, f"up{i}", Pix2PixUp(cin, skip))
            cin = skip * 2
        self.final = nn.Sequential(nn.Upsample(scale_factor=2), nn.ZeroPad2d((1, 0, 1, 0)),
                                   nn.Conv2d(cin, out_channels, 4, padding=1), nn.Tanh())

    @property
    def min_side(self) -> int:
        """The level before the last is instance-normalised: it needs 2x2 pixels."""
        return 2 ** self.levels



# ----------------------------------------------------------------- generators from noise

class MLPGenerator(nn.Module):
    def __init__(self, latent_dim: int = 100, image_shape: tuple[int, int, int] = (1, 28, 28)) -> None:
        super().__init__()
        self.latent_dim, self.image_shape = latent_dim, tuple(image_shape)
        layers: list[nn.Module] = [nn.Linear(latent_dim, 128), nn.LeakyReLU(0.2, inplace=True)]
        for cin, cout in ((128, 256), (256, 512), (512, 1024)):
            layers += [nn.Linear(cin, cout), nn.BatchNorm1d(cout, PIX2PIX_BATCHNORM_EPS),
                       nn.LeakyReLU(0.2, inplace=True)]
        layers += [nn.Linear(1024, math.prod(self.image_shape)), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(z).view(z.shape[0], *self.image_shape)


class DCGANGenerator(nn.Module):
    def __init__(self, latent_dim: int = 100, image_size: int = 32, channels: int = 3) -> None:
        super().__init__()
        if image_size % 4 or image_size < 4:
            raise ValueError(f"image_size must be a multiple of 4, got {image_size}")
        self.latent_dim, self.image_shape = latent_dim, (channels, image_size, image_size)
        self.init_size = image_size // 4
        self.l1 = nn.Sequential(nn.Linear(latent_dim, 128 * self.init_size ** 2))
        self.conv_blocks = nn.Sequential(
            nn.BatchNorm2d(128),
            nn.Upsample(scale_factor=2), nn.Conv2d(128, 128, 3, padding=1),
            nn.BatchNorm2d(128, PIX2PIX_BATCHNORM_EPS), nn.LeakyReLU(0.2, inplace=True),
            nn.Upsample(scale_factor=2), nn.Conv2d(128, 64, 3, padding=1),
            nn.BatchNorm2d(64, PIX2PIX_BATCHNORM_EPS), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(64, channels, 3, padding=1), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.l1(z).view(z.shape[0], 128, self.init_size, self.init_size)
        return self.conv_blocks(x)


class MLPDiscriminator(nn.Module):
    def __init__(self, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.model = nn.Sequential(
            nn.Linear(math.prod(image_shape), 512), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(512, 256), nn.LeakyReLU(0.2, inplace=True), nn.Linear(256, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.flatten(1))


class DCGANDiscriminator(nn.Module):
    """Four stride-2 3x3 convs (16, 32, 64, 128 channels; LeakyReLU 0.2, Dropout2d 0.25),
    then one Linear to a logit: PyTorch-GAN's dcgan discriminator without its BatchNorms.

    Only the generator's layout has to match published files; this network is ours, and
    upstream's BatchNorms stalled training here.  With their eps of 0.8
    (``BatchNorm2d(c, 0.8)``: surely meant as the momentum) they barely normalise, the
    N(0, 0.02) init shrinks the activations about 5x a layer (std 0.05 after the first conv,
    0.0005 after the fourth, at 16 px), and in 60 steps (batch 8) the loss never left ln 2;
    with the default eps it moved, slowly.  And real and fake batches go through it apart,
    each normalised by its own statistics: where the last map is 1x1 the logits' batch mean
    is then the same constant for both, so no mean difference can be learned.  Without
    them, PyTorch's default init also starves it (features at std 0.02, logits 0.005 at
    16 px; a 64 px run sat at accuracy 0.50 for 250 steps); with He initialisation for
    LeakyReLU 0.2 (``train gan`` applies it: features 0.25, logits 0.26) both nets move
    from the first steps.
    """

    def __init__(self, image_size: int = 32, channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = channels
        for cout in (16, 32, 64, 128):
            layers += [nn.Conv2d(cin, cout, 3, 2, 1), nn.LeakyReLU(0.2, inplace=True), nn.Dropout2d(0.25)]
            cin = cout
        self.model = nn.Sequential(*layers)
        side = -(-image_size // 16)  # each stride-2 conv with padding 1 rounds up
        self.adv_layer = nn.Sequential(nn.Linear(128 * side ** 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adv_layer(self.model(x).flatten(1))
