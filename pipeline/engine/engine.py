"""The engine: the threads, queues, back-pressure, batching and failure handling of a run.

    reader threads                 device loop (this thread)            writer lanes
    way.open, way.pieces  --(bounded)-->  Batcher -> way.run  --(bounded)-->  way.write
    (decode, flow)                 (stages; OOM: smaller batches)       (encode, commit, report)

What is processed, and how, is the unit's way (``way.py``; images and video);
when and with what is the engine's: a blocking put on a full queue is the
back-pressure, the ``Batcher`` decides which pieces go to the device together,
an out-of-memory error shrinks the batch for that shape and retries, a batch of
independent pieces that fails is retried piece by piece so that one bad image
fails alone, and a failed unit's pieces and results are dropped wherever they
are.  Independent units share ``workers`` writer lanes; an ordered unit (a clip)
has its own, so its segments are written in order.  The engine writes no
ledger line: a way reports records through ``commits``, which the ledger, or a
Ray driver, applies.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

from ..errors import storage_error
from ..job.plan import Unit
from ..machine.batching import BatchSizer, is_out_of_memory
from ..machine.context import RunContext
from ..machine.progress import Progress
from ..machine.threads import follower as load_follower
from ..record.commits import Commits
from ..record.results import Summary
from ..stages.base import Stage
from ..stages.chain import StageFailed
from .batcher import Batch, Batcher
from .files import FileWay
from .images import ImageWay
from .run_state import RunState
from .shards import ShardWay
from .video import VideoWay
from .way import Way

POLL_S = 0.05  # how long a blocked thread waits before checking whether the run is stopping
IDLE_S = POLL_S  # how long the device loop waits for company before running a partial batch
_log = logging.getLogger("stylize.threads")

# A source's ``way`` -> how its units are processed; the engine runs them in this order
# (images first: quick to finish and to show; clips then have the machine).
WAYS: dict[str, type[Way]] = {"image": ImageWay, "video": VideoWay, "shard": ShardWay,
                              "file": FileWay}

_END = object()  # a queue's end: a reader is done (device queue), no more results (a lane)


@dataclass(frozen=True)
class _UnitEnd:
    """In the device queue, after an ordered unit's last piece: its reading ended normally."""

    unit: Unit


@dataclass
class _Lane:
    results: queue.Queue
    thread: threading.Thread


class Engine(RunState):
    """Runs units through a chain of stages: decode, transforms, encode.  The state the ways
    share is ``RunState``'s; the threads, queues and batching are this class's."""

    def __init__(self, stages: Sequence[Stage], ctx: RunContext, commits: Commits, *,
                 workers: int | None = None, encoders: int | None = None,
                 flow_threads: int | None = None, progress: Progress | None = None,
                 commit_every: float = 60.0) -> None:
        super().__init__(stages, ctx, commits, workers=workers, encoders=encoders,
                         flow_threads=flow_threads, progress=progress, commit_every=commit_every)
        caps = [s.max_batch for s in self.middle if s.max_batch is not None]
        self.sizer = BatchSizer(ctx, cap=min(caps, default=None),
                                computes=any(s.computes for s in self.middle))
        self._lanes: dict[str, _Lane] = {}  # an ordered unit's writer lane
        self._shared: queue.Queue | None = None  # independent results, for any writer lane
        self._load = load_follower()  # torch's share follows other processes' load (threads.py)

    # -- public -------------------------------------------------------------
    def run(self, units: Sequence[Unit]) -> Summary:
        """Each way's units in turn (``WAYS``); stops early if interrupted or stopped (a full
        disk)."""
        start = time.perf_counter()
        try:
            # One pass to see which ways and variants have units, then one pass over ``units``
            # per (way, variant), each unit taken as it comes: a 1M-unit plan is never a list
            groups = dict.fromkeys((u.kind, None if WAYS[u.kind].fans_out else u.variant)
                                   for u in units)
            for kind, way in WAYS.items():
                # a way that fans out takes every variant's units at once (an image is read once
                # for all its variants); another runs each variant's flat chain in turn
                for variant in (v for k, v in groups if k == kind):
                    if not self._stop.is_set():
                        self._run_way(way(self, variant), (
                            u for u in units if u.kind == kind
                            and (way.fans_out or u.variant == variant)))
        finally:
            if self._flow_pool is not None:
                self._flow_pool.shutdown(wait=True, cancel_futures=True)
        self._summary.wall_s = time.perf_counter() - start
        return self._summary

    # -- one way's units ----------------------------------------------------
    def _run_way(self, way: Way, units: Iterable[Unit]) -> None:
        todo = _Todo(way.admit(units))  # the readers take units as they go: never all at once
        to_device: queue.Queue = queue.Queue(maxsize=way.queue_size(self.workers))
        readers = [threading.Thread(target=self._guarded(self._read_loop),
                                    args=(way, todo, to_device), name=f"{way.kind}-read-{i}",
                                    daemon=True) for i in range(self.workers)]
        shared: queue.Queue | None = None
        writers: list[threading.Thread] = []
        if not way.ordered:  # independent results: any lane writes any of them
            shared = queue.Queue(maxsize=2 * self.workers + 8)
            writers = [threading.Thread(target=self._guarded(way.write),
                                        args=(None, self._results(shared, None)),
                                        name=f"{way.kind}-write-{i}", daemon=True)
                       for i in range(self.workers)]
        self._shared, self._lanes = shared, {}
        for t in readers + writers:
            t.start()
        try:
            self._guarded(self._device_loop)(way, to_device, len(readers))
        except KeyboardInterrupt:
            self._stop.set()
            self._summary.interrupted = True
        finally:
            for t in readers:  # they give up a blocked put once the run is stopping
                join(t)
            if shared is not None:
                for _ in writers:
                    put_end(shared, _END, writers)
            with self._lock:
                lanes = [lane.thread for lane in self._lanes.values()]
            for t in writers + lanes:
                join(t)

    # -- reader threads -----------------------------------------------------
    def _read_loop(self, way: Way, todo: _Todo, to_device: queue.Queue) -> None:
        try:
            while not self._stop.is_set():
                unit = todo.next()
                if unit is None:
                    return
                self._read_unit(way, unit, to_device)
        finally:
            self._put(to_device, _END)

    def _read_unit(self, way: Way, unit: Unit, to_device: queue.Queue) -> None:
        opened = False
        try:
            stream = way.open(unit)
            opened = True
            if way.ordered:
                self._open_lane(way, unit, stream)
            pieces = way.pieces(stream)
            try:
                for piece in pieces:
                    if not self._put(to_device, piece, unit):
                        return  # stopping, or the unit failed downstream
            finally:
                getattr(pieces, "close", lambda: None)()  # a clip's file closes now, not at GC
        except Exception as exc:  # one bad file must not end the run
            self.fail(way, unit, self.decode.name, exc, opened=opened)
            return
        if way.ordered:
            self._put(to_device, _UnitEnd(unit), unit)

    def _open_lane(self, way: Way, unit: Unit, stream: Any) -> None:
        results: queue.Queue = queue.Queue(maxsize=4)
        thread = threading.Thread(target=self._guarded(way.write),
                                  args=(stream, self._results(results, unit)),
                                  name=f"{way.kind}-write-{unit.key}", daemon=True)
        with self._lock:
            self._lanes[unit.key] = _Lane(results, thread)
        thread.start()

    # -- the device loop ----------------------------------------------------
    def _device_loop(self, way: Way, to_device: queue.Queue, readers: int) -> None:
        batcher = Batcher(self.sizer.size_for)
        running = readers
        self._follow_load(start=True)
        while (running or batcher.waiting) and not self._stop.is_set():
            self._follow_load()
            item: Any = None
            if running:
                try:  # wait briefly when a partial batch could go, else until something comes
                    item = to_device.get(timeout=IDLE_S if batcher.partial else 1.0)
                except queue.Empty:
                    if not batcher.partial:
                        continue
            if item is _END:
                running -= 1
                ready = [] if running else batcher.drain()
            elif item is None:  # nothing came in time, or nothing more will
                ready = batcher.stalled() if running else batcher.drain()
            elif isinstance(item, _UnitEnd):
                ready = [batcher.end(item.unit)]
            elif self._is_dead(item.unit):
                batcher.drop(item.unit)
                ready = []
            else:
                ready = batcher.add(item)
            for batch in ready:
                self._compute(way, batch)

    def _compute(self, way: Way, batch: Batch) -> None:
        """``way.run`` on a batch; smaller batches on out-of-memory; a failing batch of
        independent pieces piece by piece, so only the pieces that really break fail."""
        if batch.unit is not None and self._is_dead(batch.unit):
            return
        try:
            results = way.run(batch)
        except StageFailed as exc:
            n = len(batch.pieces)
            shape = batch.pieces[0].image.shape if n else ()
            if n > 1 and is_out_of_memory(exc.cause) and self.sizer.shrink(shape, n):
                parts = batch.split(self.sizer.size_for(shape))
            elif n > 1 and batch.unit is None:
                parts = batch.split(1)
            else:
                for unit in batch.units:
                    self.fail(way, unit, exc.stage, exc.cause)
                return
            for part in parts:
                self._compute(way, part)
            return
        for result in results:
            if batch.unit is None:
                self._put(self._shared, result)
            elif not self._put(self._lanes[batch.unit.key].results, result, batch.unit):
                return

    # -- writer lanes -------------------------------------------------------
    def _results(self, results: queue.Queue, unit: Unit | None) -> Iterator[Any]:
        """A lane's results until its end, or until the run stops or its unit fails."""
        while not (self._stop.is_set() or (unit is not None and self._is_dead(unit))):
            try:
                result = results.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if result is _END:
                return
            yield result

    # -- helpers ------------------------------------------------------------
    def _put(self, q: queue.Queue, item: object, unit: Unit | None = None) -> bool:
        """A blocking put (the back-pressure) that gives up once the run is stopping or
        ``unit`` failed; False if it gave up."""
        while not (self._stop.is_set() or (unit is not None and self._is_dead(unit))):
            try:
                q.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _follow_load(self, start: bool = False) -> None:
        """From the device thread: size torch's pool to the cores other processes leave
        (at the start, in this thread: a count set in another thread does not reach BLAS)."""
        if self._load is None:
            return
        n = self._load.threads if start else self._load.poll()
        if n is not None:
            import torch  # a follower exists only where torch is loaded (``threads.apply``)

            torch.set_num_threads(n)
            _log.info("torch threads: %d (other processes kept %.1f cores busy)", n, self._load.others)

    def _guarded(self, loop: Callable[..., None]) -> Callable[..., None]:
        """A thread's loop that, should it raise, stops the run with the reason instead of
        dying alone and leaving the others waiting on its queue for ever."""
        def run(*args) -> None:
            try:
                loop(*args)
            except Exception as exc:  # noqa: BLE001 - anything here is a bug or the disk
                if storage_error(exc) is None:
                    with self._lock:
                        self._summary.fatal = self._summary.fatal or (
                            f"internal error in {threading.current_thread().name}: "
                            f"{type(exc).__name__}: {exc}; please report it")
                self._stop_run(exc)
        return run

class _Todo:
    """The units a way's readers share, taken one at a time from an iterator (a lock makes
    a generator safe to share between threads)."""

    def __init__(self, units: Iterable[Unit]) -> None:
        self._units = iter(units)
        self._lock = threading.Lock()

    def next(self) -> Unit | None:
        with self._lock:
            return next(self._units, None)


def put_end(q, item: object, threads: Sequence[threading.Thread]) -> None:
    """Put an end marker for consumers that drain their queue; gives up once none is alive."""
    while any(t.is_alive() for t in threads):
        try:
            q.put(item, timeout=POLL_S)
            return
        except queue.Full:
            continue


def join(thread: threading.Thread) -> None:
    # Joining in short slices keeps Ctrl-C responsive in the main thread.
    while thread.is_alive():
        thread.join(timeout=0.2)
