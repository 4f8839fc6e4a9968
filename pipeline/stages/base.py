"""What every stage is: a name, a frozen Params dataclass, and a thin call.

Kinds, in chain order: one ``decode`` (source file -> uint8 frames), any
number of ``transform`` stages (float batch [N, C, H, W] in 0..255 on the
device -> same shape class, dtype and device) and ``temporal`` stages (the
same, but fed consecutive video frames in order with per-frame guides and
state; see temporal_smooth), one ``encode`` (uint8 frames -> file).  C is 3 (RGB) or 4 (RGB + alpha last); colour stages leave alpha alone.
Stages hold parameters and call pure kernels in ``pipeline.ops`` or models in
``pipeline.models``; the engine owns threads, batching and commits.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..hashing import file_sha256  # noqa: F401  (stages name weights files by it)
from ..machine.context import RunContext

if TYPE_CHECKING:  # torch is imported by the stages that compute, when a job names one
    import torch


@dataclasses.dataclass(frozen=True)
class NoParams:
    """For stages that take no options."""


class Stage:
    name: ClassVar[str]
    kind: ClassVar[str] = "transform"
    Params: ClassVar[type] = NoParams
    #: stages that only make sense for video; a job without videos that uses one is invalid
    video_only: ClassVar[bool] = False
    #: the most images this stage should see at once (None: no limit); caps
    #: the engine's batch size, ``batch_size`` in the job included
    max_batch: ClassVar[int | None] = None
    #: called as ``stage(x, keys)``, each image's key beside it (its output path under the
    #: output folder; a clip's for each of its frames): for what is drawn per image
    per_image: ClassVar[bool] = False
    #: whether it computes on the device: a chain of stages that do not (decode, encode) runs
    #: without torch, whose import would be most of its start-up
    computes: ClassVar[bool] = True
    #: takes (and gives) numpy [N, C, H, W] float32 batches as well as tensors: where every
    #: stage of a chain does, the engine runs it without torch (fast_style in ONNX Runtime)
    host_arrays: bool = False
    #: params added after outputs were made, left out of the fingerprint at these values
    quiet_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, params: Any, ctx: RunContext) -> None:
        self.params = params
        self.ctx = ctx

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # transform stages
        raise NotImplementedError

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The (H, W) this stage makes of an (H, W) input; most keep it."""
        return height, width

    def peak_bytes(self, channels: int, height: int, width: int, itemsize: int) -> int:
        """Device bytes live at this stage's peak for ONE image of ``channels`` x
        ``height`` x ``width`` in the working dtype (``itemsize`` bytes a value):
        its input, its output and its temporaries.  ``pipeline.machine.memory`` walks the
        chain with this and ``output_size`` to refuse images that would not fit.
        The default suits simple kernels: input and output plus two copies of
        the larger; stages that hold more (networks, iterative solvers) say so."""
        out_h, out_w = self.output_size(height, width)
        a, b = (channels * h * w * itemsize for h, w in ((height, width), (out_h, out_w)))
        return a + b + 2 * max(a, b)

    def describe(self) -> str:
        """One line for the plan printout."""
        fields = dataclasses.asdict(self.params)
        shown = ", ".join(f"{k}={_short(v)}" for k, v in fields.items() if v is not None)
        return f"{self.name}({shown})" if shown else self.name

    def fingerprint(self) -> dict[str, Any]:
        """The params that decide output bytes; weights by content, not path.  A param in
        ``quiet_defaults`` at that value is left out: it changes nothing there, so outputs
        made before it existed still count."""
        fingerprint = {"stage": self.name, **_normalize(dataclasses.asdict(self.params))}
        for name, value in self.quiet_defaults.items():
            if name in fingerprint and fingerprint[name] == value:
                del fingerprint[name]
        return fingerprint


def _short(value: Any) -> str:
    return value.name if isinstance(value, Path) else str(value)


def _normalize(value: Any) -> Any:
    if isinstance(value, Path):
        return {"sha256": file_sha256(value)} if value.is_file() else str(value)
    if isinstance(value, dict):
        if any(isinstance(k, Path) for k in value):  # a blend of files: pairs, files by content
            return [[_normalize(k), _normalize(v)] for k, v in value.items()]
        return {k: _normalize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalize(v) for v in value]
    return value


def split_alpha(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """RGB part and the alpha channel (or None) of a [N, C, H, W] batch."""
    if x.shape[-3] == 4:
        return x[..., :3, :, :], x[..., 3:, :, :]
    return x, None


def join_alpha(rgb: torch.Tensor, alpha: torch.Tensor | None) -> torch.Tensor:
    import torch

    return rgb if alpha is None else torch.cat([rgb, alpha.to(rgb.dtype)], dim=-3)
