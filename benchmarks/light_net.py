"""The light TransformerNet (``train style --width 16``) against Johnson's (width 32) on a CPU.

    python benchmarks/light_net.py [--size 512] [--threads 2] [--repeats 5] [--widths 32,16,12]

Times one image through each network (random weights: the arithmetic does not depend
on them), the median of ``--repeats`` after a warm-up, in the same process, and prints
each and the ratios to the first, with the parameter counts.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.models.transformer_net import TransformerNet  # noqa: E402


def seconds(net: torch.nn.Module, x: torch.Tensor, repeats: int) -> float:
    with torch.inference_mode():
        net(x)  # warm-up: oneDNN picks its kernels
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            net(x)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--widths", default="32,16,12", help="the first is the baseline")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.rand(1, 3, args.size, args.size) * 255
    results = {}
    widths = [int(w) for w in args.widths.split(",")]
    for width in widths:
        net = TransformerNet(width=width).eval()
        results[width] = seconds(net, x, args.repeats)
        params = sum(p.numel() for p in net.parameters())
        print(f"width {width}: {results[width] * 1000:7.1f} ms per {args.size}x{args.size} image "
              f"({params / 1e6:.2f} M parameters, {args.threads} threads)")
    for width in widths[1:]:
        print(f"width {width} is {results[widths[0]] / results[width]:.2f}x faster than width "
              f"{widths[0]}")


if __name__ == "__main__":
    main()
