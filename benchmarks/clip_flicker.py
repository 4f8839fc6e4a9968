"""Flicker on a real clip, where the true flow is unknown: estimate it on the source.

    python benchmarks/clip_flicker.py SOURCE SMOOTHED [PER_FRAME ...]

SOURCE is the original clip; the others are outputs of the same job with and
without ``temporal_smooth`` (same size, same frames).  The backward flow t -> t-1
is OpenCV DIS (medium) on the source, resized to the outputs' size; pixels
where the flow-warped previous source frame misses the current one by 8 grey
levels or more (occlusions, flow errors) and pixels mapped from outside the
frame are left out.  Printed: the mean over frames of the masked mean squared
difference between each frame and the warped previous one, RGB in [0, 1]
(E_warp, Lai et al. 2018), for the source too, as the floor that flow error
and real change set.  An estimate, biased by the flow's own errors; for exact
figures see ``benchmarks/temporal.py``.
"""
from __future__ import annotations

import argparse

import av
import cv2
import numpy as np


def frames(path: str, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    out = []
    with av.open(path) as container:
        for frame in container.decode(video=0):
            a = frame.to_ndarray(format="rgb24")
            if size is not None and a.shape[:2] != size:
                a = cv2.resize(a, (size[1], size[0]), interpolation=cv2.INTER_AREA)
            out.append(a)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source")
    ap.add_argument("outputs", nargs="+")
    args = ap.parse_args()
    outs = {path: frames(path) for path in args.outputs}
    size = next(iter(outs.values()))[0].shape[:2]
    src = frames(args.source, size)
    if any(len(o) != len(src) for o in outs.values()):
        raise SystemExit(f"frame counts differ: source {len(src)}, "
                         + ", ".join(f"{p} {len(o)}" for p, o in outs.items()))
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    h, w = size
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
    print(f"{len(src)} frames {w}x{h}; E_warp (source DIS flow, photometric mask):")
    for name, e in errors.items():
        print(f"  {np.mean(e):.5f}  {name}")


if __name__ == "__main__":
    main()
