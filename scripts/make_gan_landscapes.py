"""Draw procedural landscapes to train the shipped generator from noise on (weights/README.md).

Our own drawings (the demo's `landscape`, other seeds and sizes), so the data set is ours to
use and share; the demo's four inputs (seeds 0..3) are not among them.
    python scripts/make_gan_landscapes.py /tmp/landscapes 4000
"""
from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_demo_inputs import landscape  # noqa: E402

FIRST_SEED = 1000  # the demo's inputs use 0..3


def main(folder: Path, count: int, height: int = 72, width: int = 96) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(landscape(height, width, seed=FIRST_SEED + i)).save(folder / f"land{i:05d}.png")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 4000)
