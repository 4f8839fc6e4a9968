"""Flicker on real clips, where the true flow is unknown: estimate it on the source.

    python benchmarks/clip_flicker.py [--frames 132] [--width 640] [--strength 0.8]
    python benchmarks/clip_flicker.py SOURCE SMOOTHED [PER_FRAME ...]

With no clip named, it cuts three real clips from ``../shared/media/clips/bigbuckbunny.mp4``
(CC-BY Blender Foundation; the repo keeps none of it): the whole shot scaled to ``--width``,
and two more at other moments and framings (its first two thirds, the upper left quarter at
full resolution: a closer view of the same motion; its last two thirds, the lower right
quarter at full resolution), and runs each through ``run_pipeline.py`` twice, as processes: the
shipped Starry Night net per frame, and the same followed by ``temporal_smooth`` (lossless
FFV1 outputs, so the encoder adds no flicker of its own).  Then it prints, per clip:

- E_warp (Lai et al. 2018) of the source, the per-frame and the smoothed output: the mean
  over frames of the masked mean squared difference between each frame and the previous one
  warped onto it, RGB in [0, 1]; the backward flow is OpenCV DIS (medium) on the source,
  resized to the outputs' size; pixels where the flow-warped previous source frame misses the
  current one by 8 grey levels or more (occlusions, flow errors) and pixels mapped from
  outside the frame are left out.  The source's figure is the floor that flow error and real
  change set.  An estimate, biased by the flow's own errors; exact figures on clips with
  known motion: ``benchmarks/temporal.py``;
- the smoothed over the per-frame E_warp (the goal: at most 1/3);
- the detail kept: the smoothed output's mean Laplacian magnitude (grey levels) over the
  per-frame output's (the goal: at least 85%): what flicker a blend removes by blurring shows
  here, which E_warp alone rewards.

And then the ghosting measure of ``benchmarks/temporal.py`` (a disc sliding over a photo:
whether a trail follows it), run as it is.  With clips named, only E_warp, for those files.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_CLIP = REPO.parent / "shared" / "media" / "clips" / "bigbuckbunny.mp4"


def frames(path: str | Path, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    out = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            a = frame.to_ndarray(format="rgb24")
            if size is not None and a.shape[:2] != size:
                a = cv2.resize(a, (size[1], size[0]), interpolation=cv2.INTER_AREA)
            out.append(a)
    return out


def e_warp(src: list[np.ndarray], outs: dict[str, list[np.ndarray]]) -> dict[str, float]:
    """Mean E_warp of each sequence (and of the source) under the source's DIS flow."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    h, w = src[0].shape[:2]
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    errors: dict[str, list[float]] = {"source": [], **{p: [] for p in outs}}
    for t in range(1, len(src)):
        g0, g1 = (cv2.cvtColor(src[i], cv2.COLOR_RGB2GRAY) for i in (t - 1, t))
        flow = dis.calc(g1, g0, None)  # where each pixel of t was in t-1
        mx, my = gx + flow[..., 0], gy + flow[..., 1]

        def warp(a: np.ndarray) -> np.ndarray:
            return cv2.remap(a, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

        reliable = np.abs(warp(src[t - 1]).astype(np.float32) - src[t]).mean(-1) < 8
        mask = reliable & (mx >= 0) & (mx < w - 1) & (my >= 0) & (my < h - 1)
        for name, seq in (("source", src), *outs.items()):
            d = (warp(seq[t - 1]).astype(np.float32) - seq[t]) / 255.0
            errors[name].append(float((d ** 2).mean(-1)[mask].mean()))
    return {name: float(np.mean(e)) for name, e in errors.items()}


def detail(seq: list[np.ndarray]) -> float:
    """Mean Laplacian magnitude of the grey frames, in grey levels."""
    return float(np.mean([np.abs(cv2.Laplacian(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.CV_32F)).mean()
                          for f in seq]))


def cut_clip(dst: Path, first: int, count: int, crop: tuple[float, float, float, float],
             width: int) -> None:
    """Frames ``first`` .. ``first + count - 1`` of the shared clip, the ``crop`` (x, y, w, h as
    fractions) of each scaled to ``width`` (even height), near-lossless H.264."""
    with av.open(str(SHARED_CLIP)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        rate = vin.average_rate or Fraction(25)
        x0, y0, cw, ch = (int(round(f * d)) for f, d in zip(crop, (vin.width, vin.height) * 2))
        height = 2 * round(width * ch / cw / 2)
        vout = out.add_stream("libx264", rate=rate)
        vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
        vout.options = {"crf": "8", "preset": "veryfast"}
        written = 0
        for i, frame in enumerate(inp.decode(vin)):
            if i < first:
                continue
            if written == count:
                break
            a = frame.to_ndarray(format="rgb24")[y0:y0 + ch, x0:x0 + cw]
            a = cv2.resize(a, (width, height), interpolation=cv2.INTER_AREA)
            new = av.VideoFrame.from_ndarray(np.ascontiguousarray(a), format="rgb24").reformat(format="yuv420p")
            new.pts, new.time_base = written, Fraction(1) / rate
            out.mux(vout.encode(new))
            written += 1
        out.mux(vout.encode(None))


def run_job(folder: Path, clip: Path, name: str, weights: Path, smooth: dict | None) -> Path:
    stages: list = ["decode", {"fast_style": {"weights": str(weights)}}]
    if smooth is not None:
        stages.append({"temporal_smooth": smooth})
    stages.append({"encode": {"video": {"codec": "ffv1", "pix_fmt": "yuv420p", "container": "mkv"},
                              "audio": "none"}})
    job = folder / f"{name}.yaml"
    job.write_text(yaml.safe_dump({"sources": [{"videos": str(clip)}], "output": str(folder / name),
                                   "device": "cpu", "stages": stages}, sort_keys=False))
    done = subprocess.run([sys.executable, str(REPO / "run_pipeline.py"), str(job), "--restart", "-q"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-2000:]}")
    return folder / name / (clip.stem + ".mkv")


def real_clips(args) -> None:
    if not SHARED_CLIP.is_file():
        raise SystemExit(f"{SHARED_CLIP} is missing: name clips instead (see --help)")
    cuts = {  # name: (first frame, frames, crop x, y, w, h as fractions)
        "bbb_whole": (0, args.frames, (0.0, 0.0, 1.0, 1.0)),
        "bbb_left_closer": (0, args.frames * 2 // 3, (0.0, 0.0, 0.5, 0.5)),
        "bbb_late_lower_right": (args.frames // 3, args.frames * 2 // 3, (0.5, 0.5, 0.5, 0.5)),
    }
    smooth = {"strength": args.strength}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, (first, count, crop) in cuts.items():
            clip = folder / f"{name}.mp4"
            cut_clip(clip, first, count, crop, args.width)
            per_frame = frames(run_job(folder, clip, f"{name}_per_frame", args.weights, None))
            smoothed = frames(run_job(folder, clip, f"{name}_smoothed", args.weights, smooth))
            src = frames(clip, per_frame[0].shape[:2])
            e = e_warp(src, {"per-frame": per_frame, "smoothed": smoothed})
            rows.append((name, len(src), src[0].shape, e, detail(smoothed) / detail(per_frame)))
            print(f"{name}: done", file=sys.stderr)
    print(f"E_warp (source DIS flow, photometric mask) and detail kept; temporal_smooth "
          f"{smooth}; {args.weights.name}")
    print(f"{'clip':22s} {'frames':>6s} {'size':>9s} {'source':>8s} {'per-frame':>9s} {'smoothed':>9s} "
          f"{'ratio':>6s} {'detail kept':>11s}")
    for name, n, shape, e, kept in rows:
        print(f"{name:22s} {n:6d} {shape[1]:>4d}x{shape[0]:<4d} {e['source']:8.5f} {e['per-frame']:9.5f} "
              f"{e['smoothed']:9.5f} {e['smoothed'] / e['per-frame']:6.2f} {kept:10.0%}")
    print("goals: ratio at most 0.33, detail kept at least 85%")
    if args.ghosting:
        shown = subprocess.run([sys.executable, str(REPO / "benchmarks" / "temporal.py"), "--frames", "32"],
                               capture_output=True, text=True, cwd=REPO)
        print("\nbenchmarks/temporal.py --frames 32 (known motion):")
        print("\n".join(line for line in shown.stdout.splitlines()
                        if line.startswith(("smoothed as", "  E_warp", "  ghosting"))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", nargs="?", help="a source clip (with OUTPUTS: E_warp of those only)")
    ap.add_argument("outputs", nargs="*")
    ap.add_argument("--frames", type=int, default=132, help="frames of the whole-shot clip")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--strength", type=float, default=0.8)
    ap.add_argument("--weights", type=Path, default=REPO / "weights" / "starry_night.safetensors")
    ap.add_argument("--no-ghosting", dest="ghosting", action="store_false",
                    help="skip benchmarks/temporal.py's ghosting figures")
    args = ap.parse_args()
    if args.source is None:
        real_clips(args)
        return
    if not args.outputs:
        raise SystemExit("name the outputs to measure after the source clip")
    outs = {path: frames(path) for path in args.outputs}
    size = next(iter(outs.values()))[0].shape[:2]
    src = frames(args.source, size)
    if any(len(o) != len(src) for o in outs.values()):
        raise SystemExit(f"frame counts differ: source {len(src)}, "
                         + ", ".join(f"{p} {len(o)}" for p, o in outs.items()))
    e = e_warp(src, outs)
    print(f"{len(src)} frames {size[1]}x{size[0]}; E_warp (source DIS flow, photometric mask):")
    for name, value in e.items():
        print(f"  {value:.5f}  {name}")


if __name__ == "__main__":
    main()
