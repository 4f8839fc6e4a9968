"""The thread budget: how many threads torch, OpenCV and the executor's workers get.

One place decides it, from the cores this process may use: the CPU affinity mask
(``os.sched_getaffinity``), capped by a cgroup CPU quota (v2 ``cpu.max``, v1
``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``), or the job's ``threads:`` key.
Left alone, torch's intra-op pool, OpenCV's pool, the decode/encode workers and
the encoder's threads each size themselves to the whole machine and, under a
competing load, oversubscribe it (0.38 frames/s against 1.20 with
``OMP_NUM_THREADS=1``, issue 10).

The split: ``workers`` decode/flow threads (one per clip in flight; DIS flow runs
in them with ``opencv`` threads each, and FFmpeg's video decoder gets as many),
torch gets the rest for the device loop,
``torch + workers * opencv <= cores``, every count at least 1.  Torch inter-op
is 1: the pipeline runs no inter-op parallel work.  The encoder's own threads
(``encode.video.threads``) are not ours: they are fixed so that output bytes do
not depend on the machine.  An explicit ``OMP_NUM_THREADS`` caps torch's count.

``apply`` is called once at the start of a run (``cli.run_job``); ``current``
is what was applied, or what would be for this machine.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

CGROUP_ROOT = Path("/sys/fs/cgroup")
MAX_WORKERS = 4  # as before: more clips in flight than this only costs memory


@dataclass(frozen=True)
class Budget:
    cores: int  # what the split is for
    source: str  # where ``cores`` came from, for people
    torch: int  # torch.set_num_threads: the device loop's intra-op pool
    interop: int  # torch.set_num_interop_threads
    opencv: int  # cv2.setNumThreads, per worker (DIS flow in the decode threads)
    workers: int  # decode (+flow) threads; one encode thread per clip in flight too

    def describe(self) -> str:
        return (f"{self.cores} cores ({self.source}): torch {self.torch} (+{self.interop} inter-op), "
                f"workers {self.workers} with {self.opencv} flow and {self.opencv} decoder thread "
                f"each; encoder threads as set in encode")


def affinity_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def cgroup_quota(root: Path = CGROUP_ROOT) -> float | None:
    """The CPU quota in cores (1.5 for "150000 100000"), None for none or unreadable."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]  # cgroup v2
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    for folder in (root / "cpu", root / "cpu,cpuacct", root):  # cgroup v1
        try:
            quota_us = int((folder / "cpu.cfs_quota_us").read_text())
            period_us = int((folder / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us
    return None


def available_cores(affinity: Callable[[], int] = affinity_cores,
                    quota: Callable[[], float | None] = cgroup_quota) -> tuple[int, str]:
    """The cores this process may use, and how that was found."""
    cores = max(1, affinity())
    limit = quota()
    if limit is not None and math.ceil(limit) < cores:
        return max(1, math.ceil(limit)), f"cgroup quota {limit:g} of {cores} in affinity"
    return cores, "affinity" + (f", cgroup quota {limit:g}" if limit is not None else "")


def budget_for(threads: int | None = None, workers: int | None = None, *,
               affinity: Callable[[], int] = affinity_cores,
               quota: Callable[[], float | None] = cgroup_quota,
               environ: dict[str, str] | None = None) -> Budget:
    """The split for the job's ``threads`` and ``workers`` (None: auto)."""
    if threads is not None:
        cores, source = threads, "job 'threads'"
    else:
        cores, source = available_cores(affinity, quota)
    opencv = 1
    if workers is None:
        workers = max(1, min(MAX_WORKERS, cores // 4))
    torch_threads = max(1, cores - workers * opencv)
    omp = (os.environ if environ is None else environ).get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) > 0:
        torch_threads = min(torch_threads, int(omp))
    return Budget(cores=cores, source=source, torch=torch_threads, interop=1, opencv=opencv,
                  workers=workers)


_applied: Budget | None = None


def apply(threads: int | None = None, workers: int | None = None) -> Budget:
    """Set torch's and OpenCV's thread counts for this run; the executor takes ``workers``."""
    global _applied
    import torch

    budget = budget_for(threads, workers)
    torch.set_num_threads(budget.torch)
    try:
        torch.set_num_interop_threads(budget.interop)
    except RuntimeError:  # only settable before inter-op work starts: a second run in one process
        pass
    try:
        import cv2
        cv2.setNumThreads(budget.opencv)
    except ImportError:
        pass
    _applied = budget
    return budget


def current() -> Budget:
    """The budget this run applied, or the one it would apply on this machine."""
    return _applied or budget_for()
