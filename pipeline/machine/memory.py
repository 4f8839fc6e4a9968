"""Will one image fit?  What a source needs on its way through the chain, and what the device can give.

An image between Pillow's warning and error limits (89 to 179 Mpx) decodes
fine and then needs over 100 GiB in a style network; on the CPU the kernel's
OOM killer ends the process with no summary and nothing in the ledger, so
every rerun dies the same way.  So the image way reads the header first
(``MemoryGate.check_image``) and an image that would not fit fails alone, at
decode, with the reason, recorded like any other failure.

The estimate (``estimate``), for one image of C x H x W:

* the chain: each transform stage's ``Stage.peak_bytes`` at the size it is
  given (``output_size`` walked along the chain), plus the chain's float input,
  which the engine holds until the batch is done;
* decoding: Pillow's image (4 bytes a pixel: it keeps RGB as RGBX) and the
  uint8 array made from it; the array stays beside the chain.

On the CPU both come out of one pool; on CUDA the chain is device memory and
decoding host memory, each checked against its own budget.

The budget (``measure_budget``), measured once per run, after the models are
loaded: CUDA's free memory (``torch.cuda.mem_get_info``, plus what torch's
allocator caches unused); for the host, ``MemAvailable`` from /proc/meminfo,
capped by a cgroup memory limit (containers), ``os.sysconf`` without procfs;
times ``SAFETY``.  ``STYLIZE_MEMORY_BUDGET`` (``8GiB``, ``512MiB``, bytes)
replaces the measurement for both, e.g. to leave room for other jobs.
"""
from __future__ import annotations

import math
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Sequence

from ..errors import MediaError
from ..media.images import ImageHeader, image_header
from .context import RunContext

if TYPE_CHECKING:
    import torch


class Stage(Protocol):
    """What the gate asks of a transform stage (``pipeline.stages.base.Stage`` is one): a
    protocol, not an import, so the machine room stays below the stages."""

    name: str

    def peak_bytes(self, channels: int, height: int, width: int, itemsize: int) -> int: ...

    def output_size(self, height: int, width: int) -> tuple[int, int]: ...


BUDGET_ENV = "STYLIZE_MEMORY_BUDGET"
#: the share of the free memory one image may take: the estimates are within
#: about 15% (benchmarks/stage_memory.py), and the queues hold other images
SAFETY = 0.8
_PILLOW_BYTES_PER_PIXEL = 4
#: long sides offered in the refusal's hint, largest first
_SUGGESTED_SIDES = (16384, 12288, 8192, 6144, 4096, 3072, 2048, 1536, 1024, 768, 512)
_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


@dataclass(frozen=True)
class Budget:
    """What one image may use: on the device (the chain) and on the host (decoding).
    On a CPU run both are the same pool and ``device_bytes == host_bytes``."""

    device: torch.device | None  # None: the host (a CPU run, or no stage computes)
    device_bytes: int
    host_bytes: int
    source: str = "free"  # "free": measured; else what set it (the environment variable)

    @property
    def shared(self) -> bool:
        return self.device is None or self.device.type != "cuda"


@dataclass(frozen=True)
class Estimate:
    """Peak bytes of one image: ``device_bytes`` for the chain and what is held beside
    it, set by ``stage``; ``host_bytes`` for decoding.  On the CPU, ``device_bytes``
    already counts the decoded array, and ``stage`` is "decode" when decoding is the peak."""

    device_bytes: int
    stage: str
    host_bytes: int


def chain_peak(stages: Sequence[Stage], channels: int, height: int, width: int,
               itemsize: int) -> tuple[int, str]:
    """The most bytes any of ``stages`` holds for one image entering at ``height`` x
    ``width`` (each stage sees the size the ones before it made), with the chain's
    input held beside every stage after the first; and the name of the stage."""
    held = channels * height * width * itemsize
    peak, name = 0, ""
    for i, stage in enumerate(stages):
        need = stage.peak_bytes(channels, height, width, itemsize) + (held if i else 0)
        if need > peak:
            peak, name = need, stage.name
        height, width = stage.output_size(height, width)
    return peak, name


def estimate(stages: Sequence[Stage], channels: int, height: int, width: int, itemsize: int,
             *, shared: bool) -> Estimate:
    """One image's peak (see the module docstring); ``shared``: host and device are one pool."""
    decoded = channels * height * width
    decoding = decoded + _PILLOW_BYTES_PER_PIXEL * height * width
    chain, stage = chain_peak(stages, channels, height, width, itemsize)
    if not shared:
        return Estimate(chain, stage or "decode", decoding)
    if decoding >= decoded + chain:
        return Estimate(decoding, "decode", decoding)
    return Estimate(decoded + chain, stage, decoding)


def measure_budget(device: torch.device | None) -> Budget:
    """What one image may use now on ``device`` (see the module docstring)."""
    override = os.environ.get(BUDGET_ENV, "").strip()
    if override:
        size = parse_size(override)
        return Budget(device, size, size, source=f"{BUDGET_ENV}={override}")
    host = int(host_available_bytes() * SAFETY)
    if device is None or device.type != "cuda":
        return Budget(device, host, host)
    return Budget(device, int(cuda_free_bytes(device) * SAFETY), host)


def parse_size(text: str) -> int:
    """``8GiB``, ``8G``, ``512MiB``, ``1.5TB``, ``123456`` -> bytes (units are binary)."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([kmgt]?)(?:i?b)?\s*", text, re.IGNORECASE)
    if not m:
        raise ValueError(f"{BUDGET_ENV}={text!r} is not a size; write e.g. 8GiB, 512MiB or bytes")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def cuda_free_bytes(device: torch.device) -> int:
    import torch

    free, _total = torch.cuda.mem_get_info(device)
    # Blocks torch's caching allocator holds but does not use are free to us too.
    return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)


def host_available_bytes() -> int:
    """Memory the host can give without swapping: MemAvailable, capped by a cgroup limit."""
    available = _meminfo_available()
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):  # no procfs and no sysconf: do not refuse
            available = 1 << 62
    room = _cgroup_room()
    return available if room is None else min(available, room)


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room() -> int | None:
    """Limit minus usage (less reclaimable page cache) of this container's cgroup, v2 or v1."""
    for limit_file, usage_file, stat_file, cache_key in (
            ("memory.max", "memory.current", "memory.stat", "inactive_file"),
            ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes", "memory/memory.stat",
             "total_inactive_file")):
        root = Path("/sys/fs/cgroup")
        try:
            limit_text = (root / limit_file).read_text().strip()
            if limit_text == "max" or int(limit_text) >= 1 << 60:
                return None  # no limit
            usage = int((root / usage_file).read_text())
            cache = 0
            for line in (root / stat_file).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == cache_key:
                    cache = int(value)
            return max(0, int(limit_text) - usage + cache)
        except (OSError, ValueError):
            continue
    return None


def _amount(n: int) -> str:
    if n >= 10 * 2**30:
        return f"{n / 2**30:.0f} GiB"
    if n >= 2**30:
        return f"{n / 2**30:.1f} GiB"
    return f"{max(1, round(n / 2**20))} MiB"


class MemoryGate:
    """Refuses, before decoding, a source whose frames would not fit in memory.

    One per run, shared by the decode threads: the budget is measured at the
    first check (the models are loaded by then) and kept; pass ``budget`` to fix
    it.  ``check_image`` is for image files (reads the header); ``check_size``
    for anything whose frame size is known, e.g. a probed video.
    """

    def __init__(self, transforms: Sequence[Stage], ctx: RunContext,
                 budget: Budget | None = None) -> None:
        self.transforms = list(transforms)
        self.ctx = ctx
        self.itemsize = ctx.itemsize
        self._budget = budget
        self._lock = threading.Lock()

    @property
    def budget(self) -> Budget:
        with self._lock:
            if self._budget is None:
                on_gpu = self.transforms and self.ctx.device_type != "cpu"
                self._budget = measure_budget(self.ctx.device if on_gpu else None)
            return self._budget

    def fits(self, width: int, height: int, channels: int = 3) -> bool:
        budget, need = self._need(width, height, channels)
        return need.device_bytes <= budget.device_bytes and (
            budget.shared or need.host_bytes <= budget.host_bytes)

    def shortfall(self, width: int, height: int, channels: int = 3) -> str | None:
        """Why a ``width`` x ``height`` frame would not fit, or None when it fits."""
        budget, need = self._need(width, height, channels)
        if need.device_bytes > budget.device_bytes:
            amount, stage, room = need.device_bytes, need.stage, budget.device_bytes
            where = str(budget.device or ("cpu" if self.transforms else "the host"))
        elif not budget.shared and need.host_bytes > budget.host_bytes:
            amount, stage, room, where = need.host_bytes, "decode", budget.host_bytes, "the host"
        else:
            return None
        have = f"about {_amount(room)} is free on {where}" if budget.source == "free" \
            else f"the budget is {_amount(room)} ({budget.source})"
        mpx = width * height / 1e6
        return (f"{width}x{height} ({mpx:.{0 if mpx >= 10 else 1}f} Mpx) needs about {_amount(amount)} "
                f"at {stage} but {have}; {self._hint(width, height, channels, stage)}")

    def check_size(self, path: str | Path, width: int, height: int, channels: int = 3) -> None:
        """Raise ``MediaError`` (stage decode) with the reason if such frames would not fit."""
        reason = self.shortfall(width, height, channels)
        if reason is not None:
            raise MediaError(path, reason, stage="decode")

    def check_image(self, path: str | Path) -> ImageHeader | None:
        """``check_size`` from the image's header, which it returns (None: unreadable; such an
        image passes, and decoding then fails with the usual reason, Pillow's own size limit
        included)."""
        try:
            header = image_header(path)
        except MediaError:
            return None
        # Channels: 3 assumed (alpha is unknown before decoding and changes little
        # beside the networks' activations).
        self.check_size(path, header.width, header.height)
        return header

    def _need(self, width: int, height: int, channels: int) -> tuple[Budget, Estimate]:
        budget = self.budget
        return budget, estimate(self.transforms, channels, height, width, self.itemsize,
                                shared=budget.shared)

    def _hint(self, width: int, height: int, channels: int, stage: str) -> str:
        more = "or use a machine with more memory"
        if stage == "decode":
            return f"downscale it with an image tool before the run, {more}"
        long = max(width, height)
        for side in _SUGGESTED_SIDES:
            h, w = (max(1, math.floor(d * side / long)) for d in (height, width))
            if side < long and self.fits(w, h, channels):
                return f"downscale it first (e.g. add 'resize: {{long_side: {side}}}' before {stage}) {more}"
        return f"downscale it first (a 'resize' stage before {stage}) {more}"
