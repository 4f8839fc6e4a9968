"""Training a generator from noise: DCGAN (Radford et al. 2016) or the plain MLP GAN.

Alec Radford, Luke Metz, Soumith Chintala, "Unsupervised Representation Learning with
Deep Convolutional Generative Adversarial Networks", ICLR 2016, in the layout of
PyTorch-GAN's ``implementations/dcgan`` (nearest upsampling + 3x3 convs, BatchNorm, a
strided-conv discriminator with dropout), and Goodfellow et al. 2014's GAN as that
collection's ``implementations/gan`` (an MLP pair, for small grayscale images).  The
generators are the classes in ``pipeline.models.pytorch_gan``, so our files and theirs
are one family each and both load in the ``generate:`` source.

Recipe (Radford et al., section 4): Adam, lr 2e-4, beta1 0.5; convolution weights from
N(0, 0.02), BatchNorm scales from N(1, 0.02), linear layers at PyTorch's default (as
PyTorch-GAN's dcgan; see ``init_normal``) in the generator, He init in the discriminator,
which has no BatchNorm (see ``DCGANDiscriminator``); each step one generator update (fakes labelled real),
then one discriminator update (real -> 1, the same fakes -> 0, halved), binary cross-
entropy on logits.  Images: every usable image under the folder, its short side scaled
to ``image_size`` (area-averaged), a random square crop along the long side and a random
horizontal flip; in [-1, 1]; grayscale by ITU-R BT.601 luma for ``channels: 1``.

Outputs, for ``out = models/gan.safetensors``: the generator (with metadata), and
``models/gan_train/``: ``losses.csv`` (G, D, and the discriminator's accuracy on the
step's real and fake images), ``samples/step_NNNNNNN.png`` (an 8x8 grid from fixed
noise), ``checkpoint.pt``.  Resume is exact: batches and noise are functions of (seed,
step), and the checkpoint holds both networks, both optimizers, the loss-log window and
the RNG (the discriminator's dropout draws from it).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save as safetensors_bytes

from ..machine.context import dtypes
from ..media.atomic import atomic_write
from ..models.pytorch_gan import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator
from . import cyclegan_io as io
from . import option_checks as checks
from .data import RandomCrops, scan_images, step_generator
from .gan import init_normal
from .step_loop import StepInfo, StepLoop, derive_seed, resolve

FORMAT = "pipeline.train.gan/1"
ARCHS = ("dcgan", "mlp")
LOSS_NAMES = ("G", "D", "D_acc")
WHERE = "train gan"
# BT.601 luma, as Pillow's convert("L")
LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class GanTrainOptions:
    images: Path  # a folder of training images
    out: Path  # the generator, .safetensors
    arch: str = "dcgan"
    image_size: int | None = None  # None: 32 (dcgan), 28 (mlp, upstream's MNIST)
    channels: int | None = None  # None: 3 (dcgan), 1 (mlp)
    latent_dim: int = 100
    batch_size: int = 64
    steps: int = 5000
    lr: float = 2e-4
    beta1: float = 0.5
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 500
    resume: bool = False

    def __post_init__(self) -> None:
        for name in ("images", "out"):
            object.__setattr__(self, name, Path(getattr(self, name)))
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        if self.image_size is None:
            object.__setattr__(self, "image_size", 32 if self.arch == "dcgan" else 28)
        if self.channels is None:
            object.__setattr__(self, "channels", 3 if self.arch == "dcgan" else 1)
        checks.positive_ints(self, "image_size", "channels", "latent_dim", "batch_size", "steps",
                             "log_every", "sample_every", "checkpoint_every")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {self.channels}")
        if self.arch == "dcgan" and (self.image_size % 4 or self.image_size < 8):
            raise ValueError("image_size must be a multiple of 4 and at least 8 for dcgan (two "
                             f"x2 upsamplings from a square seed), got {self.image_size}")
        if self.batch_size < 2:
            raise ValueError("batch_size must be at least 2: BatchNorm needs a batch to normalise")
        checks.non_negative_numbers(self, "lr", "beta1")
        if not self.beta1 < 1:
            raise ValueError(f"beta1 must be below 1, got {self.beta1}")
        checks.precision(self.precision)
        checks.safetensors_out(self.out)

    @property
    def run_dir(self) -> Path:
        return self.out.with_name(self.out.stem + "_train")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)


def _seed(seed: int, what: str) -> int:
    return derive_seed("gan", seed, what)


def he_init(net: torch.nn.Module, generator: torch.Generator) -> torch.nn.Module:
    """He et al. 2015 normal init for LeakyReLU(0.2) layers, zero biases; from ``generator``."""
    for module in net.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.kaiming_normal_(module.weight, a=0.2, nonlinearity="leaky_relu",
                                          generator=generator)
            torch.nn.init.zeros_(module.bias)
    return net


def build_generator(opts: GanTrainOptions) -> torch.nn.Module:
    if opts.arch == "dcgan":
        return DCGANGenerator(opts.latent_dim, opts.image_size, opts.channels)
    return MLPGenerator(opts.latent_dim, opts.image_shape)


class GanTrainer:
    """Generator and discriminator, their optimizers, one training step."""

    def __init__(self, opts: GanTrainOptions, device: torch.device, precision: str) -> None:
        self.opts, self.device, self.precision = opts, device, precision
        g = torch.Generator().manual_seed(_seed(opts.seed, "init"))
        with torch.random.fork_rng(devices=[]):  # init is a function of the seed alone
            torch.manual_seed(_seed(opts.seed, "modules"))
            if opts.arch == "dcgan":
                self.G = init_normal(build_generator(opts), g, linear=False)
                # He init: without BatchNorm, N(0, 0.02) or the default would shrink the
                # signal layer by layer (see DCGANDiscriminator)
                self.D = he_init(DCGANDiscriminator(opts.image_size, opts.channels), g)
            else:  # upstream's MLP GAN keeps PyTorch's default init
                self.G, self.D = build_generator(opts), MLPDiscriminator(opts.image_shape)
        self.G, self.D = self.G.to(device).train(), self.D.to(device).train()
        betas = (opts.beta1, 0.999)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=opts.lr, betas=betas)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=opts.lr, betas=betas)
        fp16 = precision == "fp16"  # fp16 gradients underflow without loss scaling
        self.scaler_G = torch.amp.GradScaler(device.type, enabled=fp16)
        self.scaler_D = torch.amp.GradScaler(device.type, enabled=fp16)

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=dtypes()[self.precision],
                              enabled=self.precision != "fp32")

    def to_net(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [B, 3, S, S] -> [-1, 1] with the trained channels, on the device."""
        x = images.to(self.device).float()
        if self.opts.channels == 1:
            x = sum(w * x[:, i:i + 1] for i, w in enumerate(LUMA))
        return x / 127.5 - 1.0

    def noise(self, step: int) -> torch.Tensor:
        z = torch.randn(self.opts.batch_size, self.opts.latent_dim,
                        generator=step_generator(_seed(self.opts.seed, "z"), step))
        return z.to(self.device)

    def _bce(self, logits: torch.Tensor, real: bool) -> torch.Tensor:
        logits = logits.float()  # in fp32: the loss of a confident logit needs the precision
        target = torch.ones_like(logits) if real else torch.zeros_like(logits)
        return F.binary_cross_entropy_with_logits(logits, target)

    def train_step(self, images: torch.Tensor, step: int) -> dict[str, float]:
        real, z = self.to_net(images), self.noise(step)
        self.D.requires_grad_(False)  # D is a constant in G's update
        self.opt_G.zero_grad(set_to_none=True)
        with self._autocast():
            fake = self.G(z)
            loss_G = self._bce(self.D(fake), True)
        self.scaler_G.scale(loss_G).backward()
        self.scaler_G.step(self.opt_G)
        self.scaler_G.update()
        self.D.requires_grad_(True)
        self.opt_D.zero_grad(set_to_none=True)
        with self._autocast():
            on_real, on_fake = self.D(real), self.D(fake.detach())
            loss_D = 0.5 * (self._bce(on_real, True) + self._bce(on_fake, False))
        self.scaler_D.scale(loss_D).backward()
        self.scaler_D.step(self.opt_D)
        self.scaler_D.update()
        right = torch.cat([on_real.detach().float() > 0, on_fake.detach().float() <= 0])
        values = torch.stack([loss_G.detach(), loss_D.detach(), right.float().mean()]).tolist()
        out = dict(zip(LOSS_NAMES, values))
        if not all(math.isfinite(v) for v in values) and not self.scaler_G.is_enabled():
            raise FloatingPointError(f"the loss is not finite at step {step + 1} ({out}): training "
                                     "diverged; lower --lr or use --precision fp32")
        return out

    @torch.no_grad()
    def accuracy(self, images: torch.Tensor, z: torch.Tensor, generator: torch.nn.Module | None = None
                 ) -> float:
        """The discriminator's accuracy (eval mode: no dropout, running BatchNorm statistics)
        on ``images`` as real and ``generator(z)`` (default: the trained one) as fake."""
        generator = generator if generator is not None else self.G
        was = self.D.training, generator.training
        self.D.eval(), generator.eval()
        try:
            on_real = self.D(self.to_net(images)).float()
            on_fake = self.D(generator(z.to(self.device))).float()
        finally:
            self.D.train(was[0]), generator.train(was[1])
        return float(torch.cat([on_real > 0, on_fake <= 0]).float().mean())

    @torch.no_grad()
    def sample_grid(self, z: torch.Tensor) -> np.ndarray:
        """An 8-wide grid of ``G(z)`` in eval mode, 2 px white gaps, uint8 HxWx3."""
        self.G.eval()
        try:
            images = self.G(z.to(self.device)).float()
        finally:
            self.G.train()
        return image_grid(images)

    def state_dict(self) -> dict[str, Any]:
        return {"G": self.G.state_dict(), "D": self.D.state_dict(), "opt_G": self.opt_G.state_dict(),
                "opt_D": self.opt_D.state_dict(), "scaler_G": self.scaler_G.state_dict(),
                "scaler_D": self.scaler_D.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        self.scaler_G.load_state_dict(state.get("scaler_G", {}))
        self.scaler_D.load_state_dict(state.get("scaler_D", {}))


def image_grid(images: torch.Tensor, columns: int = 8) -> np.ndarray:
    """[N, C, S, S] in [-1, 1] -> uint8 HxWx3 grid, ``columns`` wide, 2 px white gaps."""
    x = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    n, _, s, _ = x.shape
    rows = -(-n // columns)
    grid = np.full((rows * (s + 2) - 2, min(n, columns) * (s + 2) - 2, 3), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, columns)
        grid[r * (s + 2):r * (s + 2) + s, c * (s + 2):c * (s + 2) + s] = x[i].permute(1, 2, 0).numpy()
    return grid


def train_gan(opts: GanTrainOptions, on_step: Callable[[StepInfo], Any] | None = None, *,
              on_skipped: Callable[[list[tuple[Path, str]]], None] | None = None) -> Path:
    """Train (or, with ``opts.resume``, continue) and return ``opts.out``."""
    device, precision = resolve(opts.device, opts.precision, WHERE)
    run = StepLoop(opts.run_dir, fmt=FORMAT, what="GAN", where=WHERE, resume=opts.resume)
    images, skipped = scan_images(opts.images, min_side=opts.image_size, exclude=opts.run_dir)
    if on_skipped is not None:
        on_skipped(skipped)
    trainer = GanTrainer(opts, device, precision)
    record = {k: str(v) for k, v in asdict(opts).items()
              if k not in ("images", "out", "device", "steps", "log_every", "sample_every",
                           "checkpoint_every", "resume")}
    record.update(precision=precision, images=io.describe_files(images, opts.images))
    run.open(trainer, record, opts.steps, LOSS_NAMES, opts.log_every)
    # max_scale 1: the short side is scaled to the crop, so a crop is (nearly) the whole picture.
    crops = RandomCrops(images, opts.image_size, _seed(opts.seed, "images"), max_scale=1.0)
    sample_z = torch.randn(64, opts.latent_dim, generator=torch.Generator().manual_seed(
        _seed(opts.seed, "samples")))  # the same noise all run long
    # The discriminator's dropout draws from the global RNG: the loop gives the run its own.
    step = run.run(trainer, device, opts.steps, _seed(opts.seed, "dropout"),
                   step=lambda i: trainer.train_step(crops.batch(i, opts.batch_size), i),
                   lr=lambda i: opts.lr, grid=lambda: trainer.sample_grid(sample_z),
                   sample_every=opts.sample_every, checkpoint_every=opts.checkpoint_every,
                   on_step=on_step)
    _export(trainer, opts, step, len(images), precision)
    return opts.out


def _export(trainer: GanTrainer, opts: GanTrainOptions, step: int, n_images: int,
            precision: str) -> None:
    sd = {k: v.detach().float().cpu().contiguous() for k, v in trainer.G.state_dict().items()
          if not k.endswith("num_batches_tracked")}
    c, h, w = opts.image_shape
    meta = {"architecture": "DCGANGenerator" if opts.arch == "dcgan" else "MLPGenerator",
            "family": "dcgan" if opts.arch == "dcgan" else "gan_mlp",
            "layout": "eriklindernoren/PyTorch-GAN implementations/" + ("dcgan" if opts.arch == "dcgan"
                                                                        else "gan"),
            "paper": ("Radford, Metz, Chintala 2016, Unsupervised Representation Learning with "
                      "Deep Convolutional Generative Adversarial Networks" if opts.arch == "dcgan"
                      else "Goodfellow et al. 2014, Generative Adversarial Nets"),
            "latent_dim": str(opts.latent_dim), "image_shape": f"{c}x{h}x{w}",
            "images_folder": opts.images.name, "images": str(n_images), "steps": str(step),
            "batch_size": str(opts.batch_size), "lr": repr(opts.lr), "beta1": repr(opts.beta1),
            "seed": str(opts.seed), "precision": precision, "torch_version": torch.__version__}
    data = safetensors_bytes(sd, meta)  # bytes written by us: save_file creates files 0600
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(opts.out, lambda tmp: tmp.write_bytes(data))
