"""The run context: everything a stage may depend on besides its own params.

No hidden globals: device, precision and batch size arrive here and are passed down.  The
device and the precision are resolved (``auto`` becomes a concrete choice) the first time
something asks for them, which imports torch: a stage that computes asks when it is built; a
job whose stages compute nothing (decode, encode) never asks, and never imports torch.
"""
from __future__ import annotations

import threading
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: precision -> torch dtype name (``RunContext.dtype``)
DTYPE_NAMES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


class RunContext:
    """``device``: a ``torch.device``, or what the job asked for (``auto``, ``cpu``, ``cuda:1``);
    ``precision``: fp32 | fp16 | bf16 | auto; ``batch_size``: None finds one (``BatchSizer``)."""

    def __init__(self, device: torch.device | str, precision: str, batch_size: int | None) -> None:
        self.batch_size = batch_size
        self._asked = (str(device), precision)
        self._device = None if isinstance(device, str) else device
        self._precision = None if precision == "auto" else precision
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        device, precision = (self._device or self._asked[0]), (self._precision or self._asked[1])
        return f"RunContext(device={device!s}, precision={precision}, batch_size={self.batch_size})"

    def __getstate__(self) -> dict:  # pickled to Ray workers: without the lock
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    @property
    def device(self) -> torch.device:
        """The device, resolved on first use (raises ValueError for one that does not exist)."""
        with self._lock:
            if self._device is None:
                self._device = resolve_device(self._asked[0])
            return self._device

    @property
    def device_type(self) -> str:
        """"cpu" or "cuda": without importing torch where the answer is known without it (the
        job asked for the CPU, or ``auto`` with a CPU-only build of torch installed)."""
        if self._device is None and (self._asked[0] == "cpu" or (
                self._asked[0] == "auto" and cpu_only_torch())):
            return "cpu"
        return self.device.type

    @property
    def precision(self) -> str:
        """fp32 | fp16 | bf16, never auto (``auto`` resolved for the device)."""
        if self._precision is None:  # auto: on the CPU fp32 (``resolve_precision``), no torch
            self._precision = "fp32" if self.device_type == "cpu" else \
                resolve_precision(self._asked[1], self.device)
        return self._precision

    @property
    def itemsize(self) -> int:
        """Bytes a value of the working dtype takes (without importing torch)."""
        return 4 if self.precision == "fp32" else 2

    @property
    def dtype(self) -> torch.dtype:
        import torch

        return getattr(torch, DTYPE_NAMES[self.precision])


def dtypes() -> dict[str, torch.dtype]:
    """precision -> torch dtype (imports torch: for training, which always computes)."""
    import torch

    return {name: getattr(torch, dtype) for name, dtype in DTYPE_NAMES.items()}


@lru_cache(maxsize=1)
def cpu_only_torch() -> bool:
    """Whether the installed torch is a CPU-only build (its version ends in ``+cpu``, as
    PyTorch's CPU wheels are named), read from its metadata: CUDA can then never be available,
    and ``auto`` is the CPU without importing torch (1.3 s here)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch").endswith("+cpu")
    except PackageNotFoundError:
        return False


def resolve_device(requested: str) -> torch.device:
    """``auto`` picks CUDA when present; an explicit CUDA device must exist."""
    from .start_up import import_torch

    torch = import_torch()

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
    import torch

    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"
