"""Magenta's network in bf16 against fp32 (and fp16 on CUDA), and compiled: the picture's difference and the time.

    python benchmarks/magenta_precision.py [--photo ../shared/media/photos/astronaut.png]
                                           [--style ../shared/media/styles/starry_night.jpg]
                                           [--device cpu] [--repeats 3] [--compile]

Runs ``arbitrary_style`` (the installed network) on one photo at its own size in each
precision the device offers, after a warm-up, and prints the milliseconds per picture
(median of ``--repeats``, in this process) and the output's difference from fp32 in 8-bit
levels (mean and max, after rounding).  ``--compile`` adds fp32 with ``compile: true``
(``torch.compile``), its first call (the compilation) timed apart.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.machine.context import RunContext  # noqa: E402
from pipeline.stages import get_stage  # noqa: E402

SHARED = REPO.parent / "shared" / "media"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photo", type=Path, default=SHARED / "photos" / "astronaut.png")
    ap.add_argument("--style", type=Path, default=SHARED / "styles" / "starry_night.jpg")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()
    device = torch.device(args.device)
    x = torch.from_numpy(np.array(Image.open(args.photo).convert("RGB"))).permute(2, 0, 1)[None]
    cls = get_stage("arbitrary_style")
    outs = {}
    runs = [(p, False) for p in ("fp32", "bf16") + (("fp16",) if device.type == "cuda" else ())]
    for precision, compiled in runs + ([("fp32", True)] if args.compile else []):
        ctx = RunContext(device=device, precision=precision, batch_size=None)
        stage = cls(cls.Params(style=args.style, compile=compiled), ctx)
        xin = x.to(device=device, dtype=ctx.dtype)
        t0 = time.perf_counter()
        stage(xin)  # warm-up (compiled: the compilation)
        first = time.perf_counter() - t0
        times = []
        for _ in range(args.repeats):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            y = stage(xin)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t0)
        name = precision + (" compiled" if compiled else "")
        outs[name] = y.float().round().clamp(0, 255).cpu()
        extra = f"; first call {first:.1f} s" if compiled else ""
        if name != "fp32":
            d = (outs[name] - outs["fp32"]).abs()
            extra += f"; against fp32: mean {float(d.mean()):.2f}, max {float(d.max()):.0f} levels"
        print(f"{name}: {statistics.median(times) * 1000:.0f} ms per {x.shape[3]}x{x.shape[2]} "
              f"picture on {device}{extra}")


if __name__ == "__main__":
    main()
