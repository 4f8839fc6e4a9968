"""The engine: threads, queues, batching, device transfer and commits, one process.

Units are processed by their source's *way* (``pipeline.sources``): images are
independent and batched by size (``images.py``); a video's frames are batched
in order, smoothed sequentially and committed in segments (``video.py``).  What
both ways share (the stop flag, the batch policy and out-of-memory back-off,
the memory gate, the thread budget, the run's skeleton and failure handling)
is ``common.ExecutorBase``.  Neither names a concrete stage, and neither writes
the ledger: each reports records through its ``Commits`` (``pipeline.commits``),
which the ledger, or a Ray driver, applies.
"""
from __future__ import annotations

from typing import Sequence

from ..commits import Commits
from ..context import RunContext
from ..plan import Unit
from ..stages.base import Stage
from .common import ExecutorBase, Failure, Progress, StageTimes, Summary
from .images import ImageExecutor
from .video import VideoExecutor

__all__ = ["Failure", "ImageExecutor", "Progress", "StageTimes", "Summary", "VideoExecutor",
           "WAYS", "run_units"]

# A source's ``way`` -> how its units are processed; in this order (images are quick to
# finish and to show, clips then have the machine).
WAYS: dict[str, type[ExecutorBase]] = {"image": ImageExecutor, "video": VideoExecutor}


def run_units(stages: Sequence[Stage], ctx: RunContext, commits: Commits, units: Sequence[Unit], *,
              workers: int | None = None, progress: Progress | None = None,
              commit_every: float = 60.0) -> Summary:
    """Each way's units in turn; stops early if interrupted or stopped (a full disk)."""
    summary = Summary()
    for way, executor in WAYS.items():
        mine = [u for u in units if u.kind == way]
        if not mine or summary.interrupted or summary.fatal:
            continue
        summary.merge(executor(stages, ctx, commits, workers=workers, progress=progress,
                               commit_every=commit_every).run(mine))
    return summary
