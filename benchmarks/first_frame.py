"""Run ``run_pipeline.py ARGS`` and print the seconds from its spawn to its first decoded frame.

    STYLIZE_T0=$(date +%s.%N) python benchmarks/first_frame.py JOB.yaml --restart -q

``STYLIZE_T0``: the parent's ``time.time()`` just before it started this process.  The
pipeline runs as ``run_pipeline.py`` does (``pipeline.cli.entry``), with the video source's
frame reader wrapped to note the first frame it yields (the wrapper costs a generator).  Prints
``first_frame S`` on stdout (``benchmarks/render_box.py`` reads it): what a job without a
model spends before its first frame decodes (the goal: under half a second).
"""
from __future__ import annotations

import gc
import os
import sys
import time

T0 = float(os.environ["STYLIZE_T0"])
gc.disable()  # as run_pipeline.py does before its first import
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import pipeline.sources.videos as videos  # noqa: E402  (imported by the run anyway)

_read_frames = videos.read_frames
_seen: list[float] = []


def _noting_first(*args, **kwargs):
    for frame in _read_frames(*args, **kwargs):
        if not _seen:
            _seen.append(time.time() - T0)
        yield frame


videos.read_frames = _noting_first
from pipeline.cli import entry  # noqa: E402

sys.argv = ["run_pipeline.py", *sys.argv[1:]]
try:
    entry()
except SystemExit as exc:
    if exc.code:
        raise
print(f"first_frame {_seen[0]:.3f}" if _seen else "first_frame none")
