"""``validate --estimate``: a rough time for the job, from a few timed frames on its device.

The model stages' cost grows with the pixels they are given, so one real frame (the first
image, or a clip's first frame) is run through the job's transform stages, in a batch of the
size the run would use, with the threads the run would use (its thread budget, less the cores
other processes keep busy, measured during the warm-up, as the run's load follower does):
warmed up until two calls agree, then timed several times, and the median seconds per input
pixel scale to every unit's pixels (an image's from its header, a clip's from its frame size
and frame count).  The median, not the mean: a call that the warm-up or another process
stretched (one took 2.1 s against 0.14 s once warm) no longer sets the figure; and the threads
of a loaded machine: torch's two threads beside four busy processes took three times as long
as the one thread the run then uses.  Decoding, optical flow and encoding run
in threads beside the device and are left out: the figure is what the device needs, which on
any machine with a GPU is the part that decides the night.  Rough by design; the summary of a
real run gives the rates of every step.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

from ..stages.chain import run_stages
from ..stages.variants import chain_for
from .build import Prepared

if TYPE_CHECKING:
    import torch

WARMUP_CALLS = 5  # at most; stops early once two calls agree within WARM_AGREE
WARM_AGREE = 0.25
TIMED_CALLS = 7  # at most; stops early once TIME_BUDGET_S is spent (the median of those)
TIME_BUDGET_S = 2.0  # for the warm-up, and again for the timed calls (at least 3 of them)


@dataclass(frozen=True)
class Estimate:
    seconds: float  # the whole job's device time, its warm-up included
    per_megapixel: float  # seconds per million input pixels, as measured
    sample: Path  # the file the frame came from
    sample_size: tuple[int, int]  # its (width, height)
    pixels: int  # input pixels of the whole job
    warm_up: float = 0.0  # seconds the run's start costs beyond the rate (in ``seconds``)


def estimate(p: Prepared) -> Estimate | None:
    """None when the job has nothing to do or no unit can be read."""
    pixels: dict[str | None, int] = {}  # per variant (None: the job has none)
    sample = None
    for unit, stands_for in p.plan.units.sampled():  # a generator's images: two stand for all
        try:
            if unit.kind == "image":
                width, height = unit.open().size(unit.source)
                pixels[unit.variant] = pixels.get(unit.variant, 0) + width * height * stands_for
                if sample is None:
                    sample = (unit.source, unit.open().read(unit.source))
            else:
                info = unit.open().probe(unit.source)
                pixels[unit.variant] = (pixels.get(unit.variant, 0)
                                        + info.width * info.height * (info.frames or 0) * stands_for)
                if sample is None:
                    first = next(iter(unit.open().frames(info, after_pts=None, skip=0, threads=0)), None)
                    sample = (unit.source, first.rgb) if first is not None else None
        except Exception:  # noqa: BLE001 - a bad unit fails in the run, with its reason
            continue
    if sample is None or not sum(pixels.values()):
        return None
    path, frame = sample
    size, everything = (frame.shape[1], frame.shape[0]), sum(pixels.values())
    if not any(s.computes for s in p.stages):  # decode and encode only: nothing to time, no torch
        return Estimate(0.0, 0.0, path, size, everything)
    # each variant's chain timed on the frame (the stages before ``variants`` count in each:
    # an image shares them, so a job with variants is over-estimated a little)
    from ..machine import threads
    from .build import thread_args

    # The run starts at the fixed split and measures other processes' load after its follower's
    # first wait: the first chain's warm-up does the same, for as long (so a short job's slow
    # first second counts); the other chains run at the share it found.
    budget = threads.apply(**thread_args(p.job, p.stages))
    follower = threads.LoadFollower(budget) if budget.follows_load else None
    timed = {}
    for variant in pixels:
        timed[variant] = _time_frame(p, frame, variant, follower)
        follower = None
    per_pixel = {v: per_frame / (frame.shape[0] * frame.shape[1]) for v, (per_frame, _) in timed.items()}
    # the run pays its warm-up once too (kernels chosen, the pool started): its first call's extra
    warm_up = sum(extra for _, extra in timed.values())
    work = sum(per_pixel[v] * n for v, n in pixels.items())
    return Estimate(work + warm_up, work / everything * 1e6, path, size, everything, warm_up)


def _time_frame(p: Prepared, frame: np.ndarray, variant: str | None, follower) -> tuple[float, float]:
    """Seconds per frame (this frame's size) through the chain, as the run would do it, and
    what the first call took beyond that (the warm-up).  ``follower``: the load follower to
    measure with during the warm-up (None: torch's threads as they are)."""
    import torch

    from ..machine.batching import BatchSizer
    from ..machine.device import upload

    middle = list(p.stages[1:-1]) if variant is None else chain_for(p.stages[1:-1], variant)
    stages = [s for s in middle if s.kind == "transform"]
    caps = [s.max_batch for s in stages if s.max_batch is not None]
    batch = BatchSizer(p.ctx, cap=min(caps) if caps else None).size_for(frame.shape)
    window = follower.first if follower is not None else 0.0
    device = p.ctx.device
    keys = [f"estimate/{i}" for i in range(batch)]  # a stage that draws per image draws per name
    with torch.inference_mode():
        x = upload([frame] * batch, device).permute(0, 3, 1, 2).to(p.ctx.dtype)

        def call() -> float:
            start = time.perf_counter()
            run_stages(stages, x, keys)
            _sync(device)
            return time.perf_counter() - start

        began = time.perf_counter()
        warm = [call()]  # kernels chosen, caches filled, the thread pool started
        while len(warm) < 50 and sum(warm) < TIME_BUDGET_S:
            agreed = len(warm) >= 2 and abs(warm[-1] - warm[-2]) <= WARM_AGREE * min(warm[-2:])
            measured = time.perf_counter() - began >= window
            if (agreed or len(warm) >= WARMUP_CALLS) and measured:
                break
            warm.append(call())
        if follower is not None and (wanted := follower.poll()) is not None:
            torch.set_num_threads(wanted)  # the share the run's device loop would take now
            call()  # the pool at its new size, warmed
        timed = [call()]
        while len(timed) < 3 or (len(timed) < TIMED_CALLS and sum(timed) < TIME_BUDGET_S):
            timed.append(call())
    median = float(np.median(timed))
    return median / batch, max(0.0, sum(warm) - len(warm) * median)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)
