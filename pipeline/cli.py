"""The command line: the only place that prints or exits.

    python run_pipeline.py JOB.yaml             run (or resume) a job
    python run_pipeline.py validate JOB.yaml    check it and print the plan
    python run_pipeline.py train style ...      train a fast style net (Johnson et al.)
    python run_pipeline.py train cyclegan ...   train CycleGAN generators (Zhu et al.)
    python run_pipeline.py train arbitrary ...  train an AdaIN decoder: any painting as the style
    python run_pipeline.py train gan ...        train a generator from noise (DCGAN, MLP GAN)
    python run_pipeline.py stylize-still ...    optimise one still (Gatys et al.)
    python run_pipeline.py stylize IN... --weights W -o OUT   the same run, no job file to write

Exit codes: 0 all done; 1 some sources failed and the rest finished;
2 the job itself is invalid; 130 interrupted (Ctrl-C), outputs so far kept.
"""
from __future__ import annotations

import gc
import re
import signal
import sys
import warnings

import typer

# The command modules import torch and PyAV only when a command runs: --help and --version
# answer in a fraction of a second.  One module per command (pipeline/commands/).
from .commands import (run, sheet, stylize, stylize_still, train_arbitrary, train_cyclegan,
                       train_gan, train_style, validate)

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  pretty_exceptions_enable=False,
                  help="Batch stylization of images and video: fast style nets and CycleGAN "
                       "generators, batched on the device, resumable.  `run_pipeline.py JOB.yaml` runs a job.")



def _first_sentence(command) -> str:
    """The docstring's first sentence, whole: click's own short help stops at the first full
    stop, which cut "(Gatys et al. 2016)" to "(Gatys et al."."""
    text = " ".join((command.__doc__ or "").strip().split("\n\n")[0].split())
    match = re.match(r"(.+?[.!?])(?=\s+[A-Z`(]|$)", text)
    return match.group(1) if match else text


def _add(typer_app: typer.Typer, name: str, command) -> None:
    typer_app.command(name, short_help=_first_sentence(command))(command)


train_app = typer.Typer(no_args_is_help=True, help="Train the models the pipeline runs.")
for _name, _module in (("style", train_style), ("cyclegan", train_cyclegan),
                       ("arbitrary", train_arbitrary), ("gan", train_gan)):
    _add(train_app, _name, _module.command)
app.add_typer(train_app, name="train")
for _name, _module in (("stylize-still", stylize_still), ("stylize", stylize), ("sheet", sheet),
                       ("run", run), ("validate", validate)):
    _add(app, _name, _module.command)


def _print_version(asked: bool) -> None:
    if asked:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("stylize-pipeline")
        except PackageNotFoundError:  # run from a checkout that was never pip-installed
            number = "unknown (not installed; pip install -e .)"
        typer.echo(f"stylize-pipeline {number}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_print_version,
                                          is_eager=True, help="Print the version and exit.")
             ) -> None:
    pass  # the app's own options; its help text is the Typer(help=...) above


def _commands() -> set[str]:
    """The app's command names, as registered (a new command needs no list kept here)."""
    return ({c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands}
            | {g.name for g in app.registered_groups})


def entry() -> None:
    """The command-line process: ``main``, with its start-up's imports kept out of the garbage
    collector's way (see ``machine.start_up``: run_pipeline.py turns the collector off before
    its first import; here it is turned on after the last).  Only for the process: ``main``
    called in process (the tests) changes nothing."""
    gc.disable()
    try:
        args = sys.argv[1:]
        if args and not {"--help", "-h", "--version"} & set(args):
            # every command but --help needs these; torch only where a stage computes (the
            # stage registry imports it then): a job that only decodes and encodes never does
            from . import engine  # noqa: F401
            from .job import build  # noqa: F401
    finally:
        gc.freeze()
        gc.enable()
    main()


def main(argv: list[str] | None = None) -> None:
    """``run_pipeline.py JOB.yaml`` means ``run JOB.yaml``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and not args[0].startswith("-") and args[0] not in _commands():
        args.insert(0, "run")
    # Pillow warns of a "decompression bomb DOS attack" for any image over 89 Mpx as soon as
    # its header is read; memory.py decides what fits and says so in words: no scare line.
    warnings.filterwarnings("ignore", message="Image size .* could be decompression bomb")
    # A service manager stops us with SIGTERM: stop as cleanly as for Ctrl-C.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    app(args=args, prog_name="run_pipeline.py")
