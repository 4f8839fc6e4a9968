"""What does the Ray backend cost over the one-process engine, on this machine?

    python benchmarks/ray_overhead.py [--images 300] [--size 96] [--seconds 2] [--workers N] [--repeat 1]
        [--jobs images,video]

Two jobs, each run in a fresh ``python run_pipeline.py`` process: as is (the one-process
engine, thread budget auto), with ``--ray local`` (a local Ray started by the run, its
default: one actor with all this machine's CPUs) and, with ``--workers N``, also with
``--ray-workers N`` (N actors sharing the CPUs: the same cores as the one process); with
``--repeat R`` each R times, interleaved, and the median shown:

  images  ``--images`` small pictures (crops of ../shared/media/photos, ``--size`` px wide)
          through the Starry Night model, PNG out
  video   the film job (Starry Night, temporal_smooth, tv_denoise, libx264) on the first
          ``--seconds`` of the Big Buck Bunny clip at short side 180

For each it prints the run's own wall time (its summary line: the work, after Ray and
the actors are up), the whole command's time (Ray's start and the actors' stage
building included), the per-unit overhead of the Ray path on the work's wall time,
the ratio, and whether both runs wrote the same bytes.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "media"
sys.path.insert(0, str(REPO / "benchmarks"))


def make_images(folder: Path, count: int, width: int) -> None:
    photos = sorted(p for p in (SHARED / "photos").iterdir() if p.suffix.lower() in (".jpg", ".png"))
    folder.mkdir(parents=True)
    height = width * 3 // 4
    for i in range(count):
        image = cv2.imread(str(photos[i % len(photos)]))
        h, w = image.shape[:2]
        step = max(1, (min(h, w) - 64) // 16)
        y, x = (i * step) % max(1, h - 4 * height), (i * 7 * step) % max(1, w - 4 * width)
        crop = image[y:y + 4 * height, x:x + 4 * width]
        cv2.imwrite(str(folder / f"img{i:04d}.png"), cv2.resize(crop, (width, height),
                                                                interpolation=cv2.INTER_AREA))


def image_job(folder: Path, sources: Path, out: Path) -> Path:
    path = folder / f"{out.name}.yaml"
    path.write_text(f"""name: {out.name}
sources:
  - images: {sources}
output: {out}
stages:
  - decode
  - fast_style: {{weights: {REPO}/weights/starry_night.safetensors}}
  - encode: {{image: {{format: png}}}}
""")
    return path


def run(job: Path, extra: list[str]) -> tuple[float, float, int, str]:
    """(the run's wall time, the command's, units done, the summary line); from the start."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, str(REPO / "run_pipeline.py"), str(job), "--quiet",
                             "--restart", *extra], cwd=REPO, capture_output=True, text=True, timeout=1800)
    total = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{job.name} {' '.join(extra)} failed ({result.returncode}):\n{result.stderr}")
    line = next(line for line in result.stderr.splitlines() if ": finished: " in line)
    wall = float(re.search(r"wall ([\d.]+) s", line).group(1))
    done = int(re.search(r"done (\d+)", line).group(1))
    return wall, total, done, line.strip()


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        h.update(path.relative_to(folder).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--jobs", default="images,video", help="which of the two jobs to run")
    args = ap.parse_args()
    import busy_machine

    ways = {"--ray local": ["--ray", "local"]}
    if args.workers:
        ways[f"--ray-workers {args.workers}"] = ["--ray", "local", "--ray-workers", str(args.workers)]
    with tempfile.TemporaryDirectory(prefix="ray_overhead_") as tmp:
        tmp = Path(tmp)
        os.environ["HOME"] = str(tmp / "home")  # Ray's token goes under HOME
        make_images(tmp / "images", args.images, args.size)
        (tmp / "clip").mkdir()
        busy_machine.trim(SHARED / "clips" / "bigbuckbunny.mp4", tmp / "clip" / "clip.mp4", args.seconds)
        jobs = {
            "images": lambda name: image_job(tmp, tmp / "images", tmp / name),
            "video": lambda name: busy_machine.job_file(tmp, tmp / "clip", tmp / name, 180),
        }
        print(f"{len(os.sched_getaffinity(0))} cores")
        ways = {"one process": [], **ways}
        for kind, make in jobs.items():
            if kind not in args.jobs.split(","):
                continue
            runs: dict[str, list] = {way: [] for way in ways}
            for _ in range(args.repeat):
                for n, (way, extra) in enumerate(ways.items()):
                    runs[way].append(run(make(f"{kind}{n}"), extra))
            med = {way: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs))
                   for way, rs in runs.items()}
            units = runs["one process"][0][2]
            print(f"{kind}: {units} units, median of {args.repeat}")
            for n, way in enumerate(ways):
                same = digest(tmp / f"{kind}0") == digest(tmp / f"{kind}{n}")
                walls = " ".join(f"{r[0]:.1f}" for r in runs[way])
                print(f"  {way:18s} run {med[way][0]:7.1f} s   command {med[way][1]:7.1f} s   "
                      f"(runs: {walls}) | {runs[way][-1][3]}")
                if n:
                    base = med["one process"]
                    print(f"    overhead per unit {(med[way][0] - base[0]) / units * 1000:+.1f} ms of "
                          f"run time; ratio to one process {med[way][0] / base[0]:.2f} (run), "
                          f"{med[way][1] / base[1]:.2f} (command); same bytes: {same}", flush=True)


if __name__ == "__main__":
    main()
