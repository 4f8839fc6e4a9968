"""From job to units of work: which source files, and where each output goes.

The output tree mirrors each source tree: same relative folder and stem under
``output/`` (plus the source's optional ``into`` folder), the suffix set by
``encode``.  A source path that does not exist makes the job invalid; a
folder or glob with no images (or videos) in it is reported as a failed
source, so the rest of the job still runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Callable

from .config import Job, SourceSpec
from .errors import JobError
from .media.images import IMAGE_EXTENSIONS
from .media.video import VIDEO_EXTENSIONS
from .safety import check_output_folder, check_output_paths, check_side_file, check_writable
from .walk import PatternError, find, split_pattern

EXTENSIONS = {"images": IMAGE_EXTENSIONS, "videos": VIDEO_EXTENSIONS}


@dataclass(frozen=True)
class Unit:
    """One source file: the unit of work, of commit and of failure (videos commit in segments)."""

    source: Path
    output_rel: PurePath  # relative to the job's output folder
    source_index: int  # which entry of the job's sources found it
    kind: str = "image"  # "image" | "video"

    @property
    def key(self) -> str:
        return self.output_rel.as_posix()


@dataclass(frozen=True)
class Plan:
    units: tuple[Unit, ...]
    empty_sources: tuple[tuple[SourceSpec, str], ...]  # (source, why nothing was found)


def make_plan(job: Job, output_relpath: Callable[[PurePath, str], PurePath]) -> Plan:
    """``output_relpath(source_rel, kind)``: where encode writes a source's output."""
    check_output_folder(job.output, [(f"sources[{i}]", source_root(spec), spec.location)
                                     for i, spec in enumerate(job.sources)], job.output_location)
    check_writable(job.output, job.output_location)
    units: list[Unit] = []
    empty: list[tuple[SourceSpec, str]] = []
    claimed: dict[PurePath, tuple[Path, int]] = {}
    output = job.output.resolve()
    for index, spec in enumerate(job.sources):
        found = find_files(spec, exclude=output)
        kind = spec.kind.rstrip("s")  # images -> image, videos -> video
        if not found:
            empty.append((spec, f"no {spec.kind} found in '{spec.pattern}' (looked for "
                                f"{', '.join(sorted(EXTENSIONS[spec.kind]))})"))
        for path, rel in found:
            out_rel = output_relpath(rel, kind)
            out_rel = PurePath(spec.into) / out_rel if spec.into else out_rel
            if out_rel in claimed:
                other, other_index = claimed[out_rel]
                raise JobError(
                    f"'{path}' and '{other}' (sources[{other_index}]) would both be written to "
                    f"'{out_rel}'", location=spec.location, where=f"sources[{index}]",
                    hint="give one source an 'into: <folder>' key, or rename one file")
            claimed[out_rel] = (path, index)
            units.append(Unit(source=path, output_rel=out_rel, source_index=index, kind=kind))
    check_output_paths(job.output, [(u.output_rel, u.source, f"sources[{u.source_index}]")
                                    for u in units], job.output_location)
    if job.contact_sheet is not None:
        check_side_file(job.contact_sheet.path, job.output, map(source_root, job.sources),
                        (u.source for u in units), job.contact_sheet_location, "contact_sheet.path")
    return Plan(tuple(units), tuple(empty))


def source_root(spec: SourceSpec) -> Path:
    """The folder a source's relative paths start from: itself, a glob's literal prefix, a file's folder."""
    try:
        root, _pattern = split_pattern(spec.path)
    except PatternError:
        return spec.path  # reported with its location by find_files
    return root.parent if root.is_file() else root


def find_files(spec: SourceSpec, exclude: Path) -> list[tuple[Path, PurePath]]:
    """(file, path relative to the source's root), sorted; hidden entries skipped.

    Folders and globs are walked by ``walk.find``: symlinked folders are read,
    each real folder once; the output folder is never read back."""
    wanted = EXTENSIONS[spec.kind]
    try:
        root, pattern = split_pattern(spec.path)
    except PatternError as exc:
        raise JobError(f"source '{spec.pattern}': {exc}", location=spec.location, where="sources",
                       hint="start the pattern at the folder that holds all the files, "
                            "e.g. 'photos/**/*.png'") from None
    keep = lambda name: Path(name).suffix.lower() in wanted  # noqa: E731
    skip = lambda folder: _inside(folder, exclude)  # noqa: E731
    if pattern:
        return find(root, keep, pattern=pattern, skip_dir=skip) if root.is_dir() else []
    if spec.path.is_file():
        return [(spec.path, PurePath(spec.path.name))]
    if spec.path.is_dir():
        return find(spec.path, keep, skip_dir=skip)
    raise JobError(f"source '{spec.pattern}' does not exist ({spec.path})",
                   location=spec.location, where="sources",
                   hint="relative paths resolve against the job file's folder")


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents
