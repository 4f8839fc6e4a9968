"""The Ray driver's scheduling state, apart from Ray and from the work (as Ray Data keeps an
operator's state apart from its tasks): what is queued, what runs where, who died how often.

Pure bookkeeping, so it is tested alone (``tests/test_ray_scheduling.py``): the driver asks
``assign`` which units go to which free worker, and reports each call's end with ``ended``,
which says which units to fail; everything else it re-queues.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from itertools import islice
from typing import Hashable, Iterable, Iterator, Sequence

from ..job.plan import Unit

# Images per call: each call fills and drains the engine's pipeline once (decode, device,
# encode), so fewer, bigger calls cost less; four calls per worker still balance the load,
# and a worker that dies loses only the images it had not reported yet.
MIN_IMAGES_PER_CALL, MAX_IMAGES_PER_CALL, CALLS_PER_WORKER_OF_IMAGES = 16, 256, 4
CALLS_PER_WORKER = 2  # one running, one queued behind it: no idle gap between calls
DEATHS_BEFORE_FAILING = 2
ALONE = ("video", "shard")  # the units' kinds that go to a worker one per call


@dataclass
class Call:
    """Units handed to one worker in one call, and what came back before it ended."""

    worker: Hashable
    units: list[Unit]
    finished: set[str] = field(default_factory=set)  # keys with a Done or Failed record
    started: bool = False  # the worker took the units in hand (else it was gone already)


class Dispatch:
    def __init__(self, units: Iterable[Unit], workers: int = 1, images_per_call: int | None = None,
                 calls_per_worker: int = CALLS_PER_WORKER,
                 deaths_before_failing: int = DEATHS_BEFORE_FAILING) -> None:
        """``units``: a list, or the plan's ``Units`` (iterated three times: the clips and
        shards, a count, then the images as calls need them: never all held at once)."""
        # a clip or a tar shard is a call of its own (a shard: many images, committed whole);
        # the long ones first
        self._ready: deque[list[Unit]] = deque([u] for u in units if u.kind in ALONE)
        images = sum(1 for u in units if u.kind not in ALONE)
        if images_per_call is None:
            images_per_call = min(MAX_IMAGES_PER_CALL, max(
                MIN_IMAGES_PER_CALL, -(-images // (CALLS_PER_WORKER_OF_IMAGES * workers))))
        self._chunks = _chunked((u for u in units if u.kind not in ALONE), images_per_call)
        self.calls_per_worker = calls_per_worker
        self.deaths_before_failing = deaths_before_failing
        self.running: dict[Hashable, int] = {}  # calls in flight per worker
        self.deaths: dict[str, int] = {}

    @property
    def waiting(self) -> bool:
        """Some units are still to hand out."""
        if not self._ready:
            chunk = next(self._chunks, None)
            if chunk is not None:
                self._ready.append(chunk)
        return bool(self._ready)

    @property
    def todo(self) -> list[list[Unit]]:
        """Every call still to hand out, in order (all made now: for tests and messages)."""
        self._ready.extend(self._chunks)
        return list(self._ready)

    def assign(self, workers: Sequence[Hashable]) -> list[Call]:
        """Fill the given workers (those up) to ``calls_per_worker``, least busy first."""
        calls = []
        for worker in sorted(workers, key=lambda w: self.running.get(w, 0)):
            while self.running.get(worker, 0) < self.calls_per_worker and self.waiting:
                calls.append(Call(worker, self._ready.popleft()))
                self.running[worker] = self.running.get(worker, 0) + 1
        return calls

    def ended(self, call: Call, worker_died: bool) -> list[tuple[Unit, int]]:
        """The call is over.  If its worker died, its units without a record go back in the
        queue, each alone (so a unit that kills workers is found), unless this was their
        ``deaths_before_failing``-th death: those are returned, with their count, to fail."""
        self.running[call.worker] -= 1
        if not worker_died:
            return []
        failed = []
        for unit in (u for u in call.units if u.key not in call.finished):
            # Handed to a worker that was already gone, a unit is not to blame.
            self.deaths[unit.key] = self.deaths.get(unit.key, 0) + call.started
            if self.deaths[unit.key] >= self.deaths_before_failing:
                failed.append((unit, self.deaths[unit.key]))
            else:
                self._ready.appendleft([unit])
        return failed

    @property
    def busy(self) -> bool:
        return any(self.running.values())


def _chunked(units: Iterable[Unit], size: int) -> Iterator[list[Unit]]:
    it = iter(units)
    while chunk := list(islice(it, size)):
        yield chunk

