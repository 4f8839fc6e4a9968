"""From job to units of work: which source files, and where each output goes.

The output tree mirrors each source tree: same relative folder and stem under
``output/`` (plus the source's optional ``into`` folder), the suffix set by
``encode``; a source's ``sidecars:`` (labels, annotations) are units too, copied
to the same relative path.  With a ``variants`` stage, each (file, variant) is a
unit, under ``output/<variant>/``; ``pick:`` sends each file through some of the
variants only (``picked``), and a sidecar that shares an image's folder and stem
goes where that image goes (the others go under every variant).  A source
path that does not exist makes the job invalid; a folder or glob with no
images (or videos) in it is reported as a failed source, so the rest of the
job still runs.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Callable

from .config import Job, PickOptions, SourceSpec
from .errors import JobError
from .safety import check_output_folder, check_output_paths, check_side_file, check_writable
from .sources import Source, get_source
from .walk import folder_and_stem


@dataclass(frozen=True, slots=True)  # slots: a 100k-file job holds 100k of them
class Unit:
    """One source file: the unit of work, of commit and of failure (videos commit in segments)."""

    source: Path
    output_rel: PurePath  # relative to the job's output folder
    source_index: int  # which entry of the job's sources found it
    # the engine's way for it: "image" | "video" (its source's ``way``), "file" (a sidecar, copied)
    kind: str = "image"
    reader: Source | None = field(default=None, compare=False, repr=False)  # opens it for reading
    variant: str | None = None  # the ``variants`` branch it goes through (None: no variants)
    # the engine's: the units one read serves (an image read once for its variants), this first
    members: tuple[Unit, ...] = field(default=(), compare=False, repr=False)
    # ``output_rel`` as a string: the ledger's, the manifest's and the engine's name for it
    key: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", self.output_rel.as_posix())

    def open(self) -> Source:
        """The source that reads this unit (a unit made by hand, in a test, gets its way's files)."""
        if self.reader is not None:
            return self.reader
        return get_source({"image": "images", "video": "videos", "file": "images",
                           "shard": "shards"}[self.kind])(None)


@dataclass(frozen=True)
class Plan:
    units: tuple[Unit, ...]
    empty_sources: tuple[tuple[SourceSpec, str], ...]  # (source, why nothing was found)


def picked(key: str, variants: tuple[str | None, ...], pick: PickOptions | None
           ) -> list[str | None]:
    """The variants the file ``key`` (its path under the output, before any variant folder)
    goes through: all of them, or ``pick.count`` chosen by a hash of (seed, key, variant),
    which is a uniform random choice that depends on nothing else: no order, no run, no
    other file.  In the job's order."""
    if pick is None or pick.count >= len(variants):
        return list(variants)
    rank = sorted(variants, key=lambda v: hashlib.sha256(f"{pick.seed}\0{key}\0{v}".encode())
                  .digest())
    chosen = set(rank[:pick.count])
    return [v for v in variants if v in chosen]


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
    claimed: dict[str, int] = {}  # output key -> the source's index: strings, not Paths
    output = job.output.resolve()
    variants: tuple[str | None, ...] = job.variants or (None,)
    for index, (spec, source) in enumerate(zip(job.sources, sources)):
        found = source.find(exclude=output)
        if not found:
            empty.append((spec, source.nothing_found()))
        goes: dict[tuple[str, str], tuple] = {}  # (folder, stem) -> the variants it went to
        work = [(path, rel, source.way) for path, rel in found]
        work += [(path, rel, "file") for path, rel in source.sidecars(found, exclude=output)]
        for path, rel, kind in work:
            out_rel = rel if kind == "file" else output_relpath(rel, kind)  # sidecars: as they are
            out_rel = PurePath(spec.into, out_rel) if spec.into else out_rel
            chosen = variants
            if job.pick is not None:  # else every file goes under every variant (or none)
                stem = folder_and_stem(rel)
                if kind != "file":
                    key = PurePath(spec.into, rel).as_posix() if spec.into else rel.as_posix()
                    chosen = picked(key, variants, job.pick)
                    goes[stem] = tuple(v for v in variants if v in chosen or v in goes.get(stem, ()))
                else:  # a label goes where its image goes; anything else under every variant
                    chosen = goes.get(stem, variants)
            for variant in chosen:
                out = PurePath(variant) / out_rel if variant else out_rel
                key = out.as_posix()
                if key in claimed:
                    other_index = claimed[key]
                    other = next(u.source for u in units if u.key == key)
                    raise JobError(
                        f"'{path}' and '{other}' (sources[{other_index}]) would both be written "
                        f"to '{out}'", location=spec.location, where=f"sources[{index}]",
                        hint="give one source an 'into: <folder>' key, or rename one file")
                claimed[key] = index
                units.append(Unit(source=path, output_rel=out, source_index=index, kind=kind,
                                  reader=source, variant=variant))
    check_output_paths(job.output, [(u.output_rel, u.source, u.source_index) for u in units],
                       job.output_location)
    if job.contact_sheet is not None:
        check_side_file(job.contact_sheet.path, job.output, [s.root() for s in sources],
                        (u.source for u in units), job.contact_sheet_location, "contact_sheet.path")
    return Plan(tuple(units), tuple(empty))
