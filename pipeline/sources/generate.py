"""``- generate: {weights: gan.safetensors, count: 1000, seed: 0}``: images made from noise.

Image ``i`` comes from the latent vector ``latent_vector(seed, i)`` alone
(``pipeline.ops.noise``), through a generator from noise (PyTorch-GAN's ``gan`` MLP or
``dcgan``, or one ``train gan`` wrote), so a resumed or re-run job makes exactly the
images it is missing, and a larger ``count`` later adds images without changing the
first ones.  Units are named ``000000.png``, ``000001.png``, ... (six digits at least)
under ``into``; the rest of the chain (resize, styles, encode) applies as to any image
source.  The weights' SHA-256 and the seed are part of the job's fingerprint: another
generator or seed over an output folder is refused like a changed stage.

Each image is generated alone, in float64 on the CPU, in the reader threads: a batch of
one keeps image i independent of which others share its batch, and float64 keeps its
pixels independent of the thread count (the load follower changes it mid-run), so they
are the same bytes on every run and every worker; a 64x64 DCGAN image costs tens of
milliseconds this way, far below what the style stages spend on it.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Iterator

import numpy as np

from ..errors import JobError, MediaError, WeightsError
from ..typed_yaml import ParamError
from .base import Source
from .registry import register_source

DIGITS = 6
# The most images one job plans: each still gets a ledger line, a byte in the run's to-do mask
# and a turn of the done-check (measured: a million take 53 s before the first image is made,
# 2 cores), so a count far past a night's work would spend hours and gigabytes before it.
# Larger sets are split into jobs with ``first:`` (which may run on several machines at once).
MAX_COUNT = 1_000_000


@dataclass(frozen=True)
class GenerateOptions:
    weights: Path  # a generator from noise (.safetensors or .pth)
    count: int  # images first .. first+count-1
    seed: int = 0
    first: int = 0  # the first image's number: a large set split into jobs makes the same images
    into: str = ""  # may also be given beside ``generate:``, as for any source
    image_shape: str = ""  # "CxHxW": only for an MLP generator of non-square images

    def __post_init__(self) -> None:
        if self.image_shape and not re.fullmatch(r"[13]x[1-9]\d*x[1-9]\d*", self.image_shape):
            raise ParamError("image_shape", f"image_shape must be CxHxW with C 1 or 3, e.g. "
                                            f"1x28x32; got {self.image_shape!r}")
        if self.count < 1:
            raise ParamError("count", f"count must be at least 1, got {self.count}")
        if self.count > MAX_COUNT:
            raise ParamError("count", f"count {self.count:,} is more than one job plans "
                                      f"({MAX_COUNT:,} images: each gets a ledger line and a turn "
                                      f"of the done-check before the run starts); split the set "
                                      f"into jobs with 'first:', e.g. count: {MAX_COUNT}, first: "
                                      f"{MAX_COUNT} for the second job - image i is the same in any job")
        if self.first < 0:
            raise ParamError("first", f"first must be 0 or more, got {self.first}")
        if self.seed < 0:
            raise ParamError("seed", f"seed must be 0 or more, got {self.seed}")

    @property
    def path(self) -> Path:
        return self.weights

    @property
    def shape(self) -> tuple[int, int, int] | None:
        return tuple(int(v) for v in self.image_shape.split("x")) if self.image_shape else None


@register_source
class Generated(Source):
    key = "generate"
    way = "image"
    extensions = frozenset({".png"})
    Options = GenerateOptions

    def __init__(self, spec) -> None:
        super().__init__(spec)
        self._net = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:  # a Ray worker loads its own copy of the network
        return {"spec": self.spec}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["spec"])

    @property
    def options(self) -> GenerateOptions:
        return self.spec.options

    def root(self) -> Path:
        """The weights file: units are named under it (``gan.safetensors/000042.png``), paths
        that exist nowhere, so no folder is taken for a source folder."""
        return self.options.weights

    def numbered(self) -> range:
        try:
            self.network()  # a missing or wrong file fails here, named, before any unit
        except WeightsError as exc:
            raise JobError(str(exc), location=self.spec.location, where="sources (generate)") from None
        return range(self.options.first, self.options.first + self.options.count)

    def unit_name(self, number: int) -> str:
        return f"{number:0{DIGITS}d}.png"

    def find(self, exclude: Path) -> Iterator[tuple[Path, PurePath]]:
        root = self.root()
        for i in self.numbered():
            name = self.unit_name(i)
            yield root / name, PurePath(name)

    def nothing_found(self) -> str:
        return "count is 0"  # not reachable: count >= 1 is checked when the job is read

    def describe(self) -> str:
        return f"seed {self.options.seed}, {self.network().arch.describe()}"

    def fingerprint(self) -> dict:
        from ..hashing import file_sha256

        made = {"weights_sha256": file_sha256(self.options.weights), "seed": self.options.seed}
        if self.options.image_shape:  # the same values in another shape are other pictures
            made["image_shape"] = self.options.image_shape
        return made

    def network(self):
        """The generator, loaded once (thread-safe), float64, eval mode."""
        with self._lock:
            if self._net is None:
                from ..models.checkpoints import load_generator

                self._net = load_generator(self.options.weights, self.options.shape).double()
            return self._net

    def size(self, path: Path) -> tuple[int, int]:
        _, height, width = self.network().arch.image_shape
        return width, height

    def read(self, path: Path) -> np.ndarray:
        import torch

        from ..ops.noise import latent_vector

        try:
            index = int(Path(path).stem)
        except ValueError:
            raise MediaError(path, "not one of this generator's images (expected NNNNNN.png)") from None
        net = self.network()
        z = latent_vector(self.options.seed, index, net.arch.latent_dim).double()[None]
        with torch.inference_mode():
            y = net(z)[0]  # [C, H, W] in [-1, 1]
        image = ((y + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
        if image.shape[0] == 1:  # grayscale, replicated to RGB as decode does
            image = image.expand(3, -1, -1)
        return np.ascontiguousarray(image.permute(1, 2, 0).numpy())
