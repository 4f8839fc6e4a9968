"""How much memory does one image take through each stage?  Calibrates ``peak_bytes``.

    python benchmarks/stage_memory.py [--cases fast_style,cyclegan_resnet] [--sizes 512,768,1024]

Each (stage, size) runs in a fresh subprocess: build the stage (random
weights: memory does not depend on them), make a float32 RGB image, run a
small warm-up, reset the process's peak RSS (``/proc/self/clear_refs``, so
loading the weights does not hide the pass), run one image under
``torch.inference_mode`` on the CPU, and read the peak RSS (``ru_maxrss``)
against the RSS just before the call.  The
difference is the stage's peak above its input; per pixel it is the constant
``peak_bytes`` uses (``pipeline/stages/network.py``, ``arbitrary_style.py``,
``tv_denoise.py``, ``gatys.py``), printed beside the current estimate so drift shows.
"""
from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from pipeline.machine.context import RunContext
from pipeline.stages import get_stage

CTX = RunContext(device=torch.device("cpu"), precision="fp32", batch_size=1)
CASES = ("fast_style", "arbitrary_style", "magenta_int8", "magenta_styleaug", "cyclegan_resnet", "cyclegan_unet", "pytorch_gan_resnet",
         "pytorch_gan_unet", "pytorch_gan_pix2pix", "tv_denoise", "gatys", "resize")
GATYS_STEPS = 3


def build(case: str, folder: Path):
    """The stage for ``case``, as the registry builds it (gatys: a random VGG19)."""
    if case == "fast_style":
        from pipeline.models.transformer_net import TransformerNet
        torch.save(TransformerNet().state_dict(), folder / "s.pth")
        cls = get_stage("fast_style")
        return cls(cls.Params(weights=folder / "s.pth"), CTX)
    if case == "arbitrary_style":
        from PIL import Image

        from tests.conftest import adain_decoder_file
        Image.fromarray((torch.rand(300, 400, 3) * 255).byte().numpy()).save(folder / "p.png")
        cls = get_stage("arbitrary_style")
        return cls(cls.Params(weights=adain_decoder_file(folder / "d.safetensors"),
                              style=folder / "p.png"), CTX)
    if case.startswith("magenta"):  # Ghiasi et al.'s network: the TFLite widths, or styleaug's
        from PIL import Image

        from pipeline.models.magenta import GhiasiTransformer, MobileNetStylePredictor
        widths = (8, 16, 32) if case == "magenta_int8" else (32, 64, 128)
        torch.save(GhiasiTransformer(widths).state_dict(), folder / "t.pth")
        torch.save(MobileNetStylePredictor().state_dict(), folder / "p.pth")
        Image.fromarray((torch.rand(300, 400, 3) * 255).byte().numpy()).save(folder / "s.png")
        cls = get_stage("arbitrary_style")
        return cls(cls.Params(weights=folder / "t.pth", predictor=folder / "p.pth",
                              style=folder / "s.png"), CTX)
    if case.startswith("pytorch_gan"):  # PyTorch-GAN's generators, upstream's widths
        from pipeline.models.pytorch_gan import GeneratorResNet, GeneratorUNet, Pix2PixUNet
        net = {"pytorch_gan_resnet": lambda: GeneratorResNet(n_blocks=9),
               "pytorch_gan_unet": GeneratorUNet, "pytorch_gan_pix2pix": Pix2PixUNet}[case]()
        torch.save(net.state_dict(), folder / "g.pth")
        cls = get_stage("cyclegan")
        return cls(cls.Params(weights=folder / "g.pth"), CTX)
    if case.startswith("cyclegan"):
        from pipeline.models.cyclegan import ResnetGenerator, UnetGenerator
        net = ResnetGenerator(ngf=64, n_blocks=9) if case == "cyclegan_resnet" \
            else UnetGenerator(num_downs=8, ngf=64, norm="instance")
        torch.save(net.state_dict(), folder / "g.pth")
        cls = get_stage("cyclegan")
        return cls(cls.Params(weights=folder / "g.pth"), CTX)
    if case == "tv_denoise":
        cls = get_stage("tv_denoise")
        return cls(cls.Params(weight=0.1, max_iter=30), CTX)
    if case == "resize":
        cls = get_stage("resize")
        return cls(cls.Params(scale=0.5), CTX)
    if case == "gatys":
        from pipeline.models.vgg import VGG, PerceptualNet
        from pipeline.stages.gatys_optimize import CONTENT_LAYERS, STYLE_LAYERS
        cls = get_stage("gatys")
        stage = object.__new__(cls)  # skips __init__: no VGG weights needed
        stage.params = cls.Params(style=folder / "unused.png", steps=GATYS_STEPS)
        stage.ctx = CTX
        stage.style = torch.rand(1, 3, 300, 400) * 255
        stage.net = PerceptualNet(VGG(19), "caffe", CONTENT_LAYERS + STYLE_LAYERS)
        return stage
    raise SystemExit(f"unknown case {case!r}; known: {', '.join(CASES)}")


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def reset_peak_rss() -> None:
    try:  # Linux 4.0+: "5" resets the high-water mark that ru_maxrss reports
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # then a pass smaller than the load's peak shows as a lower bound


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def measure(case: str, size: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        stage = build(case, Path(tmp))
    with torch.inference_mode():
        stage(torch.rand(1, 3, 128, 128) * 255)  # warm-up: lazy init, kernels chosen
        x = torch.rand(1, 3, size, size).mul_(255)
        gc.collect()
        reset_peak_rss()
        peak_before, before = peak_rss_bytes(), rss_bytes()
        y = stage(x)
        peak_after = peak_rss_bytes()
    del y
    pixels = size * size
    measured = peak_after - before
    estimate = stage.peak_bytes(3, size, size, 4) - x.nelement() * 4  # also above the input
    return {"case": case, "size": size, "measured_mib": measured / 2**20,
            "bytes_per_pixel": measured / pixels, "estimate_mib": estimate / 2**20,
            "lower_bound": peak_after <= peak_before, "threads": torch.get_num_threads()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--sizes", default="512,768,1024", help="square sides, comma-separated")
    ap.add_argument("--one", nargs=2, metavar=("CASE", "SIZE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]))))
        return
    print(f"{'stage':<16} {'size':>9} {'peak above input':>17} {'bytes/px':>9} {'estimate':>11}")
    for case in args.cases.split(","):
        for size in map(int, args.sizes.split(",")):
            out = subprocess.run([sys.executable, __file__, "--one", case, str(size)],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            flag = " (lower bound)" if r["lower_bound"] else ""
            print(f"{case:<16} {size:>4}x{size:<4} {r['measured_mib']:>13.0f} MiB "
                  f"{r['bytes_per_pixel']:>9.0f} {r['estimate_mib']:>7.0f} MiB{flag}", flush=True)


if __name__ == "__main__":
    main()
