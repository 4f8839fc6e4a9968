"""What a run reports: failures, per-step busy times, the summary."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator


@dataclass(frozen=True)
class Failure:
    source: Path
    stage: str
    reason: str
    variant: str | None = None  # the ``variants`` branch, in a job with variants


class StageTimes:
    """Busy seconds and frames per pipeline step, summed over threads.

    Steps: decode, flow (temporal guides, on the CPU), device (the model
    stages), smoothing, encode.  ``rates()`` is frames per busy second, which
    says which step is the bottleneck: the slowest rate bounds the run.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seconds: dict[str, float] = {}
        self.frames: dict[str, int] = {}

    @contextmanager
    def timing(self, step: str, frames: int) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(step, time.perf_counter() - start, frames)

    def add(self, step: str, seconds: float, frames: int) -> None:
        with self._lock:
            self.seconds[step] = self.seconds.get(step, 0.0) + seconds
            self.frames[step] = self.frames.get(step, 0) + frames

    def rates(self) -> dict[str, float]:
        with self._lock:
            return {k: self.frames[k] / s for k, s in self.seconds.items() if s > 0 and self.frames[k]}


@dataclass
class Summary:
    done: int = 0  # units (images, clips) finished in this run
    skipped: int = 0  # already done by an earlier run
    frames: int = 0  # frames written in this run (an image is one frame)
    segments: int = 0  # video segments committed in this run (kept by an interrupted clip)
    failures: list[Failure] = field(default_factory=list)
    wall_s: float = 0.0
    interrupted: bool = False
    #: why the run stopped before the end although nothing was interrupted (a full disk)
    fatal: str | None = None
    times: StageTimes = field(default_factory=StageTimes)

    def merge(self, other: "Summary") -> None:
        self.done += other.done
        self.skipped += other.skipped
        self.frames += other.frames
        self.segments += other.segments
        self.failures.extend(other.failures)
        self.wall_s += other.wall_s
        self.interrupted = self.interrupted or other.interrupted
        self.fatal = self.fatal or other.fatal
        for step, seconds in other.times.seconds.items():
            self.times.add(step, seconds, other.times.frames[step])
