"""style_augment: each image its own random style, for training data (style randomization).

Jackson, Atapour-Abarghouei, Bonner, Breckon and Obara 2019, "Style Augmentation: Data
Augmentation via Style Randomization": Ghiasi et al.'s network (``arbitrary_style``'s) is
given, per image, a style embedding drawn from a Gaussian over painting embeddings, mixed
with the image's own embedding by ``alpha`` (0.5 by default, as in the paper): the shapes
stay, texture and colour change, and a model trained on the copies leans less on texture.

The Gaussian is fitted to the embeddings of the paintings in ``paintings`` (a folder,
searched recursively), through the same predictor that runs, so the draws lie where that
predictor puts paintings; or it is style-augmentation's published Painter-by-Numbers mean
and covariance (``statistics: checkpoint_embeddings.pth``), which describe the embedding
space of its Inception predictor only: with the MobileNet predictor of the TFLite and ONNX
files, the three public-domain paintings lie 382 to 470 Mahalanobis units from that mean,
where a draw from it lies about 10 (``python benchmarks/embedding_space.py``), so that
pairing is refused.

An image's draw depends on ``seed`` and its key alone (its output path under the output
folder; a tar shard member's path inside its shard; a clip's, for each of its frames):
SHA-256 of both seeds a generator of its own, so the result is the same whatever the batch,
the order, the number of workers or machines, or where a killed run resumed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..errors import WeightsError
from ..hashing import draw_seed, file_sha256
from ..models.checkpoints import load_ghiasi, read_state_dict
from ..models.magenta import EMBEDDING_SIZE, EmbeddingStylizer
from ..typed_yaml import ParamError
from .arbitrary_style import network_files, painting_square
from .network import NetworkStage
from .registry import register

PAINTING_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class StyleAugmentParams:
    paintings: Path | None = None  # a folder of style images: the Gaussian fitted to their embeddings
    # or style-augmentation's checkpoint_embeddings.pth: its Painter-by-Numbers mean and
    # covariance (with its Inception predictor only)
    statistics: Path | None = None
    seed: int = 0  # with each image's key, decides its draw
    alpha: float = 0.5  # the drawn embedding's share; the rest is the image's own (0.5: the paper's)
    # Ghiasi et al.'s transfer network and predictor (none: the installed network, as arbitrary_style)
    weights: Path | None = None
    predictor: Path | None = None
    strength: float = 1.0  # 0..1: the stylized image blended with its input (0: the input)
    preserve_color: bool = False  # the input's colours with the style's luminance
    # torch.compile the network: on this CPU Magenta's took 9 s to compile (26 s with a
    # cold cache), then 54 ms a 512x512 picture instead of 99, within a level
    # (benchmarks/magenta_precision.py --compile): for long runs of one frame size; each
    # new size compiles again
    compile: bool = False

    def __post_init__(self) -> None:
        if (self.paintings is None) == (self.statistics is None):
            raise ParamError("paintings", "give `paintings` (a folder of style images to fit the "
                                          "draws to) or `statistics` (style-augmentation's "
                                          "checkpoint_embeddings.pth), one of them")
        if isinstance(self.alpha, bool) or not 0.0 <= self.alpha <= 1.0:
            raise ParamError("alpha", f"alpha must be in [0, 1], got {self.alpha}")
        if isinstance(self.strength, bool) or not 0.0 <= self.strength <= 1.0:
            raise ParamError("strength", f"strength must be in [0, 1], got {self.strength}")


@register
class StyleAugment(NetworkStage):
    name = "style_augment"
    Params = StyleAugmentParams
    per_image = True
    quiet_defaults = {"predictor": None, "statistics": None, "paintings": None, "compile": False}

    def load(self, params: StyleAugmentParams) -> nn.Module:
        self.files = network_files(params)
        if "predictor" not in self.files:
            raise WeightsError(params.weights, "style_augment draws style embeddings: it runs Ghiasi "
                                               "et al.'s network, not an AdaIN decoder",
                               hint="leave `weights` out (the installed network), or give "
                                    "arbitrary_transform.onnx")
        transformer, predictor = load_ghiasi(self.files["weights"], self.files["predictor"])
        self.paintings: list[Path] = []
        if params.statistics is not None:
            self.mean, cov = _published(params.statistics, predictor.arch.family)
        else:
            self.paintings = _paintings(params.paintings)
            with torch.inference_mode():
                embeddings = torch.cat([predictor(painting_square(p)) for p in self.paintings]).double()
            self.mean = embeddings.mean(0)
            cov = torch.cov(embeddings.T) if len(embeddings) > 1 else \
                torch.zeros(EMBEDDING_SIZE, EMBEDDING_SIZE, dtype=torch.float64)
        # the Gaussian's square root: draws are mean + root @ z.  Cholesky's factor is unique
        # (an eigenvector's sign is not: another machine's LAPACK could flip it, and with it
        # every image's style); a ridge far below any painting's spread keeps a covariance of
        # few paintings (rank below 100) positive definite, and one painting alone its embedding
        ridge = 1e-9 * float(cov.diagonal().mean()) + 1e-12
        self.root = torch.linalg.cholesky(cov + ridge * torch.eye(EMBEDDING_SIZE, dtype=torch.float64))
        net = EmbeddingStylizer(transformer, self.mean.float(), params.alpha,
                                predictor if params.alpha < 1.0 else None)
        net.arch = transformer.arch
        return net

    def draw(self, key: str) -> torch.Tensor:
        """The embedding drawn for ``key`` (float64, ``[100]``): the same on every machine."""
        generator = torch.Generator().manual_seed(draw_seed(self.params.seed, key))
        z = torch.randn(EMBEDDING_SIZE, generator=generator, dtype=torch.float64)
        return self.mean + self.root @ z

    def __call__(self, x: torch.Tensor, keys: Sequence[str] | None = None) -> torch.Tensor:
        if keys is None or len(keys) != len(x):
            raise ValueError("style_augment draws a style per image: it needs each image's key")
        style = torch.stack([self.draw(k) for k in keys]).float().to(x.device) if len(x) else None
        return super().__call__(x, style=style) if len(x) else super().__call__(x)

    def fingerprint(self) -> dict[str, Any]:
        fingerprint = super().fingerprint()
        for name, path in self.files.items():  # the network files by content
            fingerprint[name] = {"sha256": file_sha256(path)}
        if self.paintings:
            fingerprint["paintings"] = [[p.relative_to(self.params.paintings).as_posix(),
                                         file_sha256(p)] for p in self.paintings]
        return fingerprint

    def describe(self) -> str:
        p = self.params
        drawn = (f"{len(self.paintings)} paintings in {p.paintings.name}/" if self.paintings
                 else f"statistics {p.statistics.name}")
        return (f"{self.name}(weights={self.files['weights'].name}, {self.net.arch.describe()}, "
                f"{drawn}, seed {p.seed}, alpha {p.alpha:g})")

    def to_net(self, rgb: torch.Tensor) -> torch.Tensor:
        return rgb

    def from_net(self, y: torch.Tensor) -> torch.Tensor:
        return y * 255.0


def _published(path: Path, predictor_family: str) -> tuple[torch.Tensor, torch.Tensor]:
    """style-augmentation's Painter-by-Numbers mean and covariance (float64)."""
    if predictor_family != "inception_style_predictor":
        raise WeightsError(path, "these statistics describe the embedding space of style-"
                                 "augmentation's Inception predictor; the predictor that runs here "
                                 "(MobileNet-v2) puts paintings 382 to 470 Mahalanobis units from "
                                 "their mean, where a draw lies about 10",
                           hint="fit the draws to your paintings instead: `paintings: FOLDER`, or "
                                "run style-augmentation's checkpoints (weights: "
                                "checkpoint_transformer.pth, predictor: checkpoint_stylepredictor.pth)")
    stats = read_state_dict(path)
    try:
        mean = stats["pbn_embedding_mean"].double().reshape(EMBEDDING_SIZE)
        cov = stats["pbn_embedding_covariance"].double().reshape(EMBEDDING_SIZE, EMBEDDING_SIZE)
    except (KeyError, RuntimeError):
        raise WeightsError(path, f"not style-augmentation's embedding statistics (keys: "
                                 f"{', '.join(list(stats)[:4])})",
                           hint="checkpoint_embeddings.pth holds pbn_embedding_mean and "
                                "pbn_embedding_covariance") from None
    return mean, (cov + cov.T) / 2


def _paintings(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise WeightsError(folder, "`paintings` must be a folder of style images",
                           hint="name a folder holding JPEG or PNG paintings")
    found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in PAINTING_SUFFIXES
                   and p.is_file() and not any(part.startswith(".") for part in
                                               p.relative_to(folder).parts))
    if not found:
        raise WeightsError(folder, "holds no painting (.jpg, .png, .webp, .bmp, .tif)",
                           hint="put the style images the draws should follow in it")
    return found
