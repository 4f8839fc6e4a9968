"""Draw smooth synthetic pictures for style training: clean skies, backdrops, suns.

Why: a style network trained only on photos and film frames never sees a
perfectly smooth area, and learns to amplify small differences into strokes.
A clean 8-bit gradient (a rendered sky, a CGI film, a studio backdrop) has
variation along one direction only, so what it amplifies becomes stripes
(the first Starry Night model painted horizontal stripes across such skies
and dark rings round bright suns).  Mixed into the content folder, these
pictures let the content loss punish exactly that.

    python scripts/make_smooth_content.py /tmp/smooth --count 40 --size 384

Seeds start at 1000, so the demo's own pictures (seeds 0..3, used to judge
the result) are never among them.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import typer
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_demo_inputs import landscape  # noqa: E402


def _smooth_field(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Low-frequency noise in 0..1: a small random grid, upsampled bicubically."""
    small = Image.fromarray((rng.random((cells, cells)) * 255).astype(np.uint8))
    return np.asarray(small.resize((w, h), Image.BICUBIC), np.float32) / 255


def backdrop(h: int, w: int, seed: int) -> np.ndarray:
    """A studio backdrop or clear sky: a gradient in a random direction, soft
    clouds, and sometimes a bright disc (a sun, a lamp) with a glow."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi) if rng.random() < 0.4 else np.pi / 2 + rng.normal(0, 0.1)
    t = (np.cos(angle) * xx + np.sin(angle) * yy) / max(h, w)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    a, b = rng.uniform(10, 200, 3), rng.uniform(60, 255, 3)
    img = a + (b - a) * t[..., None]
    clouds = _smooth_field(rng, h, w, int(rng.integers(3, 7)))
    img += (rng.uniform(0, 60) * (clouds - 0.5))[..., None]
    for _ in range(int(rng.integers(0, 3))):
        cy, cx, r = rng.uniform(0.1, 0.9) * h, rng.uniform(0.1, 0.9) * w, rng.uniform(0.03, 0.1) * w
        d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) / r
        disc = np.clip(1.5 - d, 0, 1) + 0.35 * np.exp(-(d / 2.5) ** 2)
        img = img * (1 - np.clip(disc, 0, 1)[..., None]) + rng.uniform(200, 255, 3) * np.clip(disc, 0, 1)[..., None]
    grain = rng.choice([0.0, 0.0, 0.7, 1.5])  # most clean, as a render; some with a little grain
    img += rng.normal(0, grain, img.shape) if grain else 0
    return np.clip(img, 0, 255).round().astype(np.uint8)


def main(folder: Path = typer.Argument(..., help="Where to write the PNGs."),
         count: int = typer.Option(40, help="How many pictures (half landscapes, half backdrops)."),
         size: int = typer.Option(384, help="Short side in pixels.")) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        seed = 1000 + i
        rng = np.random.default_rng(seed)
        h, w = size, int(size * rng.uniform(1.0, 1.6))
        draw = landscape if i % 2 == 0 else backdrop
        Image.fromarray(draw(h, w, seed)).save(folder / f"{draw.__name__}_{seed}.png")


if __name__ == "__main__":
    typer.run(main)
