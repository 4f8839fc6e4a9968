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

A plan holds no unit: each source's files are kept as compact listings
(``Listing``, about 20 bytes a file), and ``Units`` makes the units as it is
iterated, the same ones in the same order on every pass; the checks keep
64-bit hashes of the outputs and sources (``keyset.py``).  So a 1M-file job
plans, runs and resumes in tens of MiB, not the 2 GiB a tuple of units and
their paths took (issue 13; ``benchmarks/dataset_scale.py`` measures it).
"""
from __future__ import annotations

import hashlib
import os
from array import array
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Callable, Iterator

from ..errors import JobError
from ..record.keyset import duplicates_of
from ..sources import Source, get_source
from ..sources.base import SourceSpec
from ..sources.walk import real_path, stem_of
from .config import Job
from .numbered import Claims, Numbered
from .options import PickOptions
from .safety import check_not_reserved, check_output_paths, check_side_file


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
    units: Units
    empty_sources: tuple[tuple[SourceSpec, str], ...]  # (source, why nothing was found)
    # links not followed, their real path outside their source's folder: (source, what)
    outside: tuple[tuple[SourceSpec, str], ...] = ()


class Listing:
    """One source's files of one kind (its units' files, or its sidecars) in the order found,
    as runs of names in one folder, each run one string: about 20 bytes a file, where a
    list of (Path, PurePath) pairs took about 500 (issue 13: a 1M-file tree)."""

    RUN = 4096  # names per run at most: a bounded list while one folder is read

    def __init__(self) -> None:
        self.runs: list[tuple[str, str]] = []  # (folder relative to the root, names "\0"-joined)
        self.count = 0
        self._names: list[str] = []
        self._folder: str | None = None
        self._stems: tuple[str | None, set[str]] = (None, set())  # the last folder asked about

    def add(self, rel: PurePath) -> None:
        folder, _, name = rel.as_posix().rpartition("/")
        if folder != self._folder or len(self._names) >= self.RUN:
            self._flush()
            self._folder = folder
        self._names.append(name)
        self.count += 1

    def close(self) -> Listing:
        self._flush()
        self._in_folder: dict[str, list[str]] = {}  # folder -> its runs (a folder's runs may be apart)
        for folder, names in self.runs:
            self._in_folder.setdefault(folder, []).append(names)
        return self

    def __iter__(self) -> Iterator[tuple[str, str]]:
        """(folder, name) per file ("" for the root folder), in the order found."""
        for folder, names in self.runs:
            for name in names.split("\0"):
                yield folder, name

    def names_in(self, folder: str) -> Iterator[str]:
        for names in self._in_folder.get(folder, ()):
            yield from names.split("\0")

    def has_stem(self, folder_stem: tuple[str, str]) -> bool:
        """Whether a file here has this (folder, stem) (``same_stem`` sidecars); the walk asks
        folder by folder, so one folder's stems are kept at a time."""
        folder, stem = folder_stem
        if self._stems[0] != folder:
            self._stems = (folder, {stem_of(name)
                                    for name in self.names_in(folder)})
        return stem in self._stems[1]

    def _flush(self) -> None:
        if self._names:
            self.runs.append((self._folder or "", "\0".join(self._names)))  # no name holds NUL
        self._names = []


@dataclass
class SourcePlan:
    """One source's part of the plan: what it found, and how each file becomes units."""

    index: int
    spec: SourceSpec
    source: Source
    files: Listing | Numbered  # the source's own units' files
    sidecars: Listing  # the files carried beside them
    variants: tuple[str | None, ...]
    pick: PickOptions | None
    output_relpath: Callable[[PurePath, str], PurePath]
    _goes: tuple[str, dict[str, set[str | None]]] | None = field(default=None, repr=False)

    def units(self, selected: Iterator[int] | None = None) -> Iterator[Unit]:
        """The units, made as asked for: each file's variants together (one read serves them),
        the source's files in the order found, then its sidecars.  ``selected``: one flag per
        unit, in that order (a ``Units`` mask); only the flagged ones are made (a rerun where
        all is done makes none)."""
        root, source, index = self.source.root(), self.source, self.index
        into = PurePath(self.spec.into) if self.spec.into else None
        under = {v: PurePath(v) for v in self.variants if v}
        # Paths are joined from each folder's, made once: parsing a whole path per unit
        # was most of the cost of a pass over 100k units
        folders: tuple[str, PurePath, Path] | None = None
        for kind, listing in ((source.way, self.files), ("file", self.sidecars)):
            for folder, name in listing:
                variants = self._variants_of(kind, folder, name)
                if selected is not None:
                    variants = [v for v in variants if next(selected)]  # a flag for each
                    if not variants:
                        continue
                if folders is None or folders[0] != folder:
                    folders = (folder, PurePath(folder), root / folder)
                rel = folders[1] / name
                out_rel = rel if kind == "file" else self.output_relpath(rel, kind)  # sidecars: as they are
                out_rel = into / out_rel if into else out_rel
                path = folders[2] / name  # what ``find`` returned: root / rel
                for variant in variants:
                    yield Unit(source=path, output_rel=under[variant] / out_rel if variant else out_rel,
                               source_index=index, kind=kind, reader=source, variant=variant)

    @property
    def numbered(self) -> bool:
        return isinstance(self.files, Numbered)

    def ends(self) -> SourcePlan:
        """A numbered source's plan over its first and last units only (what is checked per
        file: ``pipeline.job.numbered``); any other source's plan as it is."""
        if not self.numbered:
            return self
        return SourcePlan(self.index, self.spec, self.source, self.files.ends(), self.sidecars,
                          self.variants, self.pick, self.output_relpath)

    def unit_count(self) -> int:
        """A numbered source's units, counted without making them: each number goes through
        all the variants, or ``pick.count`` of them."""
        per = len(self.variants) if self.pick is None else min(self.pick.count, len(self.variants))
        return self.files.count * per

    def _variants_of(self, kind: str, folder: str, name: str) -> list[str | None]:
        """All the variants (or none), or under ``pick`` the file's own; a sidecar that shares
        an image's folder and stem goes where that image goes, any other under every variant."""
        if self.pick is None:
            return list(self.variants)
        if kind != "file":
            return picked(self._pick_key(folder, name), self.variants, self.pick)
        goes = self._goes_in(folder).get(stem_of(name))
        return [v for v in self.variants if v in goes] if goes else list(self.variants)

    def _goes_in(self, folder: str) -> dict[str, set[str | None]]:
        """Stem -> the variants the folder's files of that stem go to; one folder kept at a
        time (sidecars come folder by folder)."""
        cached = self._goes  # one read: another pass (a thread) may replace it meanwhile
        if cached is None or cached[0] != folder:
            goes: dict[str, set[str | None]] = {}
            for image in self.files.names_in(folder):
                goes.setdefault(stem_of(image), set()).update(
                    picked(self._pick_key(folder, image), self.variants, self.pick))
            cached = self._goes = (folder, goes)
        return cached[1]

    def _pick_key(self, folder: str, name: str) -> str:
        """The file's path under the output, before any variant folder and suffix change."""
        rel = f"{folder}/{name}" if folder else name
        return f"{PurePath(self.spec.into).as_posix()}/{rel}" if self.spec.into else rel


class Units:
    """The plan's units in order, made one at a time as they are iterated: a 1M-file plan
    holds its sources' listings, not a million ``Unit`` objects.  Iterate it again for a
    second pass; ``where`` keeps some units (one byte per unit)."""

    def __init__(self, sources: tuple[SourcePlan, ...], count: int,
                 mask: bytearray | None = None) -> None:
        self._sources, self._count, self._mask = sources, count, mask

    def __iter__(self) -> Iterator[Unit]:
        selected = None if self._mask is None else iter(self._mask)
        for plan in self._sources:
            yield from plan.units(selected)

    def __len__(self) -> int:
        return self._count

    @property
    def sources(self) -> tuple[SourcePlan, ...]:
        return self._sources

    def sampled(self) -> Iterator[tuple[Unit, int]]:
        """(unit, how many units it stands for): every unit of a listed source once, and a
        numbered source's first unit for itself and its last for all the rest (they differ
        only in their number).  For passes that need each unit's kind of work, not each unit."""
        if self._mask is not None:
            raise ValueError("sampled() is for a whole plan, not a selection")
        for plan in self._sources:
            if not plan.numbered:
                yield from ((unit, 1) for unit in plan.units())
                continue
            ends = list(plan.ends().units())  # the first number's units, then the last's
            first = plan.unit_count() // plan.files.count  # units per number
            rest = plan.files.count - 1  # the numbers the last one's units stand for
            for k, unit in enumerate(ends):
                yield unit, 1 if k < first else rest

    def __bool__(self) -> bool:
        return self._count > 0

    def where(self, keep: Callable[[Unit], bool]) -> Units:
        """The units that ``keep`` keeps, in order (``keep`` is asked once per unit, now)."""
        if self._mask is None:
            mask = bytearray(1 if keep(unit) else 0 for unit in self)
        else:  # a selection of a selection: the positions of this one's units
            mask = bytearray(len(self._mask))
            for i, unit in zip((i for i, flag in enumerate(self._mask) if flag), self):
                mask[i] = 1 if keep(unit) else 0
        return Units(self._sources, sum(mask), mask)


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
    """``output_relpath(source_rel, kind)``: where encode writes a source's output.

    The output folder and the sources' existence are checked first, every mistake at once,
    by ``preflight.check_sources_and_output`` (``prepare`` runs it, and this only after it).
    Each source is walked once into its listings; then one pass over the units (made as
    they are iterated) checks every output (``check_output_paths``), counts the units and
    hashes their keys (two files written to one place?).  Nothing here grows by more than a
    few bytes a file."""
    sources = [source_of(spec) for spec in job.sources]
    empty: list[tuple[SourceSpec, str]] = []
    outside: list[tuple[SourceSpec, str]] = []
    output = job.output.resolve()
    plans = []
    for index, (spec, source) in enumerate(zip(job.sources, sources)):
        numbers = source.numbered()
        if numbers is not None:  # generated: a range, never listed
            files = Numbered(numbers, source.unit_name)
        else:
            files = Listing()
            for _path, rel in source.find(exclude=output):
                files.add(rel)
        if not files.close().count:
            empty.append((spec, source.nothing_found()))
        sidecars = Listing()
        for _path, rel in source.sidecars(files.has_stem, exclude=output):
            sidecars.add(rel)
        plans.append(SourcePlan(index, spec, source, files, sidecars.close(),
                                job.variants or (None,), job.pick, output_relpath))
        outside += [(spec, f"{source.root() / rel}: a link to '{real}', outside the source's "
                           "folder, not followed") for rel, real in source.outside]
    keys = array("q")  # each output's hash, 8 bytes a unit
    sheet = str(job.contact_sheet.path.resolve()) if job.contact_sheet is not None else None
    sources_inside: set[str] = set()
    # One pass checks every output, counts the units and hashes their keys; a second, only
    # where some source's real path lies in the output folder (see ``_seen``), checks the
    # outputs against those sources too.
    # A numbered source is checked on its first and last units, and its range against the
    # listed units' names (``pipeline.job.numbered``).
    checked = Units(tuple(plan.ends() for plan in plans), 0)
    claims = _claims(plans)
    check_output_paths(job.output, _seen(checked, keys, sources_inside,
                                         str(job.output.resolve()) + os.sep, sheet, job, claims),
                       (), job.output_location)
    numbered = [plan for plan in plans if plan.numbered]
    count = len(keys) + sum(plan.unit_count() - plan.ends().unit_count() for plan in numbered)
    units = Units(tuple(plans), count)
    _check_no_two_write_one(job, checked, duplicates_of(keys))
    if sources_inside:
        check_output_paths(job.output, ((u.output_rel, u.source, u.source_index) for u in checked),
                           sources_inside, job.output_location)
    if job.contact_sheet is not None:
        check_side_file(job.contact_sheet.path, job.output, [s.root() for s in sources],
                        sources_inside, job.contact_sheet_location, "contact_sheet.path")
    return Plan(units, tuple(empty), tuple(outside))


def _claims(plans: list[SourcePlan]) -> Claims:
    """Where the numbered sources write; two that write the same names are refused."""
    claims = Claims()
    for plan in plans:
        if plan.numbered:
            for unit in plan.ends().units():
                claims.add(unit.output_rel, plan.files, plan.index)
    twice = claims.overlaps()
    if twice:
        index, other, folder = twice
        raise JobError(f"sources[{other}] and sources[{index}] would both write the same "
                       f"numbered images in '{folder}'", location=plans[index].spec.location,
                       where=f"sources[{index}]",
                       hint="give one an 'into: <folder>', or ranges apart with 'first:'")
    return claims


def _seen(units: Units, keys: array, sources_inside: set[str], inside: str, also: str | None,
          job: Job, claims: Claims) -> Iterator[tuple[PurePath, Path, int]]:
    """Each unit as ``check_output_paths`` takes it; on the way, its key's hash goes into
    ``keys``, and its source's real path into ``sources_inside`` if that lies ``inside`` the
    output folder (the only sources an output could land on: ``check_output_folder`` keeps
    source folders out of it and the walk skips it, so only a symlinked file gets there) or
    is ``also`` (the contact sheet's path).  No output may land on one of the job's own files
    (``check_not_reserved``)."""
    real: dict[str, str] = {}  # folder -> real path, resolved once per folder
    for unit in units:
        spec = job.sources[unit.source_index]
        check_not_reserved(unit.output_rel, unit.source, f"sources[{unit.source_index}]", spec.location)
        keys.append(hash(unit.key))
        if claims and unit.source_index not in claims.indexes:
            index = claims.claimant(unit.output_rel)
            if index is not None:
                raise JobError(f"'{unit.source}' would be written to '{unit.output_rel}', where "
                               f"sources[{index}] writes a generated image", location=spec.location,
                               where=f"sources[{unit.source_index}]",
                               hint="give one source an 'into: <folder>' key")
        path = real_path(str(unit.source), real)
        if path.startswith(inside) or path == also:
            sources_inside.add(path)
        yield unit.output_rel, unit.source, unit.source_index


def _check_no_two_write_one(job: Job, units: Units, twice: set[int]) -> None:
    """No two units write one output.  ``twice``: the keys' hashes seen more than once; only
    those keys are compared as strings (two different keys may share a hash)."""
    if not twice:
        return
    first: dict[str, Unit] = {}
    for unit in units:
        if hash(unit.key) not in twice:
            continue
        other = first.setdefault(unit.key, unit)
        if other is not unit:
            spec = job.sources[unit.source_index]
            raise JobError(
                f"'{unit.source}' and '{other.source}' (sources[{other.source_index}]) would both "
                f"be written to '{unit.output_rel}'", location=spec.location,
                where=f"sources[{unit.source_index}]",
                hint="give one source an 'into: <folder>' key, or rename one file")
