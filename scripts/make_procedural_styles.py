"""Draw procedural "paintings" for training the AdaIN decoder: ours, so free to use.

An arbitrary-style decoder learns to paint whatever feature statistics it is
given; the more kinds of paintings it sees, the better it paints ones it never
saw.  Only three public-domain paintings are at hand offline, so these add
variety of palette, stroke and texture: directed brush strokes (after
impasto), stained-glass mosaics, marbled paper, pointillist dots.

    python scripts/make_procedural_styles.py /tmp/styles --count 24 --size 512
"""
from __future__ import annotations

import colorsys
from pathlib import Path

import cv2
import numpy as np
import typer


def _palette(rng: np.random.Generator, n: int) -> np.ndarray:
    """n RGB colours around a random hue, some complementary, varied in value."""
    base = rng.uniform(0, 1)
    hues = (base + rng.choice([0, 0, 0.08, -0.08, 0.5], n) + rng.normal(0, 0.03, n)) % 1
    return np.array([colorsys.hsv_to_rgb(h, rng.uniform(0.3, 1), rng.uniform(0.2, 1))
                     for h in hues]) * 255


def _flow(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth angle field (radians) for stroke directions: a few swirls."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    angle = np.full((size, size), rng.uniform(0, np.pi), np.float32)
    for _ in range(int(rng.integers(1, 4))):
        cy, cx = rng.uniform(0, 1, 2)
        angle += rng.choice([-1, 1]) * np.arctan2(yy - cy, xx - cx) * rng.uniform(0.3, 1)
    return angle


def strokes(rng, size: int) -> np.ndarray:
    pal = _palette(rng, int(rng.integers(4, 7)))
    img = np.full((size, size, 3), pal[0], np.float32)
    angle = _flow(rng, size)
    length, width = rng.uniform(8, 30), int(rng.integers(2, 8))
    for _ in range(int(size * size / (length * width) * 1.5)):
        y, x = rng.integers(0, size, 2)
        a = angle[y, x] + rng.normal(0, 0.15)
        dx, dy = np.cos(a) * length / 2, np.sin(a) * length / 2
        colour = pal[rng.integers(0, len(pal))] * rng.uniform(0.85, 1.15)
        cv2.line(img, (int(x - dx), int(y - dy)), (int(x + dx), int(y + dy)),
                 colour.tolist(), width, cv2.LINE_AA)
    return img


def mosaic(rng, size: int) -> np.ndarray:
    pal = _palette(rng, int(rng.integers(4, 8)))
    n = int(rng.integers(40, 250))
    points = rng.uniform(0, size, (n, 2))
    yy, xx = np.mgrid[0:size, 0:size]
    d = (yy[..., None] - points[:, 0]) ** 2 + (xx[..., None] - points[:, 1]) ** 2
    order = np.sort(d, axis=-1)
    cell = d.argmin(-1)
    img = pal[rng.integers(0, len(pal), n)][cell].astype(np.float32)
    img *= rng.uniform(0.8, 1.2, (n, 1))[cell]
    edge = np.sqrt(order[..., 1]) - np.sqrt(order[..., 0]) < rng.uniform(1.5, 4)
    img[edge] = pal[0] * 0.2
    return img


def marble(rng, size: int) -> np.ndarray:
    pal = _palette(rng, int(rng.integers(3, 6)))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    turb = sum(cv2.resize(rng.uniform(-1, 1, (k, k)).astype(np.float32), (size, size),
                          interpolation=cv2.INTER_CUBIC) / k for k in (2, 4, 8, 16))
    t = np.sin((xx * rng.uniform(3, 12) + yy * rng.uniform(-4, 4) + turb * rng.uniform(2, 6)) * np.pi)
    t = (t + 1) / 2 * (len(pal) - 1)
    lo = np.floor(t).astype(int)
    hi = np.minimum(lo + 1, len(pal) - 1)
    f = (t - lo)[..., None]
    return pal[lo] * (1 - f) + pal[hi] * f


def dots(rng, size: int) -> np.ndarray:
    pal = _palette(rng, int(rng.integers(4, 7)))
    img = np.full((size, size, 3), pal[0] * 1.1, np.float32)
    field = cv2.resize(rng.uniform(0, len(pal) - 1, (4, 4)).astype(np.float32), (size, size),
                       interpolation=cv2.INTER_CUBIC)
    r = int(rng.integers(2, 6))
    for _ in range(int(size * size / (r * r) * 0.9)):
        y, x = rng.integers(0, size, 2)
        k = int(np.clip(field[y, x] + rng.normal(0, 0.8), 0, len(pal) - 1))
        cv2.circle(img, (int(x), int(y)), r, pal[k].tolist(), -1, cv2.LINE_AA)
    return img


KINDS = (strokes, mosaic, marble, dots)


def main(folder: Path = typer.Argument(..., help="Where to write the PNGs."),
         count: int = typer.Option(24, help="How many (the kinds in turn)."),
         size: int = typer.Option(512, help="Side in pixels."),
         seed: int = typer.Option(0, help="Picture i is drawn from seed + i.")) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        rng = np.random.default_rng(seed + i)
        draw = KINDS[i % len(KINDS)]
        img = np.clip(draw(rng, size), 0, 255).round().astype(np.uint8)
        cv2.imwrite(str(folder / f"{draw.__name__}_{seed + i:03d}.png"), img[..., ::-1])


if __name__ == "__main__":
    typer.run(main)
