"""CycleGAN training on two unpaired image folders A and B.

Zhu, Park, Isola, Efros, "Unpaired Image-to-Image Translation using
Cycle-Consistent Adversarial Networks", ICCV 2017, as implemented in
junyanz/pytorch-CycleGAN-and-pix2pix (``cycle_gan_model.py``): two ResNet
generators G_A: A->B and G_B: B->A, two 70x70 PatchGAN discriminators
(D_A judges B-domain images, D_B A-domain ones), LSGAN losses (Mao et al.
2017), cycle loss weight 10, identity loss 0.5 of it, a 50-image history pool
per discriminator, Adam 2e-4 with betas (0.5, 0.999), constant learning rate
for the first half and linear decay to 0 in the second.  The paper counts
epochs (100 + 100); this trainer counts optimizer steps, and by default runs
200 epochs' worth of steps of the larger folder, as upstream's epoch is.

The loop (``train_cyclegan``) owns files, logging and resume; the work of
one step is ``CycleGanTrainer.train_step``.  Batches come from the stateless
``RandomCrops`` sampler, so the saved state is models, optimizers, pools, the
loss-log sums and the step; the learning rate is recomputed from the step.
"""
from __future__ import annotations

import hashlib
import itertools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import JobError
from ..machine.context import dtypes, resolve_device, resolve_precision
from ..media.images import write_image
from ..models.cyclegan import NLayerDiscriminator, ResnetGenerator
from . import cyclegan_io as io
from .cyclegan_options import GENERATORS, CycleGanTrainOptions
from .data import RandomCrops, scan_images
from .gan import init_normal, linear_decay, lsgan_loss
from .image_pool import ImagePool

__all__ = ["CycleGanTrainOptions", "TrainingFolders", "StepInfo", "CycleGanTrainer",
           "scan_folders", "train_cyclegan", "GENERATORS"]

#: The paper loads images at 286 px and crops 256: larger images are scaled
#: down to this multiple of the crop so a crop still shows whole objects.
LOAD_SCALE = 286 / 256
#: Options that change the data or the math: a resumed run must match them.
RUN_KEYS = ("image_size", "generator", "ngf", "ndf", "n_layers_d", "norm", "batch_size",
            "lambda_cycle", "lambda_identity", "pool_size", "lr", "beta1", "seed")


@dataclass(frozen=True)
class TrainingFolders:
    a: list[Path]
    b: list[Path]
    skipped: list[tuple[Path, str]]  # (file, reason), both folders


@dataclass(frozen=True)
class StepInfo:
    """What ``on_step`` hears after every step; return True from it to stop
    (a checkpoint is written at this step first)."""

    step: int  # completed steps, 1-based
    steps: int
    start: int  # the step this process started from (0, or the resumed one)
    losses: dict[str, float]
    lr: float
    seconds: float  # training wall time, across resumes


def scan_folders(opts: CycleGanTrainOptions) -> TrainingFolders:
    """Usable images of both folders; ``MediaError`` names a folder with none."""
    a, skipped_a = scan_images(opts.folder_a, opts.image_size)
    b, skipped_b = scan_images(opts.folder_b, opts.image_size)
    return TrainingFolders(a, b, skipped_a + skipped_b)


def _derive_seed(seed: int, what: str) -> int:
    # Separate streams per consumer (init, pools, samplers) from one user seed.
    digest = hashlib.blake2b(f"cyclegan/{seed}/{what}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


class CycleGanTrainer:
    """The four networks, two optimizers and two pools, and one training step."""

    def __init__(self, opts: CycleGanTrainOptions, device: torch.device, precision: str) -> None:
        self.opts, self.device, self.precision = opts, device, precision
        g = torch.Generator().manual_seed(_derive_seed(opts.seed, "init"))
        # Module constructors draw PyTorch's default init from the global RNG;
        # fork it so building a trainer leaves the caller's stream alone.
        with torch.random.fork_rng(devices=[]):
            gen = lambda: ResnetGenerator(3, 3, opts.ngf, opts.norm, False,  # noqa: E731
                                          GENERATORS[opts.generator])
            disc = lambda: NLayerDiscriminator(  # noqa: E731
                3, opts.ndf, opts.n_layers_d, opts.norm)
            self.nets = {name: init_normal(make(), g).to(device) for name, make in
                         (("G_A", gen), ("G_B", gen), ("D_A", disc), ("D_B", disc))}
        self.G_A, self.G_B = self.nets["G_A"], self.nets["G_B"]
        self.D_A, self.D_B = self.nets["D_A"], self.nets["D_B"]
        betas = (opts.beta1, 0.999)
        self.opt_G = torch.optim.Adam(itertools.chain(self.G_A.parameters(), self.G_B.parameters()),
                                      lr=opts.lr, betas=betas)
        self.opt_D = torch.optim.Adam(itertools.chain(self.D_A.parameters(), self.D_B.parameters()),
                                      lr=opts.lr, betas=betas)
        # fp16 gradients underflow without loss scaling; bf16 and fp32 need none.
        fp16 = precision == "fp16"
        self.scaler_G = torch.amp.GradScaler(device.type, enabled=fp16)
        self.scaler_D = torch.amp.GradScaler(device.type, enabled=fp16)
        self.pool_fake_A = ImagePool(opts.pool_size, _derive_seed(opts.seed, "pool A"))
        self.pool_fake_B = ImagePool(opts.pool_size, _derive_seed(opts.seed, "pool B"))

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=dtypes()[self.precision],
                              enabled=self.precision != "fp32")

    def to_net(self, rgb: torch.Tensor) -> torch.Tensor:
        """uint8 [B, 3, H, W] -> [-1, 1] on the device, as the ``cyclegan`` stage does."""
        return (rgb.to(self.device, non_blocking=True).float() / 255.0 - 0.5) / 0.5

    def train_step(self, a: torch.Tensor, b: torch.Tensor, lr: float) -> dict[str, float]:
        """One generator update, then one discriminator update (upstream order)."""
        o = self.opts
        real_A, real_B = self.to_net(a), self.to_net(b)
        for opt in (self.opt_G, self.opt_D):
            for group in opt.param_groups:
                group["lr"] = lr
        zero = torch.zeros((), device=self.device)

        # Generators: D's weights are constants here, so no gradients are kept for them.
        self.D_A.requires_grad_(False)
        self.D_B.requires_grad_(False)
        self.opt_G.zero_grad(set_to_none=True)
        with self._autocast():
            fake_B, fake_A = self.G_A(real_A), self.G_B(real_B)
            rec_A, rec_B = self.G_B(fake_B), self.G_A(fake_A)
            loss_G_A = lsgan_loss(self.D_A(fake_B), True)
            loss_G_B = lsgan_loss(self.D_B(fake_A), True)
        # L1 in fp32, outside autocast, for the same reason as lsgan_loss.
        loss_cycle_A = F.l1_loss(rec_A.float(), real_A) * o.lambda_cycle
        loss_cycle_B = F.l1_loss(rec_B.float(), real_B) * o.lambda_cycle
        loss_idt_A = loss_idt_B = zero
        if o.lambda_identity > 0:
            # Identity (paper, section 5.2): a generator fed its own target domain
            # should change nothing; it keeps colour composition in check.
            with self._autocast():
                idt_A, idt_B = self.G_A(real_B), self.G_B(real_A)
            weight = o.lambda_cycle * o.lambda_identity
            loss_idt_A = F.l1_loss(idt_A.float(), real_B) * weight
            loss_idt_B = F.l1_loss(idt_B.float(), real_A) * weight
        loss_G = loss_G_A + loss_G_B + loss_cycle_A + loss_cycle_B + loss_idt_A + loss_idt_B
        self.scaler_G.scale(loss_G).backward()
        self.scaler_G.step(self.opt_G)
        self.scaler_G.update()

        # Discriminators: real -> 1, fakes from the history pool -> 0, halved
        # so D learns at half G's pace (upstream's backward_D_basic).
        self.D_A.requires_grad_(True)
        self.D_B.requires_grad_(True)
        self.opt_D.zero_grad(set_to_none=True)
        # Pools hold fp32 (bf16 -> fp32 is exact), so a run resumed at another
        # precision can still feed them to the discriminators.
        pooled_B = self.pool_fake_B.query(fake_B.float())
        pooled_A = self.pool_fake_A.query(fake_A.float())
        with self._autocast():
            loss_D_A = 0.5 * (lsgan_loss(self.D_A(real_B), True)
                              + lsgan_loss(self.D_A(pooled_B), False))
            loss_D_B = 0.5 * (lsgan_loss(self.D_B(real_A), True)
                              + lsgan_loss(self.D_B(pooled_A), False))
        self.scaler_D.scale(loss_D_A + loss_D_B).backward()
        self.scaler_D.step(self.opt_D)
        self.scaler_D.update()

        values = torch.stack([loss_D_A, loss_G_A, loss_cycle_A, loss_idt_A,
                              loss_D_B, loss_G_B, loss_cycle_B, loss_idt_B]).float()
        return dict(zip(io.LOSS_NAMES, values.tolist()))  # one device sync per step

    @torch.no_grad()
    def sample_grid(self, a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
        """uint8 HxWx3: real A | fake B | rec A over real B | fake A | rec B
        (first image of each batch), in eval mode so BatchNorm stats stay put."""
        for net in (self.G_A, self.G_B):
            net.eval()
        try:
            real_A, real_B = self.to_net(a[:1]), self.to_net(b[:1])
            with self._autocast():
                fake_B, fake_A = self.G_A(real_A), self.G_B(real_B)
                rec_A, rec_B = self.G_B(fake_B), self.G_A(fake_A)
            rows = [torch.cat([x.float() for x in row], dim=-1)
                    for row in ((real_A, fake_B, rec_A), (real_B, fake_A, rec_B))]
            grid = torch.cat(rows, dim=-2)[0]
        finally:
            for net in (self.G_A, self.G_B):
                net.train()
        grid = ((grid + 1.0) / 2.0 * 255.0).round().clamp(0, 255).to(torch.uint8)
        return grid.permute(1, 2, 0).cpu().numpy()

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {name: net.state_dict() for name, net in self.nets.items()}
        state.update(opt_G=self.opt_G.state_dict(), opt_D=self.opt_D.state_dict(),
                     scaler_G=self.scaler_G.state_dict(), scaler_D=self.scaler_D.state_dict(),
                     pool_fake_A=self.pool_fake_A.state_dict(),
                     pool_fake_B=self.pool_fake_B.state_dict())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, net in self.nets.items():
            net.load_state_dict(state[name])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        # An fp16 run resumed in bf16/fp32 (or back) has no scaler state to match.
        for scaler, key in ((self.scaler_G, "scaler_G"), (self.scaler_D, "scaler_D")):
            if scaler.is_enabled() and state.get(key):
                scaler.load_state_dict(state[key])
        self.pool_fake_A.load_state_dict(state["pool_fake_A"], self.device)
        self.pool_fake_B.load_state_dict(state["pool_fake_B"], self.device)


def _resolve(opts: CycleGanTrainOptions) -> tuple[torch.device, str]:
    try:
        device = resolve_device(opts.device)
    except ValueError as exc:
        raise JobError(str(exc), where="train cyclegan", hint="use --device auto or cpu") from None
    return device, resolve_precision(opts.precision, device)


def _schedule(opts: CycleGanTrainOptions, folders: TrainingFolders) -> tuple[int, int]:
    # Upstream's epoch is max(|A|, |B|) images; the paper trains 100 + 100 epochs.
    epoch = -(-max(len(folders.a), len(folders.b)) // opts.batch_size)
    steps = opts.steps if opts.steps is not None else 200 * epoch
    decay_from = opts.decay_from if opts.decay_from is not None else steps // 2
    if decay_from > steps:
        raise JobError(f"decay_from ({decay_from}) is past the last step ({steps})",
                       where="train cyclegan", hint="lower --decay-from or raise --steps")
    return steps, decay_from


def _run_record(opts: CycleGanTrainOptions, folders: TrainingFolders, steps: int,
                decay_from: int) -> dict[str, Any]:
    """What a resumed run must share with the saved one (the folders by their
    files, not their paths, so a moved data set still resumes)."""
    record = {k: getattr(opts, k) for k in RUN_KEYS}
    record.update(steps=steps, decay_from=decay_from,
                  images_a=io.describe_files(folders.a, opts.folder_a),
                  images_b=io.describe_files(folders.b, opts.folder_b))
    return record


def train_cyclegan(opts: CycleGanTrainOptions, on_step: Callable[[StepInfo], Any] | None = None,
                   *, folders: TrainingFolders | None = None) -> dict[str, Path]:
    """Train (or, with ``opts.resume``, continue) and return the files written.

    ``folders`` lets a caller that already scanned (to report skipped files)
    pass the result in.  Raises ``JobError`` for bad options or a refused
    resume, ``MediaError`` for a folder with no usable image.
    """
    device, precision = _resolve(opts)
    folders = folders if folders is not None else scan_folders(opts)
    steps, decay_from = _schedule(opts, folders)
    out = opts.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "samples").mkdir(exist_ok=True)
    record = _run_record(opts, folders, steps, decay_from)
    trainer = CycleGanTrainer(opts, device, precision)
    ckpt = out / io.CHECKPOINT
    start, elapsed0, log_state, resumed = 0, 0.0, None, False
    if ckpt.exists():
        if not opts.resume:
            raise JobError(f"{out} already holds a CycleGAN run ({ckpt.name})",
                           where="train cyclegan",
                           hint="pass --resume to continue it, or choose another --out")
        state = io.load_checkpoint(ckpt)
        io.check_same_run(ckpt, state["run"], record)
        trainer.load_state_dict(state)
        torch.set_rng_state(state["rng"]["torch"])
        if device.type == "cuda" and state["rng"].get("cuda"):
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        start, elapsed0, log_state = int(state["step"]), float(state["seconds"]), state["log"]
        resumed = True
    log = io.LossLog(out / io.LOSSES, opts.log_every, start if resumed else None, log_state)
    crops_a = RandomCrops(folders.a, opts.image_size, _derive_seed(opts.seed, "A"),
                          max_scale=LOAD_SCALE)
    crops_b = RandomCrops(folders.b, opts.image_size, _derive_seed(opts.seed, "B"),
                          max_scale=LOAD_SCALE)
    sample_a, sample_b = crops_a.batch(0, 1), crops_b.batch(0, 1)  # the same pair all run long
    written: dict[str, Path] = {"checkpoint": ckpt, "losses": out / io.LOSSES,
                                "samples": out / "samples"}

    def export(step: int) -> None:
        meta = io.generator_metadata(opts, len(folders.a), len(folders.b), step)
        written.update(io.export_weights(out, trainer.nets, meta))

    def save(step: int, seconds: float) -> None:
        rng = {"torch": torch.get_rng_state(),
               "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else []}
        io.save_checkpoint(ckpt, {**trainer.state_dict(), "step": step, "seconds": seconds,
                                  "run": record, "log": log.state_dict(), "rng": rng})
        export(step)

    t0 = time.perf_counter()
    step, seconds = start, elapsed0
    for index in range(start, steps):
        lr = opts.lr * linear_decay(index, steps, decay_from)
        losses = trainer.train_step(crops_a.batch(index, opts.batch_size),
                                    crops_b.batch(index, opts.batch_size), lr)
        step, last = index + 1, index + 1 == steps
        seconds = elapsed0 + time.perf_counter() - t0
        log.add(step, losses, lr, seconds, last)
        if step % opts.sample_every == 0 or last:
            write_image(trainer.sample_grid(sample_a, sample_b),
                        out / "samples" / f"step_{step:07d}.png", "png")
        info = StepInfo(step, steps, start, losses, lr, seconds)
        stop = bool(on_step(info)) if on_step is not None else False
        if step % opts.checkpoint_every == 0 or last or stop:
            save(step, seconds)
        if stop:
            break
    if step == start:  # a finished run resumed: nothing to train, still hand back the files
        export(step)
    return written
