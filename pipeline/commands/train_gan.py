"""``run_pipeline.py train gan IMAGES_DIR --out G.safetensors``: a generator from noise.

Thin: parses options into ``GanTrainOptions``; progress, skipped files and errors as
every train command shows them (``training_run``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .training_run import TrainingRun

# Mirrors GanTrainOptions' defaults (a test checks); the trainer is imported only when the
# command runs, so --help stays fast.
_D = {"arch": "dcgan", "latent_dim": 100, "batch_size": 64, "steps": 5000, "lr": 2e-4,
      "beta1": 0.5, "log_every": 50, "sample_every": 500, "checkpoint_every": 500}


def command(
    images: Path = typer.Argument(..., show_default=False, metavar="IMAGES_DIR",
                                  help="Folder of training images (searched recursively)."),
    out: Path = typer.Option(..., "--out", show_default=False,
                             help="Where to write the generator (.safetensors); losses, samples "
                                  "and the checkpoint go to OUT's stem + '_train/' beside it."),
    arch: str = typer.Option(_D["arch"], "--arch",
                             help="dcgan (Radford et al. 2016) or mlp (the plain GAN, for small "
                                  "grayscale images)."),
    image_size: Optional[int] = typer.Option(None, "--image-size", show_default=False,
                                             help="Side of the square images made [default: 32 "
                                                  "for dcgan (or 64), 28 for mlp]."),
    channels: Optional[int] = typer.Option(None, "--channels", show_default=False,
                                           help="3 (RGB) or 1 (grayscale) [default: 3 for "
                                                "dcgan, 1 for mlp]."),
    latent_dim: int = typer.Option(_D["latent_dim"], "--latent-dim", help="Length of the noise vector."),
    batch_size: int = typer.Option(_D["batch_size"], "--batch-size", help="Images per step."),
    steps: int = typer.Option(_D["steps"], "--steps", help="Optimizer steps in total."),
    lr: float = typer.Option(_D["lr"], "--lr", help="Adam learning rate, both networks."),
    beta1: float = typer.Option(_D["beta1"], "--beta1", help="Adam beta1 (beta2 is 0.999)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N."),
    precision: str = typer.Option("auto", "--precision", help="auto | fp32 | bf16 | fp16."),
    seed: int = typer.Option(0, "--seed", help="Seeds the initial weights, the batches and the noise."),
    log_every: int = typer.Option(_D["log_every"], "--log-every",
                                  help="Write a losses.csv row (means) every N steps."),
    sample_every: int = typer.Option(_D["sample_every"], "--sample-every",
                                     help="Write an 8x8 sample grid (fixed noise) every N steps."),
    checkpoint_every: int = typer.Option(_D["checkpoint_every"], "--checkpoint-every",
                                         help="Save a resumable checkpoint every N steps."),
    resume: bool = typer.Option(False, "--resume",
                                help="Continue from the checkpoint, exactly; refused if options "
                                     "or data that matter changed."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train a generator from noise (DCGAN or the MLP GAN) for the `generate:` source."""
    from ..train.noise_gan import GanTrainOptions, train_gan

    run = TrainingRun("train gan", quiet)
    with run.reporting_errors():
        opts = GanTrainOptions(
            images=images, out=out, arch=arch, image_size=image_size, channels=channels,
            latent_dim=latent_dim, batch_size=batch_size, steps=steps, lr=lr, beta1=beta1,
            device=device, precision=precision, seed=seed, log_every=log_every,
            sample_every=sample_every, checkpoint_every=checkpoint_every, resume=resume)
        path = train_gan(opts, lambda i: run.step(i.steps, i.start_step, G=i.losses["G"],
                                                  D=i.losses["D"], D_acc=i.losses["D_acc"]),
                         on_skipped=run.skipped)
    typer.echo(f"wrote {path} (losses, samples and the checkpoint in {opts.run_dir})", err=True)
