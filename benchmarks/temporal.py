"""Does temporal_smooth remove flicker without ghosting?  Clips with exact flow.

    python benchmarks/temporal.py [--photos ../shared/media/photos] [--frames 48]
        [--size 320x240] [--strength 0.8] [--out DIR]

Each clip is rendered from real photos with a known camera (a homography per
frame: slow pan, zoom and rotation), a textured disc sliding over it, and one
scene cut (another photo, another motion) halfway, so the true backward flow
and its occlusions are exact.  Frames are stylized one by one with the shipped
Starry Night net, then smoothed with the ``temporal_smooth`` stage.

Figures (Lai et al., "Learning Blind Video Temporal Consistency", ECCV 2018):
E_warp = mean over frames t (the frame after the cut excluded) of the masked
mean squared difference between O_t and O_{t-1} warped by the true flow (RGB in
[0, 1]; masked: out-of-frame, disoccluded, and a 2 px band at the disc's edge).
SSIM of smoothed to per-frame frames says the style survives.  Ghosting: on the
disc, E_warp; mean |O_t - P_t| where the disc was in the last 6 frames (a
ghost trail drags the disc's colours, or its stylized halo, there) next to the
same where it will be in the next 6 (the same geometry, without a past).
The figures are given twice: smoothed as RGB (a stage follows the smoothing), and
as the encoder's 4:2:0 planes (the smoothing last before a yuv420p encoder: what
the engine does then), both per-frame and smoothed frames through 4:2:0 there.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from skimage.metrics import structural_similarity

from pipeline.machine.context import RunContext
from pipeline.ops.colour import rgb_to_yuv420_float, yuv420_to_rgb
from pipeline.stages import get_stage

REPO = Path(__file__).resolve().parents[1]
TRAIL = 6  # frames a ghost trail would be looked for behind the disc


def load_photos(folder: Path) -> list[np.ndarray]:
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if len(paths) < 2:
        raise SystemExit(f"need at least 2 photos in {folder}")
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    return sorted(photos, key=lambda a: -a.shape[0] * a.shape[1])  # largest first


def camera(photo_hw, frame_hw, t: int, n: int, motion) -> np.ndarray:
    """Homography frame pixel -> photo pixel at frame t of an n-frame shot."""
    (ph, pw), (h, w) = photo_hw, frame_hw
    s0 = 0.7 * min(pw / w, ph / h)           # photo pixels per frame pixel
    u = t - (n - 1) / 2
    pan_x, pan_y, zoom, rot = motion
    z = 1.0 + zoom * t / max(n - 1, 1)
    a = np.deg2rad(rot * u / max(n - 1, 1))
    to_centre = np.array([[1, 0, -(w - 1) / 2], [0, 1, -(h - 1) / 2], [0, 0, 1]])
    scale_rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]) * [[s0 / z], [s0 / z], [1]]
    to_photo = np.array([[1, 0, (pw - 1) / 2 + pan_x * u * s0], [0, 1, (ph - 1) / 2 + pan_y * u * s0], [0, 0, 1]])
    return to_photo @ scale_rot @ to_centre


def apply(hmg: np.ndarray, xs: np.ndarray, ys: np.ndarray):
    d = hmg[2, 0] * xs + hmg[2, 1] * ys + hmg[2, 2]
    return ((hmg[0, 0] * xs + hmg[0, 1] * ys + hmg[0, 2]) / d,
            (hmg[1, 0] * xs + hmg[1, 1] * ys + hmg[1, 2]) / d)


def make_clip(photos, n: int, hw, seed: int = 0):
    """Frames, and per frame: homography, disc centre, radius and shot index."""
    h, w = hw
    r = min(h, w) // 7
    tex_src = photos[2 % len(photos)]
    side = 2 * r + 8
    ty, tx = (tex_src.shape[0] - side) // 2, (tex_src.shape[1] - side) // 3
    tex = np.ascontiguousarray(tex_src[ty:ty + side, tx:tx + side]).astype(np.float32)
    shots = [(photos[0], (1.6, 0.5, 0.06, 2.0), (0.25 * w, 0.40 * h), (3.7, 1.3)),
             (photos[1], (-1.2, 0.8, -0.05, -3.0), (0.75 * w, 0.65 * h), (-3.2, -1.1))]
    cut = n // 2
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    # Band-limit first (a camera does): area-downscale each photo so the camera
    # magnifies it slightly; warping a larger photo straight down would alias.
    shots = [(_fit(photo, hw), *rest) for photo, *rest in shots]
    frames, meta = [], []
    for t in range(n):
        shot = int(t >= cut)
        k, m = (t, cut) if shot == 0 else (t - cut, n - cut)
        photo, motion, c0, v = shots[shot]
        hmg = camera(photo.shape[:2], hw, k, m, motion)
        bg = cv2.warpPerspective(photo, hmg, (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                                 borderMode=cv2.BORDER_REFLECT101).astype(np.float32)
        c = (c0[0] + v[0] * k, c0[1] + v[1] * k)
        obj = cv2.remap(tex, xs - c[0] + side / 2, ys - c[1] + side / 2, cv2.INTER_CUBIC,
                        borderMode=cv2.BORDER_REFLECT101)
        alpha = np.clip(r + 0.5 - np.hypot(xs - c[0], ys - c[1]), 0, 1)[..., None]
        frames.append(np.clip(bg * (1 - alpha) + obj * alpha, 0, 255).round().astype(np.uint8))
        meta.append((hmg, c, shot))
    return frames, meta, r, cut


def _fit(photo: np.ndarray, hw) -> np.ndarray:
    f = 1.1 / 0.7 / min(photo.shape[0] / hw[0], photo.shape[1] / hw[1])  # -> s0 = 1.1 in camera()
    if f >= 1:
        return photo
    size = (round(photo.shape[1] * f), round(photo.shape[0] * f))
    return cv2.resize(photo, size, interpolation=cv2.INTER_AREA)


def masks(meta, t: int, r: float, hw):
    """True backward flow maps at t; masks: E_warp, disc, where the disc was in the
    last TRAIL frames (trail) and where it will be in the next TRAIL (ahead)."""
    h, w = hw
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    (hmg, c, _), (hmg1, c1, _) = meta[t], meta[t - 1]
    back = np.linalg.inv(hmg1) @ hmg
    bx, by = apply(back, xs, ys)                     # camera motion
    d = np.hypot(xs - c[0], ys - c[1])
    inside, outside = d < r - 2, d > r + 2
    ox, oy = xs - (c[0] - c1[0]), ys - (c[1] - c1[1])  # disc motion
    mx, my = np.where(inside, ox, bx), np.where(inside, oy, by)
    in_frame = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    was_disc = np.hypot(bx - c1[0], by - c1[1]) <= r + 2   # disoccluded background
    valid = in_frame & (inside | (outside & ~was_disc))
    trail, ahead = (np.zeros((h, w), bool) for _ in range(2))
    for k in range(1, TRAIL + 1):
        for sign, region in ((-1, trail), (1, ahead)):
            j = t + sign * k
            if 0 <= j < len(meta) and meta[j][2] == meta[t][2]:
                hk, ck, _ = meta[j]
                kx, ky = apply(np.linalg.inv(hk) @ hmg, xs, ys)
                region |= np.hypot(kx - ck[0], ky - ck[1]) <= r + 2
    trail &= (d > r + 3) & ~ahead
    ahead &= (d > r + 3) & ~trail
    return mx.astype(np.float32), my.astype(np.float32), valid, inside & in_frame, trail, ahead


def e_warp(o: np.ndarray, o_prev: np.ndarray, mx, my, mask) -> float:
    warped = cv2.remap(o_prev, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    sq = np.square((o - warped) / 255.0).mean(axis=2)
    return float(sq[mask].mean()) if mask.any() else float("nan")


def to_tensor(frames) -> torch.Tensor:
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()


def to_images(x: torch.Tensor) -> list[np.ndarray]:
    return list(x.permute(0, 2, 3, 1).clamp(0, 255).numpy().astype(np.float32))


def from_planes(y: torch.Tensor, uv: torch.Tensor) -> list[np.ndarray]:
    """Float planes -> rounded to 8 bits, as encoded -> RGB images, as decoded."""
    yq, uvq = (p.round().clamp(0, 255).to(torch.uint8) for p in (y, uv))
    return to_images(yuv420_to_rgb(yq[:, 0], uvq[:, 0], uvq[:, 1], 1, False))


def report(P: list, O: list, meta, r: float, hw, cut: int) -> None:
    """E_warp, SSIM and ghosting of smoothed frames ``O`` against per-frame ``P``."""
    rows = {"per-frame": [], "smoothed": []}
    obj = {"per-frame": [], "smoothed": []}
    trail_dev, ahead_dev = [], []
    for t in range(1, len(P)):
        if t == cut:
            continue
        mx, my, valid, inside, trail, ahead = masks(meta, t, r, hw)
        for name, seq in (("per-frame", P), ("smoothed", O)):
            rows[name].append(e_warp(seq[t], seq[t - 1], mx, my, valid))
            obj[name].append(e_warp(seq[t], seq[t - 1], mx, my, inside))
        dev = np.abs(O[t] - P[t]).mean(axis=2)
        if trail.any() and ahead.any():
            trail_dev.append(float(dev[trail].mean()))
            ahead_dev.append(float(dev[ahead].mean()))
    ssim = [structural_similarity(O[t], P[t], channel_axis=2, data_range=255) for t in range(len(P))]
    e_p, e_s = np.mean(rows["per-frame"]), np.mean(rows["smoothed"])
    o_p, o_s = np.nanmean(obj["per-frame"]), np.nanmean(obj["smoothed"])
    print(f"  E_warp per-frame {e_p:.5f}  smoothed {e_s:.5f}  ratio {e_s / e_p:.3f} "
          f"(1/{e_p / e_s:.1f})   target: ratio <= 0.333")
    print(f"  SSIM smoothed vs per-frame: mean {np.mean(ssim):.3f} min {np.min(ssim):.3f}   target: >= 0.6")
    print(f"  ghosting: E_warp on the disc per-frame {o_p:.5f} smoothed {o_s:.5f} (ratio {o_s / o_p:.3f}); "
          f"mean |O-P| (8-bit) behind the disc ({TRAIL} frames) {np.mean(trail_dev):.2f} vs ahead of it "
          f"{np.mean(ahead_dev):.2f} (ratio {np.mean(trail_dev) / np.mean(ahead_dev):.2f})   "
          "target: no ghost trails (behind ~ ahead)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", type=Path, default=REPO.parent / "shared" / "media" / "photos")
    ap.add_argument("--weights", type=Path, default=REPO / "weights" / "starry_night.safetensors")
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--size", default="320x240", help="WxH")
    ap.add_argument("--strength", type=float, default=0.8)
    ap.add_argument("--preset", default="medium", choices=["ultrafast", "fast", "medium"])
    ap.add_argument("--flow-scale", type=lambda v: v if v == "auto" else float(v), default="auto",
                    help="the stage's flow_scale (default: its default, auto)")
    ap.add_argument("--out", type=Path, help="write strip.png (input | per-frame | smoothed | confidence)")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    hw = (h, w)
    ctx = RunContext(device=torch.device("cpu"), precision="fp32", batch_size=None)

    frames, meta, r, cut = make_clip(load_photos(args.photos), args.frames, hw)
    style_cls = get_stage("fast_style")
    style = style_cls(style_cls.Params(weights=args.weights), ctx)
    t0 = time.perf_counter()
    styl = torch.cat([style(to_tensor([f])) for f in frames])
    t_style = (time.perf_counter() - t0) / len(frames)

    smooth_cls = get_stage("temporal_smooth")
    smooth = smooth_cls(smooth_cls.Params(strength=args.strength, flow_scale=args.flow_scale,
                                          flow_preset=args.preset), ctx)
    guider = smooth.make_guider(hw)
    t0 = time.perf_counter()
    guides = [guider.next(f) for f in frames]
    t_guide = (time.perf_counter() - t0) / len(frames)
    t0 = time.perf_counter()
    out, _ = smooth.scan(styl, guides, None)
    t_scan = (time.perf_counter() - t0) / len(frames)

    # As the engine smooths a clip whose last stage this is before a yuv420p encoder: the
    # stylized frames' 4:2:0 planes (BT.709, limited), compared with the per-frame frames
    # through the same 4:2:0 round trip (what either would encode).
    t0 = time.perf_counter()
    y, uv = rgb_to_yuv420_float(styl, 1, False)
    sy, suv, _ = smooth.scan_planes(y, uv, guides, None)
    t_planes = (time.perf_counter() - t0) / len(frames)
    P420, O420 = from_planes(y, uv), from_planes(sy, suv)

    resets = [t for t, g in enumerate(guides) if g.reset]
    conf = [float(g.confidence.mean()) for g in guides if not g.reset]
    print(f"clip: {len(frames)} frames {w}x{h}, cut at {cut}, disc r={r}; strength {args.strength}, "
          f"DIS {args.preset} at scale {args.flow_scale}; torch threads {torch.get_num_threads()}")
    print(f"resets at frames {resets} (expected [0, {cut}]); mean confidence {min(conf):.2f}..{max(conf):.2f}")
    for name, P, O in (("RGB", to_images(styl), to_images(out)), ("4:2:0 planes", P420, O420)):
        print(f"smoothed as {name}:")
        report(P, O, meta, r, hw, cut)
    print(f"time per frame (CPU): stylize {t_style * 1e3:.1f} ms, guide (2 DIS + confidence) "
          f"{t_guide * 1e3:.1f} ms, scan {t_scan * 1e3:.1f} ms (RGB), {t_planes * 1e3:.1f} ms "
          "(4:2:0 planes, conversion included)")
    P, O = to_images(styl), to_images(out)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        picks = [1, cut // 2, cut - 1, cut, cut + 1, len(frames) - 1]
        strip = []
        for t in picks:
            c = cv2.resize(guides[t].confidence, (w, h), interpolation=cv2.INTER_LINEAR)
            strip.append(np.concatenate([frames[t], P[t], O[t], np.repeat(c[..., None] * 255, 3, 2)], 1))
        path = args.out / "strip.png"
        Image.fromarray(np.concatenate(strip, 0).clip(0, 255).astype(np.uint8)).save(path)
        print(f"wrote {path} (rows: frames {picks}; input | per-frame | smoothed | confidence)")


if __name__ == "__main__":
    main()
