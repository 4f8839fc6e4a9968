"""Where paintings' embeddings lie under style-augmentation's published statistics.

    python benchmarks/embedding_space.py [--statistics ../shared/media/models/styleaug/checkpoint_embeddings.pth]
                                         [--styles ../shared/media/styles]

Embeds each painting in ``--styles`` with the installed Magenta network's MobileNet-v2
predictor (as ``arbitrary_style`` and ``style_augment`` do: its centre square at 256x256)
and prints its Mahalanobis distance from the Painter-by-Numbers mean under the published
covariance, beside the distance of draws from that Gaussian itself (median of 1,000, seed
0).  The statistics come from style-augmentation's Inception-v3 predictor: a painting far
outside the draws' range says the two predictors' embedding spaces differ.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.models.checkpoints import load_ghiasi, read_state_dict  # noqa: E402
from pipeline.models.magenta_files import find_installed  # noqa: E402
from pipeline.stages.arbitrary_style import painting_square  # noqa: E402

SHARED = REPO.parent / "shared" / "media"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--statistics", type=Path,
                    default=SHARED / "models" / "styleaug" / "checkpoint_embeddings.pth")
    ap.add_argument("--styles", type=Path, default=SHARED / "styles")
    args = ap.parse_args()
    stats = read_state_dict(args.statistics)
    mean = stats["pbn_embedding_mean"].double()
    cov = stats["pbn_embedding_covariance"].double()
    inverse = torch.linalg.inv(cov)
    predict, transform = find_installed()
    _, predictor = load_ghiasi(transform, predict)
    draws = mean + torch.randn(1000, 100, generator=torch.Generator().manual_seed(0),
                               dtype=torch.float64) @ torch.linalg.cholesky(cov).T
    d = draws - mean
    print(f"draws from the published Gaussian: median Mahalanobis distance "
          f"{float(((d @ inverse) * d).sum(1).sqrt().median()):.1f}")
    for path in sorted(args.styles.glob("*.jpg")) + sorted(args.styles.glob("*.png")):
        with torch.inference_mode():
            e = predictor(painting_square(path)).double()[0] - mean
        print(f"{path.name}: {float((e @ inverse @ e).sqrt()):.1f} (MobileNet-v2 predictor)")


if __name__ == "__main__":
    main()
