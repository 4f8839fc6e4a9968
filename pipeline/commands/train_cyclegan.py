"""``run_pipeline.py train cyclegan A B --out DIR``: train a CycleGAN pair.

Zhu et al. 2017 with the paper's defaults (see ``pipeline.train.cyclegan``).
Prints the files skipped while scanning, shows a progress bar, and stops
cleanly on Ctrl-C or SIGTERM: the step in flight finishes, a checkpoint is
written, and the same command with ``--resume`` continues exactly.

Exit codes: 0 done; 2 invalid options or data (``error: ...``); 130 stopped
early (checkpoint written).
"""
from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Optional

import typer
from tqdm import tqdm

from ..errors import PipelineError
from ..train.cyclegan_options import CycleGanTrainOptions  # no torch: --help stays fast

EXIT_INVALID, EXIT_INTERRUPTED = 2, 130
_D = CycleGanTrainOptions.__dataclass_fields__  # defaults live in one place


def _default(name: str):
    return _D[name].default


def command(
    folder_a: Path = typer.Argument(..., metavar="FOLDER_A", show_default=False,
                                    help="Folder of domain A images (searched recursively)."),
    folder_b: Path = typer.Argument(..., metavar="FOLDER_B", show_default=False,
                                    help="Folder of domain B images (searched recursively)."),
    out: Path = typer.Option(..., "--out", "-o", show_default=False,
                             help="Output folder: checkpoint.pt, latest_net_{G,D}_{A,B}.pth, "
                                  "G_A/G_B.safetensors, losses.csv, samples/."),
    image_size: int = typer.Option(_default("image_size"), "--image-size",
                                   help="Side of the square random crops trained on "
                                        "(multiple of 4)."),
    generator: str = typer.Option(_default("generator"), "--generator",
                                  help="Generator architecture: resnet_9blocks or resnet_6blocks."),
    ngf: int = typer.Option(_default("ngf"), "--ngf", help="Generator filters in the first layer."),
    ndf: int = typer.Option(_default("ndf"), "--ndf",
                            help="Discriminator filters in the first layer."),
    n_layers_d: int = typer.Option(_default("n_layers_d"), "--n-layers-d",
                                   help="PatchGAN depth; 3 gives 70x70 patches."),
    norm: str = typer.Option(_default("norm"), "--norm", help="instance, batch or none."),
    batch_size: int = typer.Option(_default("batch_size"), "--batch-size",
                                   help="Images per step from each folder."),
    steps: Optional[int] = typer.Option(None, "--steps", show_default=False,
                                        help="Optimizer steps in all [default: 200 epochs of the "
                                             "larger folder, as the paper's 100 + 100]."),
    decay_from: Optional[int] = typer.Option(None, "--decay-from", show_default=False,
                                             help="Step where the learning rate starts its linear "
                                                  "decay to 0 [default: half of --steps]."),
    lr: float = typer.Option(_default("lr"), "--lr", help="Adam learning rate (both optimizers)."),
    beta1: float = typer.Option(_default("beta1"), "--beta1", help="Adam beta1 (beta2 is 0.999)."),
    lambda_cycle: float = typer.Option(_default("lambda_cycle"), "--lambda-cycle",
                                       help="Weight of the cycle-consistency L1 loss."),
    lambda_identity: float = typer.Option(_default("lambda_identity"), "--lambda-identity",
                                          help="Identity loss weight, relative to --lambda-cycle "
                                               "(0 turns it off)."),
    pool_size: int = typer.Option(_default("pool_size"), "--pool-size",
                                  help="Generated images kept for the discriminators (0: none)."),
    device: str = typer.Option(_default("device"), "--device", help="auto, cpu, cuda or cuda:N."),
    precision: str = typer.Option(_default("precision"), "--precision",
                                  help="auto (bf16/fp16 autocast on CUDA, fp32 on CPU), fp32, "
                                       "fp16 or bf16."),
    seed: int = typer.Option(_default("seed"), "--seed",
                             help="Seed for init, crops and the image pools."),
    log_every: int = typer.Option(_default("log_every"), "--log-every",
                                  help="Steps per losses.csv row (each the mean over them)."),
    sample_every: int = typer.Option(_default("sample_every"), "--sample-every",
                                     help="Steps between sample grids in samples/."),
    checkpoint_every: int = typer.Option(_default("checkpoint_every"), "--checkpoint-every",
                                         help="Steps between checkpoints (one is also written "
                                              "at the end and on Ctrl-C)."),
    resume: bool = typer.Option(False, "--resume",
                                help="Continue the run saved in --out (refused if options that "
                                     "change the training differ)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train CycleGAN (Zhu et al. 2017) on two unpaired folders A and B.

    Writes both generators (A->B as G_A, B->A as G_B), which the `cyclegan`
    stage loads as they are.
    """
    try:
        opts = CycleGanTrainOptions(
            folder_a, folder_b, out, image_size=image_size, generator=generator, ngf=ngf, ndf=ndf,
            n_layers_d=n_layers_d, norm=norm, batch_size=batch_size, lambda_cycle=lambda_cycle,
            lambda_identity=lambda_identity, pool_size=pool_size, lr=lr, beta1=beta1, steps=steps,
            decay_from=decay_from, device=device, precision=precision, seed=seed,
            log_every=log_every, sample_every=sample_every, checkpoint_every=checkpoint_every,
            resume=resume)
        from ..train.cyclegan import scan_folders
        folders = scan_folders(opts)
    except PipelineError as exc:
        _fail(exc)
    for path, reason in folders.skipped:
        typer.echo(f"  skipped {path}: {reason}", err=True)
    typer.echo(f"A: {len(folders.a)} images in {folder_a}; B: {len(folders.b)} images in "
               f"{folder_b}; {len(folders.skipped)} skipped", err=True)

    stop = {"asked": False}
    bar: tqdm | None = None

    def on_step(info) -> bool:  # a pipeline.train.cyclegan.StepInfo
        nonlocal bar
        if bar is None:
            bar = tqdm(total=info.steps, initial=info.start, unit="step", desc="cyclegan",
                       disable=quiet or None, dynamic_ncols=True)
        def pair(name: str) -> str:  # both directions' loss, summed
            return f"{info.losses[name + '_A'] + info.losses[name + '_B']:.3f}"
        bar.set_postfix(G=pair("G"), D=pair("D"), cyc=pair("cycle"), lr=f"{info.lr:.2g}",
                        refresh=False)
        bar.update(info.step - bar.n)
        return stop["asked"]

    def ask_stop(signum, frame) -> None:
        if stop["asked"]:  # a second Ctrl-C: stop now, from the last checkpoint
            raise KeyboardInterrupt
        stop["asked"] = True

    # Handlers can only be installed from the main thread; elsewhere Ctrl-C keeps its default.
    main = threading.current_thread() is threading.main_thread()
    previous = ({s: signal.signal(s, ask_stop) for s in (signal.SIGINT, signal.SIGTERM)}
                if main else {})
    try:
        from ..train.cyclegan import train_cyclegan
        written = train_cyclegan(opts, on_step, folders=folders)
    except PipelineError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        typer.echo("interrupted; run the same command with --resume to continue from the "
                   "last checkpoint", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if bar is not None:
            bar.close()
    if stop["asked"]:
        typer.echo(f"stopped; checkpoint written to {written['checkpoint']}; "
                   "run the same command with --resume to continue", err=True)
        raise typer.Exit(EXIT_INTERRUPTED)
    typer.echo(f"done: {written['G_A']} (A->B), {written['G_B']} (B->A), "
               f"{written['losses']}", err=True)


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(EXIT_INVALID)
