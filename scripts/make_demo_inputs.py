"""Draw the demo's input pictures (procedural landscapes), so the demo needs no download.

Run once to (re)create jobs/demo_inputs/; the outputs are committed.
    python scripts/make_demo_inputs.py jobs/demo_inputs
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image


def landscape(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    top, bottom = rng.uniform(40, 120, 3), rng.uniform(150, 255, 3)
    img = top + (bottom - top) * (yy / h)[..., None]  # sky gradient
    sy, sx, r = rng.uniform(0.1, 0.35) * h, rng.uniform(0.15, 0.85) * w, rng.uniform(0.05, 0.1) * w
    sun = np.exp(-(((yy - sy) ** 2 + (xx - sx) ** 2) / (r * r)) ** 2)
    img = img * (1 - sun[..., None]) + np.array([255, 230, 150]) * sun[..., None]
    for layer in range(3):  # hills, far to near, darker and greener as they come closer
        base = h * (0.45 + 0.15 * layer)
        ridge = base + sum(rng.uniform(5, 25) * np.sin(xx[0] / w * rng.uniform(2, 9) + rng.uniform(0, 6))
                           for _ in range(3))
        colour = np.array([40, 90 + 40 * layer, 50]) * rng.uniform(0.6, 1.1) + rng.normal(0, 8, 3)
        mask = yy > ridge[None, :]
        img[mask] = colour + rng.normal(0, 6, (mask.sum(), 3))
    return np.clip(img, 0, 255).round().astype(np.uint8)


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, (h, w) in enumerate([(240, 320), (240, 320), (256, 256), (200, 360)]):
        sub = folder / ("valley" if i < 2 else "coast")
        sub.mkdir(exist_ok=True)
        Image.fromarray(landscape(h, w, seed=i)).save(sub / f"scene{i}.png")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "jobs/demo_inputs"))
