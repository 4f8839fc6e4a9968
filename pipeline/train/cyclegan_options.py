"""The options of ``train cyclegan``, apart from the trainer so that the command line can
show them (``--help``) without importing torch.  Defaults are the paper's (Zhu et al. 2017)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import JobError
from ..machine.precisions import PRECISIONS

GENERATORS = {"resnet_9blocks": 9, "resnet_6blocks": 6}
NORMS = ("instance", "batch", "none")  # pipeline.models.cyclegan.NORMS (a test keeps them equal)


@dataclass(frozen=True)
class CycleGanTrainOptions:
    """Defaults are the paper's.  ``lambda_identity`` is relative to
    ``lambda_cycle``, as upstream (identity weight 10 * 0.5 = 5).  ``steps``
    None means 200 epochs of the larger folder; ``decay_from`` None means
    ``steps // 2``."""

    folder_a: Path
    folder_b: Path
    out: Path
    image_size: int = 256
    generator: str = "resnet_9blocks"
    ngf: int = 64
    ndf: int = 64
    n_layers_d: int = 3
    norm: str = "instance"
    batch_size: int = 1
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5
    pool_size: int = 50
    lr: float = 2e-4
    beta1: float = 0.5
    steps: int | None = None
    decay_from: int | None = None
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 1000
    resume: bool = False

    def __post_init__(self) -> None:
        for name in ("folder_a", "folder_b", "out"):
            object.__setattr__(self, name, Path(getattr(self, name)))
        problems = []
        if self.generator not in GENERATORS:
            problems.append(f"generator {self.generator!r} is not one of {', '.join(GENERATORS)}")
        if self.norm not in NORMS:
            problems.append(f"norm {self.norm!r} is not one of {', '.join(NORMS)}")
        if self.precision not in PRECISIONS:
            problems.append(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        for name in ("ngf", "ndf", "n_layers_d", "batch_size", "log_every", "sample_every",
                     "checkpoint_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("lambda_cycle", "lambda_identity", "pool_size"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be 0 or more, got {getattr(self, name)}")
        if not self.lr > 0 or not 0 <= self.beta1 < 1:
            problems.append(f"need lr > 0 and 0 <= beta1 < 1, got lr={self.lr}, beta1={self.beta1}")
        if self.image_size % 4 or self.image_size // 2 ** self.n_layers_d < 3:
            # The generator halves twice; the discriminator n_layers_d times, then
            # loses one pixel in each of its last two 4x4 convolutions.
            problems.append(f"image_size must be a multiple of 4 and at least "
                            f"{3 * 2 ** self.n_layers_d} for n_layers_d={self.n_layers_d}, "
                            f"got {self.image_size}")
        if self.steps is not None and self.steps < 1:
            problems.append(f"steps must be at least 1, got {self.steps}")
        last = self.steps if self.steps is not None else self.decay_from
        if self.decay_from is not None and not 0 <= self.decay_from <= last:
            problems.append(f"decay_from must lie in 0..steps, got {self.decay_from}")
        if problems:
            raise JobError("; ".join(problems), where="train cyclegan")
