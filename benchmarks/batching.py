"""Is batching worth it here, and which memory layout?  Images/s of TransformerNet.

    python benchmarks/batching.py [--height 136 --width 320 --seconds 6]
    python benchmarks/batching.py --device cuda --precision bf16 --height 720 --width 1280 \
        --batches 1,4,8,16 --layouts contiguous,channels_last

Random weights (speed does not depend on them).  Each layout is measured in the
same run, so the printed ratios compare like with like.  ``batch_size: auto``
and the engine's memory layout follow what this shows.
"""
from __future__ import annotations

import argparse
import time

import torch

from pipeline.machine.context import dtypes
from pipeline.models.transformer_net import TransformerNet


def rate(net, batch: int, h: int, w: int, device, dtype, seconds: float, layout: str) -> float:
    x = torch.rand(batch, 3, h, w, device=device, dtype=dtype) * 255
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        net(x)  # warm-up
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            net(x)
            n += batch
        if device.type == "cuda":
            torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--height", type=int, default=136)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=list(dtypes()))
    ap.add_argument("--batches", default="1,2,4,8")
    ap.add_argument("--layouts", default="contiguous", help="contiguous,channels_last")
    args = ap.parse_args()
    device, dtype = torch.device(args.device), dtypes()[args.precision]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"TransformerNet {args.height}x{args.width} {args.precision} on {name}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    base = None
    for layout in args.layouts.split(","):
        net = TransformerNet().eval().to(device, dtype)
        if layout == "channels_last":
            net = net.to(memory_format=torch.channels_last)
        for b in (int(s) for s in args.batches.split(",")):
            r = rate(net, b, args.height, args.width, device, dtype, args.seconds, layout)
            base = base or r
            print(f"{layout:13s} batch {b:3d}: {r:7.1f} images/s  ({r / base:.2f}x first row)")


if __name__ == "__main__":
    main()
