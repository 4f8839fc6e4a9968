"""Draw a tiny labelled training set for jobs/augment_dataset.yaml, so the example needs no download.

    python scripts/make_augment_dataset.py [jobs/augment_data]

Writes (procedural landscapes from make_demo_inputs.py, 96 to 160 px a side):

    train/coast/*.jpg, train/valley/*.jpg, val/*.png   class folders
    <image>.txt                                        a YOLO label beside each: the sun's box
    annotations.json                                   the same boxes as COCO, at the top
    train/coast/c01.jpg                                stored sideways, EXIF 'rotate 90'
    train/thumbs/*.png                                 thumbnails the job excludes
    shards/train-000000.tar, train-000001.tar          WebDataset shards: <key>.jpg, .cls, .json

The folder is rebuilt from scratch each time (same bytes: fixed seeds).
"""
from __future__ import annotations

import io
import json
import shutil
import sys
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_demo_inputs import landscape  # noqa: E402

SIZES = [(96, 128), (120, 160), (112, 112), (100, 150)]  # (height, width)


def _sun_box(image: np.ndarray) -> tuple[float, float, float, float]:
    """The brightest blob's box (x, y, w, h) in pixels: a label that follows the picture."""
    bright = image.astype(int).sum(axis=2) > 650
    ys, xs = np.nonzero(bright) if bright.any() else (np.array([0]), np.array([0]))
    return float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)


def _save(image: np.ndarray, path: Path, rotate90: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not rotate90:
        Image.fromarray(image).save(path, quality=92)
        return
    # Stored turned a quarter, tagged so that viewers turn it back (EXIF 6: rotate 90 CW)
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(image, 1)))
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(path, quality=92, exif=exif)


def _tar_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def main(out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    coco = {"images": [], "annotations": [], "categories": [{"id": 0, "name": "sun"}]}
    layout = [("train/coast", "c", ".jpg", 4), ("train/valley", "v", ".jpg", 4), ("val", "x", ".png", 3)]
    seed = 0
    for folder, prefix, ext, count in layout:
        for i in range(count):
            h, w = SIZES[seed % len(SIZES)]
            image = landscape(h, w, seed=100 + seed)
            rel = f"{folder}/{prefix}{i:02d}{ext}"
            rotate = rel == "train/coast/c01.jpg"
            _save(image, out / rel, rotate90=rotate)
            x, y, bw, bh = _sun_box(image)
            if rotate:  # labels are in the stored pixels' frame: the box turned with them
                x, y, bw, bh = y, w - x - bw, bh, bw
                h, w = w, h
            (out / rel).with_suffix(".txt").write_text(
                f"0 {(x + bw / 2) / w:.6f} {(y + bh / 2) / h:.6f} {bw / w:.6f} {bh / h:.6f}\n")
            coco["images"].append({"id": seed, "file_name": rel, "width": w, "height": h})
            coco["annotations"].append({"id": seed, "image_id": seed, "category_id": 0,
                                        "bbox": [x, y, bw, bh]})
            seed += 1
    (out / "annotations.json").write_text(json.dumps(coco, indent=1) + "\n")
    for i in range(2):  # thumbnails a job should not stylize
        _save(landscape(24, 32, seed=300 + i), out / "train/thumbs" / f"t{i}.png")
    (out / "shards").mkdir()
    for shard in range(2):
        with tarfile.open(out / "shards" / f"train-{shard:06d}.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
            for i in range(3):
                key = f"sample{shard * 3 + i:04d}"
                image = landscape(*SIZES[i % len(SIZES)], seed=200 + shard * 3 + i)
                buf = io.BytesIO()
                Image.fromarray(image).save(buf, format="JPEG", quality=92)
                _tar_member(tar, f"{key}.jpg", buf.getvalue())
                _tar_member(tar, f"{key}.cls", str(i % 2).encode())
                _tar_member(tar, f"{key}.json", json.dumps({"box": _sun_box(image)}).encode())
    print(f"wrote {out}: {seed} images with labels, annotations.json, 2 thumbnails, 2 shards of 3")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "jobs/augment_data")
