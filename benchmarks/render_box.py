"""The CPU side of a 1080p film job against a bare transcode with the same encoder settings.

    python benchmarks/render_box.py [--clip PATH] [--seconds 10] [--repeat 3] [--preset medium]

On a render box the GPU outruns the CPU side (decode, colour conversion, optical flow,
x264), so the pipeline's speed is that of its CPU work.  With no model at all, each a
process of its own, one after the other in turn (a, b, c, a, b, c, ...), on the same clip:

(a) a bare transcode through PyAV (``benchmarks/bare_transcode.py``, which imports PyAV
    alone): decode, then libx264 at
    the same crf, preset and encoder threads, audio packets copied (what ``ffmpeg -i in
    -c:v libx264 -preset P -crf C -threads T out`` does); no colour conversion, no copies;
(b) ``python run_pipeline.py JOB --restart -q`` with ``decode`` then ``encode``;
(c) the same with ``temporal_smooth`` (defaults) between them, still no model.

Wall time is the parent's clock around each child; CPU time is the child's own accounting
(``os.wait4``'s rusage: user + system of the child and every thread it ran), so nothing that
ran before in another process is counted, as ``time.process_time()`` in one process that
ran (b) and (c) first did (its anchor (a) came out 30% heavier than in a process of its own).
Start-up is reported apart: (a) and (b) on a one-frame clip made from the same source, and
the seconds from (b)'s spawn to its first decoded frame (``benchmarks/first_frame.py``).
Children run with Python's bytecode caches, as on a user's machine, each command once untimed
first (``benchmarks/processes.py``).

It prints frames/s, wall and CPU seconds, and (b)/(a), (c)/(a) as ratios of medians, then
the CPU milliseconds per frame of each step measured alone on the clip's first frames (in a
fresh child process: ``--steps``): decode; YUV->RGB (libswscale: with a model on a CPU); the
engine's RGB round trip on a CPU (to float, back to uint8: with a model); the flow's small
RGB frames made from the decoded planes, and the optical flow (two DIS flows and the
confidence); the smoothing scan as (c) runs it (the 4:2:0 planes smoothed and rounded
down, on the CPU here); RGB->YUV (libswscale); x264 at ``medium`` and ``veryfast``.  Then
a projection for a 16-core render box, where the model, the colour conversions and the
scan run on the GPU and the frames are decoded as planes: frames/s = 16 cores / (CPU ms
per frame of decoding, x264 and, with temporal_smooth, the flow and its small frames), an
upper bound that assumes the steps spread over all cores (segments encode in parallel:
``encoders:``).

The clip: ``--clip``, or made here: ``--seconds`` (10) of
``../shared/media/clips/bigbuckbunny.mp4`` scaled to 1920x1080 (Lanczos, libx264 crf 14,
audio copied; the 5.3 s clip played again from its start to make 10 s), or a synthetic moving
pattern when that file is missing.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.machine import threads  # noqa: E402
from pipeline.machine.context import RunContext  # noqa: E402
from pipeline.machine.device import frames_to_device, to_host_uint8  # noqa: E402
from pipeline.engine.video import device_colour  # noqa: E402
from pipeline.ops.colour_host import yuv420_to_rgb_small  # noqa: E402
from pipeline.media.video import probe_video  # noqa: E402
from pipeline.media.video_read import read_frames  # noqa: E402
from pipeline.media.video_write import ENCODE_SWS_FLAGS, colour_plan  # noqa: E402
from pipeline.stages import get_stage  # noqa: E402

from processes import child, medians, user_env, warm  # noqa: E402  (benchmarks/processes.py)

SHARED_CLIP = REPO.parent / "shared" / "media" / "clips" / "bigbuckbunny.mp4"
CORES_PROJECTED = 16


def cpu() -> float:
    """This process's CPU seconds: only for the steps alone, each in a child of its own."""
    return time.process_time()


# --------------------------------------------------------------------------- the clip
def make_clip(dst: Path, seconds: float) -> None:
    """1920x1080 from the shared clip (or a synthetic pattern), ``seconds`` long, with audio.
    The shared clip is 5.3 s: a longer one plays it again from the start (its audio once)."""
    if not SHARED_CLIP.is_file():
        return make_synthetic(dst, seconds)
    with av.open(str(dst), "w") as out:
        vout = audio = None
        written = 0
        while True:
            with av.open(str(SHARED_CLIP)) as inp:
                vin = inp.streams.video[0]
                rate = vin.average_rate or Fraction(25)
                frames = int(seconds * rate)
                if vout is None:
                    vout = out.add_stream("libx264", rate=rate)
                    vout.width, vout.height, vout.pix_fmt = 1920, 1080, "yuv420p"
                    vout.options = {"crf": "14", "preset": "veryfast"}
                    ain = inp.streams.audio[0] if inp.streams.audio else None
                    audio = (ain, out.add_stream_from_template(ain)) if ain is not None else None
                ain = inp.streams.audio[0] if audio is not None and written == 0 else None
                for packet in inp.demux(*([vin] + ([ain] if ain is not None else []))):
                    if packet.stream is vin:
                        for frame in packet.decode():
                            if written < frames:
                                big = frame.reformat(1920, 1080, "yuv420p", interpolation="LANCZOS")
                                big.pts, big.time_base = written, Fraction(1) / rate
                                out.mux(vout.encode(big))
                                written += 1
                    elif packet.dts is not None and float(packet.pts * packet.time_base) < seconds:
                        packet.stream = audio[1]
                        out.mux(packet)
            if written >= frames:
                break
        out.mux(vout.encode(None))


def make_synthetic(dst: Path, seconds: float, rate: int = 25) -> None:
    with av.open(str(dst), "w") as out:
        vout = out.add_stream("libx264", rate=rate)
        vout.width, vout.height, vout.pix_fmt = 1920, 1080, "yuv420p"
        vout.options = {"crf": "14", "preset": "veryfast"}
        y, x = np.mgrid[0:1080, 0:1920].astype(np.float32)
        for i in range(int(seconds * rate)):
            t = i / rate
            r = 128 + 100 * np.sin(x / 90 + t * 3)
            g = 128 + 100 * np.sin(y / 70 - t * 2)
            b = 128 + 100 * np.sin((x + y) / 150 + t)
            rgb = np.stack([r, g, b], -1).clip(0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, rate)
            out.mux(vout.encode(frame))
        out.mux(vout.encode(None))


# --------------------------------------------------------------------------- (a), (b), (c)
def pipeline_job(folder: Path, clip: Path, out: Path, args, smooth: bool) -> Path:
    stages: list = ["decode"]
    if smooth:
        stages.append({"temporal_smooth": {}})
    stages.append({"encode": {"video": {"codec": "libx264", "crf": args.crf, "preset": args.preset,
                                        "threads": args.encoder_threads}, "audio": "copy"}})
    job = {"name": f"render_box{'_smooth' if smooth else ''}", "sources": [{"videos": str(clip)}],
           "output": str(out), "device": "cpu", "stages": stages}
    path = folder / f"{job['name']}.yaml"
    path.write_text(yaml.safe_dump(job, sort_keys=False))
    return path


def one_frame_clip(clip: Path, dst: Path) -> None:
    """The clip's first frame alone (no audio): what start-up costs before any real work."""
    with av.open(str(clip)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        rate = vin.average_rate or Fraction(25)
        vout = out.add_stream("libx264", rate=rate)
        vout.width, vout.height, vout.pix_fmt = vin.width, vin.height, "yuv420p"
        frame = next(inp.decode(vin))
        frame.pts, frame.time_base, frame.pict_type = 0, Fraction(1) / rate, 0
        out.mux(vout.encode(frame))
        out.mux(vout.encode(None))


# --------------------------------------------------------------------------- steps alone
def step_costs(clip: Path, n: int, args) -> dict[str, float]:
    """CPU ms per frame of each step, alone, on the clip's first ``n`` frames."""
    info = probe_video(clip)
    torch.set_num_threads(2)
    costs: dict[str, float] = {}

    def timed(name: str, fn) -> object:
        c0 = cpu()
        result = fn()
        costs[name] = 1000 * (cpu() - c0) / n
        return result

    def decode_only() -> list:
        with av.open(str(clip)) as c:
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            s.codec_context.thread_count = args.decode_threads
            out = []
            for frame in c.decode(s):
                out.append(frame)
                if len(out) == n:
                    return out
        return out

    yuv = timed("decode", decode_only)
    timed("yuv->rgb", lambda: [f for _, f in zip(range(n), read_frames(info, threads=1))])
    costs["yuv->rgb"] = max(0.0, costs["yuv->rgb"] - costs["decode"])  # it decoded too
    rgb = [f.rgb for _, f in zip(range(n), read_frames(info, threads=1))]
    planes = [f.planes for _, f in zip(range(n), read_frames(info, threads=1, planes=True))]

    def round_trip() -> list:
        return [to_host_uint8(frames_to_device([f], cpu_device, torch.float32, None), nhwc=True)[0]
                for f in rgb]

    cpu_device = torch.device("cpu")
    with torch.inference_mode():
        timed("device round trip", round_trip)
    ctx = RunContext(device=cpu_device, precision="fp32", batch_size=1)
    smooth = get_stage("temporal_smooth")(get_stage("temporal_smooth").Params(), ctx)
    state = smooth.clip_state((info.height, info.width), ctx.device)
    colour = device_colour(info)
    small = timed("flow's small RGB", lambda: [yuv420_to_rgb_small(
        p.y, p.u, p.v, state.guider.size, *colour) for p in planes])
    guides = timed("flow", lambda: [state.guider.next(f) for f in small])

    def scan() -> None:  # as (c) runs it on a CPU: the planes smoothed and rounded, no torch
        prev = None
        for p, guide in zip(planes, guides):
            _, prev = smooth.scan_planes_host([p], [guide], prev)

    timed("smoothing scan", scan)
    matrix, rng, _ = colour_plan(info)
    reformatter = av.video.reformatter.VideoReformatter()
    timed("rgb->yuv", lambda: [reformatter.reformat(
        av.VideoFrame.from_ndarray(f, format="rgb24"), format="yuv420p", dst_colorspace=matrix,
        dst_color_range=rng, interpolation=ENCODE_SWS_FLAGS) for f in rgb])
    for preset in ("medium", "veryfast"):
        timed(f"x264 {preset}", lambda: encode_only(yuv, info, preset, args))
    return costs


def encode_only(frames: list, info, preset: str, args) -> None:
    with tempfile.TemporaryDirectory() as tmp, av.open(f"{tmp}/o.mp4", "w") as out:
        s = out.add_stream("libx264", rate=info.rate)
        s.width, s.height, s.pix_fmt = info.width, info.height, "yuv420p"
        s.codec_context.thread_count = args.encoder_threads
        s.options = {"crf": str(args.crf), "preset": preset}
        for i, frame in enumerate(frames):
            frame.pts, frame.time_base, frame.pict_type = i, Fraction(1) / info.rate, 0
            out.mux(s.encode(frame))
        out.mux(s.encode(None))


# --------------------------------------------------------------------------- main
def bare_argv(clip: Path, out: Path, args) -> list[str]:
    """(a): a script that imports PyAV alone, as ffmpeg would start."""
    return [sys.executable, str(Path(__file__).with_name("bare_transcode.py")), str(clip), str(out),
            "--crf", str(args.crf), "--preset", args.preset, "--encoder-threads",
            str(args.encoder_threads), "--decode-threads", str(args.decode_threads)]


def pipeline_argv(job: Path) -> list[str]:
    return [sys.executable, str(REPO / "run_pipeline.py"), str(job), "--restart", "-q"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clip", type=Path, help="a clip to use (default: a 1080p clip made here)")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the clip made here")
    ap.add_argument("--repeat", type=int, default=3, help="rounds of (a), (b), (c); medians shown")
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--crf", type=int, default=18)
    ap.add_argument("--encoder-threads", type=int, default=2, help="x264 threads, all sides")
    ap.add_argument("--decode-threads", type=int, default=0,
                    help="the bare transcode's decoder threads (0: FFmpeg's choice, as ffmpeg)")
    ap.add_argument("--step-frames", type=int, default=24, help="frames for the steps alone")
    ap.add_argument("--no-steps", action="store_true", help="skip the steps alone")
    ap.add_argument("--steps", type=Path, metavar="CLIP", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.steps:  # a child: the steps alone, in a process that ran nothing else
        for step, ms in step_costs(args.steps, args.step_frames, args).items():
            print(f"{step}\t{ms}")
        return

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clip = args.clip.resolve() if args.clip else folder / "clip1080.mp4"
        if not args.clip:
            make_clip(clip, args.seconds)
        single = folder / "one_frame.mp4"
        one_frame_clip(clip, single)
        info = probe_video(clip)
        print(f"clip: {clip.name} {info.width}x{info.height}, {info.frames} frames, "
              f"{float(info.rate):g} fps, audio {info.has_audio}; libx264 crf {args.crf} preset "
              f"{args.preset}, {args.encoder_threads} encoder threads; {threads.affinity_cores()} "
              f"cores; each run a process of its own, in turn")
        jobs = {key: pipeline_job(folder, clip, folder / f"out_{key}", args, smooth)
                for key, smooth in (("b", False), ("c", True))}
        runs: dict[str, list[tuple[float, float]]] = {"a": [], "b": [], "c": []}
        warm(pipeline_argv(jobs["c"]))  # bytecode caches written (``processes.user_env``)
        for r in range(args.repeat):
            wall, used, out = child(bare_argv(clip, folder / f"bare{r}.mp4", args))
            frames = int(out.split()[-1])
            runs["a"].append((wall, used))
            for key in ("b", "c"):
                runs[key].append(child(pipeline_argv(jobs[key]))[:2])
        med = {k: medians(v) for k, v in runs.items()}
        names = {"a": "(a) bare transcode", "b": "(b) pipeline, no model",
                 "c": "(c) + temporal_smooth"}
        print(f"\n{'':26s} {'frames/s':>9s} {'wall s':>8s} {'CPU s':>8s} {'wall/(a)':>9s} "
              f"{'CPU/(a)':>8s}   (medians of {args.repeat}; every wall)")
        for k, (wall, used) in med.items():
            print(f"{names[k]:26s} {frames / wall:9.2f} {wall:8.2f} {used:8.2f} "
                  f"{wall / med['a'][0]:9.2f} {used / med['a'][1]:8.2f}   "
                  f"({' '.join(f'{x[0]:.2f}' for x in runs[k])})")
        print(f"\n(b) wall and CPU over (a): {med['b'][0] / med['a'][0]:.2f}, "
              f"{med['b'][1] / med['a'][1]:.2f} (goal <= 1.10); (c) speed as a fraction of (a): "
              f"{med['a'][0] / med['c'][0]:.2f} (goal >= 0.70)")

        single_jobs = {"b": pipeline_job(folder, single, folder / "out_single", args, False)}
        picture = folder / "one_picture" / "p.png"  # a job with a model: one picture, the light net
        picture.parent.mkdir()
        with av.open(str(single)) as c:
            next(c.decode(video=0)).to_image().resize((512, 288)).save(picture)
        stylize = [sys.executable, str(REPO / "run_pipeline.py"), "stylize", str(picture.parent),
                   "--weights", str(REPO / "weights" / "starry_night_light.safetensors"), "-o",
                   str(folder / "out_picture"), "--restart", "-q", "--device", "cpu"]
        in_torch = folder / "picture_torch.yaml"  # the same, the network in torch
        light = str(REPO / "weights" / "starry_night_light.safetensors")
        in_torch.write_text(yaml.safe_dump({
            "name": "picture_torch", "sources": [{"images": str(picture.parent)}],
            "output": str(folder / "out_picture_torch"), "device": "cpu",
            "stages": ["decode", {"fast_style": {"weights": light, "runtime": "torch"}}, "encode"]}))
        start: dict[str, list[tuple[float, float]]] = {"a": [], "b": [], "torch": [], "model": [],
                                                       "model_torch": []}
        first_frame = [sys.executable, str(REPO / "benchmarks" / "first_frame.py"),
                       str(single_jobs["b"]), "--restart", "-q"]
        firsts = []
        cached = user_env(STYLIZE_CACHE=str(folder / "cache"))  # exported by the untimed run
        warm(stylize, env=cached)
        for r in range(args.repeat):
            start["a"].append(child(bare_argv(single, folder / f"single{r}.mp4", args))[:2])
            start["b"].append(child(pipeline_argv(single_jobs["b"]))[:2])
            start["torch"].append(child([sys.executable, "-c", "import torch"])[:2])
            start["model"].append(child(stylize, cached)[:2])
            start["model_torch"].append(child(pipeline_argv(in_torch))[:2])
            out = child(first_frame, user_env(STYLIZE_T0=repr(time.time())))[2]
            firsts.append(float(out.split("first_frame")[-1].split()[0]))
        print(f"\nstart-up: the same on a one-frame clip, and the yardsticks (medians of {args.repeat}):")
        labels = {**names, "torch": "python -c 'import torch'",
                  "model": "stylize: 1 picture, light net (ONNX Runtime)",
                  "model_torch": "the same, runtime: torch"}
        for k, rows in start.items():
            wall, used = medians(rows)
            print(f"  {labels[k]:46s} wall {wall:6.2f} s   CPU {used:6.2f} s")
        over = medians(start["model_torch"])[0] - medians(start["torch"])[0]
        print(f"  with a model, beyond importing torch: {over:.2f} s wall (goal < 0.5)")
        print(f"  without one, from the spawn to the first decoded frame (benchmarks/first_frame.py): "
              f"{statistics.median(firsts):.2f} s (goal < 0.5; every run: "
              f"{' '.join(f'{f:.2f}' for f in firsts)})")
        per_frame = {k: (med[k][1] - medians(start[k])[1]) / max(1, frames - 1)
                     for k in ("a", "b")}
        print(f"  CPU ms per frame beyond start-up: (a) {1000 * per_frame['a']:.1f}, "
              f"(b) {1000 * per_frame['b']:.1f} (difference {1000 * (per_frame['b'] - per_frame['a']):.1f})")

        if args.no_steps:
            return
        steps = child([sys.executable, __file__, "--steps", str(clip), "--step-frames",
                       str(args.step_frames), "--crf", str(args.crf),
                       "--encoder-threads", str(args.encoder_threads),
                       "--decode-threads", str(max(1, args.decode_threads))])[2]
        costs = {line.split("\t")[0]: float(line.split("\t")[1]) for line in steps.splitlines()}
        print(f"\nCPU ms per frame, each step alone on {args.step_frames} frames "
              f"({info.width}x{info.height}, in a process of its own):")
        for step, ms in costs.items():
            print(f"  {step:20s} {ms:8.1f}")
        print(f"\nprojection for a {CORES_PROJECTED}-core render box (the model, the colour "
              "conversions and the scan on the GPU, the frames decoded as 4:2:0 planes; on the "
              "CPU: decoding, the flow's small RGB and the flow with temporal_smooth, x264; CPU "
              "steps spread over all cores):")
        for preset in ("medium", "veryfast"):
            base = costs["decode"] + costs[f"x264 {preset}"]
            for smooth in (False, True):
                ms = base + (costs["flow's small RGB"] + costs["flow"] if smooth else 0.0)
                print(f"  x264 {preset:9s} {'with' if smooth else 'without'} temporal_smooth: "
                      f"{ms:6.1f} CPU ms/frame -> {CORES_PROJECTED * 1000 / ms:6.1f} frames/s")


if __name__ == "__main__":
    main()
