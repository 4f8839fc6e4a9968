"""fast_style: Johnson et al. 2016 TransformerNet, RGB 0..255 in and out.

A multi-style network (conditional instance norm, Dumoulin et al. 2017: one
(scale, shift) per style in each norm) paints the style ``style`` names: an
index, or a blend ``{index: weight}`` whose normalization parameters are
interpolated.  A single-style checkpoint takes no ``style`` (or 0).

On a CPU, in fp32, with the style controls off, the network runs in ONNX Runtime when it is
installed (``runtime: auto``; ``pipeline.models.onnx_runtime``): exported once per weights
file, then neither torch nor the checkpoint is loaded, and the stage takes numpy batches as
well as tensors (``host_arrays``: the engine then never imports torch for images).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from ..errors import WeightsError
from ..models import onnx_runtime
from ..ops.pad import pad_to_multiple_host
from ..typed_yaml import ParamError
from .base import Stage
from .network import NetworkParams, NetworkStage, refuse_flat_outputs
from .registry import register

if TYPE_CHECKING:
    import torch

_log = logging.getLogger("stylize.fast_style")


@dataclass(frozen=True)
class FastStyleParams(NetworkParams):
    style: int | dict[int, float] | None = None  # a multi-style net's style, or a blend
    # where a CPU runs the network: auto (ONNX Runtime when installed and the controls are
    # off, else torch), torch, or onnxruntime (an error where it cannot)
    runtime: Literal["auto", "torch", "onnxruntime"] = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        weights = {self.style: 1.0} if isinstance(self.style, int) else self.style or {}
        if any(i < 0 for i in weights) or any(w < 0 for w in weights.values()) or (
                weights and sum(weights.values()) <= 0):
            raise ParamError("style", f"style must be an index >= 0 or a blend of them with "
                                      f"weights >= 0, not all 0; got {self.style}")


@register
class FastStyle(NetworkStage):
    name = "fast_style"
    Params = FastStyleParams
    quiet_defaults = {**NetworkStage.quiet_defaults, "style": None}

    def __init__(self, params: FastStyleParams, ctx) -> None:
        self.style = getattr(params, "style", None)  # plain NetworkParams: style 0
        self.onnx = None
        exported = None
        if _onnx_wanted(params, ctx):
            Stage.__init__(self, params, ctx)
            exported = onnx_runtime.cached(params.weights, _variant(self.style)) or self._export()
        if exported is not None:
            self.facts = exported.facts
            self.size_multiple, self.min_side = self.facts["size_multiple"], self.facts["min_side"]
            from ..machine.threads import current

            self.onnx = onnx_runtime.OnnxNet(exported.path, current().torch)
            self.host_arrays = True
            return
        super().__init__(params, ctx)
        self._set_style(self.net)

    @staticmethod
    def loader(path):
        from ..models.checkpoints import load_fast_style

        return load_fast_style(path)

    def _set_style(self, net) -> None:
        if self.style is not None:
            try:
                net.set_style(self.style)
            except ValueError as exc:
                raise WeightsError(self.params.weights, str(exc),
                                   hint="name one of the network's styles by its index") from None

    def _export(self) -> onnx_runtime.Exported | None:
        """The first run of these weights (and style) on ONNX Runtime: load, export, note.  None
        where the export fails with ``runtime: auto`` (the network then runs in torch)."""
        net = self.load(self.params)
        self._set_style(net)
        arch = net.arch
        from ..models.families import get_family

        per_pixel = get_family(arch.family).bytes_per_pixel
        facts = {"runs_in": get_family(arch.family).runs_in,
                 "describe": arch.describe() if hasattr(arch, "describe") else str(arch),
                 "size_multiple": int(getattr(net, "size_multiple", 4)),
                 "min_side": int(getattr(net, "min_side", 0)),
                 "bytes_per_pixel": per_pixel(arch) if per_pixel is not None else None}
        try:
            return onnx_runtime.export(net.float().eval(), self.params.weights, _variant(self.style),
                                       facts)
        except Exception as exc:  # noqa: BLE001 - a cache it cannot write, an op it cannot export
            if self.params.runtime == "onnxruntime":
                raise WeightsError(self.params.weights, f"could not export it for ONNX Runtime "
                                   f"({type(exc).__name__}: {exc})",
                                   hint=f"set {onnx_runtime.CACHE_ENV} to a folder you can write, "
                                        "or use runtime: auto") from None
            _log.warning("%s: not exported for ONNX Runtime (%s: %s); it runs in torch",
                         self.params.weights, type(exc).__name__, exc)
            return None

    def bytes_per_pixel(self) -> float:
        if self.onnx is not None and self.facts.get("bytes_per_pixel") is not None:
            return self.facts["bytes_per_pixel"]
        return super().bytes_per_pixel()

    def describe(self) -> str:
        if self.onnx is None:
            text = super().describe()
        else:
            text = f"{self.name}(weights={self.params.weights.name}, {self.facts['describe']}, onnxruntime)"
        return text if self.style is None else f"{text[:-1]}, style {self.style})"

    def fingerprint(self) -> dict:
        """What ran decides the bytes, not what was asked: ``runtime`` is left out, and
        ``runs_in: onnxruntime`` added where it ran there (within 0.0005 of torch's outputs,
        not the same bytes); a network in torch reads as it did before ONNX Runtime."""
        fingerprint = super().fingerprint()
        fingerprint.pop("runtime", None)
        if self.onnx is not None:
            fingerprint["runs_in"] = "onnxruntime"
        return fingerprint

    def __call__(self, x, **net_args):
        if self.onnx is None:
            return super().__call__(x, **net_args)
        array = x if isinstance(x, np.ndarray) else x.numpy()  # a CPU tensor: a view
        rgb, alpha = array[:, :3], (array[:, 3:] if array.shape[1] == 4 else None)
        if len(rgb) == 0:
            y = rgb.astype(np.float32)
        else:
            padded, (h, w) = pad_to_multiple_host(rgb.astype(np.float32, copy=False),
                                                  self.size_multiple, self.min_side)
            y = np.clip(self.onnx(padded)[:, :, :h, :w], 0.0, 255.0)
            refuse_flat_outputs(rgb, y)
        out = y if alpha is None else np.concatenate([y, alpha.astype(np.float32)], axis=1)
        if isinstance(x, np.ndarray):
            return out
        import torch

        return torch.from_numpy(np.ascontiguousarray(out))

    def to_net(self, rgb: torch.Tensor) -> torch.Tensor:
        return rgb

    def from_net(self, y: torch.Tensor) -> torch.Tensor:
        return y


def _onnx_wanted(params: FastStyleParams, ctx) -> bool:
    runtime = getattr(params, "runtime", "torch")
    if runtime == "torch":
        return False
    why = ("the device is not the CPU" if ctx.device_type != "cpu" else
           "the precision is not fp32" if ctx.precision != "fp32" else
           "strength and preserve_color need torch" if (params.strength != 1.0 or params.preserve_color) else
           "compile needs torch" if params.compile else
           "the onnxruntime package is not installed" if not onnx_runtime.available() else None)
    if why is not None and runtime == "onnxruntime":
        raise WeightsError(params.weights, f"runtime: onnxruntime cannot run it here: {why}",
                           hint="use runtime: auto (ONNX Runtime where it can, torch elsewhere)")
    return why is None


def _variant(style) -> str:
    """The cache's name for a style of one weights file."""
    if style is None:
        return "style-default"
    if isinstance(style, int):
        return f"style-{style}"
    return "blend-" + "-".join(f"{k}x{v:g}" for k, v in sorted(style.items()))
