"""The thread budget: how many threads torch, OpenCV and the engine's workers get.

One place decides it, from the cores this process may use: the CPU affinity mask
(``os.sched_getaffinity``), capped by a cgroup CPU quota (v2 ``cpu.max``, v1
``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``), or the job's ``threads:`` key.
Left alone, torch's intra-op pool, OpenCV's pool, the decode/encode workers and
the encoder's threads each size themselves to the whole machine and, under a
competing load, oversubscribe it (0.38 frames/s against 1.20 with
``OMP_NUM_THREADS=1``, issue 10).

What hurts is other processes' load on torch's pool: its threads meet at a
barrier after every parallel region, so one thread that shares its core with a
busy process holds up all the others.  Our own decode/flow/encode workers
mostly wait on queues and do not: on an idle 2-core box torch with both cores
beside them ran 1.6x faster than torch with the one core left after reserving
one for them (``benchmarks/busy_machine.py``, docs/devices-and-performance.md).  So with ``threads:
auto`` torch gets the cores *other processes* leave free: it starts with the
fixed split below, then measures after a second and every few seconds from
``/proc/stat`` (busy time of our CPUs minus our own process's), and the device
thread re-sizes its pool (``LoadFollower``).  Outputs do not depend on the count (tested).  Where the
cores come from a cgroup quota, the job's ``threads:`` or when ``/proc/stat``
cannot be read, the split is fixed: ``torch + workers * opencv <= cores``.

``workers`` are the decode/flow threads (one per clip in flight; DIS flow runs in
them with ``opencv`` threads each, and FFmpeg's video decoder gets as many).
Torch inter-op is 1: the pipeline runs no inter-op parallel work.  Each
video encoder's own threads (``encode.video.threads``) are fixed, so that output
bytes do not depend on the machine; ``encoders`` is how many segments are
encoded at once in the whole process (the job's ``encoders:``, else the cores
over the encoder's threads), so that one long clip can use every core for
encoding.  ``flow`` threads compute temporal_smooth's optical flow, a pair of
frames each, ahead of the device (half the cores).  An explicit ``OMP_NUM_THREADS`` caps torch's count.

``apply`` is called once at the start of a run (``commands.run.run_job``); ``current``
is what was applied, or what would be for this machine; ``follower`` gives the
device loop its ``LoadFollower`` (None when the split is fixed).
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

CGROUP_ROOT = Path("/sys/fs/cgroup")
MAX_WORKERS = 4  # as before: more clips in flight than this only costs memory


@dataclass(frozen=True)
class Budget:
    cores: int  # what the split is for
    source: str  # where ``cores`` came from, for people
    torch: int  # torch.set_num_threads: the device loop's intra-op pool (its most, if it follows the load)
    interop: int  # torch.set_num_interop_threads
    opencv: int  # cv2.setNumThreads, per worker (DIS flow in the decode threads)
    workers: int  # decode (+flow) threads; one writer lane per clip in flight too
    follows_load: bool = False  # torch gets what other processes leave of ``torch``
    encoders: int = 1  # video segments encoded at once, in all (each with its own threads)
    flow: int = 1  # threads computing optical flow pairs ahead of the device (temporal_smooth)
    encoder_threads: int = 2  # each encoder's (encode.video.threads), for people

    def describe(self) -> str:
        share = (f"torch up to {self.torch}, fewer while other processes keep cores busy"
                 if self.follows_load else f"torch {self.torch}")
        return (f"{self.cores} cores ({self.source}): {share} (+{self.interop} inter-op), "
                f"workers {self.workers} with {self.opencv} flow and {self.opencv} decoder thread "
                f"each; {self.encoders} video segment encoder{'s' if self.encoders != 1 else ''} "
                f"at once of {self.encoder_threads} threads each; {self.flow} optical flow "
                f"thread{'s' if self.flow != 1 else ''}")


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


def budget_for(threads: int | None = None, workers: int | None = None,
               encoders: int | None = None, encoder_threads: int = 2, *,
               affinity: Callable[[], int] = affinity_cores,
               quota: Callable[[], float | None] = cgroup_quota,
               environ: dict[str, str] | None = None,
               can_follow: Callable[[], bool] | None = None) -> Budget:
    """The split for the job's ``threads``, ``workers`` and ``encoders`` (None: auto)."""
    if threads is not None:
        cores, source = threads, "job 'threads'"
    else:
        cores, source = available_cores(affinity, quota)
    opencv = 1
    if workers is None:
        workers = max(1, min(MAX_WORKERS, cores // 4))
    # Following the load needs the whole affinity mask as ours and a readable /proc/stat.
    follows = threads is None and "quota" not in source and (can_follow or load_readable)()
    torch_threads = cores if follows else max(1, cores - workers * opencv)
    omp = (os.environ if environ is None else environ).get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) > 0:
        torch_threads = min(torch_threads, int(omp))
    if encoders is None:  # every core encoding when the encoder is the bottleneck
        encoders = max(1, cores // max(1, encoder_threads))
    return Budget(cores=cores, source=source, torch=torch_threads, interop=1, opencv=opencv,
                  workers=workers, follows_load=follows, encoders=encoders,
                  encoder_threads=encoder_threads, flow=max(1, cores // 2))


def torch_share(budget: Budget, others: float) -> int:
    """Torch's threads while other processes keep ``others`` cores busy (rounded half up)."""
    if not budget.follows_load:
        return budget.torch
    return max(1, min(budget.torch, budget.cores - int(max(0.0, others) + 0.5)))


# -- the load of other processes ------------------------------------------------
def _our_cpus() -> set[int] | None:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def busy_seconds(cpus: set[int] | None = None, stat: Path = Path("/proc/stat")) -> float:
    """CPU seconds spent busy so far on ``cpus`` (all when None), from ``/proc/stat``."""
    total = 0.0
    for line in stat.read_text().splitlines():
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu" or not fields:
            continue
        if cpus is not None and int(name[3:]) not in cpus:
            continue
        # user nice system idle iowait irq softirq steal (guest is inside user)
        ticks = [int(f) for f in fields[:8]]
        total += sum(ticks) - ticks[3] - ticks[4]
    return total / os.sysconf("SC_CLK_TCK")


def own_seconds() -> float:
    """CPU seconds this process (all its threads) has used."""
    t = os.times()
    return t.user + t.system


def load_readable() -> bool:
    try:
        busy_seconds(_our_cpus())
        return True
    except (OSError, ValueError, AttributeError):  # not Linux, /proc not mounted
        return False


class LoadFollower:
    """Re-sizes torch's pool, from the device thread, to the cores other processes leave.

    ``poll`` is cheap (a clock read) between measurements; after ``first``
    seconds, then every ``every`` seconds, it reads how busy our CPUs were since
    the last measurement, takes off our own CPU time, and returns torch's new
    count when it changed (else None).
    """

    def __init__(self, budget: Budget, *, every: float = 5.0, first: float = 1.0,
                 busy: Callable[[], float] | None = None, own: Callable[[], float] = own_seconds,
                 clock: Callable[[], float] = time.monotonic, first_guess: float | None = None) -> None:
        cpus = _our_cpus()
        self.budget = budget
        self.every = every
        self.first = first  # how long the start's guess stands (validate --estimate mirrors it)
        self._wait = first  # the start's guess is the fixed split: check it soon
        self._busy = busy or (lambda: busy_seconds(cpus))
        self._own = own
        self._clock = clock
        # Until the first measurement, the fixed split: right under load, and soon raised if not.
        self.others = float(budget.workers * budget.opencv) if first_guess is None else first_guess
        self.threads = torch_share(budget, self.others)
        self._mark = (clock(), self._busy(), own())

    def poll(self) -> int | None:
        now = self._clock()
        t0, busy0, own0 = self._mark
        if now - t0 < self._wait:
            return None
        self._wait = self.every
        try:
            busy, own = self._busy(), self._own()
        except (OSError, ValueError):
            return None
        self._mark = (now, busy, own)
        self.others = others = ((busy - busy0) - (own - own0)) / (now - t0)
        wanted = torch_share(self.budget, others)
        if wanted == self.threads:
            return None
        self.threads = wanted
        return wanted


_applied: Budget | None = None
_sized: Budget | None = None  # the budget torch's pools were last sized to
_follower: LoadFollower | None = None


def apply(threads: int | None = None, workers: int | None = None, encoders: int | None = None,
          encoder_threads: int = 2) -> Budget:
    """Set torch's and OpenCV's thread counts for this run; the engine takes ``workers`` and
    ``encoders``."""
    global _applied, _follower
    budget = budget_for(threads, workers, encoders, encoder_threads)
    # torch is loaded by now where a stage computes in it (the stage registry imports it); a
    # job that only decodes and encodes has no torch, and no pool to follow; one whose stages
    # run without it (ONNX Runtime) imports it only for some units: its pool is sized then
    torch = sys.modules.get("torch")
    _applied = budget
    if torch is not None:
        torch_imported(torch)
    try:
        import cv2
        cv2.setNumThreads(budget.opencv)
    except ImportError:
        pass
    # One per process, kept across engines and calls (a Ray actor runs many): what it has
    # measured stays, instead of each start waiting a second at the fixed split.
    _follower = LoadFollower(budget) if budget.follows_load and torch is not None else None
    return budget


def torch_imported(torch) -> None:
    """Size torch's pools to the applied budget, once per budget (from ``apply``, or where torch
    is first imported after it: ``start_up.import_torch``); nothing before a budget is applied."""
    global _sized
    if _applied is None or _sized is _applied:
        return
    _sized = _applied
    torch.set_num_threads(torch_share(_applied, _applied.workers * _applied.opencv))  # until measured
    try:
        torch.set_num_interop_threads(_applied.interop)
    except RuntimeError:  # only settable before inter-op work starts: a second run in one process
        pass


def current() -> Budget:
    """The budget this run applied, or the one it would apply on this machine."""
    return _applied or budget_for()


def follower() -> LoadFollower | None:
    """The device loop's LoadFollower for the budget this process applied; None when the
    split is fixed or nothing applied one (an engine driven by a test)."""
    return _follower
