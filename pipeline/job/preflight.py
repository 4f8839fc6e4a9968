"""The checks made before planning, every mistake at once: the output folder and each source.

``prepare`` runs them beside the job file's own checks and the weights' (``build_stages``), so
``validate`` reports a job's mistakes of every kind in one pass; ``make_plan`` then walks the
sources.  A source that does not exist yet names the command that makes it, when the job
file's comments give one (the repo's example jobs do).
"""
from __future__ import annotations

import re
from pathlib import Path

from ..errors import JobError, Problems
from .config import Job
from .plan import source_of
from .safety import check_output_folder, check_writable


def check_sources_and_output(job: Job) -> None:
    """What ``make_plan`` checks first, every mistake at once (``JobErrors``): the output folder
    (not a root, home or a source; writable), and that each source exists (a folder is not
    walked here: ``find`` fails before its first file, and a generator's weights load)."""
    problems = Problems()
    sources = [source_of(spec) for spec in job.sources]
    with problems.check():
        check_output_folder(job.output, [(f"sources[{i}]", source.root(), spec.location)
                                         for i, (spec, source) in enumerate(zip(job.sources, sources))],
                            job.output_location)
    with problems.check():
        check_writable(job.output, job.output_location)
    output = job.output.resolve()
    for spec, source in zip(job.sources, sources):
        with problems.check():
            try:
                if source.numbered() is None:
                    source.find(exclude=output)
            except JobError as exc:
                raise made_by(job.path, exc, spec.path) from None
    problems.raise_if_any()


def made_by(job_file: Path, error: JobError, missing: Path | None = None) -> JobError:
    """``error``, with the command that makes what it finds missing when the job's comments
    give one (``missing``: the path; else the first absolute path in the message that does not
    exist, as a stage's error names a folder of paintings)."""
    if missing is None:
        paths = (Path(p.rstrip(".,")) for p in re.findall(r"(/[^\s:;'\"`]+)", error.message))
        missing = next((p for p in paths if not p.exists()), None)
    maker = _maker(job_file, missing) if missing is not None else None
    if maker is None:
        return error
    return JobError(error.message, location=error.location, where=error.where,
                    hint=f"this job's own comments say what makes it: run `{maker}` first")


def _maker(job_file: Path, source: Path) -> str | None:
    """The command a job file's comments give for making a source that does not exist yet, as
    the repo's example jobs write it (``#   python scripts/make_augment_dataset.py  # -> jobs/
    augment_data/``): a commented ``python`` line naming the first missing folder."""
    missing = source
    while not missing.parent.exists() and missing.parent != missing:
        missing = missing.parent
    if missing.exists():
        return None
    try:
        lines = job_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        text = line.strip()
        if text.startswith("#") and "python " in text and missing.name in text:
            return text.lstrip("#").split("#")[0].strip()
    return None
