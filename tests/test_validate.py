"""validate --estimate: a rough device time from a few timed frames, scaled to every unit."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, make_photos, run_cli_here, write_job


def test_estimate_scales_the_timed_frame_to_every_units_pixels(tmp_path: Path,
                                                               style_weights: Path) -> None:
    from pipeline.job.build import prepare
    from pipeline.job.estimate import estimate

    make_photos(tmp_path / "photos", 3, size=(24, 32))
    make_photos(tmp_path / "photos" / "big", 1, size=(48, 64), seed=7)
    job = write_job(tmp_path, f"""
        sources: [{{images: photos/}}]
        output: out
        stages: [{{fast_style: {{weights: {style_weights}}}}}]
        """)
    e = estimate(prepare(job))
    assert e.pixels == 3 * 24 * 32 + 48 * 64
    assert e.seconds > 0 and e.warm_up >= 0  # the rate times the pixels, and the start once
    assert abs(e.seconds - (e.per_megapixel * e.pixels / 1e6 + e.warm_up)) < 1e-9
    result = run_cli_here("validate", str(job), "--estimate")
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("estimate"))
    assert re.search(r"about [\d.]+ s of device work on cpu for 0\.0 Mpx \([\d.e+-]+ s per Mpx, "
                     r"timed on img000\.png at 64x48, the median of several warm calls", line), line


def _seconds(text: str) -> float:
    """'1.4 s', '2 min 08 s', '13 min', '1 h 05 min' -> seconds."""
    total = 0.0
    for number, unit in re.findall(r"([\d.]+) (h|min|s)\b", text):
        total += float(number) * {"h": 3600, "min": 60, "s": 1}[unit]
    return total


@pytest.mark.parametrize("loaded", [False, True], ids=["quiet", "a_busy_process_beside"])
def test_the_estimate_is_within_a_factor_of_2_of_the_shipped_demo_and_film_runs(tmp_path: Path,
                                                                              loaded: bool) -> None:
    """Issue 29 item 2: on a loaded machine the film job was estimated at about 10 minutes and
    ran in 22 to 32 s.  The shipped jobs as they are (copied, so their outputs go to tmp_path),
    each estimated and then run, in processes of their own, while nothing else runs or while
    another process keeps a core busy (two took this test to 95 s; measured by hand with four
    beside: film estimated 128 to 133 s, ran 104 to 115 s)."""
    (tmp_path / "jobs").mkdir()
    for name in ("demo.yaml", "film_vangogh.yaml", "demo_inputs", "demo_clips"):
        source = REPO / "jobs" / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / "jobs" / name)
    (tmp_path / "weights").symlink_to(REPO / "weights")
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(loaded)]
    try:
        for job in ("demo.yaml", "film_vangogh.yaml"):
            path = str(tmp_path / "jobs" / job)
            shown = subprocess.run([sys.executable, str(REPO / "run_pipeline.py"), "validate", path,
                                    "--estimate"], capture_output=True, text=True, timeout=300)
            line = next(line for line in shown.stdout.splitlines() if line.startswith("estimate"))
            estimated = _seconds(line.split("about ")[1].split(" of device work")[0])
            ran = subprocess.run([sys.executable, str(REPO / "run_pipeline.py"), path, "-q"],
                                 capture_output=True, text=True, timeout=600)
            assert ran.returncode == 0, ran.stderr
            wall = float(re.search(r"wall ([\d.]+) s", ran.stderr)[1])
            print(f"{job}: estimated {estimated} s, ran {wall} s")  # pytest -s shows the figures
            assert 0.5 <= wall / estimated <= 2, f"{job}: estimated {estimated} s, ran {wall} s ({line})"
    finally:
        for process in busy:
            process.kill()
            process.wait()


def test_a_slow_start_does_not_set_the_estimate(tmp_path: Path, style_weights: Path, monkeypatch) -> None:
    """Issue 29 item 2's weak point: one warm-up call, then the mean of three, took calls still
    warming up (2.1 s against 0.14 s once warm) for the rate.  Here the chain's first three calls
    take 0.3 s and the rest 0.01 s: the rate must be the warm one, the slow start counted once."""
    import time as clock

    from pipeline.job import estimate as estimate_module
    from pipeline.job.build import prepare

    make_photos(tmp_path / "photos", 2, size=(24, 32))
    job = write_job(tmp_path, f"""
        sources: [{{images: photos/}}]
        output: out
        stages: [{{fast_style: {{weights: {style_weights}}}}}]
        """)
    calls = []

    def chain(stages, x, keys):
        calls.append(1)
        clock.sleep(0.3 if len(calls) <= 3 else 0.01)
        return x

    monkeypatch.setattr(estimate_module, "run_stages", chain)
    e = estimate_module.estimate(prepare(job))
    per_picture = e.per_megapixel * 24 * 32 / 1e6
    assert per_picture < 0.05, f"{per_picture:.3f} s a picture: the slow start set the rate"
    assert 0.5 < e.warm_up < 1.5  # the three slow calls' extra, once
    assert abs(e.seconds - (2 * per_picture + e.warm_up)) < 1e-6
