"""The device loop's scheduling state: which waiting pieces go to the device together, and when.

Pure (no threads, no torch, no files), so the policy is tested alone
(``tests/test_engine.py``).  A piece is one picture for the device: an image,
or one frame of a clip.

- A piece joins its group.  Independent pieces (images) group by shape, whatever
  their unit; an ordered piece (a frame) groups with its own unit's only, in order.
- A group goes to the device when it reaches the batch size for its shape, at a
  cut (the piece ends a segment), or when its unit's reading ends (``end``).
  A batch never crosses a cut, so a segment's frames are computed the same
  whether the run was interrupted before it or not.
- When the input stalls, or more than ``max_waiting`` independent pieces wait
  (many sizes, few of each), the oldest independent group goes partly filled.
  An ordered group never goes early: its batches must not depend on timing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

import numpy as np

from ..job.plan import Unit

MAX_WAITING = 64  # independent pieces held back waiting for same-size company, at most


@dataclass
class Piece:
    """One picture for the device, and what its way needs to write it (``data``)."""

    unit: Unit
    image: np.ndarray  # uint8 H x W x C
    ordered: bool = False  # a frame of a clip: batched with its own unit's only, in order
    cut: bool = False  # no batch continues past this piece (a segment's last frame)
    data: Any = None  # the way's own: a frame's timestamps, its temporal guide, ...

    @property
    def group(self) -> Hashable:
        return ("unit", self.unit.key) if self.ordered else ("shape", self.image.shape)


@dataclass
class Batch:
    """Pieces that go to the device together; an ordered batch holds one unit's only."""

    pieces: list[Piece]
    unit: Unit | None = None  # the unit of an ordered batch (None: independent pieces)
    last: bool = False  # the unit's reading ended with this batch (it may hold no piece)

    @property
    def units(self) -> list[Unit]:
        if self.unit is not None:
            return [self.unit]
        return list({p.unit.key: p.unit for p in self.pieces}.values())

    def split(self, size: int) -> list["Batch"]:
        """Consecutive parts of at most ``size`` pieces; only the final one is ``last``."""
        parts = [self.pieces[i:i + size] for i in range(0, len(self.pieces), max(1, size))]
        return [Batch(p, self.unit, self.last and i == len(parts) - 1) for i, p in enumerate(parts)]


@dataclass
class Batcher:
    size_for: Callable[[tuple[int, ...]], int]  # the batch size for a piece's shape, now
    max_waiting: int = MAX_WAITING
    _groups: dict[Hashable, list[Piece]] = field(default_factory=dict)  # oldest first

    @property
    def waiting(self) -> int:
        return sum(map(len, self._groups.values()))

    @property
    def partial(self) -> bool:
        """Independent pieces wait: the device loop should not wait long for company."""
        return any(key[0] == "shape" for key in self._groups)

    def add(self, piece: Piece) -> list[Batch]:
        """Take ``piece``; the batches that are ready now."""
        group = self._groups.setdefault(piece.group, [])
        group.append(piece)
        if piece.cut or len(group) >= self.size_for(piece.image.shape):
            return [self._take(piece.group)]
        if not piece.ordered and self._independent() > self.max_waiting:
            return self.stalled()
        return []

    def end(self, unit: Unit) -> Batch:
        """An ordered unit's reading ended: its waiting frames (perhaps none), marked last."""
        return Batch(self._groups.pop(("unit", unit.key), []), unit, last=True)

    def stalled(self) -> list[Batch]:
        """Nothing came in time: the oldest independent group goes as it is."""
        for key in self._groups:
            if key[0] == "shape":
                return [self._take(key)]
        return []

    def drain(self) -> list[Batch]:
        """No more pieces will come: every group goes (an ordered one left here had its unit fail)."""
        return [self._take(key) for key in list(self._groups)]

    def drop(self, unit: Unit) -> None:
        """A failed ordered unit: forget its waiting frames."""
        self._groups.pop(("unit", unit.key), None)

    def _take(self, key: Hashable) -> Batch:
        pieces = self._groups.pop(key)
        return Batch(pieces, pieces[0].unit if key[0] == "unit" else None)

    def _independent(self) -> int:
        return sum(len(g) for key, g in self._groups.items() if key[0] == "shape")
