"""A chain of stages run on a batch, each stage's failure named, and the NaN check after each."""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..errors import MediaError
from .base import Stage

if TYPE_CHECKING:  # only chains that compute call these, and torch is loaded by then
    import torch


class StageFailed(Exception):
    def __init__(self, stage: str, cause: BaseException) -> None:
        super().__init__(f"{stage}: {cause}")
        self.stage, self.cause = stage, cause


def run_stages(stages: Sequence[Stage], x: torch.Tensor,
               keys: Sequence[str] | None = None) -> torch.Tensor:
    """``keys``: each image's name (its output path under the output folder; a clip's for
    each of its frames), handed to the stages that draw something per image (``per_image``)."""
    for stage in stages:
        try:
            x = stage(x, keys) if stage.per_image else stage(x)
        except StageFailed:  # from a stage that runs stages (a variant's branch): named there
            raise
        except Exception as exc:
            raise StageFailed(stage.name, exc) from exc
        check_finite(stage.name, x)
    return x


def check_finite(stage: str, x: torch.Tensor) -> None:
    """NaN or Inf would be written as black or white pixels and the job would exit 0: fail
    the batch instead (the image way then retries image by image, so only the images
    that really break fail)."""
    if isinstance(x, np.ndarray):  # a host batch (ONNX Runtime): no torch
        finite, total = np.isfinite(x), x.size
        bad = 0 if finite.all() else int((~finite).sum())
    else:
        total = x.numel()
        import torch

        bad = int((~torch.isfinite(x)).sum()) if x.is_floating_point() and x.numel() and \
            not bool(torch.isfinite(x).all()) else 0
    if bad:
        raise StageFailed(stage, ValueError(
            f"produced {bad} NaN or infinite values out of {total}: a numerical overflow "
            "(try precision: fp32 if the job runs in fp16) or broken weights"))


def reason_of(exc: BaseException) -> str:
    if isinstance(exc, StageFailed):
        exc = exc.cause
    if isinstance(exc, MediaError):  # the remedy too: the failure line is all a user sees
        return f"{exc.reason}; {exc.hint}" if exc.hint else exc.reason
    return f"{type(exc).__name__}: {exc}"
