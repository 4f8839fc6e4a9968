"""The thread budget (pipeline/machine/threads.py): cores from affinity and cgroup quota, the split, the job key."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipeline.machine import threads
from pipeline.job.config import load_job
from pipeline.errors import JobError
from tests.conftest import make_photos, run_cli_here, write_job

NO_ENV: dict[str, str] = {}


def _budget(cores: int, quota: float | None = None, follow: bool = False, **kw) -> threads.Budget:
    return threads.budget_for(affinity=lambda: cores, quota=lambda: quota, environ=NO_ENV,
                              can_follow=lambda: follow, **kw)


def test_cores_from_affinity_capped_by_the_cgroup_quota() -> None:
    assert threads.available_cores(lambda: 16, lambda: None)[0] == 16
    assert threads.available_cores(lambda: 16, lambda: 4.0)[0] == 4
    assert threads.available_cores(lambda: 16, lambda: 1.5)[0] == 2  # part of a core still runs
    assert threads.available_cores(lambda: 2, lambda: 8.0)[0] == 2  # a quota above the mask
    assert threads.available_cores(lambda: 8, lambda: 0.2)[0] == 1
    cores, source = threads.available_cores(lambda: 16, lambda: 4.0)
    assert "cgroup quota 4" in source


@pytest.mark.parametrize("files, expected", [
    ({"cpu.max": "max 100000\n"}, None),
    ({"cpu.max": "250000 100000\n"}, 2.5),
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3.0),
    ({"cpu,cpuacct/cpu.cfs_quota_us": "50000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, 0.5),
    ({}, None),
    ({"cpu.max": "garbage\n"}, None),
])
def test_cgroup_quota_v2_and_v1(tmp_path: Path, files: dict[str, str], expected: float | None) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert threads.cgroup_quota(tmp_path) == expected


def test_the_split_on_small_and_big_machines() -> None:
    b = _budget(2)
    assert (b.torch, b.interop, b.opencv, b.workers) == (1, 1, 1, 1)
    b = _budget(16)
    assert (b.torch, b.opencv, b.workers) == (12, 1, 4)
    b = _budget(64, quota=8.0)
    assert (b.cores, b.torch, b.workers) == (8, 6, 2)


def test_together_the_counts_never_exceed_the_cores() -> None:
    # The encoder's own threads are not in it: fixed per job so output bytes are the same everywhere.
    for cores in range(2, 257):
        for workers in (None, *range(1, min(cores, 9))):  # a job's 'workers' below its cores
            for quota in (None, cores / 2, cores * 2):
                b = _budget(cores, quota=quota, workers=workers)
                assert min(b.torch, b.interop, b.opencv, b.workers) >= 1
                assert b.cores <= cores
                if b.cores > (workers or 1):  # else one of each (1 core), or the job asked for more
                    assert b.torch + b.workers * b.opencv <= b.cores, (cores, workers, quota)
                assert b.interop == 1


def test_one_core_gets_one_of_each() -> None:
    b = _budget(1)
    assert (b.torch, b.interop, b.opencv, b.workers) == (1, 1, 1, 1)


def test_the_job_key_overrides_the_cores_and_omp_caps_torch() -> None:
    b = _budget(2, threads=8)
    assert (b.cores, b.torch, b.workers) == (8, 6, 2) and "job 'threads'" in b.source
    b = _budget(16, threads=8, workers=3)
    assert (b.torch, b.workers) == (5, 3)
    b = threads.budget_for(affinity=lambda: 16, quota=lambda: None, environ={"OMP_NUM_THREADS": "1"},
                           can_follow=lambda: False)
    assert b.torch == 1 and b.workers == 4


def test_auto_follows_the_load_unless_the_cores_are_fixed() -> None:
    b = _budget(2, follow=True)
    assert b.follows_load and (b.torch, b.workers) == (2, 1)  # all cores, when no one else wants them
    assert "torch up to 2, fewer while other processes keep cores busy" in b.describe()
    assert [threads.torch_share(b, load) for load in (0, 0.4, 0.5, 1.0, 1.7, 5.0)] == [2, 2, 1, 1, 1, 1]
    b16 = _budget(16, follow=True)
    assert [threads.torch_share(b16, load) for load in (0, 3.2, 14.6, 40)] == [16, 13, 1, 1]
    # A quota, the job's 'threads' or no /proc/stat: the fixed split, whatever the load.
    for fixed in (_budget(16, quota=4.0, follow=True), _budget(2, threads=4, follow=True), _budget(2)):
        assert not fixed.follows_load
        assert threads.torch_share(fixed, 0) == threads.torch_share(fixed, 9) == fixed.torch
    omp = threads.budget_for(affinity=lambda: 8, quota=lambda: None, environ={"OMP_NUM_THREADS": "3"},
                             can_follow=lambda: True)
    assert [threads.torch_share(omp, load) for load in (0, 6)] == [3, 2]  # OMP caps the most


class _Machine:
    """A fake clock and CPU counters: other processes' and ours, in core-seconds."""

    def __init__(self) -> None:
        self.now = self.others = self.ours = 0.0

    def run(self, seconds: float, others: float, ours: float) -> None:
        self.now += seconds
        self.others += seconds * others
        self.ours += seconds * ours


def test_the_follower_gives_torch_the_cores_others_leave() -> None:
    m = _Machine()
    f = threads.LoadFollower(_budget(2, follow=True), every=5.0, first=1.0, first_guess=0.0,
                             busy=lambda: m.others + m.ours, own=lambda: m.ours, clock=lambda: m.now)
    assert f.threads == 2
    m.run(0.5, others=0.0, ours=2.0)
    assert f.poll() is None  # too soon to measure
    m.run(0.6, others=1.3, ours=0.7)  # two CPU hogs start: they get 1.3 of the 2 cores
    assert f.poll() == 1 and f.threads == 1
    m.run(5.0, others=1.0, ours=1.0)
    assert f.poll() is None  # still busy: no change
    m.run(5.0, others=0.1, ours=1.9)  # the hogs are gone; our own threads do not count as load
    assert f.poll() == 2
    m.run(3.0, others=2.0, ours=0.0)
    assert f.poll() is None  # measured every 5 s, not on every batch
    m.run(2.0, others=2.0, ours=0.0)
    assert f.poll() == 1


def test_until_measured_torch_gets_the_fixed_split() -> None:
    f = threads.LoadFollower(_budget(4, follow=True), busy=lambda: 0.0, own=lambda: 0.0)
    assert f.threads == 3  # 4 cores less the worker's one, as without following


def test_outputs_do_not_depend_on_torch_threads() -> None:
    """The follower changes torch's count mid-run; a resumed run must still write the same bytes."""
    from pipeline.models.cyclegan import ResnetGenerator
    from pipeline.models.transformer_net import TransformerNet
    from pipeline.ops.tv_denoise import tv_denoise
    from pipeline.ops.warp import warp

    torch.manual_seed(0)
    x = torch.rand(2, 3, 96, 128)  # big enough for torch to split the work
    flow = torch.randn(2, 2, 96, 128) * 3
    nets = [TransformerNet().eval(), ResnetGenerator(n_blocks=2).eval()]
    before = torch.get_num_threads()
    outs = []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            with torch.no_grad():
                outs.append([net(x) for net in nets] + [warp(x, flow), tv_denoise(x * 255, 0.1)])
    finally:
        torch.set_num_threads(before)
    for other in outs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(outs[0], other))


def _job(tmp_path: Path, extra: str) -> Path:
    return write_job(tmp_path, f"""
        sources:
          - images: photos/
        output: out
        {extra}
        stages:
          - decode
          - encode: {{image: {{format: png}}}}
        """)


def test_threads_key_in_the_job(tmp_path: Path) -> None:
    assert load_job(_job(tmp_path, "threads: 6")).threads == 6
    assert load_job(_job(tmp_path, "threads: auto")).threads is None
    assert load_job(_job(tmp_path, "")).threads is None
    for bad in ("threads: 0", "threads: -2", "threads: many", "threads: true"):
        with pytest.raises(JobError, match="expected 'auto' or a positive integer"):
            load_job(_job(tmp_path, bad))


def test_apply_sets_torch_and_the_engine_takes_the_workers() -> None:
    import cv2

    from pipeline.engine import Engine
    from pipeline.stages import get_stage
    from tests.test_engine import CTX

    before = torch.get_num_threads(), cv2.getNumThreads(), threads._applied, threads._follower
    try:
        budget = threads.apply(threads=7, workers=None)
        assert not budget.follows_load
        assert torch.get_num_threads() == budget.torch == 6
        assert cv2.getNumThreads() == 1 and threads.current() is budget
        stages = [get_stage(k)(get_stage(k).Params(), CTX) for k in ("decode", "encode")]
        assert Engine(stages, CTX, commits=None).workers == budget.workers == 1
        assert Engine(stages, CTX, commits=None, workers=3).workers == 3
    finally:
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])
        threads._applied, threads._follower = before[2], before[3]


def test_validate_prints_the_budget(tmp_path: Path) -> None:
    make_photos(tmp_path / "photos", 1)
    result = run_cli_here("validate", str(_job(tmp_path, "threads: 3")))
    assert result.returncode == 0, result.stderr
    assert ("threads   3 cores (job 'threads'): torch 2 (+1 inter-op), workers 1 with 1 flow and "
            "1 decoder thread each") in result.stdout
