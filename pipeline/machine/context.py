"""The run context: everything a stage may depend on besides its own params.

No hidden globals: device, precision and batch size arrive here, resolved
once from the job (``auto`` becomes a concrete choice) and passed down.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class RunContext:
    device: torch.device
    precision: str  # fp32 | fp16 | bf16, never auto
    batch_size: int | None  # None: find one (see batching.BatchSizer)

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.precision]


def resolve_device(requested: str) -> torch.device:
    """``auto`` picks CUDA when present; an explicit CUDA device must exist."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device '{requested}' was asked for but CUDA is not available "
                             "(torch.cuda.is_available() is False); use 'auto' or 'cpu'")
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"device '{requested}' does not exist: this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s)")
    return device


def resolve_precision(requested: str, device: torch.device) -> str:
    """``auto``: bf16 on CUDA where supported, else fp16; fp32 on CPU.

    On CPU, bf16 pays only where the cores have native bf16 (avx512_bf16,
    AMX): the dev machine has avx512_bf16 and ran jobs/film_vangogh.yaml 1.74x
    faster in bf16 (docs/devices-and-performance.md).  Elsewhere oneDNN emulates it, and output bytes
    would then depend on the CPU model, so auto stays fp32 and bf16 is the
    user's explicit choice.
    """
    if requested != "auto":
        return requested
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"
