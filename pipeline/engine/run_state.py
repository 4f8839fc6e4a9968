"""What every way of one run shares with the engine: the chain, the context, the commits,
the counters and failures, the stop flag and the flow pool.

The engine (``engine.py``) is this state plus the scheduling (threads, queues, batching);
a way (``way.py`` and its kinds) sees only this, so the ways and the scheduler do not
import each other.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, Sequence

from ..errors import storage_error
from ..job.plan import Unit
from ..machine.context import RunContext
from ..machine.memory import MemoryGate
from ..machine.progress import Progress
from ..machine.threads import current as thread_budget
from ..record.commits import Commits
from ..record.ledger import LedgerWriteError
from ..record.results import Failure, StageTimes, Summary
from ..stages.base import Stage
from ..stages.chain import reason_of


class _Way(Protocol):
    def failed(self, unit: Unit, opened: bool) -> None: ...


class RunState:
    """One run's shared state; calls come from any thread."""

    def __init__(self, stages: Sequence[Stage], ctx: RunContext, commits: Commits, *,
                 workers: int | None = None, encoders: int | None = None,
                 flow_threads: int | None = None, progress: Progress | None = None,
                 commit_every: float = 60.0) -> None:
        self.decode, *self.middle, self.encode = stages
        assert self.decode.kind == "decode" and self.encode.kind == "encode"
        self.ctx = ctx
        self.commits = commits  # the Ledger itself, or a Ray actor's (records to the driver)
        self.commit_every = commit_every  # seconds of work a kill may cost, at most (video)
        self.workers = workers or thread_budget().workers  # reader threads, writer lanes
        self.encoders = encoders or thread_budget().encoders  # video segments encoded at once
        self.flow_threads = flow_threads or thread_budget().flow  # optical flow pairs at once
        self._flow_pool: ThreadPoolExecutor | None = None
        self.progress = progress or Progress()
        # Sources too big for this machine fail alone, before decoding (see memory.py);
        # one gate per run, so free memory is measured once.
        self.memory_gate = MemoryGate(self.middle, ctx)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._summary = Summary()
        self._dead: set[str] = set()  # failed units: their pieces and results are dropped

    @property
    def times(self) -> StageTimes:
        return self._summary.times

    def flow_pool(self) -> ThreadPoolExecutor:
        """Where a way computes what depends on its inputs only (optical flow), ahead of the
        device: ``flow_threads`` at once."""
        with self._lock:
            if self._flow_pool is None:
                self._flow_pool = ThreadPoolExecutor(self.flow_threads, thread_name_prefix="flow")
            return self._flow_pool

    def stop(self) -> None:
        """Stop the run as each thread next looks (within ``POLL_S``), as Ctrl-C does: what is
        committed stays, the next run redoes the rest."""
        self._summary.interrupted = True
        self._stop.set()

    def stopping(self, unit: Unit | None = None) -> bool:
        """The run is stopping, or ``unit`` failed: work on it should be dropped."""
        return self._stop.is_set() or (unit is not None and self._is_dead(unit))

    def count(self, *, done: int = 0, frames: int = 0, segments: int = 0) -> None:
        with self._lock:
            self._summary.done += done
            self._summary.frames += frames
            self._summary.segments += segments

    def fail(self, way: _Way, unit: Unit, stage: str, exc: BaseException, *,
             opened: bool = True) -> None:
        """Record a failed unit (summary, ledger, progress) once, and drop its work; the run
        goes on, unless the failure is the output side's (a full disk): see ``_stop_run``."""
        if storage_error(exc) is not None:
            self._stop_run(exc)
            return
        reason = reason_of(exc)
        for one in unit.members or (unit,):  # a read of several variants fails each of them
            with self._lock:
                if one.key in self._dead:
                    continue
                self._dead.add(one.key)
                self._summary.failures.append(Failure(one.source, stage, reason, one.variant))
            try:
                self.commits.record_failure(str(one.source), stage, reason, one.key)
            except OSError as ledger_exc:  # the ledger's disk filled up while recording it
                self._stop_run(ledger_exc)
            way.failed(one, opened)

    def fail_part(self, unit: Unit, part: str, stage: str, exc: BaseException) -> None:
        """Record a failure inside ``unit`` that the unit goes on without (a tar shard's bad
        sample, left out of the output shard): in the summary and the ledger's failure lines
        like a failed unit, with ``part`` before the reason, but the unit is not failed.  The
        ledger line carries no key: the unit itself is not over (a Ray driver takes a keyed
        failure for its end)."""
        if storage_error(exc) is not None:
            self._stop_run(exc)
            return
        reason = f"{part}: {reason_of(exc)}"
        with self._lock:
            self._summary.failures.append(Failure(unit.source, stage, reason, unit.variant))
        try:
            self.commits.record_failure(str(unit.source), stage, reason)
        except OSError as ledger_exc:
            self._stop_run(ledger_exc)

    def _is_dead(self, unit: Unit) -> bool:
        return all(one.key in self._dead for one in unit.members or (unit,))


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
