"""A clip's segments encoded at once, each in its own thread, committed in order.

Segments are independent files, each from a fresh encoder with a fixed thread
count, so their bytes do not depend on how many are encoded at once.  The
clip's writer lane feeds the open segment's frames as they come from the
device; once a segment has all its frames it goes on encoding them while the
lane feeds the next one.  Commits stay in order (segment k's ledger line only
after k-1's), because a resumed clip continues after its last committed
segment.  A clip has at most ``limit`` segments alive: the lane waits for the
oldest before it opens another, which bounds the frames held in memory and is
the back-pressure to the device.
"""
from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np

POLL_S = 0.05


class _Close:
    def __init__(self, commit_args: dict[str, Any]) -> None:
        self.commit_args = commit_args


class SegmentJob:
    """One segment: frames in, an encoded file committed after the segment before it.

    ``open_writer(partial)`` starts the encoder; ``commit(partial, **args)`` puts the
    closed file in place and reports it; ``fail(exc)`` fails the clip; ``cancelled()``
    says the run is stopping or the clip failed: the job then drops its file."""

    def __init__(self, index: int, partial: Path, *, open_writer: Callable[[Path], Any],
                 commit: Callable[..., None], fail: Callable[[BaseException], None],
                 cancelled: Callable[[], bool], timing: Callable[[int], Any],
                 previous: SegmentJob | None) -> None:
        self.index, self.partial = index, partial
        self._open_writer, self._commit, self._fail = open_writer, commit, fail
        self._cancelled, self._timing, self._previous = cancelled, timing, previous
        self._frames: queue.Queue = queue.Queue()  # unbounded: the lane's limit bounds it
        self.committed = threading.Event()
        self.finished = threading.Event()  # committed, failed or cancelled
        self.thread = threading.Thread(target=self._run, name=f"segment-{index}", daemon=True)
        self.thread.start()

    def feed(self, frames: list[tuple[np.ndarray, int, int | None]]) -> None:
        for frame in frames:
            self._frames.put(frame)

    def close(self, **commit_args: Any) -> None:
        """No more frames: finish the file, and commit it with ``commit_args`` in turn."""
        self._frames.put(_Close(commit_args))

    def wait(self, cancelled: Callable[[], bool]) -> bool:
        """Until this job is finished; False if ``cancelled()`` first."""
        while not self.finished.wait(POLL_S):
            if cancelled():
                return False
        return True

    def _run(self) -> None:
        writer, committed = None, False
        try:
            while True:
                try:
                    item = self._frames.get(timeout=POLL_S)
                except queue.Empty:
                    if self._cancelled():
                        return
                    continue
                if isinstance(item, _Close):
                    break
                if self._cancelled():
                    return
                with self._timing(1):
                    if writer is None:
                        writer = self._open_writer(self.partial)
                    writer.write(*item)
            if writer is None:
                raise RuntimeError(f"segment {self.index} was closed without frames")
            with self._timing(0):
                writer.close()
            writer = None
            # In order: a ledger line for segment k only once k-1 has its own.
            if self._previous is not None and not (self._previous.wait(self._cancelled)
                                                   and self._previous.committed.is_set()):
                return
            if self._cancelled():
                return
            with self._timing(0):
                self._commit(self.partial, **item.commit_args)
            committed = True
            self.committed.set()
        except Exception as exc:  # the encoder, the disk: the clip fails, the run goes on
            self._fail(exc)
        finally:
            if writer is not None:
                writer.abort()
            if not committed:
                Path(self.partial).unlink(missing_ok=True)
            self.finished.set()


def clip_segment(way, clip, index: int, partial: Path, cancelled: Callable[[], bool],
                 previous: SegmentJob | None) -> SegmentJob:
    """Segment ``index`` of ``clip`` for the video way ``way``: encoded by the job's encode
    stage, committed through the engine's commits, a failure failing the clip."""
    engine, key = way.engine, clip.unit.key

    def commit(path: Path, **args) -> None:
        engine.commits.commit_segment(key, index, path, **args)
        engine.count(segments=1)

    return SegmentJob(
        index, partial, cancelled=cancelled, previous=previous, commit=commit,
        open_writer=lambda path: engine.encode.open_segment(path, clip.info, clip.unit.output_rel),
        fail=lambda exc: engine.fail(way, clip.unit, engine.encode.name, exc),
        timing=lambda frames: engine.times.timing("encode", frames))
