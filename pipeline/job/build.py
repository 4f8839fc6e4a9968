"""From a job file to everything a run needs, or one located JobError.

Used by both ``run`` and ``validate``, so validating checks exactly what a run
would: the YAML, the sources, the device, and that every weights file loads.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..errors import JobError, Problems, WeightsError
from ..machine.context import RunContext
from ..sources import get_source
from ..sources.base import SourceSpec
from ..stages import get_stage
from ..stages.base import Stage
from ..stages.variants import Variants
from .config import Job, StageSpec, load_job
from .plan import Plan, make_plan
from .preflight import check_sources_and_output, made_by


@dataclass(frozen=True)
class Prepared:
    job: Job
    ctx: RunContext
    stages: tuple[Stage, ...]
    plan: Plan

    @property
    def fingerprint(self) -> dict[str, Any]:
        return fingerprint_of(self.ctx, self.stages, self.job.sources)


def fingerprint_of(ctx: RunContext, stages: Sequence[Stage],
                   sources: Sequence[SourceSpec] = ()) -> dict[str, Any]:
    """What decides the output bytes (the precision only where a stage computes: decoding and
    encoding alone do not depend on it); sources may be added without a restart.  Sources that
    make their images (``generate:``) add what decides them, by output folder, under
    "generated" (absent without such a source, so other jobs' ledgers read as before)."""
    fp: dict[str, Any] = {"stages": [s.fingerprint() for s in stages]}
    if any(s.computes for s in stages):  # a chain that only decodes and encodes has none
        fp = {"precision": ctx.precision, **fp}
    generated = {}
    for spec in sources:
        made = get_source(spec.kind)(spec).fingerprint()
        if made is not None:
            generated[spec.into or "."] = made
    if generated:
        fp["generated"] = generated
    return fp


def thread_args(job: Job, stages: Sequence[Stage]) -> dict[str, Any]:
    """The thread budget's inputs for this job (``threads.apply`` / ``threads.budget_for``)."""
    return {"threads": job.threads, "workers": job.workers, "encoders": job.encoders,
            "encoder_threads": stages[-1].params.video.threads}


def prepare(job_path: str | Path) -> Prepared:
    """Everything a run needs, or every mistake ``validate`` can find, in one pass: the file's
    own (keys, values), the weights, the sources and the output folder are checked each
    whatever the others gave (``JobErrors`` holds them all, in file order)."""
    problems = Problems()
    job = load_job(job_path, problems)
    if job is None:
        problems.raise_if_any()
    built, stage_problems = None, Problems()
    if job.stages:  # stages that did not parse are reported already
        with stage_problems.check():
            built = build_stages(job)
    problems.errors += [made_by(job.path, error) for error in stage_problems.errors]
    with problems.check():
        check_sources_and_output(job)
    problems.raise_if_any()
    ctx, stages = built
    plan = make_plan(job, stages[-1].output_relpath)
    return Prepared(job=job, ctx=ctx, stages=tuple(stages), plan=plan)


def build_stages(job: Job, *, precision: str | None = None,
                 batch_size: int | None = None) -> tuple[RunContext, list[Stage]]:
    """The run context and the stages, without planning (a Ray worker needs no file list);
    ``precision`` and ``batch_size`` as the driver resolved them, else from the job.  The
    device is resolved here, and a missing one refused, when the job names one other than
    ``auto`` or ``cpu``, or a stage computes and it may be a GPU; on the CPU it is resolved
    when a stage first asks, so a job that only decodes and encodes (or only smooths, on the
    CPU) never imports torch (``RunContext``)."""
    ctx = RunContext(device=job.device, precision=precision or job.precision,
                     batch_size=batch_size or job.batch_size)
    computes = any(get_stage(s.name).computes for s in job.stages)
    if job.device not in ("auto", "cpu") or (computes and ctx.device_type != "cpu"):
        try:
            ctx.precision  # noqa: B018 - resolves the device, then the precision for it
        except (ValueError, RuntimeError) as exc:
            raise JobError(str(exc), where="device") from None
    stages, problems = [], Problems()  # every weights file that fails, not just the first
    for spec in job.stages:
        with problems.check():
            try:
                stages.append(get_stage(spec.name)(spec.params, ctx))
            except WeightsError as exc:
                raise JobError(str(exc), location=spec.location, where=spec.where) from None
    problems.raise_if_any()
    _check_video_only(job, stages)
    return ctx, stages


def _check_video_only(job: Job, stages: list[Stage]) -> None:
    specs = _flat_specs(job.stages, stages)
    for variant in job.variants or (None,):
        temporal = [spec for spec, stage, where in specs if stage.kind == "temporal"
                    and where in (None, variant)]
        if len(temporal) > 1:
            raise JobError("only one temporal stage per job (per variant): frames are smoothed once",
                           location=temporal[1].location, where=temporal[1].where)
    if any(get_source(spec.kind).way == "video" for spec in job.sources):
        return
    for spec, stage, _ in specs:
        if stage.video_only:
            raise JobError(f"{spec.name} works on video frames, but this job has no video sources",
                           location=spec.location, where=spec.where,
                           hint="add a '- videos: <file, folder or glob>' source, "
                                "or remove this stage")


def _flat_specs(specs: Sequence[StageSpec], stages: Sequence[Stage]
                ) -> list[tuple[StageSpec, Stage, str | None]]:
    """(spec, stage, its variant or None) of every stage, a variant's own included."""
    flat = []
    for spec, stage in zip(specs, stages):
        if isinstance(stage, Variants):
            for branch in spec.params.branches:
                flat += [(inner, built, branch.name)
                         for inner, built in zip(branch.stages, stage.branches[branch.name])]
        else:
            flat.append((spec, stage, None))
    return flat
