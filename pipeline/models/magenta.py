"""Arbitrary style transfer with a style embedding (Ghiasi, Lee, Kudlur, Dumoulin, Shlens 2017,
"Exploring the structure of a real-time, arbitrary neural artistic stylization network";
Magenta's ``arbitrary_image_stylization``).

Two networks: a style predictor turns a painting into 100 numbers, and a transfer network
(Johnson et al.'s layout) stylizes a photo, every instance norm after the contracting layers
taking its scale and shift from an affine map of those numbers.  Any painting is a style,
and a blend of paintings is a blend of embeddings.

``GhiasiTransformer`` is laid out as style-augmentation's ``Ghiasi`` module (Jackson et al.
2019, ``styleaug/ghiasi.py``), so its state-dict keys are that repository's:
``layers.0-2`` contract (``conv``), ``layers.3-7`` residual blocks (``conv1``, ``conv2``,
``fc_beta1``, ``fc_gamma1``, ``fc_beta2``, ``fc_gamma2``), ``layers.8-10`` expand
(``conv``, ``fc_beta``, ``fc_gamma``).  Widths and the contracting layers' normalisation come
from the keys: Magenta's original and styleaug's are 32/64/128 wide with instance norm; the
int8 model of TF Hub's TFLite release (and the ONNX converted from it) is 8/16/32 wide, its
contracting layers' batch norm folded into a conv bias.

``MobileNetStylePredictor`` is that TFLite release's predictor: a MobileNet-v2 (TF-slim
layout, "SAME" padding) on a 256x256 painting in [0, 1], averaged, then a 1x1 conv to 100.
Keys: ``conv``, ``blocks.N.{expand,depthwise,project}``, ``conv_1``, ``bottleneck`` (each
``.weight`` and ``.bias``: batch norm folded, as in the file).

Both networks take and give RGB in [0, 1]; ``EmbeddingStylizer`` wraps the transfer network
for the pipeline (RGB 0..255 in and out, a fixed embedding, optionally mixed per image with
the content's own embedding: Magenta's ``alpha``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["EMBEDDING_SIZE", "PREDICTOR_SIZE", "GhiasiTransformer", "MobileNetStylePredictor",
           "EmbeddingStylizer", "MOBILENET_V2_BLOCKS"]

EMBEDDING_SIZE = 100
PREDICTOR_SIZE = 256  # the predictor's training size: paintings are resized to it
_EPS = 1e-5  # the instance norm's variance epsilon (read from the TFLite file: 127 * 7.874e-8)


class _StyleNormConv(nn.Module):
    """Reflection pad, conv, then (``norm``) instance norm whose scale and shift come from the
    embedding, then the activation."""

    def __init__(self, c_in: int, c_out: int, k: int, *, stride: int = 1, upsample: int = 1,
                 conditioned: bool = True, instance_norm: bool = True,
                 activation: str | None = "relu") -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, stride)
        self.pad, self.upsample, self.activation = k // 2, upsample, activation
        self.conditioned, self.instance_norm = conditioned, instance_norm
        if conditioned:
            self.fc_beta = nn.Linear(EMBEDDING_SIZE, c_out)
            self.fc_gamma = nn.Linear(EMBEDDING_SIZE, c_out)

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        if self.upsample > 1:
            x = F.interpolate(x, scale_factor=self.upsample, mode="nearest")
        x = self.conv(F.pad(x, (self.pad,) * 4, mode="reflect"))
        if self.conditioned:
            x = _style_norm(x, self.fc_gamma(style), self.fc_beta(style))
        elif self.instance_norm:
            x = F.instance_norm(x, eps=_EPS)
        return torch.relu(x) if self.activation == "relu" else x


class _StyleResidual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3)
        self.conv2 = nn.Conv2d(channels, channels, 3)
        for i in (1, 2):
            setattr(self, f"fc_beta{i}", nn.Linear(EMBEDDING_SIZE, channels))
            setattr(self, f"fc_gamma{i}", nn.Linear(EMBEDDING_SIZE, channels))

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        y = self.conv1(F.pad(x, (1,) * 4, mode="reflect"))
        y = torch.relu(_style_norm(y, self.fc_gamma1(style), self.fc_beta1(style)))
        y = self.conv2(F.pad(y, (1,) * 4, mode="reflect"))
        return x + _style_norm(y, self.fc_gamma2(style), self.fc_beta2(style))


def _style_norm(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Instance norm (statistics in float32 whatever the dtype: a bf16 variance over a 1080p
    plane loses the picture) with per-image scale and shift ``[N, C]``."""
    y = F.instance_norm(x.float(), eps=_EPS).to(x.dtype)
    return y * gamma[:, :, None, None].to(x.dtype) + beta[:, :, None, None].to(x.dtype)


class GhiasiTransformer(nn.Module):
    """The transfer network: RGB in [0, 1] and embeddings ``[N, 100]`` -> RGB in [0, 1]."""

    size_multiple = 4  # two stride-2 convs, two x2 upsamplings: other sizes are padded

    def __init__(self, widths: tuple[int, int, int] = (32, 64, 128), blocks: int = 5,
                 contract_norm: str = "instance") -> None:
        super().__init__()
        if contract_norm not in ("instance", "folded"):
            raise ValueError(f"contract_norm must be 'instance' or 'folded', not {contract_norm!r}")
        a, b, c = widths
        norm = contract_norm == "instance"
        self.widths, self.blocks, self.contract_norm = tuple(widths), blocks, contract_norm
        self.layers = nn.ModuleList(
            [_StyleNormConv(3, a, 9, conditioned=False, instance_norm=norm),
             _StyleNormConv(a, b, 3, stride=2, conditioned=False, instance_norm=norm),
             _StyleNormConv(b, c, 3, stride=2, conditioned=False, instance_norm=norm)]
            + [_StyleResidual(c) for _ in range(blocks)]
            + [_StyleNormConv(c, b, 3, upsample=2), _StyleNormConv(b, a, 3, upsample=2),
               _StyleNormConv(a, 3, 9, activation=None)])

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x) if i < 3 else layer(x, style)
        return torch.sigmoid(x)


# MobileNet-v2's inverted residual blocks: (expansion, output channels, repeats, first stride)
MOBILENET_V2_BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def _same_pad(x: torch.Tensor, k: int, stride: int) -> torch.Tensor:
    """TensorFlow's "SAME": the output is ceil(size / stride), the extra padding after."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max((math.ceil(size / stride) - 1) * stride + k - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class _TFConv(nn.Conv2d):
    """A conv with TF "SAME" padding and ReLU6 (or none), batch norm folded into its bias."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1,
                 relu6: bool = True) -> None:
        super().__init__(c_in, c_out, k, stride, groups=groups)
        self.relu6 = relu6

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(_same_pad(x, self.kernel_size[0], self.stride[0]))
        return x.clamp(0, 6) if self.relu6 else x


class _InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, expansion: int, stride: int) -> None:
        super().__init__()
        hidden = c_in * expansion
        if expansion != 1:
            self.expand = _TFConv(c_in, hidden, 1)
        self.depthwise = _TFConv(hidden, hidden, 3, stride, groups=hidden)
        self.project = _TFConv(hidden, c_out, 1, relu6=False)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if hasattr(self, "expand") else x
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y


class MobileNetStylePredictor(nn.Module):
    """A painting, RGB in [0, 1] (resized to ``PREDICTOR_SIZE`` by the caller), -> ``[N, 100]``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = _TFConv(3, 32, 3, 2)
        blocks, c_in = [], 32
        for expansion, c_out, repeats, stride in MOBILENET_V2_BLOCKS:
            for r in range(repeats):
                blocks.append(_InvertedResidual(c_in, c_out, expansion, stride if r == 0 else 1))
                c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.conv_1 = _TFConv(c_in, 1280, 1)
        self.bottleneck = nn.Conv2d(1280, EMBEDDING_SIZE, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        for block in self.blocks:
            x = block(x)
        x = self.conv_1(x).mean((2, 3), keepdim=True)
        return self.bottleneck(x).flatten(1)


class EmbeddingStylizer(nn.Module):
    """The pipeline's view: RGB 0..255 ``[N, 3, H, W]`` -> RGB [0, 1], styled by ``embedding``
    (``[100]``); with ``alpha < 1`` (and a ``predictor``), each image's own embedding is mixed
    in: ``alpha * style + (1 - alpha) * content``, Magenta's interpolation."""

    def __init__(self, transformer: GhiasiTransformer, embedding: torch.Tensor, alpha: float = 1.0,
                 predictor: nn.Module | None = None) -> None:
        super().__init__()
        if alpha < 1.0 and predictor is None:
            raise ValueError("alpha < 1 mixes in the content's own embedding: it needs the predictor")
        self.transformer, self.predictor, self.alpha = transformer, predictor, alpha
        self.register_buffer("embedding", embedding.reshape(1, EMBEDDING_SIZE).float())
        self.size_multiple = transformer.size_multiple

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        """``style``: an embedding per image ``[N, 100]`` instead of the fixed one."""
        x = x / 255.0
        style = self.embedding.expand(len(x), -1) if style is None else style.float()
        if self.alpha < 1.0:
            small = F.interpolate(x, size=(PREDICTOR_SIZE, PREDICTOR_SIZE), mode="bilinear",
                                  align_corners=False, antialias=True)
            style = torch.lerp(self.predictor(small).float(), style, self.alpha)
        return self.transformer(x, style)
