"""Is batching worth it on this machine?  Images/s of TransformerNet at batch 1, 2, 4, 8.

    python benchmarks/batch_cpu.py [--height 136 --width 320 --seconds 6]

Random weights (speed does not depend on them).  On a CUDA machine, add
``--device cuda --precision bf16``.  ``batch_size: auto`` uses what this shows.
"""
from __future__ import annotations

import argparse
import time

import torch

from pipeline.context import DTYPES
from pipeline.models.transformer_net import TransformerNet


def rate(net, batch: int, h: int, w: int, device, dtype, seconds: float) -> float:
    x = torch.rand(batch, 3, h, w, device=device, dtype=dtype) * 255
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
    ap.add_argument("--precision", default="fp32", choices=list(DTYPES))
    ap.add_argument("--batches", default="1,2,4,8")
    args = ap.parse_args()
    device, dtype = torch.device(args.device), DTYPES[args.precision]
    net = TransformerNet().eval().to(device, dtype)
    print(f"TransformerNet {args.height}x{args.width} {args.precision} on {device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    base = None
    for b in (int(s) for s in args.batches.split(",")):
        r = rate(net, b, args.height, args.width, device, dtype, args.seconds)
        base = base or r
        print(f"batch {b:3d}: {r:7.1f} images/s  ({r / base:.2f}x batch 1)")


if __name__ == "__main__":
    main()
