"""Draw a procedural "painting" for the gatys example job, so it needs no download.

Swirling brush strokes: line-integral convolution of noise along the field of
a few vortices, coloured with a night-sky palette.  Run once; the output is
committed.
    python scripts/make_demo_style.py jobs/demo_styles/swirls.png
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image


def swirls(size: int = 256, seed: int = 0, steps: int = 24) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    vx, vy = np.full_like(xx, 0.6), np.zeros_like(yy)  # a steady wind plus vortices
    for _ in range(5):
        cy, cx = rng.uniform(0, size, 2)
        r = rng.uniform(0.12, 0.3) * size
        dy, dx = yy - cy, xx - cx
        fall = np.exp(-(dx * dx + dy * dy) / (2 * r * r)) * rng.choice([-1.5, 1.5])
        vx, vy = vx - dy / r * fall, vy + dx / r * fall
    norm = np.sqrt(vx * vx + vy * vy) + 1e-6
    vx, vy = (vx / norm).astype(np.float32), (vy / norm).astype(np.float32)
    # Smear coarse noise along the streamlines, both ways: stroke texture.
    noise = cv2.resize(rng.random((size // 2, size // 2)).astype(np.float32), (size, size),
                       interpolation=cv2.INTER_NEAREST)
    acc, count = noise.copy(), 1
    for sign in (1.0, -1.0):
        px, py = xx.copy(), yy.copy()
        for _ in range(steps):
            px, py = px + sign * cv2.remap(vx, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT), \
                py + sign * cv2.remap(vy, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            acc += cv2.remap(noise, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            count += 1
    strokes = acc / count
    strokes = (strokes - strokes.min()) / (np.ptp(strokes) + 1e-6)
    # Palette: deep blue to cobalt to ochre to pale yellow, by stroke value and a slow field.
    palette = np.array([[20, 30, 80], [40, 80, 160], [90, 140, 200], [220, 190, 90], [250, 240, 170]],
                       np.float32)
    slow = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), size / 8)
    slow = (slow - slow.min()) / (np.ptp(slow) + 1e-6)
    t = np.clip(0.65 * strokes + 0.35 * slow, 0, 1) * (len(palette) - 1)
    lo = np.floor(t).astype(int).clip(0, len(palette) - 2)
    frac = (t - lo)[..., None]
    image = palette[lo] * (1 - frac) + palette[lo + 1] * frac
    return np.clip(image, 0, 255).round().astype(np.uint8)


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "jobs/demo_styles/swirls.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(swirls()).save(out)
    print(f"wrote {out}")
