"""Render the demo clip: a slow pan over a procedural landscape, with a tone, so the video demo needs no download.

Run once to (re)create jobs/demo_clips/pan.mp4; the output is committed.
    python scripts/make_demo_clip.py jobs/demo_clips/pan.mp4
"""
from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_demo_inputs import landscape  # noqa: E402

FPS, SECONDS, W, H = 24, 3, 320, 240
AUDIO_RATE = 48000


def frames() -> list[np.ndarray]:
    world = landscape(H, W * 2, seed=7)
    out = []
    count = FPS * SECONDS
    for i in range(count):
        x = round(i * (W / count))  # pan across half the world: ~4.4 px a frame
        frame = world[:, x:x + W].copy()
        by, bx = int(60 + 20 * np.sin(i / 6)), int(40 + i * 3)  # a bird crossing against the pan
        frame[by:by + 6, bx:bx + 14] = (30, 30, 40)
        out.append(frame)
    return out


def main(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=FPS, options={"crf": "16", "preset": "slow"})
        video.width, video.height, video.pix_fmt = W, H, "yuv420p"
        audio = out.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        for i, rgb in enumerate(frames()):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            out.mux(video.encode(frame))
        out.mux(video.encode())
        t = np.arange(AUDIO_RATE * SECONDS) / AUDIO_RATE
        tone = (0.2 * np.sin(2 * np.pi * 220 * t) * np.sin(np.pi * t / SECONDS)).astype(np.float32)
        for start in range(0, len(tone), 1024):
            chunk = tone[start:start + 1024][None, :]
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = AUDIO_RATE, start
            out.mux(audio.encode(frame))
        out.mux(audio.encode())


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "jobs/demo_clips/pan.mp4"))
