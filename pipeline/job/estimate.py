"""``validate --estimate``: a rough time for the job, from a few timed frames on its device.

The model stages' cost grows with the pixels they are given, so one real frame (the first
image, or a clip's first frame) is run through the job's transform stages a few times after a
warm-up, and the seconds per input pixel scale to every unit's pixels (an image's from its
header, a clip's from its frame size and frame count).  Decoding, optical flow and encoding run
in threads beside the device and are left out: the figure is what the device needs, which on
any machine with a GPU is the part that decides the night.  Rough by design; the summary of a
real run gives the rates of every step.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..machine.device import upload
from ..stages.chain import run_stages
from ..stages.variants import chain_for
from .build import Prepared

REPEATS = 3


@dataclass(frozen=True)
class Estimate:
    seconds: float  # the whole job's device time
    per_megapixel: float  # seconds per million input pixels, as measured
    sample: Path  # the file the frame came from
    sample_size: tuple[int, int]  # its (width, height)
    pixels: int  # input pixels of the whole job


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
    # each variant's chain timed on the frame (the stages before ``variants`` count in each:
    # an image shares them, so a job with variants is over-estimated a little)
    per_pixel = {variant: _time_frame(p, frame, variant) / (frame.shape[0] * frame.shape[1])
                 for variant in pixels}
    total = sum(per_pixel[v] * n for v, n in pixels.items())
    everything = sum(pixels.values())
    return Estimate(total, total / everything * 1e6, path, (frame.shape[1], frame.shape[0]),
                    everything)


def _time_frame(p: Prepared, frame: np.ndarray, variant: str | None = None) -> float:
    middle = list(p.stages[1:-1]) if variant is None else chain_for(p.stages[1:-1], variant)
    stages = [s for s in middle if s.kind == "transform"]
    device = p.ctx.device
    with torch.inference_mode():
        x = upload([frame], device).permute(0, 3, 1, 2).to(p.ctx.dtype)
        keys = ["estimate"]  # a stage that draws per image draws for this name
        run_stages(stages, x, keys)  # warm-up: kernels chosen, caches filled
        _sync(device)
        start = time.perf_counter()
        for _ in range(REPEATS):
            run_stages(stages, x, keys)
        _sync(device)
    return (time.perf_counter() - start) / REPEATS


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
