"""The contact sheet of Magenta's arbitrary-style network (weights/magenta_contact_sheet.jpg).

    python scripts/make_magenta_sheet.py [--out weights/magenta_contact_sheet.jpg] [--height 192]

Columns: photos (scikit-image's samples in ../shared/media/photos), a Big Buck Bunny frame
(../shared/media/clips), a demo landscape (jobs/demo_inputs).  Rows: the input row, then one
per painting, the painting itself at the left: the three public-domain paintings in
../shared/media/styles, the demo's procedural painting (jobs/demo_styles/swirls.png) and
three procedural paintings drawn by scripts/make_procedural_styles.py (seeded, redrawn
here): none of them seen by the network in training.  Each picture runs through the
``arbitrary_style`` stage at its own size (short side ``--height``), on the CPU.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import av
import numpy as np
import torch
import typer
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "media"
sys.path.insert(0, str(REPO))

from pipeline.machine.context import RunContext  # noqa: E402
from pipeline.stages import get_stage  # noqa: E402


def _frame(clip: Path, index: int) -> np.ndarray:
    with av.open(str(clip)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return frame.to_ndarray(format="rgb24")
    raise SystemExit(f"{clip} has no frame {index}")


def _fit(a: np.ndarray, height: int) -> np.ndarray:
    h, w = a.shape[:2]
    return np.asarray(Image.fromarray(a).resize((max(1, round(w * height / h)), height), Image.BICUBIC))


def main(out: Path = typer.Option(REPO / "weights" / "magenta_contact_sheet.jpg"),
         height: int = typer.Option(192)) -> None:
    inputs = [np.asarray(Image.open(SHARED / "photos" / f"{n}.png").convert("RGB"))
              for n in ("astronaut", "chelsea", "coffee")]
    inputs += [_frame(SHARED / "clips" / "bigbuckbunny.mp4", 60),
               np.asarray(Image.open(REPO / "jobs" / "demo_inputs" / "valley" / "scene0.png").convert("RGB"))]
    inputs = [_fit(a, height) for a in inputs]
    drawn = Path(tempfile.mkdtemp(prefix="procedural_"))
    sys.path.insert(0, str(REPO / "scripts"))
    from make_procedural_styles import main as draw_styles
    draw_styles(drawn, count=3, size=384, seed=0)
    paintings = [SHARED / "styles" / f"{n}.jpg" for n in ("starry_night", "the_scream", "shipwreck")]
    paintings += [REPO / "jobs" / "demo_styles" / "swirls.png", *sorted(drawn.glob("*.png"))]
    ctx = RunContext(device=torch.device("cpu"), precision="fp32", batch_size=None)
    cls = get_stage("arbitrary_style")
    gap = 6
    rows = [[np.full((height, height, 3), 255, np.uint8), *inputs]]
    for painting in paintings:
        stage = cls(cls.Params(style=painting), ctx)
        row = [_square(np.asarray(Image.open(painting).convert("RGB")), height)]
        for a in inputs:
            x = torch.from_numpy(np.array(a)).permute(2, 0, 1)[None].float()
            with torch.inference_mode():
                y = stage(x)[0].round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
            row.append(y)
        rows.append(row)
    width = sum(t.shape[1] for t in rows[0]) + gap * (len(rows[0]) - 1)
    sheet = np.full((len(rows) * height + gap * (len(rows) - 1), width, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        x = 0
        for tile in row:
            sheet[r * (height + gap):r * (height + gap) + height, x:x + tile.shape[1]] = tile
            x += tile.shape[1] + gap
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(out, quality=88)
    print(f"{out}: {len(paintings)} paintings x {len(inputs)} pictures, {sheet.shape[1]}x{sheet.shape[0]}")


def _square(a: np.ndarray, side: int) -> np.ndarray:
    h, w = a.shape[:2]
    s = min(h, w)
    a = a[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    return np.asarray(Image.fromarray(a).resize((side, side), Image.BICUBIC))


if __name__ == "__main__":
    typer.run(main)
