"""How many images of one shape go to the device together.

A fixed ``batch_size`` is used as given (and still halved on out-of-memory).
``auto``:
- CPU: 1.  ``python benchmarks/batching.py`` on the 2-core dev machine
  (TransformerNet, 136x320, fp32): batch 1 14.9, batch 2 17.4, batch 4 13.6,
  batch 8 11.3 images/s.  One image already keeps the cores busy; bigger
  batches only add memory traffic, and the small gain at 2 is not worth
  holding images back to wait for a same-size partner.
- CUDA: as many as fit in half the free memory at an estimated cost per pixel,
  capped at 32; an out-of-memory error halves it for that shape, for the rest
  of the run, instead of killing the run.
Either way no batch exceeds the smallest ``max_batch`` of the job's stages
(``gatys``: 1, since it optimizes image by image and a batch only delays commits).
"""
from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .context import RunContext

_CUDA_BYTES_PER_PIXEL = 4096  # activations of a ResNet-9 CycleGAN in 16-bit, with headroom
_CUDA_MAX_BATCH = 32


class BatchSizer:
    def __init__(self, ctx: RunContext, cap: int | None = None, computes: bool = True) -> None:
        self.ctx = ctx
        self.cap = cap  # a stage's max_batch: no batch is ever larger
        self.computes = computes  # False: no stage uses the device (nor torch): as on a CPU
        self._sizes: dict[tuple[int, ...], int] = {}
        self._lock = threading.Lock()

    def size_for(self, shape: tuple[int, ...]) -> int:
        with self._lock:
            if shape not in self._sizes:
                initial = self._initial(shape)
                self._sizes[shape] = initial if self.cap is None else min(initial, self.cap)
            return self._sizes[shape]

    def shrink(self, shape: tuple[int, ...], failed_size: int) -> bool:
        """After an out-of-memory at ``failed_size``; False when already at 1."""
        with self._lock:
            if failed_size <= 1:
                return False
            self._sizes[shape] = min(self._sizes.get(shape, failed_size), failed_size // 2)
            if self.computes and self.ctx.device_type == "cuda":
                import torch

                torch.cuda.empty_cache()
            return True

    def _initial(self, shape: tuple[int, ...]) -> int:
        if self.ctx.batch_size is not None:
            return self.ctx.batch_size
        if not self.computes or self.ctx.device_type != "cuda":
            return 1
        import torch

        free, _total = torch.cuda.mem_get_info(self.ctx.device)
        pixels = shape[0] * shape[1]
        return max(1, min(_CUDA_MAX_BATCH, int(free * 0.5) // (pixels * _CUDA_BYTES_PER_PIXEL)))


def is_out_of_memory(exc: BaseException) -> bool:
    torch = sys.modules.get("torch")  # not loaded: no torch error to be
    if torch is not None and isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        "out of memory" in text or "can't allocate memory" in text or isinstance(exc, MemoryError))
