"""``run JOB.yaml`` (also plain ``run_pipeline.py JOB.yaml``): run a job, or resume it.

``run_job`` is the body, shared with the commands that write a job and run it (``stylize``):
prepare, open the ledger, run (here or on Ray), write the manifest, report, exit.

Exit codes: 0 all done; 1 some sources failed and the rest finished;
2 the job itself is invalid; 130 interrupted (Ctrl-C), outputs so far kept.
"""
from __future__ import annotations

import sys
from enum import Enum
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

import typer

# torch and PyAV are imported inside the functions, when a command runs: --help stays quick
from ..errors import JobError, MediaError, storage_error
from ..machine import threads

if TYPE_CHECKING:
    from ..job.build import Prepared
    from ..record.ledger import Ledger
    from ..record.results import Summary

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130

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


def set_log_level(level: LogLevel) -> None:
    from ..machine import logs

    logs.configure(level.value)


def command(job: Path = JOB_ARG,
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
        ray_timeout: float = typer.Option(
            30.0, "--ray-timeout", min=0.1, metavar="SECONDS",
            help="How long the --ray address may take to answer before the run stops with "
                 "exit 2 (Ray itself would retry a wrong address for minutes)."),
        report: Path = typer.Option(
            None, "--report", metavar="FILE", dir_okay=False,
            help="Write the run's summary as JSON to FILE at the end (counts, failures with "
                 "file, stage and reason, per-step rates, wall time).")) -> None:
    """Run JOB, or resume it: outputs already committed are skipped."""
    set_log_level(log_level)
    run_job(job, restart=restart, quiet=quiet, log_every=log_every, progress_json=progress_json,
            ray=ray, ray_workers=ray_workers, report=report, ray_timeout=ray_timeout)


def run_job(job: Path, *, restart: bool = False, quiet: bool = False, log_every: float = 30.0,
            progress_json: Path | None = None, ray: str | None = None,
            ray_workers: int | None = None, report: Path | None = None,
            ray_timeout: float = 30.0) -> None:
    """``run``'s body, shared with the commands that write a job and run it (``stylize``):
    prepare, open the ledger, run, report; always ends in ``typer.Exit`` with the exit code."""
    from ..job.build import thread_args
    from ..record.ledger import Ledger

    backend = None
    try:
        prepared = prepare_or_exit(job)
        threads.apply(**thread_args(prepared.job, prepared.stages))  # once per run: no oversubscription
        fingerprint = prepared.fingerprint
        if ray is not None:
            backend = _start_ray(prepared, ray, ray_workers, ray_timeout)
            fingerprint = backend.fingerprint  # the precision where the work runs
        try:
            ledger = Ledger(prepared.job.output, fingerprint, restart=restart,
                            keys=(u.key for u in prepared.plan.units))
        except JobError as exc:
            exit_invalid(exc)
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
        from ..job.report import write_report
        try:
            write_report(report, prepared, summary, code)
        except OSError as exc:
            typer.echo(f"warning: cannot write the report {report}: {exc.strerror or exc}", err=True)
    raise typer.Exit(code)


def _write_manifest(p: Prepared, ledger, fingerprint: dict) -> None:
    """``output/manifest.jsonl`` (pipeline/record/manifest.py); a failure to write it is a warning:
    the outputs are in place and the next run writes it again."""
    from ..job.report import write_outputs_manifest
    try:
        write_outputs_manifest(p, ledger, fingerprint)
    except OSError as exc:
        typer.echo(f"warning: cannot write {p.job.output / 'manifest.jsonl'}: "
                   f"{exc.strerror or exc}", err=True)


def _write_contact_sheet(p: Prepared) -> None:
    from ..commands.contact_sheet import make_contact_sheet

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


def _start_ray(prepared: Prepared, address: str, workers: int | None, timeout: float = 30.0):
    from ..backends.ray_driver import RayBackend, RayUnavailable

    try:
        return RayBackend(prepared, address, workers, timeout)
    except RayUnavailable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None


def prepare_or_exit(job: Path) -> Prepared:
    from ..job.build import prepare

    try:
        return prepare(job)
    except JobError as exc:
        exit_invalid(exc)


def exit_invalid(exc: JobError) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(EXIT_INVALID)


def _run(p: Prepared, ledger: Ledger, quiet: bool, log_every: float = 30.0,
         progress_json: Path | None = None, backend=None) -> Summary:
    from ..engine import run_units
    from ..machine.progress import Bars, Reporter, Tee

    pending = p.plan.units.where(lambda u: not ledger.is_done(u.key))  # a byte per unit
    skipped = len(p.plan.units) - len(pending)
    images = sum(1 for u in pending if u.kind == "image")
    # Bars on a terminal; without one (nohup, a service) tqdm is off: plain lines instead.
    log = None if quiet or sys.stderr.isatty() else (lambda line: typer.echo(line, err=True))
    try:
        reporter = Reporter(p.job.name, len(pending), images, interval=log_every, log=log,
                            json_path=progress_json, skipped=skipped)
    except OSError as exc:
        typer.echo(f"error: cannot write the progress file {progress_json}: "
                   f"{exc.strerror or exc}; pick a writable path", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    progress = Tee([Bars(p.job.name, images, quiet), reporter.start()])
    if skipped:
        progress.parts[0].note(f"{p.job.name}: skipping {skipped:,} done by an earlier run")
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
    from ..sources import get_source

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
    for spec, what in p.plan.outside:  # kept out on purpose: said, not failed
        typer.echo(f"  skipped {what} (follow_links: outside follows it)", err=True)
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
