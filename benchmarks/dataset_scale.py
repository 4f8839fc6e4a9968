"""A dataset of many tiny images: planning, a full run and an already-done rerun, per 1000 files.

    python benchmarks/dataset_scale.py [--count 100000] [--per-folder 1000] [--keep DIR]
                                       [--rerun-only]

Builds ``--count`` 8x8 PNG images (and a YOLO ``.txt`` label beside every tenth)
in folders of ``--per-folder``, then measures, in seconds per thousand images:

- ``os.walk`` over the tree: the floor any planner pays to see the files;
- planning: ``prepare(job)`` (the job parsed, sources walked with an ``exclude``
  pattern, sidecars matched, outputs planned and checked), as ``run`` and
  ``validate`` do;
- a full run with a cheap chain (``decode``, ``encode: png``; the labels carried),
  in process as ``run_pipeline.py run`` does: prepare, open the ledger, run, the
  manifest;
- the rerun when everything is done: the same, with nothing left to do;
- the peak resident memory of the process after each phase (``ru_maxrss``), and its
  growth per unit above the process's before planning: flat means the per-file state
  is small (the plan's listings and the 64-bit key hashes, about 50 bytes a file).

The tree goes to a temporary folder (or ``--keep DIR``, reused when it already holds
the same count; with ``--rerun-only`` its outputs too: only the already-done rerun is
measured, so the peak memory is that of a rerun alone, in a fresh process).  Nothing here reads ``../shared``.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.machine import threads  # noqa: E402
from pipeline.job.build import prepare, thread_args  # noqa: E402
from pipeline.engine import run_units  # noqa: E402
from pipeline.record.ledger import Ledger  # noqa: E402
from pipeline.job.report import write_outputs_manifest  # noqa: E402


def build_tree(root: Path, count: int, per_folder: int) -> None:
    marker = root / f".built-{count}-{per_folder}"
    if marker.exists():
        return
    rng = np.random.default_rng(0)
    tiles = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(16)]
    blobs = []
    for tile in tiles:  # encode 16 once, write many: the benchmark is about files, not pixels
        path = root / "tile.png"
        Image.fromarray(tile).save(path)
        blobs.append(path.read_bytes())
        path.unlink()
    for i in range(count):
        folder = root / "data" / f"part{i // per_folder:04d}"
        if i % per_folder == 0:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"img{i:07d}.png").write_bytes(blobs[i % len(blobs)])
        if i % 10 == 0:
            (folder / f"img{i:07d}.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (root / "data" / "thumbs").mkdir(exist_ok=True)
    (root / "data" / "thumbs" / "skip.png").write_bytes(blobs[0])
    marker.touch()


def job_file(root: Path) -> Path:
    path = root / "scale.yaml"
    path.write_text("sources:\n  - images: data/\n    sidecars: same_stem\n"
                    "    exclude: [\"**/thumbs/**\"]\noutput: out\ndevice: cpu\n"
                    "stages:\n  - decode\n  - encode: {image: {format: png}}\n")
    return path


def run_once(job: Path) -> tuple[float, float, int, int]:
    """(seconds to plan, seconds in all, units planned, units done) of one run, in process."""
    t0 = time.perf_counter()
    prepared = prepare(job)
    planned = time.perf_counter() - t0
    threads.apply(**thread_args(prepared.job, prepared.stages))
    ledger = Ledger(prepared.job.output, prepared.fingerprint,
                    keys=(u.key for u in prepared.plan.units))
    try:
        pending = prepared.plan.units.where(lambda u: not ledger.is_done(u.key))
        summary = run_units(prepared.stages, prepared.ctx, ledger, pending)
        write_outputs_manifest(prepared, ledger, prepared.fingerprint)
    finally:
        ledger.close()
    if summary.failures:
        raise SystemExit(f"failures: {summary.failures[:3]}")
    return planned, time.perf_counter() - t0, len(prepared.plan.units), summary.done


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--per-folder", type=int, default=1000)
    ap.add_argument("--keep", type=Path, help="build (or reuse) the tree here")
    ap.add_argument("--rerun-only", action="store_true",
                    help="with --keep of a tree already run: measure the done rerun alone")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        build_tree(root, args.count, args.per_folder)
        print(f"tree: {args.count} images of 8x8 px in folders of {args.per_folder}, a label beside "
              f"every tenth ({time.perf_counter() - t0:.1f} s to build)")
        k = args.count / 1000
        t0 = time.perf_counter()
        walked = sum(len(files) for _, _, files in os.walk(root / "data"))
        walk_s = time.perf_counter() - t0
        print(f"os.walk (the floor)       {walk_s / k:8.4f} s per 1000 images  "
              f"({walk_s:.2f} s, {walked} files)")
        job = job_file(root)
        base = peak_mib()
        print(f"peak memory before planning (the process, torch imported): {base:.0f} MiB")
        phases = ("already-done rerun",) if args.rerun_only else ("full run", "already-done rerun")
        for name in phases:
            plan_s, total_s, units, done = run_once(job)
            print(f"{name:26s}{total_s / k:8.4f} s per 1000 images  ({total_s:.2f} s; planning "
                  f"{plan_s / k:.4f} s per 1000: {plan_s:.2f} s for {units} units; {done} done; "
                  f"peak memory {peak_mib():.0f} MiB, {(peak_mib() - base) * 1024 ** 2 / units:.0f} "
                  f"bytes per unit above the start)")


if __name__ == "__main__":
    main()
