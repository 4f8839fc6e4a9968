"""The light TransformerNet (``train style --width 16``) against Johnson's (width 32) on a CPU.

    python benchmarks/light_net.py [--size 512] [--threads 2] [--repeats 5] [--widths 32,16,12]
    python benchmarks/light_net.py --weights weights/starry_night.safetensors weights/starry_night_light.safetensors

Times one image through each network (random weights of each width: the arithmetic does
not depend on them; or the given weights files, loaded as the fast_style stage loads
them), the median of ``--repeats`` after a warm-up, in the same process, and prints each
and the ratios to the first, with the parameter counts.
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
    ap.add_argument("--weights", type=Path, nargs="*", help="time these files instead; the first "
                                                             "is the baseline")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.rand(1, 3, args.size, args.size) * 255
    if args.weights:
        from pipeline.models.checkpoints import load_fast_style
        nets = {p.name: load_fast_style(p) for p in args.weights}
    else:
        nets = {f"width {w}": TransformerNet(width=int(w)).eval() for w in args.widths.split(",")}
    results = {}
    for name, net in nets.items():
        results[name] = seconds(net, x, args.repeats)
        params = sum(p.numel() for p in net.parameters())
        print(f"{name}: {results[name] * 1000:7.1f} ms per {args.size}x{args.size} image "
              f"({params / 1e6:.2f} M parameters, {args.threads} threads)")
    first, *rest = nets
    for name in rest:
        print(f"{name} is {results[first] / results[name]:.2f}x faster than {first}")


if __name__ == "__main__":
    main()
