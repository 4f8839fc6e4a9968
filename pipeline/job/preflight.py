"""The checks made before planning, every mistake at once: the output folder and each source.

``prepare`` runs them beside the job file's own checks and the weights' (``build_stages``), so
``validate`` reports a job's mistakes of every kind in one pass; ``make_plan`` then walks the
sources.  A source that does not exist yet names the command that makes it, when the job
file's comments give one (the repo's example jobs do).
"""
from __future__ import annotations

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
                maker = _maker(job.path, spec.path)
                if maker is None:
                    raise
                raise JobError(exc.message, location=exc.location, where=exc.where,
                               hint=f"this job's own comments say what makes it: run `{maker}` "
                                    "first") from None
    problems.raise_if_any()


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
