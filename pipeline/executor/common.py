"""What the image and video executors share: results, timing, progress, device transfer."""
from __future__ import annotations

import logging
import queue
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from ..batching import BatchSizer
from ..context import RunContext
from ..errors import MediaError, storage_error
from ..commits import Commits
from ..ledger import LedgerWriteError
from ..memory import MemoryGate
from ..stages.base import Stage
from ..threads import current as thread_budget
from ..threads import follower as load_follower

POLL_S = 0.05  # how long a blocked thread waits before checking whether the run is stopping
_log = logging.getLogger("stylize.threads")


@dataclass(frozen=True)
class Failure:
    source: Path
    stage: str
    reason: str


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


class Progress:
    """What the executors report as they go; the CLI draws bars from it.  Calls come from any thread."""

    def add_total(self, frames: int) -> None:
        """More frames to do than first announced (clips are probed as they start);
        negative for frames that will not come (a clip that failed to start)."""

    def clip_started(self, name: str, total: int | None, done: int) -> None: ...

    def frames_done(self, n: int, clip: str | None = None) -> None: ...

    def unit_finished(self, ok: bool, clip: str | None = None) -> None:
        """A unit is over; a clip's frames not done by now (it failed, or its
        header's frame count was off) leave the job's total."""


class ExecutorBase:
    """What both executors hold: the chain's ends, the context, the ledger and the run's state."""

    def __init__(self, stages: Sequence[Stage], ctx: RunContext, ledger: Commits, *,
                 workers: int | None = None, progress: Progress | None = None,
                 commit_every: float = 60.0) -> None:
        self.decode, *self.middle, self.encode = stages
        assert self.decode.kind == "decode" and self.encode.kind == "encode"
        self.ctx = ctx
        self.ledger = ledger  # a Commits: the Ledger itself, or a Ray actor's (records to the driver)
        self.commit_every = commit_every  # seconds of work a kill may cost, at most about (video)
        self.workers = workers or thread_budget().workers  # the run's thread budget
        caps = [s.max_batch for s in self.middle if s.max_batch is not None]
        self.sizer = BatchSizer(ctx, cap=min(caps, default=None))
        self.progress = progress or Progress()
        # Sources too big for this machine fail alone, before decoding (see memory.py);
        # one gate per run, so free memory is measured once.
        self.memory_gate = MemoryGate(self.middle, ctx)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._summary = Summary()
        self._load = load_follower()  # torch's share follows other processes' load (threads.py)

    def _drive(self, start: float, threads: list[threading.Thread], device_loop: Callable[[], None],
               wind_down: Callable[[], None]) -> Summary:
        """The run's skeleton, one for both ways: start the worker threads, run the device loop
        in this thread, stop on Ctrl-C, wind down and join every thread, time the run."""
        for t in threads:
            t.start()
        try:
            device_loop()
        except KeyboardInterrupt:
            self._stop.set()
            self._summary.interrupted = True
        finally:
            wind_down()
            for t in threads:
                join(t)
        self._summary.wall_s = time.perf_counter() - start
        return self._summary

    def _follow_load(self, start: bool = False) -> None:
        """From the device thread: size torch's pool to the cores other processes leave
        (at the start, in this thread: a count set in another thread does not reach BLAS)."""
        if self._load is None:
            return
        n = self._load.threads if start else self._load.poll()
        if n is not None:
            torch.set_num_threads(n)
            _log.info("torch threads: %d (other processes kept %.1f cores busy)", n, self._load.others)

    def _fail(self, unit, stage: str, exc: BaseException, *, clip: str | None = None,
              frames: int = 0) -> None:
        """Record a failed source (summary, ledger, progress); the run goes on, unless the
        failure is the output side's (a full disk): then the run stops (see ``_stop_run``)."""
        if storage_error(exc) is not None:
            self._stop_run(exc)
            return
        reason = reason_of(exc)
        with self._lock:
            self._summary.failures.append(Failure(unit.source, stage, reason))
        try:
            self.ledger.record_failure(str(unit.source), stage, reason, unit.key)
        except OSError as ledger_exc:  # the ledger's disk filled up while recording it
            self._stop_run(ledger_exc)
        if frames:
            self.progress.frames_done(frames)
        self.progress.unit_finished(False, clip)

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

    def _stop_run(self, exc: BaseException) -> None:
        """A full disk or an unwritable ledger fails every unit after this one too, and the
        next record could not be written anyway: stop every thread now, keep what is
        committed (the ledger never holds a torn line), and say what to do."""
        cause = storage_error(exc) or exc
        if isinstance(cause, LedgerWriteError):  # it names the ledger itself
            what = str(cause)
        else:
            where = getattr(cause, "filename", None) or getattr(exc, "path", None)
            what = (f"cannot write{f' {where}' if where else ''}: "
                    f"{getattr(cause, 'strerror', None) or cause}")
        with self._lock:
            if self._summary.fatal is None:
                self._summary.fatal = (f"{what}; free space (or make the output folder writable) "
                                       "and run the same command again: committed outputs are kept")
        self._stop.set()


class StageFailed(Exception):
    def __init__(self, stage: str, cause: BaseException) -> None:
        super().__init__(f"{stage}: {cause}")
        self.stage, self.cause = stage, cause


def run_stages(stages: Sequence[Stage], x: torch.Tensor) -> torch.Tensor:
    for stage in stages:
        try:
            x = stage(x)
        except Exception as exc:
            raise StageFailed(stage.name, exc) from exc
        check_finite(stage.name, x)
    return x


def check_finite(stage: str, x: torch.Tensor) -> None:
    """NaN or Inf would be written as black or white pixels and the job would exit 0: fail
    the batch instead (the image executor then retries image by image, so only the images
    that really break fail)."""
    if x.is_floating_point() and x.numel() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise StageFailed(stage, ValueError(
            f"produced {bad} NaN or infinite values out of {x.numel()}: a numerical overflow "
            "(try precision: fp32 if the job runs in fp16) or broken weights"))


def reason_of(exc: BaseException) -> str:
    if isinstance(exc, StageFailed):
        exc = exc.cause
    if isinstance(exc, MediaError):  # the remedy too: the failure line is all a user sees
        return f"{exc.reason}; {exc.hint}" if exc.hint else exc.reason
    return f"{type(exc).__name__}: {exc}"


def upload(images: Sequence[np.ndarray], device: torch.device) -> torch.Tensor:
    """uint8 NHWC on the device; through pinned memory, without blocking, on CUDA."""
    if device.type != "cuda":
        return torch.from_numpy(np.stack(images))
    host = torch.empty((len(images), *images[0].shape), dtype=torch.uint8, pin_memory=True)
    for i, image in enumerate(images):
        host[i].copy_(torch.from_numpy(image))
    return host.to(device, non_blocking=True)


def download(y: torch.Tensor) -> np.ndarray:
    if y.device.type != "cuda":
        return y.contiguous().numpy()
    host = torch.empty(y.shape, dtype=torch.uint8, pin_memory=True)
    host.copy_(y, non_blocking=True)
    torch.cuda.current_stream(y.device).synchronize()
    return host.numpy()


def to_uint8_nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.float().round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def put(q, item: object, stop: threading.Event | None) -> bool:
    """A blocking put (the back-pressure) that gives up once ``stop`` is set; False if it gave up."""
    while True:
        try:
            q.put(item, timeout=POLL_S)
            return True
        except queue.Full:
            if stop is not None and stop.is_set():
                return False


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
