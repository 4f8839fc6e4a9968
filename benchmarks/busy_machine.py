"""Does the thread budget (pipeline/machine/threads.py) hold up when another process wants the CPU?

    python benchmarks/busy_machine.py [--clip ../shared/media/clips/bigbuckbunny.mp4]
        [--seconds 2] [--short-side 180] [--hogs 2] [--repeat 1]

Runs the film job (``jobs/film_vangogh.yaml``: Starry Night, temporal_smooth,
tv_denoise, libx264) on the first ``--seconds`` of ``--clip`` resized to
``--short-side`` (320x180 for the default clip), three ways:

  budget   the default: pipeline/machine/threads.py splits the cores, torch's share
           following other processes' load
  fixed    the budget's fixed split (torch + workers <= cores, whatever the
           load), as when /proc/stat cannot be read
  omp1     the default with OMP_NUM_THREADS=1 in the environment
  old      no budget: torch, OpenCV and the workers sized as before the budget
           (torch and OpenCV left at their own defaults, ``min(4, cpu_count)``
           workers), by replacing ``threads.apply`` in the child process

each once on an idle machine and once next to ``--hogs`` CPU-bound processes
(``python -c "while True: pass"``, started before the run and killed after),
and prints frames/s (frames written / the run's wall time, as the run's own
summary line reports it) for all eight (with ``--repeat N``, each way N times,
interleaved, and the median shown), and whether every run wrote the same
bytes.  Each run is a fresh ``python run_pipeline.py`` process.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from fractions import Fraction
from pathlib import Path

import av

REPO = Path(__file__).resolve().parents[1]
OLD = """
import os, sys
from pipeline.machine import threads
def apply(threads_=None, workers=None):  # the behaviour before the budget: nothing set
    b = threads.Budget(cores=os.cpu_count() or 1, source="old", torch=0, interop=0, opencv=0,
                       workers=workers or max(1, min(4, os.cpu_count() or 1)))
    threads._applied = b
    return b
threads.apply = apply
from pipeline.cli import main
sys.argv = ["run_pipeline.py", *sys.argv[1:]]
main()
"""
FIXED = """
import sys
from pipeline.machine import threads
threads.load_readable = lambda: False  # the budget's fixed split: torch + workers <= cores
from pipeline.cli import main
sys.argv = ["run_pipeline.py", *sys.argv[1:]]
main()
"""
WAYS = {"budget": ({}, None), "fixed": ({}, FIXED), "omp1": ({"OMP_NUM_THREADS": "1"}, None),
        "old": ({}, OLD)}


def trim(src: Path, dst: Path, seconds: float) -> None:
    """The first ``seconds`` of ``src``, packets copied (the clip starts on a keyframe)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams if s.type in ("video", "audio")}
        for packet in inp.demux(*[s for s in inp.streams if s.index in streams]):
            if packet.dts is None:
                continue
            if packet.pts is not None and packet.pts * packet.time_base >= Fraction(seconds).limit_denominator():
                continue
            packet.stream = streams[packet.stream.index]
            out.mux(packet)


def job_file(folder: Path, clip_dir: Path, out: Path, short_side: int) -> Path:
    text = (REPO / "jobs/film_vangogh.yaml").read_text()
    text = text.replace("- videos: demo_clips/", f"- videos: {clip_dir}")
    text = re.sub(r"output: .*", f"output: {out}", text)
    text = re.sub(r"short_side: \d+", f"short_side: {short_side}", text)
    text = text.replace("../weights/", f"{REPO}/weights/")
    path = folder / f"{out.name}.yaml"
    path.write_text(text)
    return path


def run_once(job: Path, env_extra: dict[str, str], code: str | None) -> tuple[float, int, str]:
    env = {**os.environ, **env_extra}
    cmd = [sys.executable, "-c", code, str(job), "--quiet"] if code else \
          [sys.executable, str(REPO / "run_pipeline.py"), str(job), "--quiet"]
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise SystemExit(f"{job.name} failed ({result.returncode}):\n{result.stderr}")
    wall = float(re.search(r"wall ([\d.]+) s", result.stderr).group(1))
    frames = int(re.search(r"\((\d+) frames\)", result.stderr).group(1))
    return wall, frames, result.stderr.strip().splitlines()[-1]


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*.mp4")):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clip", type=Path, default=REPO.parent / "shared/media/clips/bigbuckbunny.mp4")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--short-side", type=int, default=180)
    ap.add_argument("--hogs", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1, help="runs per way and load; the median is shown")
    args = ap.parse_args()

    from pipeline.machine.threads import current
    print(f"cores: {len(os.sched_getaffinity(0))} in affinity; budget: {current().describe()}")
    with tempfile.TemporaryDirectory(prefix="busy_machine_") as tmp:
        tmp = Path(tmp)
        (tmp / "clip").mkdir()
        trim(args.clip, tmp / "clip" / "clip.mp4", args.seconds)
        rows: dict[str, dict[str, list[float]]] = {}
        digests: set[str] = set()
        for load, _ in [(load, n) for load in ("idle", "busy") for n in range(args.repeat)]:
            for way, (env_extra, code) in WAYS.items():
                out = tmp / f"out_{way}_{load}"
                shutil.rmtree(out, ignore_errors=True)
                job = job_file(tmp, tmp / "clip", out, args.short_side)
                hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                        for _ in range(args.hogs if load == "busy" else 0)]
                try:
                    wall, frames, line = run_once(job, env_extra, code)
                finally:
                    for hog in hogs:
                        hog.kill()
                        hog.wait()
                rows.setdefault(way, {}).setdefault(load, []).append(frames / wall)
                digests.add(digest(out))
                print(f"  {way:7s} {load}: {frames} frames in {wall:.1f} s  | {line}", flush=True)
        print()
        print(textwrap.dedent(f"""\
            frames/s, film job, {args.seconds:g} s of {args.clip.name} at short side {args.short_side}, \
{len(os.sched_getaffinity(0))} cores, {args.hogs} CPU-bound processes when busy, \
median of {args.repeat}"""))
        print(f"{'way':8s} {'idle':>8s} {'busy':>8s}")
        for way, r in rows.items():
            print(f"{way:8s} {statistics.median(r['idle']):8.2f} {statistics.median(r['busy']):8.2f}  "
                  f"(all: {' '.join(f'{v:.2f}' for v in r['idle'])} | "
                  f"{' '.join(f'{v:.2f}' for v in r['busy'])})")
        print(f"output bytes: {'identical in all runs' if len(digests) == 1 else f'{len(digests)} different'}")


if __name__ == "__main__":
    main()
