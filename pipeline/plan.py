"""From job to units of work: which source files, and where each output goes.

The output tree mirrors each source tree: same relative folder and stem under
``output/`` (plus the source's optional ``into`` folder), the suffix set by
``encode``; a source's ``sidecars:`` (labels, annotations) are units too, copied
to the same relative path.  A source path that does not exist makes the job invalid; a
folder or glob with no images (or videos) in it is reported as a failed
source, so the rest of the job still runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Callable

from .config import Job, SourceSpec
from .errors import JobError
from .safety import check_output_folder, check_output_paths, check_side_file, check_writable
from .sources import Source, get_source


@dataclass(frozen=True)
class Unit:
    """One source file: the unit of work, of commit and of failure (videos commit in segments)."""

    source: Path
    output_rel: PurePath  # relative to the job's output folder
    source_index: int  # which entry of the job's sources found it
    # the engine's way for it: "image" | "video" (its source's ``way``), "file" (a sidecar, copied)
    kind: str = "image"
    reader: Source | None = field(default=None, compare=False, repr=False)  # opens it for reading

    @property
    def key(self) -> str:
        return self.output_rel.as_posix()

    def open(self) -> Source:
        """The source that reads this unit (a unit made by hand, in a test, gets its way's files)."""
        if self.reader is not None:
            return self.reader
        return get_source({"image": "images", "video": "videos", "file": "images"}[self.kind])(None)


@dataclass(frozen=True)
class Plan:
    units: tuple[Unit, ...]
    empty_sources: tuple[tuple[SourceSpec, str], ...]  # (source, why nothing was found)


def source_of(spec: SourceSpec) -> Source:
    return get_source(spec.kind)(spec)


def make_plan(job: Job, output_relpath: Callable[[PurePath, str], PurePath]) -> Plan:
    """``output_relpath(source_rel, kind)``: where encode writes a source's output."""
    sources = [source_of(spec) for spec in job.sources]
    check_output_folder(job.output, [(f"sources[{i}]", source.root(), spec.location)
                                     for i, (spec, source) in enumerate(zip(job.sources, sources))],
                        job.output_location)
    check_writable(job.output, job.output_location)
    units: list[Unit] = []
    empty: list[tuple[SourceSpec, str]] = []
    claimed: dict[PurePath, tuple[Path, int]] = {}
    output = job.output.resolve()
    for index, (spec, source) in enumerate(zip(job.sources, sources)):
        found = source.find(exclude=output)
        if not found:
            empty.append((spec, source.nothing_found()))
        carried = [(path, rel, "file") for path, rel in source.sidecars(found, exclude=output)]
        for path, rel, kind in [(path, rel, source.way) for path, rel in found] + carried:
            out_rel = rel if kind == "file" else output_relpath(rel, kind)  # sidecars: as they are
            out_rel = PurePath(spec.into) / out_rel if spec.into else out_rel
            if out_rel in claimed:
                other, other_index = claimed[out_rel]
                raise JobError(
                    f"'{path}' and '{other}' (sources[{other_index}]) would both be written to "
                    f"'{out_rel}'", location=spec.location, where=f"sources[{index}]",
                    hint="give one source an 'into: <folder>' key, or rename one file")
            claimed[out_rel] = (path, index)
            units.append(Unit(source=path, output_rel=out_rel, source_index=index, kind=kind,
                              reader=source))
    check_output_paths(job.output, [(u.output_rel, u.source, f"sources[{u.source_index}]")
                                    for u in units], job.output_location)
    if job.contact_sheet is not None:
        check_side_file(job.contact_sheet.path, job.output, [s.root() for s in sources],
                        (u.source for u in units), job.contact_sheet_location, "contact_sheet.path")
    return Plan(tuple(units), tuple(empty))
