"""From job to units of work: which source files, and where each output goes.

The output tree mirrors each source tree: same relative folder and stem under
``output/`` (plus the source's optional ``into`` folder), the suffix set by
``encode``.  A source path that does not exist makes the job invalid; a
folder or glob with no images (or videos) in it is reported as a failed
source, so the rest of the job still runs.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Callable

from .config import Job, SourceSpec
from .errors import JobError
from .media.images import IMAGE_EXTENSIONS
from .media.video import VIDEO_EXTENSIONS

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
    return Plan(tuple(units), tuple(empty))


def find_files(spec: SourceSpec, exclude: Path) -> list[tuple[Path, PurePath]]:
    """(file, path relative to the source's root), sorted; hidden entries skipped."""
    pattern = str(spec.path)
    wanted = EXTENSIONS[spec.kind]
    if glob.has_magic(pattern):
        root = _glob_root(spec.path)
        paths = (Path(p) for p in glob.glob(pattern, recursive=True))
        files = [p for p in paths
                 if p.is_file() and p.suffix.lower() in wanted and not _inside(p, exclude)]
        return sorted((p, p.relative_to(root)) for p in files)
    if spec.path.is_file():
        return [(spec.path, PurePath(spec.path.name))]
    if spec.path.is_dir():
        return sorted((p, p.relative_to(spec.path)) for p in _walk(spec.path, wanted, exclude))
    raise JobError(f"source '{spec.pattern}' does not exist ({spec.path})",
                   location=spec.location, where="sources",
                   hint="relative paths resolve against the job file's folder")


def _walk(root: Path, wanted: frozenset[str], exclude: Path) -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        # The output folder may sit inside a source folder: never read our own outputs.
        dirs[:] = [d for d in dirs if not d.startswith(".") and not _inside(here / d, exclude)]
        found.extend(here / f for f in files
                     if not f.startswith(".") and Path(f).suffix.lower() in wanted)
    return found


def _glob_root(pattern: Path) -> Path:
    parts = []
    for part in pattern.parts:
        if glob.has_magic(part):
            break
        parts.append(part)
    return Path(*parts)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder)
        return True
    except ValueError:
        return False
