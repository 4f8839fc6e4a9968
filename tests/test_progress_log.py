"""Progress without a terminal: plain lines in the log, JSON lines for schedulers, and an
interrupted run's summary that counts the segments it saved."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from pipeline.machine.progress import Reporter, duration
from tests.conftest import REPO, make_photos, write_job
from tests.test_run_video import _job, _kill_mid_video, _ledger, make_clip

KEYS = {"time", "job", "units_done", "units_total", "frames_done", "frames_total", "fps", "eta_s",
        "failed", "final"}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_line_counts_units_frames_rate_time_left_and_failures() -> None:
    clock, lines = Clock(), []
    r = Reporter("film", units=5, images=2, log=lines.append, clock=clock, wall=lambda: 1e9)
    assert r.line() == "film: 0/5 units, 0/2 frames, 0.0 frames/s, time left unknown"
    r.add_total(100)  # a clip probed: 100 frames
    r.clip_started("a.mp4", 100, 0)
    r.frames_done(1), r.unit_finished(True)
    r.frames_done(1), r.unit_finished(True)
    r.frames_done(30, "a.mp4")
    clock.now += 10  # 32 frames in 10 s, 70 to go
    r.tick()
    assert lines == ["film: 2/5 units, 32/102 frames, 3.2 frames/s, 22 s left"]
    r.unit_finished(False, "a.mp4")  # the clip fails after 30 of its 100 frames: they leave the total
    assert r.line() == "film: 2/5 units, 32/32 frames, 3.2 frames/s, 0 s left, 1 failed"
    r.close()


def test_time_left_reads_in_minutes_and_hours_and_big_counts_get_commas() -> None:
    clock = Clock()
    r = Reporter("film_vangogh", units=5, images=0, clock=clock)
    r.add_total(9876)
    r.frames_done(1234)
    clock.now += 385.6  # 3.2 frames/s: 8,642 frames left take 45 minutes
    assert r.line() == "film_vangogh: 0/5 units, 1,234/9,876 frames, 3.2 frames/s, 45 min left"
    assert [duration(s) for s in (0, 59, 61, 89, 599, 601, 3599, 3600, 2 * 3600 + 5 * 60 + 10)] == [
        "0 s", "59 s", "1 min 01 s", "1 min 29 s", "9 min 59 s", "10 min", "1 h 00 min", "1 h 00 min",
        "2 h 05 min"]


def test_json_lines_are_appended_with_a_final_one(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"earlier": "run"}\n')  # appended to, never truncated
    clock = Clock()
    r = Reporter("job", units=2, images=2, json_path=path, clock=clock, wall=lambda: 1e9)
    r.frames_done(1), r.unit_finished(True)
    clock.now += 2
    r.tick()
    r.frames_done(1), r.unit_finished(True)
    r.close()
    r.close()  # twice is harmless: one final line
    earlier, *records = [json.loads(line) for line in path.read_text().splitlines()]
    assert earlier == {"earlier": "run"} and len(records) == 2
    assert all(set(rec) >= KEYS for rec in records)
    assert records[0] == {**records[0], "units_done": 1, "frames_done": 1, "fps": 0.5, "eta_s": 2,
                          "final": False, "job": "job", "time": 1e9}
    assert records[1]["final"] is True and records[1]["units_done"] == records[1]["units_total"] == 2


def test_the_timer_reports_until_closed() -> None:
    lines: list[str] = []
    r = Reporter("job", units=1, images=1, interval=0.02, log=lines.append).start()
    deadline = time.monotonic() + 10
    while len(lines) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    r.close()
    assert lines[0] == "job: 1 unit to do, first progress in 0.02 s, then every 0.02 s"
    assert len(lines) >= 3 and lines[1].startswith("job: 0/1 units, 0/1 frames")
    seen = len(lines)
    time.sleep(0.1)
    assert len(lines) == seen and not r._thread.is_alive()


def test_the_first_line_comes_after_a_few_seconds_whatever_the_interval(monkeypatch) -> None:
    """Issue 29 item 6: under nohup a 22 s job logged only its first line (every 30 s)."""
    from pipeline.machine import progress

    monkeypatch.setattr(progress, "FIRST_LINE_S", 0.05)  # 5 s in a run: the same code path
    lines: list[str] = []
    r = Reporter("job", units=2, images=2, interval=30, log=lines.append, skipped=1_204).start()
    deadline = time.monotonic() + 10
    while len(lines) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    r.close()
    assert lines[0] == "job: 2 units to do, skipping 1,204 done, first progress in 0.05 s, then every 30 s"
    assert len(lines) == 2 and lines[1].startswith("job: 0/2 units, 0/2 frames"), lines


def test_a_rerun_says_what_it_skips_and_where_a_clip_resumes(tmp_path: Path, style_weights: Path) -> None:
    """Issue 29 item 5: a rerun after a kill said nothing of where it started."""
    make_clip(tmp_path / "clips" / "long.mp4", frames=72, size=(96, 64), fps=24, audio=False,
              gop_size=12)
    job = _job(tmp_path, style_weights, output="out", segment=0.25,
               sources="- videos: clips/\n          - images: photos/")
    make_photos(tmp_path / "photos", 2, size=(64, 96))
    _kill_mid_video(job, signal.SIGKILL)
    segments = [r for r in _ledger(tmp_path / "out") if "segment" in r]
    assert segments and not (tmp_path / "out" / "long.mp4").exists()
    rerun = [sys.executable, str(REPO / "run_pipeline.py"), str(job)]
    resumed = subprocess.run(rerun, capture_output=True, text=True, timeout=300)  # a log, no terminal
    assert resumed.returncode == 0, resumed.stderr
    frames = max(r["frames"] for r in segments)
    assert (f"long.mp4: resuming at frame {frames} of 72 ({len(segments)} segment"
            f"{'s' if len(segments) != 1 else ''} committed)") in resumed.stderr, resumed.stderr
    make_photos(tmp_path / "photos" / "more", 1, size=(64, 96))
    again = subprocess.run(rerun, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "1 unit to do, skipping 3 done" in again.stderr, again.stderr


def test_a_job_run_into_a_log_file_logs_progress_lines(tmp_path: Path, style_weights: Path) -> None:
    make_photos(tmp_path / "photos", 30, size=(96, 128))
    job = write_job(tmp_path, f"""
        sources:
          - images: photos/
        output: out
        batch_size: 2
        stages:
          - decode
          - fast_style: {{weights: {style_weights}}}
          - encode
        """)
    log = tmp_path / "log"
    with open(log, "w") as err:  # as with nohup: a file, no terminal
        code = subprocess.run([sys.executable, str(REPO / "run_pipeline.py"), str(job),
                               "--log-every", "0.2", "--progress-json", "p.jsonl"],
                              cwd=tmp_path, stdout=err, stderr=subprocess.STDOUT, timeout=300,
                              check=False,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"}).returncode
    text = log.read_text()
    assert code == 0, text
    progress = re.findall(r"^job: (\d+)/30 units, (\d+)/30 frames, [\d.]+ frames/s, ", text, re.MULTILINE)
    assert len(progress) >= 2, text
    assert [int(u) for u, _ in progress] == sorted(int(u) for u, _ in progress)  # never back
    assert "job: 30 units to do" in text and "finished: done 30" in text
    records = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(records) >= 2 and all(set(rec) >= KEYS for rec in records)
    assert [rec["final"] for rec in records] == [False] * (len(records) - 1) + [True]
    assert records[-1]["units_done"] == records[-1]["units_total"] == 30
    assert records[-1]["frames_done"] == records[-1]["frames_total"] == 30


def test_an_interrupted_run_says_which_segments_it_saved(tmp_path: Path,
                                                         style_weights: Path) -> None:
    make_clip(tmp_path / "clips" / "long.mp4", frames=72, size=(96, 64), fps=24, audio=False,
              gop_size=12)
    job = _job(tmp_path, style_weights, output="out", segment=0.25)
    code, stderr = _kill_mid_video(job, signal.SIGINT)
    records = _ledger(tmp_path / "out")
    assert code == 130 and not any("done" in r for r in records), stderr
    saved = re.search(r"interrupted: done 0 \(and (\d+) segments? of clips in flight saved\)",
                      stderr)
    assert saved, stderr
    assert int(saved[1]) == sum(1 for r in records if "segment" in r) >= 1


def test_help_gives_each_commands_first_sentence_whole() -> None:
    """Issue 29 item 7: click cut "(Gatys et al. 2016)" at its first full stop."""
    shown = subprocess.run([sys.executable, str(REPO / "run_pipeline.py"), "--help"],
                           capture_output=True, text=True)
    text = " ".join(shown.stdout.split())  # lines wrapped at 80 columns
    assert shown.returncode == 0 and "..." not in text.split("Commands:")[1], text
    assert "Stylize one image by optimization (Gatys et al. 2016): slow, highest quality." in text
    assert "Run JOB, or resume it: outputs already committed are skipped." in text


_PROBE = ("import gc, sys\nfrom pipeline.cli import entry\nsys.argv = ['run_pipeline.py'] + sys.argv[1:]\n"
          "try:\n    entry()\nexcept SystemExit:\n    pass\n"
          "print(gc.isenabled(), gc.get_freeze_count(), 'torch' in sys.modules)\n")


def _probe(*args: str) -> tuple[bool, int, bool]:
    """``run_pipeline.py ARGS`` in a process of its own: whether the collector is on at the end,
    how many objects start-up froze, and whether torch was imported."""
    shown = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True,
                           timeout=120, cwd=REPO)
    enabled, frozen, torch_loaded = shown.stdout.split()[-3:]
    return enabled == "True", int(frozen), torch_loaded == "True"


def test_the_command_line_process_freezes_its_start_up_for_the_collector(
        tmp_path: Path, style_weights: Path) -> None:
    """Issue 30: collecting garbage while torch's objects were made cost 0.4 s of a 2.2 s
    start-up; ``entry`` imports with the collector off, and the stage registry imports the
    first stage that computes (and torch with it) the same way; what they made is frozen and the
    command runs with the collector on.  A job that only decodes and encodes never imports torch
    (``--help`` neither)."""
    make_photos(tmp_path / "photos", 1)
    model = write_job(tmp_path, f"""
        sources: [{{images: photos/}}]
        output: out
        stages: [decode, {{fast_style: {{weights: {style_weights}, runtime: torch}}}}, encode]
        """, name="model.yaml")
    enabled, frozen, torch_loaded = _probe("validate", str(model))
    assert enabled and frozen > 100_000 and torch_loaded, (enabled, frozen, torch_loaded)
    plain = write_job(tmp_path, "sources: [{images: photos/}]\noutput: out\nstages: [decode, encode]\n")
    enabled, frozen, torch_loaded = _probe("validate", str(plain))
    assert enabled and 10_000 < frozen < 100_000 and not torch_loaded, (enabled, frozen, torch_loaded)
    enabled, _, torch_loaded = _probe("--help")
    assert enabled and not torch_loaded
