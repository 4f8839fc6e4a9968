"""``validate JOB.yaml``: check a job (YAML, sources, output folder, device, weights, every
clip and shard) and print its plan without running it; ``--estimate`` also times a sample."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ..errors import MediaError
from ..machine import threads
from .run import EXIT_FAILED, JOB_ARG, LOG_LEVEL, LogLevel, prepare_or_exit, set_log_level

if TYPE_CHECKING:
    from ..job.build import Prepared

def command(job: Path = JOB_ARG,
             estimate: bool = typer.Option(False, "--estimate",
                                           help="Also time a few frames on the job's device and "
                                                "print a rough time for the whole job."),
             log_level: LogLevel = LOG_LEVEL) -> None:
    """Check JOB (YAML, sources, output folder, device, weights, every clip) and print the
    plan without running it.  Exit 2: the job is invalid; 1: a clip would fail; 0: all good."""
    from ..job.build import thread_args
    from ..job.plan import source_of

    set_log_level(log_level)
    p = prepare_or_exit(job)
    typer.echo(f"job       {p.job.name}  ({p.job.path})")
    typer.echo(f"output    {p.job.output}")
    if any(s.computes for s in p.stages):
        typer.echo(f"device    {p.ctx.device}   precision {p.ctx.precision}   "
                   f"batch size {p.ctx.batch_size or 'auto'}")
    else:  # and torch is never imported: start-up is PyAV's and ours
        typer.echo("device    none: no stage computes (decode and encode only)")
    typer.echo(f"threads   {threads.budget_for(**thread_args(p.job, p.stages)).describe()}")
    counts = {plan.index: (plan.files.count, plan.sidecars.count) for plan in p.plan.units.sources}
    for index, spec in enumerate(p.job.sources):
        count, carried = counts.get(index, (0, 0))
        extra = f", {carried} sidecar file{'s' if carried != 1 else ''} carried" if carried else ""
        noun = "shard" if spec.kind == "shards" else "image" if spec.options is not None else "file"
        about = source_of(spec).describe()
        typer.echo(f"source    [{index}] {spec.kind}: {spec.pattern}  "
                   f"({count} {noun}{'s' if count != 1 else ''}{extra}{', ' + about if about else ''})")
    for spec, what in p.plan.outside:
        typer.echo(f"skipped   {what} (follow_links: outside follows it)")
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
    from ..job.estimate import estimate
    from ..machine.progress import duration

    e = estimate(p)
    if e is None:
        typer.echo("estimate  nothing to time (no unit could be read)")
        return
    if not any(s.computes for s in p.stages):
        typer.echo(f"estimate  no device work for {e.pixels / 1e6:,.1f} Mpx (no stage computes): "
                   "the run's time is decoding and encoding")
        return
    took = f"{e.seconds:.1f} s" if e.seconds < 59.95 else duration(e.seconds)
    typer.echo(f"estimate  about {took} of device work on {p.ctx.device} for "
               f"{e.pixels / 1e6:,.1f} Mpx ({e.per_megapixel:.3g} s per Mpx, timed on "
               f"{e.sample.name} at {e.sample_size[0]}x{e.sample_size[1]}, the median of several "
               "warm calls, its warm-up added once); decoding and encoding run beside it")


def _units_of_way(p: Prepared, way: str):
    """The units of the sources of one way (a million generated images are not walked for clips)."""
    for plan in p.plan.units.sources:
        if plan.source.way == way:
            yield from (u for u in plan.units() if u.kind == way)


def _check_clips(p: Prepared) -> bool:
    """One line per clip (its header, and whether its packets reach its stated end): a
    truncated clip is flagged now, not after minutes of compute.  False if any would fail."""
    from ..media.video_check import check_clip

    ok = True
    for unit in _units_of_way(p, "video"):
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
    from ..media.shards import ShardReader

    ok = True
    for source in dict.fromkeys(u.source for u in _units_of_way(p, "shard")):
        try:  # once, whatever its variants
            with ShardReader(source) as shard:
                typer.echo(f"shard     {source}: {shard.describe()}")
        except MediaError as exc:
            ok = False
            typer.echo(f"problem   {source}: {exc.reason}")
    return ok
