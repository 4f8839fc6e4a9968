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

import signal
import sys
import warnings
from enum import Enum
from itertools import islice
from pathlib import Path

from typing import TYPE_CHECKING

import typer

# The command modules import torch and PyAV only when a command runs, and so does this
# module (inside the functions below): --help and --version answer in a fraction of a second.
from .machine import threads
from .commands import (sheet, stylize, stylize_still, train_arbitrary, train_cyclegan,
                       train_gan, train_style)
from .errors import JobError, MediaError, storage_error

if TYPE_CHECKING:
    from .job.build import Prepared
    from .engine import Summary
    from .record.ledger import Ledger

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  pretty_exceptions_enable=False,
                  help="Batch stylization of images and video: fast style nets and CycleGAN "
                       "generators, batched on the device, resumable.  `run_pipeline.py JOB.yaml` runs a job.")

train_app = typer.Typer(no_args_is_help=True, help="Train the models the pipeline runs.")
train_app.command("style")(train_style.command)
train_app.command("cyclegan")(train_cyclegan.command)
train_app.command("arbitrary")(train_arbitrary.command)
train_app.command("gan")(train_gan.command)
app.add_typer(train_app, name="train")
app.command("stylize-still")(stylize_still.command)
app.command("stylize")(stylize.command)
app.command("sheet")(sheet.command)


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

JOB_ARG = typer.Argument(..., help="The job file (YAML).", show_default=False)


class LogLevel(str, Enum):  # pipeline.machine.logs.LEVELS, written out: pipeline.machine.logs imports PyAV
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"
    critical = "critical"


LOG_LEVEL = typer.Option(LogLevel.warning, "--log-level",
                         help="How much of FFmpeg's own log to show: nothing at warning (the "
                              "pipeline reports every failure itself), its warnings at info, "
                              "everything at debug.")


def _set_log_level(level: LogLevel) -> None:
    from .machine import logs

    logs.configure(level.value)


@app.command()
def run(job: Path = JOB_ARG,
        restart: bool = typer.Option(False, "--restart",
                                     help="Start over: delete this job's earlier outputs and ledger."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or lines."),
        log_every: float = typer.Option(
            30.0, "--log-every", min=0.01, metavar="SECONDS",
            help="Without a terminal (a log file), print a progress line this often."),
        progress_json: Path = typer.Option(
            None, "--progress-json", metavar="FILE", dir_okay=False,
            help="Append the progress as JSON lines to FILE, every --log-every seconds "
                 "and once at the end (\"final\": true)."),
        log_level: LogLevel = LOG_LEVEL,
        ray: str = typer.Option(
            None, "--ray", metavar="ADDRESS",
            help="Run on a Ray cluster: 'local' starts one on this machine; else whatever "
                 "ray.init(address=...) takes ('auto', 'host:6379', 'ray://host:10001'). "
                 "Needs pip install -e \".[ray]\" and the job's files at the same paths on "
                 "every node."),
        ray_workers: int = typer.Option(
            None, "--ray-workers", min=1, metavar="N",
            help="Ray actors to run (default: one per GPU; on a cluster without GPUs, one per "
                 "node with its CPUs for a job with clips, one per CPU for images only; N "
                 "actors share the CPUs evenly)."),
        report: Path = typer.Option(
            None, "--report", metavar="FILE", dir_okay=False,
            help="Write the run's summary as JSON to FILE at the end (counts, failures with "
                 "file, stage and reason, per-step rates, wall time).")) -> None:
    """Run JOB, or resume it: outputs already committed are skipped."""
    _set_log_level(log_level)
    run_job(job, restart=restart, quiet=quiet, log_every=log_every, progress_json=progress_json,
            ray=ray, ray_workers=ray_workers, report=report)


def run_job(job: Path, *, restart: bool = False, quiet: bool = False, log_every: float = 30.0,
            progress_json: Path | None = None, ray: str | None = None,
            ray_workers: int | None = None, report: Path | None = None) -> None:
    """``run``'s body, shared with the commands that write a job and run it (``stylize``):
    prepare, open the ledger, run, report; always ends in ``typer.Exit`` with the exit code."""
    from .job.build import thread_args
    from .record.ledger import Ledger

    backend = None
    try:
        prepared = _prepare_or_exit(job)
        threads.apply(**thread_args(prepared.job, prepared.stages))  # once per run: no oversubscription
        fingerprint = prepared.fingerprint
        if ray is not None:
            backend = _start_ray(prepared, ray, ray_workers)
            fingerprint = backend.fingerprint  # the precision where the work runs
        try:
            ledger = Ledger(prepared.job.output, fingerprint, restart=restart,
                            keys=(u.key for u in prepared.plan.units))
        except JobError as exc:
            _exit_invalid(exc)
        except OSError as exc:  # an output folder we cannot create or write, a full disk
            typer.echo(f"error: cannot use the output folder {prepared.job.output}: "
                       f"{exc.strerror or exc}; free space or pick a writable folder", err=True)
            raise typer.Exit(EXIT_FAILED if storage_error(exc) else EXIT_INVALID) from None
        try:
            summary = _run(prepared, ledger, quiet, log_every, progress_json, backend)
            _write_manifest(prepared, ledger, fingerprint)
        finally:
            ledger.close()
    except KeyboardInterrupt:  # outside the engine's loop, which handles its own
        typer.echo("interrupted; run the same command again to finish", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        if backend is not None:
            backend.shutdown()
    code = _report(prepared, summary)
    if prepared.job.contact_sheet and not (summary.interrupted or summary.fatal):
        _write_contact_sheet(prepared)
    if report is not None:
        from .record.manifest import write_report
        try:
            write_report(report, prepared, summary, code)
        except OSError as exc:
            typer.echo(f"warning: cannot write the report {report}: {exc.strerror or exc}", err=True)
    raise typer.Exit(code)


def _write_manifest(p: Prepared, ledger, fingerprint: dict) -> None:
    """``output/manifest.jsonl`` (pipeline/record/manifest.py); a failure to write it is a warning:
    the outputs are in place and the next run writes it again."""
    from .record.manifest import write_manifest
    try:
        write_manifest(p, ledger, fingerprint)
    except OSError as exc:
        typer.echo(f"warning: cannot write {p.job.output / 'manifest.jsonl'}: "
                   f"{exc.strerror or exc}", err=True)


def _write_contact_sheet(p: Prepared) -> None:
    from .commands.contact_sheet import make_contact_sheet

    opts = p.job.contact_sheet
    # the input as its source reads it: a generated image has no file
    pairs = list(islice(((lambda u=u: u.open().read(u.source), p.job.output / u.output_rel)
                         for u in p.plan.units
                         if u.kind == "image" and (p.job.output / u.output_rel).is_file()),
                        opts.images))
    if not pairs:
        return
    try:
        make_contact_sheet(pairs, opts.path, opts.height)
    except MediaError as exc:  # a picture for people: never worth failing the run over
        typer.echo(f"warning: contact sheet not written: {exc}", err=True)
        return
    typer.echo(f"contact sheet: {opts.path}", err=True)


@app.command()
def validate(job: Path = JOB_ARG,
             estimate: bool = typer.Option(False, "--estimate",
                                           help="Also time a few frames on the job's device and "
                                                "print a rough time for the whole job."),
             log_level: LogLevel = LOG_LEVEL) -> None:
    """Check JOB (YAML, sources, output folder, device, weights, every clip) and print the
    plan without running it.  Exit 2: the job is invalid; 1: a clip would fail; 0: all good."""
    from .job.build import thread_args
    from .job.plan import source_of

    _set_log_level(log_level)
    p = _prepare_or_exit(job)
    typer.echo(f"job       {p.job.name}  ({p.job.path})")
    typer.echo(f"output    {p.job.output}")
    typer.echo(f"device    {p.ctx.device}   precision {p.ctx.precision}   "
               f"batch size {p.ctx.batch_size or 'auto'}")
    typer.echo(f"threads   {threads.budget_for(**thread_args(p.job, p.stages)).describe()}")
    counts = [[0, 0] for _ in p.job.sources]  # (files, sidecars) per source, not (file, variant)
    last = None
    for u in p.plan.units:  # a file's variants come together: count where the file changes
        if (u.source, u.source_index) != last:
            counts[u.source_index][u.kind == "file"] += 1
            last = (u.source, u.source_index)
    for index, spec in enumerate(p.job.sources):
        count, carried = counts[index]
        extra = f", {carried} sidecar file{'s' if carried != 1 else ''} carried" if carried else ""
        noun = "shard" if spec.kind == "shards" else "image" if spec.options is not None else "file"
        about = source_of(spec).describe()
        typer.echo(f"source    [{index}] {spec.kind}: {spec.pattern}  "
                   f"({count} {noun}{'s' if count != 1 else ''}{extra}{', ' + about if about else ''})")
    for spec, reason in p.plan.empty_sources:
        typer.echo(f"warning   {spec.location}: {reason}")
    typer.echo("stages    " + " -> ".join(s.describe() for s in p.stages))
    variants = p.job.variants
    per = (f" ({len(variants)} variants: {', '.join(variants)}"
           + (f"; each file through {p.job.pick.count}, picked by seed {p.job.pick.seed}"
              if p.job.pick else "") + ")") if variants else ""
    typer.echo(f"units     {len(p.plan.units)}{per}")
    clips_ok = _check_clips(p)
    shards_ok = _check_shards(p)
    if estimate:
        _print_estimate(p)
    if not (clips_ok and shards_ok):
        raise typer.Exit(EXIT_FAILED)


def _print_estimate(p: Prepared) -> None:
    from .job.estimate import estimate
    from .machine.progress import duration

    e = estimate(p)
    if e is None:
        typer.echo("estimate  nothing to time (no unit could be read)")
        return
    typer.echo(f"estimate  about {duration(e.seconds)} of device work on {p.ctx.device} for "
               f"{e.pixels / 1e6:,.1f} Mpx ({e.per_megapixel:.3g} s per Mpx, timed on "
               f"{e.sample.name} at {e.sample_size[0]}x{e.sample_size[1]}); decoding and "
               "encoding run beside it")


def _check_clips(p: Prepared) -> bool:
    """One line per clip (its header, and whether its packets reach its stated end): a
    truncated clip is flagged now, not after minutes of compute.  False if any would fail."""
    from .media.video_check import check_clip

    ok = True
    for unit in (u for u in p.plan.units if u.kind == "video"):
        try:
            report = check_clip(unit.source)
        except MediaError as exc:
            report, problem = None, exc.reason
        else:
            problem = report.problem
        if problem:
            ok = False
            typer.echo(f"problem   {unit.source}: {problem}")
        else:
            typer.echo(f"clip      {unit.source}: {report.describe()}")
    return ok


def _check_shards(p: Prepared) -> bool:
    """One line per tar shard (its samples and images, from its headers, which are checked
    whole: a corrupt or truncated shard is flagged now).  False if any would fail."""
    from .media.shards import ShardReader

    ok = True
    for source in dict.fromkeys(u.source for u in p.plan.units if u.kind == "shard"):
        try:  # once, whatever its variants
            with ShardReader(source) as shard:
                typer.echo(f"shard     {source}: {shard.describe()}")
        except MediaError as exc:
            ok = False
            typer.echo(f"problem   {source}: {exc.reason}")
    return ok


def _start_ray(prepared: Prepared, address: str, workers: int | None):
    from .backends.ray_driver import RayBackend, RayUnavailable

    try:
        return RayBackend(prepared, address, workers)
    except RayUnavailable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None


def _prepare_or_exit(job: Path) -> Prepared:
    from .job.build import prepare

    try:
        return prepare(job)
    except JobError as exc:
        _exit_invalid(exc)


def _exit_invalid(exc: JobError) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(EXIT_INVALID)


def _run(p: Prepared, ledger: Ledger, quiet: bool, log_every: float = 30.0,
         progress_json: Path | None = None, backend=None) -> Summary:
    from .engine import run_units
    from .machine.progress import Bars, Reporter, Tee

    pending = p.plan.units.where(lambda u: not ledger.is_done(u.key))  # a byte per unit
    skipped = len(p.plan.units) - len(pending)
    images = sum(1 for u in pending if u.kind == "image")
    # Bars on a terminal; without one (nohup, a service) tqdm is off: plain lines instead.
    log = None if quiet or sys.stderr.isatty() else (lambda line: typer.echo(line, err=True))
    try:
        reporter = Reporter(p.job.name, len(pending), images, interval=log_every, log=log,
                            json_path=progress_json)
    except OSError as exc:
        typer.echo(f"error: cannot write the progress file {progress_json}: "
                   f"{exc.strerror or exc}; pick a writable path", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    progress = Tee([Bars(p.job.name, images, quiet), reporter.start()])
    try:
        if backend is not None:  # the same units, the same records, on a Ray cluster
            summary = backend.run(ledger, pending, progress)
        else:
            summary = run_units(p.stages, p.ctx, ledger, pending, workers=p.job.workers,
                                progress=progress, commit_every=p.job.commit_every)
    finally:
        progress.close()
    summary.skipped = skipped
    return summary


def _speed(count: int, seconds: float, unit: str) -> str:
    """Per second, or seconds per item where that reads better (gatys: minutes an image)."""
    if count and seconds > 10 * count:
        return f"{seconds / count:.1f} s/{unit}"
    return f"{count / seconds if seconds > 0 else 0.0:.2f} {unit}s/s"


def _report(p: Prepared, s: Summary) -> int:
    from .sources import get_source

    failed = len(s.failures) + len(p.plan.empty_sources)
    videos = any(get_source(spec.kind).way == "video" for spec in p.job.sources)
    state = "interrupted" if s.interrupted else "stopped" if s.fatal else "finished"
    speed = _speed(s.frames, s.wall_s, "frame" if videos else "image")  # an image is a frame
    # after a stop, the segments committed for clips not finished yet are kept for the rerun
    saved = (f" (and {s.segments} segment{'s' if s.segments != 1 else ''} of clips in flight saved)"
             if (s.interrupted or s.fatal) and s.segments else "")
    typer.echo(f"{p.job.name}: {state}: done {s.done}{saved}, skipped {s.skipped} (already done), "
               f"failed {failed}, wall {s.wall_s:.1f} s ({speed})", err=True)
    rates = s.times.rates()
    if videos and rates:  # frames per busy second of each step: the smallest is the bottleneck
        steps = [k for k in ("decode", "flow", "device", "smoothing", "encode") if k in rates]
        typer.echo("  per stage: " + ", ".join(f"{k} {rates[k]:.1f} frames/s" for k in steps)
                   + f" ({s.frames} frames)", err=True)
    for spec, reason in p.plan.empty_sources:
        typer.echo(f"  failed  {spec.location}: sources: {reason}", err=True)
    for f in s.failures:
        variant = f" (variant {f.variant})" if f.variant else ""
        typer.echo(f"  failed  {f.source}{variant} [{f.stage}]: {f.reason}", err=True)
    if s.fatal:
        typer.echo(f"  stopped early: {s.fatal}", err=True)
        return EXIT_FAILED
    if s.interrupted:
        typer.echo("  stopped early; run the same command again to finish", err=True)
        return EXIT_INTERRUPTED
    return EXIT_FAILED if failed else EXIT_OK


def _commands() -> set[str]:
    """The app's command names, as registered (a new command needs no list kept here)."""
    return ({c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands}
            | {g.name for g in app.registered_groups})


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
