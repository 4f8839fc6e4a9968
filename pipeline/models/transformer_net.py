"""Johnson et al.'s image transformation network for fast style transfer.

Justin Johnson, Alexandre Alahi, Li Fei-Fei, "Perceptual Losses for Real-Time
Style Transfer and Super-Resolution", ECCV 2016 (with instance normalisation
in place of batch norm, after Ulyanov et al. 2016).

The module tree and parameter names match pytorch/examples
``fast_neural_style/neural_style/transformer_net.py`` exactly, so that
project's ``*.pth`` files load into this class unchanged (after
``checkpoints.clean_state_dict`` drops the stale ``in*.running_*`` keys old
PyTorch versions wrote).  Input and output are RGB in 0..255, not 0..1.
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn


class ConvLayer(nn.Module):
    """Reflection padding then a convolution: keeps borders free of the dark
    frame that zero padding paints into stylised images."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 stride: int) -> None:
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2d(self.reflection_pad(x))


class ConditionalInstanceNorm2d(nn.Module):
    """Instance norm with a (scale, shift) per style: Dumoulin, Shlens, Kudlur, "A Learned
    Representation for Artistic Style", ICLR 2017.  ``weight`` and ``bias`` are
    [styles, channels] (a single-style net's are [channels], under the same names, so
    the keys stay ``in1.weight`` ...); ``mix`` (not saved) weighs the styles: one-hot picks
    one, anything else interpolates their parameters."""

    def __init__(self, channels: int, styles: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(styles, channels))
        self.bias = nn.Parameter(torch.zeros(styles, channels))
        self.register_buffer("mix", F.one_hot(torch.tensor(0), styles).float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mix = self.mix.to(self.weight.dtype)
        # the same kernel as nn.InstanceNorm2d's: one style gives a single-style net's bits
        return F.instance_norm(x, weight=mix @ self.weight, bias=mix @ self.bias, eps=self.eps)


def instance_norm(channels: int, styles: int) -> nn.Module:
    """Upstream's affine instance norm for one style; a conditional one for several."""
    if styles == 1:
        return nn.InstanceNorm2d(channels, affine=True)
    return ConditionalInstanceNorm2d(channels, styles)


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with instance norm and an identity shortcut
    (He et al. 2016), with no ReLU after the addition, as in the paper."""

    def __init__(self, channels: int, styles: int = 1) -> None:
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, kernel_size=3, stride=1)
        self.in1 = instance_norm(channels, styles)
        self.conv2 = ConvLayer(channels, channels, kernel_size=3, stride=1)
        self.in2 = instance_norm(channels, styles)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.in1(self.conv1(x)))
        return x + self.in2(self.conv2(y))


class UpsampleConvLayer(nn.Module):
    """Nearest-neighbour upsampling then a convolution; used instead of a
    transposed convolution because it avoids checkerboard artefacts."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 stride: int, upsample: int | None = None) -> None:
        super().__init__()
        self.upsample = upsample
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=self.upsample, mode="nearest")
        return self.conv2d(self.reflection_pad(x))


class TransformerNet(nn.Module):
    """3 downsampling convs, 5 residual blocks, 2 upsampling convs, 1 output conv.

    Takes and returns ``[N, 3, H, W]`` RGB in 0..255 (the output is not
    clamped).  ``H`` and ``W`` should be multiples of ``size_multiple``; other
    sizes come back up to 3 pixels larger, so callers pad and crop back.
    """

    #: Two stride-2 convolutions: sides divisible by 4 come back unchanged.
    size_multiple = 4

    def __init__(self, styles: int = 1, width: int = 32) -> None:
        """``styles`` > 1: conditional instance norm, one (scale, shift) per style.
        ``width``: the first layer's channels (32, Johnson's; the others are 2x and 4x it):
        16 is the light network for CPUs, about a quarter of the arithmetic, under the same
        key names (the checkpoint's shapes say which)."""
        super().__init__()
        if styles < 1 or width < 1:
            raise ValueError(f"styles and width must be >= 1, got {styles} and {width}")
        self.styles, self.width = styles, width
        c1, c2, c3 = width, 2 * width, 4 * width
        self.conv1 = ConvLayer(3, c1, kernel_size=9, stride=1)
        self.in1 = instance_norm(c1, styles)
        self.conv2 = ConvLayer(c1, c2, kernel_size=3, stride=2)
        self.in2 = instance_norm(c2, styles)
        self.conv3 = ConvLayer(c2, c3, kernel_size=3, stride=2)
        self.in3 = instance_norm(c3, styles)
        self.res1 = ResidualBlock(c3, styles)
        self.res2 = ResidualBlock(c3, styles)
        self.res3 = ResidualBlock(c3, styles)
        self.res4 = ResidualBlock(c3, styles)
        self.res5 = ResidualBlock(c3, styles)
        self.deconv1 = UpsampleConvLayer(c3, c2, kernel_size=3, stride=1, upsample=2)
        self.in4 = instance_norm(c2, styles)
        self.deconv2 = UpsampleConvLayer(c2, c1, kernel_size=3, stride=1, upsample=2)
        self.in5 = instance_norm(c1, styles)
        self.deconv3 = ConvLayer(c1, 3, kernel_size=9, stride=1)
        self.relu = nn.ReLU()

    def set_style(self, style: int | Mapping[int, float]) -> None:
        """Paint in style ``style`` (an index), or a blend ``{index: weight}`` of styles
        (weights >= 0, scaled to sum 1: their normalization parameters interpolated)."""
        weights = {style: 1.0} if isinstance(style, int) else dict(style)
        bad = [i for i in weights if not 0 <= i < self.styles]
        if bad:
            raise ValueError(f"style {bad[0]} is not one of this network's {self.styles} "
                             f"(0..{self.styles - 1})")
        if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise ValueError(f"a blend's weights must be >= 0 and not all 0, got {weights}")
        if self.styles == 1:
            return
        mix = torch.zeros(self.styles)
        total = sum(weights.values())
        for index, weight in weights.items():
            mix[index] = weight / total
        for module in self.modules():
            if isinstance(module, ConditionalInstanceNorm2d):
                module.mix.copy_(mix.to(module.mix.device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.in1(self.conv1(x)))
        y = self.relu(self.in2(self.conv2(y)))
        y = self.relu(self.in3(self.conv3(y)))
        for block in (self.res1, self.res2, self.res3, self.res4, self.res5):
            y = block(y)
        y = self.relu(self.in4(self.deconv1(y)))
        y = self.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)
