"""The Ray side of the Ray backend: one actor rebuilds the job's stages and processes units.

An actor runs the same engine as one machine (``pipeline.engine.run_units``)
on the units the driver hands it, with two differences: its ``Commits`` sends
records to the driver instead of writing the ledger (``RemoteCommits``), and its
``Progress`` turns each call into an event record (``EventProgress``).  A call
is a generator: records stream back to the driver as they happen.

Before renaming a file into place an actor checks that the run it works for
is still the one holding the output folder (``RUN_FILE``): an actor left over
from a driver that was killed never writes over the next run's work.
"""
from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from ..machine.progress import Progress
from ..record.commits import Commits, Scratch, Segment, remove_segments
from ..record.records import Event, ScratchSaved, SegmentSaved, SegmentsDropped, Started, Tally
from ..record.results import Summary

RUN_FILE = ".ledger.run"  # the id of the run that holds the output folder, written by the driver
_END = object()
BATCH_S = 0.02  # records are sent at most this much later, a few per object instead of one


class StaleRun(RuntimeError):
    """The driver this actor works for is gone and another run holds the output folder."""


class RemoteCommits(Commits):
    """Files put in place here, records sent to the driver; resume points come with the units."""

    def __init__(self, output: Path, emit, *, tag: str, run_id: str,
                 resume: dict[str, tuple[list[Segment], list[Scratch]]]) -> None:
        super().__init__(output, self._emit_and_keep, tag=tag)
        self.run_id = run_id
        self._send = emit
        self._resume = {key: (list(segments), list(scratches))
                        for key, (segments, scratches) in resume.items()}

    def _emit_and_keep(self, record) -> None:
        """Send the record; keep this clip's view of its segments as the driver's ledger will."""
        if isinstance(record, SegmentSaved):
            segments, _ = self._resume.setdefault(record.key, ([], []))
            self._resume[record.key] = (segments + [Segment.of(self.output, record)], [])
        elif isinstance(record, ScratchSaved):
            self._resume.setdefault(record.key, ([], []))[1].append(Scratch.of(self.output, record))
        self._send(record)

    def is_done(self, key: str) -> bool:
        return False  # the driver hands out only units not done

    def segments(self, key: str) -> list[Segment]:
        return list(self._resume.get(key, ([], []))[0])

    def scratches(self, key: str, segment: int) -> list[Scratch]:
        segments, scratches = self._resume.get(key, ([], []))
        return list(scratches) if segment == len(segments) else []

    def drop_segments(self, key: str) -> None:
        """The clip starts over here: this actor owns the clip while it runs, so it deletes the
        files before writing new ones; the driver only forgets them (``remove=False``)."""
        self._resume.pop(key, None)
        remove_segments(self.output, key)
        self._send(SegmentsDropped(key, remove=False))

    def check_current(self) -> None:
        try:
            current = (self.output / RUN_FILE).read_text().strip()
        except OSError:
            current = ""
        if current != self.run_id:
            raise StaleRun(f"the run that started this work ({self.run_id}) no longer holds "
                           f"{self.output}; stopping without writing")


class EventProgress(Progress):
    """Each progress call becomes an Event record for the driver's display."""

    def __init__(self, emit) -> None:
        self._emit = emit

    def add_total(self, frames: int) -> None:
        self._emit(Event("add_total", (frames,)))

    def clip_started(self, name: str, total: int | None, done: int) -> None:
        self._emit(Event("clip_started", (name, total, done)))

    def frames_done(self, n: int, clip: str | None = None) -> None:
        self._emit(Event("frames_done", (n, clip)))

    def unit_finished(self, ok: bool, clip: str | None = None) -> None:
        self._emit(Event("unit_finished", (ok, clip)))

    def note(self, text: str) -> None:
        self._emit(Event("note", (text,)))


def tally(summary: Summary) -> Tally:
    return Tally(done=summary.done, frames=summary.frames, segments=summary.segments,
                 seconds=dict(summary.times.seconds), step_frames=dict(summary.times.frames),
                 fatal=summary.fatal or "")


class StageWorker:
    """The actor's body (made remote by the driver: Ray stays an optional import)."""

    def __init__(self, job_path: str, precision: str | None = None,
                 batch_size: int | None = None) -> None:
        from ..job.build import build_stages, thread_args
        from ..job.config import load_job
        from ..machine import threads as thread_budget

        self.job = load_job(job_path)
        self.ctx, self.stages = build_stages(self.job, precision=precision, batch_size=batch_size)
        # Auto, as on one machine: the driver sets OMP_NUM_THREADS to the actor's CPUs, which
        # caps torch's share; other actors on the node count as load like any other process.
        self.budget = thread_budget.apply(**thread_args(self.job, self.stages))

    def describe(self) -> dict[str, Any]:
        """What the driver checks before handing out work: device, precision, fingerprint."""
        import ray

        from ..job.build import fingerprint_of

        return {"device": str(self.ctx.device), "precision": self.ctx.precision,
                "batch_size": self.ctx.batch_size, "node": ray.get_runtime_context().get_node_id(),
                "fingerprint": fingerprint_of(self.ctx, self.stages, self.job.sources)}

    def process(self, units: list, resume: dict, run_id: str, tag: str,
                fingerprint: dict) -> Iterator[list]:
        """Run ``units`` through the stages; yield the records as they happen (lists of those
        that came within ``BATCH_S`` of each other), then a Tally."""
        from ..engine import run_units
        from ..job.build import fingerprint_of

        if fingerprint_of(self.ctx, self.stages, self.job.sources) != fingerprint:
            raise RuntimeError("this worker's stages differ from the driver's (another weights "
                               "file or precision on this node): refusing to run")
        records: queue.Queue = queue.Queue()
        commits = RemoteCommits(self.job.output, records.put, tag=tag, run_id=run_id, resume=resume)
        result: dict[str, Any] = {}

        def work() -> None:
            try:
                result["summary"] = run_units(self.stages, self.ctx, commits, units,
                                              workers=self.job.workers,
                                              progress=EventProgress(records.put),
                                              commit_every=self.job.commit_every)
            except BaseException as exc:  # noqa: BLE001 - reported to the driver below
                result["error"] = exc
            finally:
                records.put(_END)

        yield [Started()]
        thread = threading.Thread(target=work, name="ray-unit", daemon=True)
        thread.start()
        ended = False
        while not ended:  # in batches: what came in meanwhile goes in one object, not one each
            batch = [records.get()]
            time.sleep(BATCH_S)
            while True:
                try:
                    batch.append(records.get_nowait())
                except queue.Empty:
                    break
            ended = batch[-1] is _END
            if batch := [r for r in batch if r is not _END]:
                yield batch
        thread.join()
        if "error" in result:
            raise result["error"]
        yield [tally(result["summary"])]
