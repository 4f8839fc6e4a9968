"""The engine: one process's threads, queues, batching and failures; scheduling only.

``engine.py`` schedules: reader threads, the device loop, writer lanes, the
bounded queues between them (the back-pressure).  ``run_state.py`` is what the ways
share with it (the chain, counters, failures, the stop flag), kept apart from the
scheduling; ``batcher.py`` is its pure batching policy.  What is done to a unit is its
source's *way* (``way.py``): images are independent and batched by size
(``images.py``); a clip's frames are batched in order, smoothed sequentially and
committed in segments (``video.py``), which encode at once (``segments.py``); a
tar shard's images are batched in order and the shard committed whole (``shards.py``); a
sidecar is copied (``files.py``).  No way names a concrete stage, and
nothing here writes the ledger: ways report records through their ``Commits``
(``pipeline.record.commits``), which the ledger, or a Ray driver, applies.

May import: the job (its plan's units), the record, and every room below them; never the
backends or the command line.
"""
from __future__ import annotations

from typing import Sequence

from ..job.plan import Unit
from ..machine.context import RunContext
from ..machine.progress import Progress
from ..record.commits import Commits
from ..record.results import Failure, StageTimes, Summary
from ..stages.base import Stage
from .engine import WAYS, Engine
from .way import Way

__all__ = ["Engine", "Failure", "Progress", "StageTimes", "Summary", "WAYS", "Way", "run_units"]


def run_units(stages: Sequence[Stage], ctx: RunContext, commits: Commits, units: Sequence[Unit], *,
              workers: int | None = None, encoders: int | None = None,
              flow_threads: int | None = None, progress: Progress | None = None,
              commit_every: float = 60.0) -> Summary:
    return Engine(stages, ctx, commits, workers=workers, encoders=encoders,
                  flow_threads=flow_threads, progress=progress, commit_every=commit_every).run(units)
