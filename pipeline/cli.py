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
import threading
import warnings
from pathlib import Path

import typer
from tqdm import tqdm

from .build import Prepared, prepare
from .commands import stylize_still, train_cyclegan, train_style
from .contact_sheet import make_contact_sheet
from .errors import JobError, MediaError, storage_error
from .executor import Progress, Summary, run_units
from .ledger import Ledger

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  pretty_exceptions_enable=False,
                  help="Batch stylization of images and video: fast style nets and CycleGAN "
                       "generators, batched on the device, resumable.  `run_pipeline.py JOB.yaml` runs a job.")

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
            ledger = Ledger(prepared.job.output, prepared.fingerprint, restart=restart,
                            keys=[u.key for u in prepared.plan.units])
        except JobError as exc:
            _exit_invalid(exc)
        except OSError as exc:  # an output folder we cannot create or write, a full disk
            typer.echo(f"error: cannot use the output folder {prepared.job.output}: "
                       f"{exc.strerror or exc}; free space or pick a writable folder", err=True)
            raise typer.Exit(EXIT_FAILED if storage_error(exc) else EXIT_INVALID) from None
        try:
            summary = _run(prepared, ledger, quiet)
        finally:
            ledger.close()
    except KeyboardInterrupt:  # outside the executor's loop, which handles its own
        typer.echo("interrupted; run the same command again to finish", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    code = _report(prepared, summary)
    if prepared.job.contact_sheet and not (summary.interrupted or summary.fatal):
        _write_contact_sheet(prepared)
    raise typer.Exit(code)


def _write_contact_sheet(p: Prepared) -> None:
    opts = p.job.contact_sheet
    pairs = [(u.source, p.job.output / u.output_rel) for u in p.plan.units
             if u.kind == "image" and (p.job.output / u.output_rel).is_file()][: opts.images]
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


class _Bars(Progress):
    """One bar over the job (frames; an image is one frame) and one per clip in flight."""

    def __init__(self, name: str, images: int, quiet: bool) -> None:
        self._disable = quiet or None  # None: tqdm turns itself off without a terminal
        self._job = tqdm(total=images, unit="frame", desc=name, disable=self._disable,
                         dynamic_ncols=True)
        self._clips: dict[str, tqdm] = {}
        self._free_rows: list[int] = []
        self._failed = 0
        self._lock = threading.Lock()

    def add_total(self, frames: int) -> None:
        with self._lock:
            self._job.total = (self._job.total or 0) + frames
            self._job.refresh()

    def clip_started(self, name: str, total: int | None, done: int) -> None:
        with self._lock:
            row = self._free_rows.pop(0) if self._free_rows else len(self._clips) + 1
            self._clips[name] = tqdm(total=total, initial=done, unit="frame", desc=f"  {name}",
                                     position=row, leave=False, disable=self._disable,
                                     dynamic_ncols=True)

    def frames_done(self, n: int, clip: str | None = None) -> None:
        with self._lock:
            self._job.update(n)
            if clip in self._clips:
                self._clips[clip].update(n)

    def unit_finished(self, ok: bool, clip: str | None = None) -> None:
        with self._lock:
            if not ok:
                self._failed += 1
                self._job.set_postfix(failed=self._failed, refresh=False)
            bar = self._clips.pop(clip, None) if clip else None
            if bar is not None and bar.total is not None and bar.n != bar.total:
                # frames that will not come (a failed clip; a header's count that was off):
                # the job bar still ends at 100% of what was done
                self._job.total = max(self._job.n, (self._job.total or 0) + bar.n - bar.total)
                self._job.refresh()
            if bar is not None:
                self._free_rows.append(bar.pos if bar.pos > 0 else -bar.pos)
                bar.close()

    def close(self) -> None:
        for bar in self._clips.values():
            bar.close()
        self._job.close()


def _run(p: Prepared, ledger: Ledger, quiet: bool) -> Summary:
    pending = [u for u in p.plan.units if not ledger.is_done(u.key)]
    skipped = len(p.plan.units) - len(pending)
    bars = _Bars(p.job.name, sum(1 for u in pending if u.kind == "image"), quiet)
    try:
        summary = run_units(p.stages, p.ctx, ledger, pending, workers=p.job.workers, progress=bars)
    finally:
        bars.close()
    summary.skipped = skipped
    return summary


def _speed(count: int, seconds: float, unit: str) -> str:
    """Per second, or seconds per item where that reads better (gatys: minutes an image)."""
    if count and seconds > 10 * count:
        return f"{seconds / count:.1f} s/{unit}"
    return f"{count / seconds if seconds > 0 else 0.0:.2f} {unit}s/s"


def _report(p: Prepared, s: Summary) -> int:
    failed = len(s.failures) + len(p.plan.empty_sources)
    videos = any(u.kind == "video" for u in p.plan.units)
    state = "interrupted" if s.interrupted else "stopped" if s.fatal else "finished"
    speed = _speed(s.frames if videos else s.done, s.wall_s, "frame" if videos else "image")
    typer.echo(f"{p.job.name}: {state}: done {s.done}, skipped {s.skipped} (already done), "
               f"failed {failed}, wall {s.wall_s:.1f} s ({speed})", err=True)
    rates = s.times.rates()
    if videos and rates:  # frames per busy second of each step: the smallest is the bottleneck
        steps = [k for k in ("decode", "flow", "device", "smoothing", "encode") if k in rates]
        typer.echo("  per stage: " + ", ".join(f"{k} {rates[k]:.1f} frames/s" for k in steps)
                   + f" ({s.frames} frames)", err=True)
    for spec, reason in p.plan.empty_sources:
        typer.echo(f"  failed  {spec.location}: sources: {reason}", err=True)
    for f in s.failures:
        typer.echo(f"  failed  {f.source} [{f.stage}]: {f.reason}", err=True)
    if s.fatal:
        typer.echo(f"  stopped early: {s.fatal}", err=True)
        return EXIT_FAILED
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
    # Pillow warns of a "decompression bomb DOS attack" for any image over 89 Mpx as soon as
    # its header is read; memory.py decides what fits and says so in words: no scare line.
    warnings.filterwarnings("ignore", message="Image size .* could be decompression bomb")
    # A service manager stops us with SIGTERM: stop as cleanly as for Ctrl-C.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    app(args=args, prog_name="run_pipeline.py")
