"""A way: how the units of one kind are read, computed and written.  The engine schedules it.

A way names no queue and starts no thread.  The engine calls, for each unit:

    admit(units)         before any thread starts: probe headers, announce totals
    open(unit)           in a reader thread: the unit's reading state (a clip's resume point)
    pieces(stream)       in the same reader thread: the pictures for the device, in order
    run(batch)           in the device thread: the stages on a batch; what to write
    write(stream, items) in a writer lane: put ``run``'s results in place, report records
    failed(unit, ...)    the unit failed (the engine already recorded it): progress only

A way is made per run of the engine over its units: with a ``variants`` stage,
once per variant unless it ``fans_out`` (``middle``: the variant's flat chain).
Independent ways (images) share ``workers`` writer lanes, ``write(None, items)``
each.  An ordered way (video) gets one lane per unit, started right after
``open``, whose ``items`` are its unit's results in order.  ``items`` ends when
the run stops or the unit fails; a way then leaves its partial work behind (the
rerun redoes it).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Iterator

from ..job.plan import Unit
from ..stages.variants import chain_for
from .batcher import Batch, Piece

if TYPE_CHECKING:
    from .run_state import RunState


class Way:
    kind: ClassVar[str]  # a source's ``way`` (``pipeline.sources``)
    ordered: ClassVar[bool] = False  # a unit's pieces are batched, and written, in order
    # True: the way takes every variant's units at once and runs the ``variants`` stage
    # itself; False: the engine gives it one variant's units, and ``middle`` is that
    # variant's flat chain (``stages/variants.py::chain_for``)
    fans_out: ClassVar[bool] = False

    def __init__(self, engine: RunState, variant: str | None = None) -> None:
        self.engine = engine
        self.variant = variant
        self.middle = (engine.middle if variant is None or self.fans_out
                       else chain_for(engine.middle, variant))

    def queue_size(self, workers: int) -> int:
        """Pieces read ahead of the device, at most: the back-pressure on the readers."""
        return 4 * workers + 16

    def admit(self, units: Iterable[Unit]) -> Iterable[Unit]:
        return units

    def open(self, unit: Unit) -> Any:
        return unit

    def pieces(self, stream: Any) -> Iterator[Piece]:
        raise NotImplementedError

    def run(self, batch: Batch) -> list[Any]:
        raise NotImplementedError

    def write(self, stream: Any, items: Iterable[Any]) -> None:
        raise NotImplementedError

    def failed(self, unit: Unit, opened: bool) -> None:
        """Progress for a unit that failed; ``opened``: after ``open`` returned."""
