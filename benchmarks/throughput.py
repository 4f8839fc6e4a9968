"""Our pipeline against the way people stylize a video today, on the same clip and model.

    OMP_NUM_THREADS=2 python benchmarks/throughput.py [--frames 60] [--sizes 180] [--smooth]
    python benchmarks/throughput.py --device cuda --sizes 720,1080 [--precision auto] [--repeat 2]

(a) pipeline: the clip through ``decode, resize {short_side: S}, fast_style
    [, temporal_smooth], encode {libx264, crf, preset; audio copy}``, run in
    process (``prepare`` + ``run_units``, as ``run_pipeline.py run`` does);
    frames/s is frames written over ``Summary.wall_s``, and the per-step rates
    are ``Summary.times.rates()`` (frames per busy second of each step).
(b) baseline, as a typical script does it: PyAV decodes every frame to a PNG
    file (cv2.imwrite); then each PNG is read, resized with cv2 INTER_AREA to
    the same size as (a), run through the same TransformerNet in fp32 at batch
    1 on the same device, and written back as a PNG; then the PNGs are encoded
    with PyAV libx264 at the same crf/preset and the clip's frame rate (no
    audio).  Each phase is timed (extract, stylize, encode) and the stylize
    phase is split into read+resize, model (upload, forward, download) and
    write.

Both sides read the same input file: with ``--frames N`` the first N frames
are first cut into a temporary clip (libx264 crf 12 ultrafast, audio copied).
Both run in this one process, so they share torch's thread count
(``--threads`` sets it, and OpenCV's, for both; else OMP_NUM_THREADS / torch's
default).  Model loading is outside both timings; nothing is warmed up on
either side, so with ``--repeat N`` (alternating pipeline, baseline) the best
of N is reported.  The ratio is pipeline fps / baseline fps.

Needs PyAV (``av``) and OpenCV.  The lent GPU machines have OpenCV but not
PyAV: carry its wheel (see the device notes: ``pip download --only-binary=:all:
--python-version 3.12 ... -d .whl av==<version>``, then install it to
/tmp/site at the start of the command, with ``carry: [.whl]``).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import torch
import yaml

from pipeline.job.build import prepare
from pipeline.engine import run_units
from pipeline.record.ledger import Ledger
from pipeline.models.checkpoints import load_fast_style
from pipeline.ops.resize import target_size

REPO = Path(__file__).resolve().parents[1]
PIPELINE_STEPS = ("decode", "flow", "device", "smoothing", "encode")


# --------------------------------------------------------------------------- input clip

def cut_clip(src: Path, dst: Path, frames: int) -> int:
    """The first ``frames`` video frames of ``src`` re-encoded into ``dst`` (libx264 crf 12
    ultrafast), with the audio packets up to the same time copied.  Returns the frames written."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        rate = vin.average_rate or vin.guessed_rate or Fraction(25)
        vout = out.add_stream("libx264", rate=rate)
        vout.width, vout.height, vout.pix_fmt = vin.width, vin.height, "yuv420p"
        vout.options = {"crf": "12", "preset": "ultrafast"}
        ain = inp.streams.audio[0] if inp.streams.audio else None
        aout = out.add_stream_from_template(ain) if ain is not None else None
        cut_s = frames / float(rate)
        written, audio_done = 0, ain is None
        streams = [vin] + ([ain] if ain is not None else [])
        for packet in inp.demux(*streams):
            if packet.stream is vin:
                if written >= frames:
                    if audio_done:
                        break
                    continue
                for frame in packet.decode():
                    if written >= frames:
                        break
                    frame = frame.reformat(format="yuv420p")
                    frame.pts, frame.time_base = written, Fraction(1) / rate
                    for p in vout.encode(frame):
                        out.mux(p)
                    written += 1
            elif not audio_done:
                if packet.dts is None:
                    continue
                if float(packet.pts * packet.time_base) >= cut_s:
                    audio_done = True
                    if written >= frames:
                        break
                    continue
                packet.stream = aout
                out.mux(packet)
        for p in vout.encode(None):
            out.mux(p)
    return written


def clip_facts(path: Path) -> tuple[int, int, int, Fraction, bool]:
    """(width, height, frames, rate, has_audio), frames counted by decoding."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        rate = v.average_rate or v.guessed_rate or Fraction(25)
        n = sum(1 for _ in c.decode(v))
        return v.width, v.height, n, Fraction(rate), bool(c.streams.audio)


# --------------------------------------------------------------------------- (a) pipeline

@dataclass
class Result:
    frames: int
    wall_s: float
    rates: dict[str, float] = field(default_factory=dict)
    notes: str = ""

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else float("nan")


def write_job(folder: Path, clip: Path, out: Path, args, short_side: int, smooth: bool) -> Path:
    stages: list = ["decode", {"resize": {"short_side": short_side, "multiple_of": 4}},
                    {"fast_style": {"weights": str(args.weights.resolve())}}]
    if smooth:
        stages.append({"temporal_smooth": {"strength": 0.8}})
    stages.append({"encode": {"video": {"codec": "libx264", "crf": args.crf, "preset": args.preset},
                              "audio": "copy"}})
    job = {"name": f"throughput_{short_side}{'_smooth' if smooth else ''}",
           "sources": [{"videos": str(clip.resolve())}], "output": str(out.resolve()),
           "device": args.device, "precision": args.precision,
           "batch_size": args.batch_size, "stages": stages}
    path = folder / f"{job['name']}.yaml"
    path.write_text(yaml.safe_dump(job, sort_keys=False))
    return path


def run_pipeline(folder: Path, clip: Path, args, short_side: int, smooth: bool) -> Result:
    out = folder / f"pipeline_{short_side}{'_smooth' if smooth else ''}"
    prepared = prepare(write_job(folder, clip, out, args, short_side, smooth))
    ledger = Ledger(prepared.job.output, prepared.fingerprint, restart=True)
    try:
        summary = run_units(prepared.stages, prepared.ctx, ledger, prepared.plan.units, workers=None)
    finally:
        ledger.close()
    if summary.failures or summary.interrupted or not summary.frames:
        for f in summary.failures:
            print(f"pipeline failed: {f.source} [{f.stage}] {f.reason}", file=sys.stderr)
        if summary.interrupted:
            print("pipeline run interrupted", file=sys.stderr)
        if not summary.frames:
            print("pipeline wrote no frames", file=sys.stderr)
        raise SystemExit(1)
    rates = summary.times.rates()
    join_s = summary.times.seconds.get("join", 0.0)
    notes = (f"{prepared.ctx.precision}, batch {args.batch_size}, "
             f"join {join_s:.2f}s, probe {summary.times.seconds.get('probe', 0.0):.2f}s")
    return Result(summary.frames, summary.wall_s, rates, notes)


# --------------------------------------------------------------------------- (b) baseline

def run_baseline(folder: Path, clip: Path, net: torch.nn.Module, device: torch.device,
                 args, short_side: int, rate: Fraction) -> Result:
    frames_dir, styled_dir = folder / f"frames_{short_side}", folder / f"styled_{short_side}"
    frames_dir.mkdir()
    styled_dir.mkdir()
    start = time.perf_counter()

    # 1. extract: every frame to a PNG
    with av.open(str(clip)) as c:
        n = 0
        for frame in c.decode(video=0):
            n += 1
            cv2.imwrite(str(frames_dir / f"{n:06d}.png"), frame.to_ndarray(format="bgr24"))
    t_extract = time.perf_counter()

    # 2. stylize: one PNG at a time, fp32, batch 1
    read_s = model_s = write_s = 0.0
    paths = sorted(frames_dir.glob("*.png"))
    size = None
    for path in paths:
        t0 = time.perf_counter()
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if size is None:
            size = target_size(bgr.shape[0], bgr.shape[1], short_side=short_side, multiple_of=4)
        if (bgr.shape[0], bgr.shape[1]) != size:
            bgr = cv2.resize(bgr, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        t1 = time.perf_counter()
        with torch.no_grad():
            x = torch.from_numpy(rgb).permute(2, 0, 1).float().unsqueeze(0).to(device)
            y = net(x)[0].clamp(0, 255).cpu()  # .cpu() waits for the GPU
        out = y.permute(1, 2, 0).numpy().astype(np.uint8)
        t2 = time.perf_counter()
        cv2.imwrite(str(styled_dir / path.name), cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
        t3 = time.perf_counter()
        read_s, model_s, write_s = read_s + t1 - t0, model_s + t2 - t1, write_s + t3 - t2
    t_stylize = time.perf_counter()

    # 3. encode the PNG sequence
    with av.open(str(folder / f"baseline_{short_side}.mp4"), "w") as out:
        vs = None
        for path in sorted(styled_dir.glob("*.png")):
            rgb = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            if vs is None:
                vs = out.add_stream("libx264", rate=rate)
                vs.width, vs.height, vs.pix_fmt = rgb.shape[1], rgb.shape[0], "yuv420p"
                vs.options = {"crf": str(args.crf), "preset": args.preset}
            for p in vs.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(p)
        if vs is not None:
            for p in vs.encode(None):
                out.mux(p)
    end = time.perf_counter()

    def r(seconds: float) -> float:
        return n / seconds if seconds > 0 else float("nan")

    rates = {"extract": r(t_extract - start), "stylize": r(t_stylize - t_extract),
             "encode": r(end - t_stylize), "read+resize": r(read_s), "model": r(model_s),
             "write": r(write_s)}
    if not args.keep:
        for d in (frames_dir, styled_dir):
            for p in d.iterdir():
                p.unlink()
            d.rmdir()
    return Result(n, end - start, rates, f"fp32, batch 1, {size[1]}x{size[0]}" if size else "")


# --------------------------------------------------------------------------- report

def fmt_rates(rates: dict[str, float], order: tuple[str, ...]) -> str:
    keys = [k for k in order if k in rates] + [k for k in rates if k not in order]
    return "  ".join(f"{k} {rates[k]:.1f}" for k in keys)


def best(results: list[Result]) -> Result:
    return min(results, key=lambda r: r.wall_s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clip", type=Path, default=REPO / "../shared/media/clips/bigbuckbunny.mp4")
    ap.add_argument("--frames", type=int, default=None, help="cut the first N frames (default: all)")
    ap.add_argument("--sizes", "--short-side", dest="sizes", default=None,
                    help="short sides, comma separated (default: 180 on CPU, 720,1080 on CUDA)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"],
                    help="the pipeline's; the baseline is always fp32")
    ap.add_argument("--batch-size", default="auto", help="the pipeline's (auto or an int)")
    ap.add_argument("--weights", type=Path, default=REPO / "weights/starry_night.safetensors")
    ap.add_argument("--smooth", action="store_true", help="also time the pipeline with temporal_smooth")
    ap.add_argument("--crf", type=int, default=18)
    ap.add_argument("--preset", default="medium", help="libx264 preset, both sides")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each; the best is reported")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch and OpenCV threads for both sides (default: OMP_NUM_THREADS / torch's)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder and print it")
    args = ap.parse_args()
    if args.batch_size != "auto":
        args.batch_size = int(args.batch_size)
    sizes = [int(s) for s in (args.sizes or ("720,1080" if args.device == "cuda" else "180")).split(",")]
    for s in sizes:
        if s <= 0 or s % 4:
            ap.error(f"short side {s} must be a positive multiple of 4")
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda but torch.cuda.is_available() is False")
    if args.threads:
        torch.set_num_threads(args.threads)
    cv2.setNumThreads(torch.get_num_threads())
    if not args.clip.is_file():
        ap.error(f"no clip at {args.clip}")

    device = torch.device(args.device)
    name = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"cpu, {torch.get_num_threads()} threads")
    print(f"device: {name}; torch {torch.__version__}, PyAV {av.__version__}, OpenCV {cv2.__version__}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"torch threads {torch.get_num_threads()}, {os.cpu_count()} cpus")

    tmp = None if args.keep else tempfile.TemporaryDirectory(prefix="throughput_")
    folder = Path(tmp.name if tmp else tempfile.mkdtemp(prefix="throughput_"))
    try:
        clip = args.clip
        if args.frames is not None:
            clip = folder / f"clip_{args.frames}{args.clip.suffix}"
            cut_clip(args.clip, clip, args.frames)
        w, h, n, rate, audio = clip_facts(clip)
        print(f"clip: {args.clip.name}{f' (first {args.frames} frames, re-encoded)' if args.frames else ''}"
              f": {w}x{h}, {n} frames, {float(rate):g} fps, {'with' if audio else 'no'} audio; "
              f"libx264 crf {args.crf} preset {args.preset}; weights {args.weights.name}; "
              f"best of {args.repeat}")
        net = load_fast_style(args.weights).to(device, torch.float32)

        rows = []
        for s in sizes:
            th, tw = target_size(h, w, short_side=s, multiple_of=4)
            variants = [False] + ([True] if args.smooth else [])
            pipe: dict[bool, list[Result]] = {v: [] for v in variants}
            base: list[Result] = []
            for _ in range(args.repeat):
                for v in variants:
                    pipe[v].append(run_pipeline(folder, clip, args, s, v))
                base.append(run_baseline(folder, clip, net, device, args, s, rate))
            b = best(base)
            for v in variants:
                p = best(pipe[v])
                if p.frames != b.frames:
                    print(f"warning: pipeline wrote {p.frames} frames, baseline {b.frames}", file=sys.stderr)
                rows.append((f"{tw}x{th}", "pipeline" + (" +smooth" if v else ""), p, b))
            if args.repeat > 1:
                spread = [f"{r.fps:.1f}" for r in base]
                print(f"  {tw}x{th} baseline fps over repeats: {', '.join(spread)} "
                      f"(median {statistics.median(r.fps for r in base):.1f})")

        print()
        print(f"{'size':>10s}  {'variant':18s} {'pipeline fps':>12s} {'baseline fps':>12s} {'ratio':>6s}")
        for size, label, p, b in rows:
            print(f"{size:>10s}  {label:18s} {p.fps:12.2f} {b.fps:12.2f} {p.fps / b.fps:5.2f}x")
        print()
        print("per-step rates, frames per busy second (pipeline steps overlap in threads; "
              "baseline phases run one after another):")
        seen_base = set()
        for size, label, p, b in rows:
            print(f"  {size} {label}: {fmt_rates(p.rates, PIPELINE_STEPS)}  "
                  f"[{p.frames} frames in {p.wall_s:.2f}s; {p.notes}]")
            if size not in seen_base:
                seen_base.add(size)
                print(f"  {size} baseline: {fmt_rates(b.rates, ())}  "
                      f"[{b.frames} frames in {b.wall_s:.2f}s; {b.notes}]")
    finally:
        if tmp is None:
            print(f"kept {folder}")
        else:
            tmp.cleanup()


if __name__ == "__main__":
    main()
