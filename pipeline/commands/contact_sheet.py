"""A contact sheet: one row per image, input | output, to look at a run at a glance."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ..media.atomic import atomic_write
from ..media.images import read_image, write_image


def make_contact_sheet(pairs: list[tuple[Path | Callable[[], np.ndarray], Path]], dest: Path,
                       height: int) -> None:
    """Rows of (input, output) scaled to ``height``; rows padded to the widest.  An input is
    a file, or a function that reads it (a unit its source makes, such as ``generate:``'s)."""
    rows = [np.concatenate([_fit(src() if callable(src) else read_image(src), height),
                            np.full((height, 4, 3), 255, np.uint8),
                            _fit(read_image(out), height)], axis=1) for src, out in pairs]
    width = max(r.shape[1] for r in rows)
    gap = np.full((4, width, 3), 255, np.uint8)
    sheet = []
    for row in rows:
        sheet += [np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0)), constant_values=255), gap]
    atomic_write(dest, lambda tmp: write_image(np.concatenate(sheet[:-1]), tmp, "png"))


def _fit(image: np.ndarray, height: int) -> np.ndarray:
    if image.shape[2] == 4:  # flatten alpha over white, as the jpg writer does
        a = image[..., 3:].astype(np.float32) / 255
        image = (image[..., :3] * a + 255 * (1 - a)).round().astype(np.uint8)
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
