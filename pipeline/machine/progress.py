"""How a run shows its progress: bars on a terminal, plain lines in a log, JSON lines for schedulers.

``Bars`` draws tqdm bars, which turn themselves off without a terminal; ``Reporter`` then
writes a line such as ``film: 2/5 units, 1,234/9,876 frames, 3.2 frames/s, 45 min left,
1 failed`` every ``interval`` seconds (from a daemon thread), and/or appends the same figures
as one JSON object a line to a file, with a last one marked ``"final": true``.  Both take the
the engine's ``Progress`` calls from any thread; ``Tee`` hands them to several.
"""
from __future__ import annotations

import json
import os
import threading
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm import tqdm


class Progress:
    """What the engine reports as it goes; the CLI draws bars from it.  Calls come from any thread."""

    def add_total(self, frames: int) -> None:
        """More frames to do than first announced (clips are probed as they start);
        negative for frames that will not come (a clip that failed to start)."""

    def clip_started(self, name: str, total: int | None, done: int) -> None: ...

    def frames_done(self, n: int, clip: str | None = None) -> None: ...

    def unit_finished(self, ok: bool, clip: str | None = None) -> None:
        """A unit is over; a clip's frames not done by now (it failed, or its
        header's frame count was off) leave the job's total."""

    def note(self, text: str) -> None:
        """A line for the user as the run goes ("pan.mp4: resuming at frame 96 of 288 ...")."""


class Bars(Progress):
    """One bar over the job (frames; an image is one frame) and one per clip in flight."""

    def __init__(self, name: str, images: int, quiet: bool) -> None:
        self._disable = quiet or None  # None: tqdm turns itself off without a terminal
        self._job = tqdm(total=images, unit="frame", desc=name, disable=self._disable,
                         dynamic_ncols=True)
        self._clips: dict[str, tqdm] = {}
        self._free_rows: list[int] = []
        self._failed = 0
        self._lock = threading.Lock()

    def add_total(self, frames: int) -> None:
        with self._lock:
            self._job.total = (self._job.total or 0) + frames
            self._job.refresh()

    def clip_started(self, name: str, total: int | None, done: int) -> None:
        with self._lock:
            row = self._free_rows.pop(0) if self._free_rows else len(self._clips) + 1
            self._clips[name] = tqdm(total=total, initial=done, unit="frame", desc=f"  {name}",
                                     position=row, leave=False, disable=self._disable,
                                     dynamic_ncols=True)

    def frames_done(self, n: int, clip: str | None = None) -> None:
        with self._lock:
            self._job.update(n)
            if clip in self._clips:
                self._clips[clip].update(n)

    def unit_finished(self, ok: bool, clip: str | None = None) -> None:
        with self._lock:
            if not ok:
                self._failed += 1
                self._job.set_postfix(failed=self._failed, refresh=False)
            bar = self._clips.pop(clip, None) if clip else None
            if bar is not None and bar.total is not None and bar.n != bar.total:
                # frames that will not come (a failed clip; a header's count that was off):
                # the job bar still ends at 100% of what was done
                self._job.total = max(self._job.n, (self._job.total or 0) + bar.n - bar.total)
                self._job.refresh()
            if bar is not None:
                self._free_rows.append(bar.pos if bar.pos > 0 else -bar.pos)
                bar.close()

    def note(self, text: str) -> None:
        if not self._job.disable:  # without bars the plain log (Reporter) says it
            with self._lock:
                tqdm.write(text, file=sys.stderr)

    def close(self) -> None:
        for bar in self._clips.values():
            bar.close()
        self._job.close()


class Reporter(Progress):
    """Counts units and frames; every ``interval`` seconds writes a line (``log``) and/or
    appends a JSON object (``json_path``).  ``clock`` (seconds, monotonic) and ``wall``
    (epoch seconds) are there for tests; ``tick()`` reports once, ``start()`` starts the timer."""

    def __init__(self, name: str, units: int, images: int, *, interval: float = 30.0,
                 log: Callable[[str], None] | None = None, json_path: Path | None = None,
                 skipped: int = 0,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.name, self.interval, self._log = name, interval, log
        self.skipped = skipped  # units an earlier run did: said at the start
        self._clock, self._wall = clock, wall
        self._lock = threading.Lock()  # the counts
        self._io_lock = threading.Lock()  # the writes: one line at a time, none after close
        self._start = clock()
        self.units_total, self.units_done, self.failed = units, 0, 0
        self.frames_total, self.frames = images, 0  # an image is one frame
        self._clips: dict[str, list] = {}  # name -> [done, total]: a clip's frames, to settle its end
        self._json: int | None = None
        if json_path is not None:  # appended whole line by line: readers never see half a line
            self._json = os.open(json_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- Progress -----------------------------------------------------------
    def add_total(self, frames: int) -> None:
        with self._lock:
            self.frames_total += frames

    def clip_started(self, name: str, total: int | None, done: int) -> None:
        with self._lock:
            self._clips[name] = [done, total]

    def frames_done(self, n: int, clip: str | None = None) -> None:
        with self._lock:
            self.frames += n
            if clip in self._clips:
                self._clips[clip][0] += n

    def note(self, text: str) -> None:
        if self._log is not None:
            with self._io_lock:
                self._log(text)

    def unit_finished(self, ok: bool, clip: str | None = None) -> None:
        with self._lock:
            if ok:
                self.units_done += 1
            else:
                self.failed += 1
            done, total = self._clips.pop(clip, (0, None)) if clip else (0, None)
            if total is not None and done != total:  # frames that will not come, or came unannounced
                self.frames_total = max(self.frames, self.frames_total + done - total)

    # -- reporting ----------------------------------------------------------
    def figures(self) -> dict:
        """What is done so far, as written to the JSON file."""
        with self._lock:
            elapsed = max(0.0, self._clock() - self._start)
            fps = self.frames / elapsed if elapsed > 0 else 0.0
            left = max(0, self.frames_total - self.frames)
            return {"time": round(self._wall(), 3), "job": self.name, "elapsed_s": round(elapsed, 1),
                    "units_done": self.units_done, "units_total": self.units_total,
                    "frames_done": self.frames, "frames_total": self.frames_total,
                    "fps": round(fps, 3), "eta_s": round(left / fps) if fps > 0 else None,
                    "failed": self.failed}

    def line(self, f: dict | None = None) -> str:
        """``name: 2/5 units, 1,234/9,876 frames, 3.2 frames/s, 45 min left, 1 failed``"""
        f = f or self.figures()
        fps = f["fps"]
        parts = [f"{f['units_done']}/{f['units_total']} units",
                 f"{f['frames_done']:,}/{f['frames_total']:,} frames",
                 f"{fps:.1f} frames/s" if fps >= 1 or fps == 0 else f"{fps:.2g} frames/s",
                 "time left unknown" if f["eta_s"] is None else f"{duration(f['eta_s'])} left"]
        if f["failed"]:
            parts.append(f"{f['failed']} failed")
        return f"{self.name}: " + ", ".join(parts)

    def tick(self, final: bool = False) -> None:
        f = self.figures()
        with self._io_lock:
            if self._log is not None and not final:
                self._log(self.line(f))
            if self._json is not None:
                data = (json.dumps({**f, "final": final}) + "\n").encode()
                try:
                    os.write(self._json, data)  # one write with O_APPEND: the line lands whole
                except OSError:  # a full disk: the run matters more than its progress file
                    self._close_json()

    def _close_json(self) -> None:
        if self._json is not None:
            os.close(self._json)
            self._json = None

    def start(self) -> Reporter:
        """Say what is to do (in the log) and start reporting every ``interval`` seconds."""
        if self._log is not None:
            n = self.units_total
            skipping = f", skipping {self.skipped:,} done" if self.skipped else ""
            self._log(f"{self.name}: {n:,} unit{'s' if n != 1 else ''} to do{skipping}, first "
                      f"progress in {self._first_wait():g} s, then every {self.interval:g} s")
        if self._thread is None and (self._log is not None or self._json is not None):
            self._thread = threading.Thread(target=self._loop, name="progress-log", daemon=True)
            self._thread.start()
        return self

    def _first_wait(self) -> float:
        return min(self.interval, FIRST_LINE_S)

    def _loop(self) -> None:
        # The first line soon: under nohup a 22 s job logged nothing but its first line before
        if self._stopping.wait(self._first_wait()):
            return
        self.tick()
        while not self._stopping.wait(self.interval):
            self.tick()

    def close(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.tick(final=True)  # the JSON file's last line; nothing in the log
        with self._io_lock:
            self._close_json()


FIRST_LINE_S = 5.0  # the first progress line, whatever --log-every says: a log shows the run began


class Tee(Progress):
    """Hands every call to each of ``parts``; ``close()`` closes them all."""

    def __init__(self, parts: Sequence[Progress]) -> None:
        self.parts = list(parts)

    def add_total(self, frames: int) -> None:
        for p in self.parts:
            p.add_total(frames)

    def clip_started(self, name: str, total: int | None, done: int) -> None:
        for p in self.parts:
            p.clip_started(name, total, done)

    def frames_done(self, n: int, clip: str | None = None) -> None:
        for p in self.parts:
            p.frames_done(n, clip)

    def unit_finished(self, ok: bool, clip: str | None = None) -> None:
        for p in self.parts:
            p.unit_finished(ok, clip)

    def note(self, text: str) -> None:
        for p in self.parts:
            p.note(text)

    def close(self) -> None:
        for p in self.parts:
            getattr(p, "close", lambda: None)()


def duration(seconds: float) -> str:
    """``45 s``, ``1 min 29 s``, ``12 min``, ``3 h 05 min``: seconds while they matter (a
    whole "1 min" for 89 s was a third short)."""
    if seconds < 59.5:
        return f"{round(seconds)} s"
    if seconds < 599.5:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min {rest:02d} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"
