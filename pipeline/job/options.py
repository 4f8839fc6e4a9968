"""The job file's option mappings that are not a stage's or a source's: ``contact_sheet:``,
``manifest:`` and ``pick:`` (parsed by ``config.py`` like a stage's ``Params``)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..typed_yaml import ParamError


@dataclass(frozen=True)
class ContactSheetOptions:
    path: Path  # where to write it (png); relative paths resolve against the job's folder
    images: int = 6  # rows, the first outputs in plan order
    height: int = 160  # of each row, in pixels

    def __post_init__(self) -> None:
        if self.images < 1:
            raise ParamError("images", f"images must be at least 1, got {self.images}")
        if not 16 <= self.height <= 2048:
            raise ParamError("height", f"height must be 16..2048, got {self.height}")


@dataclass(frozen=True)
class ManifestOptions:
    """The job's ``manifest:`` key."""

    csv: bool = False  # also output/manifest.csv: the same rows, a header line first


@dataclass(frozen=True)
class PickOptions:
    """The job's ``pick:``: each image through ``count`` of the variants, chosen per image
    from ``seed`` and the image's key alone (see plan.py), so every run picks the same."""

    count: int
    seed: int = 0

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ParamError("count", f"count must be at least 1, got {self.count}")
