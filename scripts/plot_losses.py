"""Draw a training run's losses.csv as a PNG line chart (log scale), without matplotlib.

    python scripts/plot_losses.py RUN_train/losses.csv weights/x_losses.png [--columns content,style,total]
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import cv2
import numpy as np

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]  # RGB


def plot(rows: list[dict[str, str]], columns: list[str], dest: Path, title: str) -> None:
    w, h, margin = 720, 360, 56
    img = np.full((h, w, 3), 255, np.uint8)
    steps = np.array([float(r["step"]) for r in rows])
    series = {c: np.log10(np.maximum([float(r[c]) for r in rows], 1e-12)) for c in columns}
    lo = min(v.min() for v in series.values())
    hi = max(v.max() for v in series.values())
    lo, hi = np.floor(lo), np.ceil(hi) if hi > lo else lo + 1

    def xy(step: float, value: float) -> tuple[int, int]:
        x = margin + (step - steps.min()) / max(steps.max() - steps.min(), 1) * (w - 2 * margin)
        y = h - margin - (value - lo) / (hi - lo) * (h - 2 * margin)
        return int(round(x)), int(round(y))

    for decade in np.arange(lo, hi + 1):
        y = xy(steps.min(), decade)[1]
        cv2.line(img, (margin, y), (w - margin, y), (225, 225, 225), 1)
        cv2.putText(img, f"1e{int(decade)}", (4, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (80, 80, 80), 1)
    cv2.rectangle(img, (margin, margin), (w - margin, h - margin), (120, 120, 120), 1)
    for i, (name, values) in enumerate(series.items()):
        pts = np.array([xy(s, v) for s, v in zip(steps, values)], np.int32)
        cv2.polylines(img, [pts], False, COLOURS[i % len(COLOURS)], 2, cv2.LINE_AA)
        cv2.putText(img, name, (w - margin - 90, margin + 18 + 16 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    COLOURS[i % len(COLOURS)], 1, cv2.LINE_AA)
    cv2.putText(img, title, (margin, margin - 14), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, f"step {int(steps.min())} .. {int(steps.max())}", (margin, h - 18),
                cv2.FONT_HERSHEY_SIMPLEX, 0.45, (80, 80, 80), 1, cv2.LINE_AA)
    dest.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(dest), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("csv", type=Path)
    ap.add_argument("png", type=Path)
    ap.add_argument("--columns", default="content,style,total")
    ap.add_argument("--title", default="")
    args = ap.parse_args()
    with open(args.csv, newline="") as f:
        rows = list(csv.DictReader(f))
    plot(rows, args.columns.split(","), args.png, args.title or f"losses ({args.csv.parent.name})")


if __name__ == "__main__":
    main()
