"""The command line: the only place that prints or exits.

    python run_pipeline.py JOB.yaml             run (or resume) a job
    python run_pipeline.py validate JOB.yaml    check it and print the plan
    python run_pipeline.py train style ...      train a fast style net (Johnson et al.)
    python run_pipeline.py train cyclegan ...   train CycleGAN generators (Zhu et al.)
    python run_pipeline.py stylize-still ...    optimise one still (Gatys et al.)

Exit codes: 0 all done; 1 some sources failed and the rest finished;
2 the job itself is invalid; 130 interrupted (Ctrl-C), outputs so far kept.
"""
from __future__ import annotations

import signal
import sys
from pathlib import Path

import typer
from tqdm import tqdm

from .build import Prepared, prepare
from .commands import stylize_still, train_cyclegan, train_style
from .contact_sheet import make_contact_sheet
from .errors import JobError, MediaError
from .executor import Executor, Summary
from .ledger import Ledger

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  pretty_exceptions_enable=False,
                  help="Batch stylization of images: fast style nets and CycleGAN generators, "
                       "batched on the device, resumable.  `run_pipeline.py JOB.yaml` runs a job.")

train_app = typer.Typer(no_args_is_help=True, help="Train the models the pipeline runs.")
train_app.command("style")(train_style.command)
train_app.command("cyclegan")(train_cyclegan.command)
app.add_typer(train_app, name="train")
app.command("stylize-still")(stylize_still.command)

JOB_ARG = typer.Argument(..., help="The job file (YAML).", show_default=False)


@app.command()
def run(job: Path = JOB_ARG,
        restart: bool = typer.Option(False, "--restart",
                                     help="Start over: delete this job's earlier outputs and ledger."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar.")) -> None:
    """Run JOB, or resume it: outputs already committed are skipped."""
    try:
        prepared = _prepare_or_exit(job)
        try:
            ledger = Ledger(prepared.job.output, prepared.fingerprint, restart=restart)
        except JobError as exc:
            _exit_invalid(exc)
        try:
            summary = _run(prepared, ledger, quiet)
        finally:
            ledger.close()
    except KeyboardInterrupt:  # outside the executor's loop, which handles its own
        typer.echo("interrupted; run the same command again to finish", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    code = _report(prepared, summary)
    if prepared.job.contact_sheet and not summary.interrupted:
        _write_contact_sheet(prepared)
    raise typer.Exit(code)


def _write_contact_sheet(p: Prepared) -> None:
    opts = p.job.contact_sheet
    pairs = [(u.source, p.job.output / u.output_rel) for u in p.plan.units
             if (p.job.output / u.output_rel).is_file()][: opts.images]
    if not pairs:
        return
    try:
        make_contact_sheet(pairs, opts.path, opts.height)
    except MediaError as exc:  # a picture for people: never worth failing the run over
        typer.echo(f"warning: contact sheet not written: {exc}", err=True)
        return
    typer.echo(f"contact sheet: {opts.path}", err=True)


@app.command()
def validate(job: Path = JOB_ARG) -> None:
    """Check JOB (YAML, sources, device, weights) and print the plan without running it."""
    p = _prepare_or_exit(job)
    typer.echo(f"job       {p.job.name}  ({p.job.path})")
    typer.echo(f"output    {p.job.output}")
    typer.echo(f"device    {p.ctx.device}   precision {p.ctx.precision}   "
               f"batch size {p.ctx.batch_size or 'auto'}")
    for index, spec in enumerate(p.job.sources):
        count = sum(1 for u in p.plan.units if u.source_index == index)
        typer.echo(f"source    [{index}] {spec.kind}: {spec.pattern}  ({count} files)")
    for spec, reason in p.plan.empty_sources:
        typer.echo(f"warning   {spec.location}: {reason}")
    typer.echo("stages    " + " -> ".join(s.describe() for s in p.stages))
    typer.echo(f"units     {len(p.plan.units)}")


def _prepare_or_exit(job: Path) -> Prepared:
    try:
        return prepare(job)
    except JobError as exc:
        _exit_invalid(exc)


def _exit_invalid(exc: JobError) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(EXIT_INVALID)


def _run(p: Prepared, ledger: Ledger, quiet: bool) -> Summary:
    pending = [u for u in p.plan.units if not ledger.is_done(u.key)]
    skipped = len(p.plan.units) - len(pending)
    bar = tqdm(total=len(pending), unit="img", desc=p.job.name, disable=quiet or None,
               dynamic_ncols=True)
    failed = 0

    def on_progress(n: int, ok: bool) -> None:
        nonlocal failed
        if not ok:
            failed += n
            bar.set_postfix(failed=failed, refresh=False)
        bar.update(n)

    executor = Executor(p.stages, p.ctx, ledger, workers=p.job.workers, on_progress=on_progress)
    try:
        summary = executor.run(pending)
    finally:
        bar.close()
    summary.skipped = skipped
    return summary


def _report(p: Prepared, s: Summary) -> int:
    failed = len(s.failures) + len(p.plan.empty_sources)
    rate = s.done / s.wall_s if s.wall_s > 0 else 0.0
    state = "interrupted" if s.interrupted else "finished"
    typer.echo(f"{p.job.name}: {state}: done {s.done}, skipped {s.skipped} (already done), "
               f"failed {failed}, wall {s.wall_s:.1f} s ({rate:.2f} images/s)", err=True)
    for spec, reason in p.plan.empty_sources:
        typer.echo(f"  failed  {spec.location}: sources: {reason}", err=True)
    for f in s.failures:
        typer.echo(f"  failed  {f.source} [{f.stage}]: {f.reason}", err=True)
    if s.interrupted:
        typer.echo("  stopped early; run the same command again to finish", err=True)
        return EXIT_INTERRUPTED
    return EXIT_FAILED if failed else EXIT_OK


_COMMANDS = {"run", "validate", "train", "stylize-still"}


def main(argv: list[str] | None = None) -> None:
    """``run_pipeline.py JOB.yaml`` means ``run JOB.yaml``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and not args[0].startswith("-") and args[0] not in _COMMANDS:
        args.insert(0, "run")
    # A service manager stops us with SIGTERM: stop as cleanly as for Ctrl-C.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    app(args=args, prog_name="run_pipeline.py")
