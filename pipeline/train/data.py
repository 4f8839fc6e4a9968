"""Training images: find the usable ones, then cut reproducible random crops.

``scan_images`` decodes every candidate once, up front, so a bad file is
reported before hours of training rather than crashing step 40,000.

``RandomCrops`` is stateless: the images, crop positions and flips of step
``k`` are a pure function of ``(seed, step, batch_size)``.  A resumed run
therefore needs to save only the step number to draw exactly the batches an
uninterrupted run would have drawn (no sampler or worker state to restore).

Sampling is epoch-based, not with replacement: step ``k`` takes positions
``k*B .. k*B+B-1`` of an endless sequence of per-epoch permutations, each
seeded by ``(seed, epoch)``, so every image is seen once per epoch.

Scale rule: an image whose short side exceeds ``max_scale`` x the crop
(default 2) is first resized down, antialiased, so that its short side is
exactly ``max_scale`` x the crop.  Without this a 4000 px photo would only
ever give 256 px texture patches with no objects or edges at the scale the
network will later see; pytorch/examples resizes the short side all the way
down to the crop (``Resize(S)`` + ``CenterCrop(S)``), which loses variety.
Images between 1x and 2x the crop are used as they are.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import MediaError, MediaNotFoundError
from ..media.images import IMAGE_EXTENSIONS, read_image
from ..ops.resize import resize

__all__ = ["scan_images", "RandomCrops", "step_generator", "to_rgb"]


def scan_images(root: str | Path, min_side: int = 0, *,
                exclude: str | Path | None = None) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Usable images under ``root`` (recursive, sorted) and the skipped ones.

    Every file with an image suffix is decoded in full; unreadable files and
    images whose short side is below ``min_side`` are returned as
    ``(path, reason)`` in the second list.  Files under ``exclude`` (a
    trainer's own output folder, which may lie inside ``root``) are ignored
    silently.  Raises ``MediaError`` naming ``root`` when it is missing or
    nothing usable is left.
    """
    root = Path(root)
    if not root.exists():
        raise MediaNotFoundError(root, "training folder not found", hint="check the path")
    if not root.is_dir():
        raise MediaError(root, "is a file, not a folder of training images",
                         hint="point at the folder that holds the images")
    skip = Path(exclude).resolve() if exclude is not None else None
    candidates = sorted((p for p in root.rglob("*")
                         if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
                         and not (skip and p.resolve().is_relative_to(skip))),
                        key=lambda p: p.relative_to(root).as_posix())
    good: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for path in candidates:
        try:
            h, w = read_image(path).shape[:2]
        except MediaError as exc:
            skipped.append((path, exc.reason))
            continue
        if min(h, w) < min_side:
            skipped.append((path, f"{w}x{h} is smaller than the {min_side}x{min_side} crop"))
            continue
        good.append(path)
    if not good:
        if not candidates:
            reason = (f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) found "
                      "in this folder or below")
        else:
            first = f"{skipped[0][0].name}: {skipped[0][1]}"
            reason = f"none of the {len(candidates)} image files is usable (e.g. {first})"
        raise MediaError(root, reason, stage="train data",
                         hint="add readable images at least as large as the crop, "
                              "or lower --image-size")
    return good, skipped


def to_rgb(a: np.ndarray) -> np.ndarray:
    """HxWx3/4 uint8 -> HxWx3; alpha is composited over white, as a viewer
    shows it (dropping it would expose whatever lies under transparent pixels)."""
    if a.shape[2] == 3:
        return a
    rgb, alpha = a[..., :3].astype(np.uint32), a[..., 3:].astype(np.uint32)
    return ((rgb * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)


def step_generator(seed: int, *key: int) -> torch.Generator:
    """A CPU generator seeded by a stable hash of ``(seed, *key)``.

    blake2b, not ``hash()``: the stream must not change across Python versions
    or processes, or resumed runs would draw different batches.
    """
    digest = hashlib.blake2b(repr((int(seed), *map(int, key))).encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))


class RandomCrops:
    """Random ``image_size`` square crops with horizontal flips; stateless.

    ``cache_bytes`` caps the decoded (already scaled-down) images kept in
    memory; small data sets then decode each file once per run.
    """

    def __init__(self, paths: Sequence[Path], image_size: int, seed: int = 0, *,
                 max_scale: float = 2.0, cache_bytes: int = 1 << 30) -> None:
        if not paths:
            raise ValueError("RandomCrops needs at least one image")
        if image_size <= 0:
            raise ValueError(f"image_size must be positive, got {image_size}")
        self.paths = list(paths)
        self.image_size = int(image_size)
        self.seed = int(seed)
        self.max_scale = float(max_scale)
        self.cache_bytes = int(cache_bytes)
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._cached = 0
        self._perms: OrderedDict[int, list[int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self.paths)

    def batch(self, step: int, batch_size: int) -> torch.Tensor:
        """The uint8 ``[batch_size, 3, S, S]`` crops of ``step``."""
        s, n = self.image_size, len(self.paths)
        g = step_generator(self.seed, step)
        out = torch.empty(batch_size, 3, s, s, dtype=torch.uint8)
        for i in range(batch_size):
            pos = step * batch_size + i
            image = self._image(self._perm(pos // n)[pos % n])
            h, w = image.shape[1:]
            top = int(torch.randint(0, h - s + 1, (), generator=g))
            left = int(torch.randint(0, w - s + 1, (), generator=g))
            crop = image[:, top:top + s, left:left + s]
            if bool(torch.rand((), generator=g) < 0.5):
                crop = crop.flip(-1)
            out[i] = crop
        return out

    def _perm(self, epoch: int) -> list[int]:
        if epoch not in self._perms:
            g = step_generator(self.seed, -1, epoch)  # -1: a stream apart from the steps'
            self._perms[epoch] = torch.randperm(len(self.paths), generator=g).tolist()
            while len(self._perms) > 2:  # pure, so an evicted one is simply recomputed
                self._perms.popitem(last=False)
        return self._perms[epoch]

    def _image(self, index: int) -> torch.Tensor:
        hit = self._cache.get(index)
        if hit is not None:
            self._cache.move_to_end(index)
            return hit
        path = self.paths[index]
        a = to_rgb(read_image(path))
        h, w = a.shape[:2]
        if min(h, w) < self.image_size:
            raise MediaError(path, f"{w}x{h} is smaller than the {self.image_size}px crop",
                             stage="train data", hint="the file changed since it was scanned")
        x = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)
        limit = self.max_scale * self.image_size
        if min(h, w) > limit:
            f = limit / min(h, w)
            size = (max(self.image_size, round(h * f)), max(self.image_size, round(w * f)))
            x = resize(x.float(), size, interpolation="bicubic").round_().to(torch.uint8)
        x = x.contiguous()
        if x.numel() <= self.cache_bytes:
            self._cache[index] = x
            self._cached += x.numel()
            while self._cached > self.cache_bytes:
                _, old = self._cache.popitem(last=False)
                self._cached -= old.numel()
        return x
