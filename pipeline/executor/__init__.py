"""The executor: threads, queues, batching, device transfer and commits.

Images and videos take different paths through the same stages: images are
independent and batched by size (``images.py``); a video's frames are batched
in order, smoothed sequentially and committed in segments (``video.py``).
Neither names a concrete stage.
"""
from __future__ import annotations

from typing import Sequence

from ..context import RunContext
from ..ledger import Ledger
from ..plan import Unit
from ..stages.base import Stage
from .common import Failure, Progress, StageTimes, Summary
from .images import ImageExecutor
from .video import VideoExecutor

__all__ = ["Failure", "ImageExecutor", "Progress", "StageTimes", "Summary", "VideoExecutor",
           "run_units"]


def run_units(stages: Sequence[Stage], ctx: RunContext, ledger: Ledger, units: Sequence[Unit], *,
              workers: int | None = None, progress: Progress | None = None,
              commit_every: float = 60.0) -> Summary:
    """Images first (quick to finish and to show), then videos; stops early if interrupted."""
    summary = Summary()
    images = [u for u in units if u.kind == "image"]
    videos = [u for u in units if u.kind == "video"]
    if images:
        summary.merge(ImageExecutor(stages, ctx, ledger, workers=workers, progress=progress).run(images))
    if videos and not (summary.interrupted or summary.fatal):
        summary.merge(VideoExecutor(stages, ctx, ledger, workers=workers, progress=progress,
                                    commit_every=commit_every).run(videos))
    return summary
