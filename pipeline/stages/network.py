"""What fast_style and cyclegan share: load once, pad, run, crop, keep alpha."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ClassVar

import numpy as np

from ..machine.context import RunContext
from ..ops.pad import crop_to, pad_to_multiple, padded_side
from ..typed_yaml import ParamError
from .base import Stage, join_alpha, split_alpha

if TYPE_CHECKING:  # loaded with the network: fast_style in ONNX Runtime runs without it
    import torch
    from torch import nn


@dataclass(frozen=True)
class NetworkParams:
    weights: Path
    strength: float = 1.0  # 0..1: the stylized image blended with its input (0: the input)
    preserve_color: bool = False  # the input's colours with the style's luminance
    # torch.compile the network: on this CPU Magenta's took 9 s to compile (26 s with a
    # cold cache), then 54 ms a 512x512 picture instead of 99, within a level
    # (benchmarks/magenta_precision.py --compile): for long runs of one frame size; each
    # new size compiles again
    compile: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.strength, bool) or not 0.0 <= self.strength <= 1.0:
            raise ParamError("strength", f"strength must be in [0, 1], got {self.strength}")


class NetworkStage(Stage):
    Params = NetworkParams
    # the style controls when off, and compiling when not asked: outputs made before they
    # existed still count
    quiet_defaults = {"strength": 1.0, "preserve_color": False, "compile": False}
    #: reads a checkpoint into a frozen, eval-mode module with ``size_multiple``
    loader: ClassVar[Callable[[Path], nn.Module]]

    def __init__(self, params: NetworkParams, ctx: RunContext) -> None:
        super().__init__(params, ctx)
        net = self.load(params)  # WeightsError names the file
        self.net = net.to(device=ctx.device, dtype=ctx.dtype)
        if getattr(params, "compile", False):
            import torch

            self.net = torch.compile(self.net)
        self.size_multiple = int(getattr(net, "size_multiple", 4))
        self.min_side = int(getattr(net, "min_side", 0))

    def load(self, params: NetworkParams) -> nn.Module:
        """The frozen network, on the CPU (moved to the device by ``__init__``)."""
        from ..machine.start_up import import_torch

        import_torch()  # its first import, if it is, out of the collector's way
        return type(self).loader(params.weights)

    def describe(self) -> str:
        arch = getattr(self.net, "arch", None)
        extra = f", {arch.describe() if hasattr(arch, 'describe') else arch}" if arch else ""
        if self.params.strength != 1.0:
            extra += f", strength {self.params.strength:g}"
        if self.params.preserve_color:
            extra += ", input colours kept"
        return f"{self.name}(weights={self.params.weights.name}{extra})"

    def peak_bytes(self, channels: int, height: int, width: int, itemsize: int) -> int:
        m, least = self.size_multiple, self.min_side
        padded = padded_side(height, m, least) * padded_side(width, m, least)
        return channels * height * width * itemsize + int(padded * self.bytes_per_pixel() * itemsize / 4)

    def bytes_per_pixel(self) -> float:
        """fp32 activation bytes per padded pixel, from the architecture's family (measured
        figures in ``pipeline.models.families``)."""
        from ..models.families import UNKNOWN_BYTES_PER_PIXEL, get_family

        arch = getattr(self.net, "arch", None)
        per_pixel = get_family(arch.family).bytes_per_pixel if arch is not None else None
        return per_pixel(arch) if per_pixel is not None else UNKNOWN_BYTES_PER_PIXEL

    def to_net(self, rgb: torch.Tensor) -> torch.Tensor:
        """0..255 -> the network's input range."""
        raise NotImplementedError

    def from_net(self, y: torch.Tensor) -> torch.Tensor:
        """The network's output range -> 0..255."""
        raise NotImplementedError

    def __call__(self, x: torch.Tensor, **net_args: torch.Tensor) -> torch.Tensor:
        """``net_args``: more inputs of the network, per image (a style embedding each)."""
        import torch

        from ..ops.style_controls import apply_controls

        if x.shape[0] == 0:  # norm layers reject empty batches; the answer is known
            return x.clone()
        rgb, alpha = split_alpha(x)
        net_dtype = next(self.net.parameters()).dtype
        with torch.inference_mode():
            # Upstream nets silently change odd sizes; pad to their multiple, crop back.
            padded, size = pad_to_multiple(rgb.to(net_dtype), self.size_multiple,
                                           min_side=self.min_side)
            y = self.from_net(self.net(self.to_net(padded), **net_args))
            y = crop_to(y, size).clamp(0, 255)
            y = apply_controls(y, rgb.to(net_dtype), self.params.strength,
                               self.params.preserve_color).to(x.dtype)
        refuse_flat_outputs(rgb, y)
        return join_alpha(y, alpha)


def refuse_flat_outputs(rgb: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray) -> None:
    """A style network never paints a picture with detail as one flat colour; broken weights
    (zeros, a saturated layer) do, and the job would otherwise exit 0 with every output black
    or white.  Only a flat input may give a flat output (a black frame in a fade).  Tensors or
    numpy arrays, [N, C, H, W]."""
    def flat(a) -> np.ndarray:  # per image; a tensor's on its device, only N booleans back
        rows = a.reshape(len(a), -1)
        if isinstance(rows, np.ndarray):
            return rows.max(1) == rows.min(1)
        return (rows.amax(1) == rows.amin(1)).cpu().numpy()

    flat_out = flat(y)
    if flat_out.any():
        bad = flat_out & ~flat(rgb)
        if bad.any():
            value = float(y[int(bad.nonzero()[0][0])].reshape(-1)[0])
            raise ValueError(f"the network turned {int(bad.sum())} of {len(y)} images into one flat "
                             f"colour (every value {value:.0f}): its weights are broken, or the "
                             "input is far outside what it was trained on")
