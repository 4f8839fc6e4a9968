"""The Source interface: a job's ``sources:`` entry -> keyed units, and a unit opened for reading.

A source kind is one module in this package holding one ``Source`` subclass,
registered with ``@register_source``; the job parser, the planner and the
engine ask the registry, so adding a kind (tar shards, an object-store prefix,
a generator) touches nothing else.  A kind whose units are not files
(``generate:``) overrides ``find`` and ``read`` and names its units by a path under
its ``root()`` that need not exist.  ``way`` says how the engine processes the
units: ``"image"`` (each read whole with ``read``, batched by size),
``"video"`` (probed, then decoded frame by frame with ``frames``, committed in
segments) or ``"shard"`` (a tar of samples, opened with ``open_shard``, its
images batched in order, committed whole).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Iterator

from ..errors import JobError, Location
from .walk import PatternError, find, folder_and_stem, matches_any, split_pattern

if TYPE_CHECKING:
    import numpy as np

    from ..media.video import DecodedFrame, VideoInfo


@dataclass(frozen=True)
class SourceSpec:
    """A job's ``sources:`` entry, as parsed (``pipeline.job.config``)."""

    kind: str  # the source kind's key in pipeline.sources ("images", "videos", ...)
    pattern: str  # as written in the job
    path: Path  # resolved against the job's folder (may hold glob characters)
    into: str  # sub-folder under the output folder ("" for none)
    location: Location
    # non-source files carried to the output tree byte for byte: glob patterns relative to the
    # source's root (a pattern without '/' matches a name at any depth), and/or same_stem
    sidecars: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()  # glob patterns relative to the root: files not taken
    options: Any = None  # a kind with ``Options`` (``generate:``): its typed mapping
    # "inside": a symlinked file or folder whose real path lies outside the source's folder
    # is skipped and reported; "outside": followed (a tree assembled from links elsewhere)
    follow_links: str = "inside"


class Source:
    key: ClassVar[str]  # the job's key: ``- images: photos/``
    way: ClassVar[str]  # "image" | "video" | "shard": how the engine processes its units
    extensions: ClassVar[frozenset[str]]  # the files it finds in a folder or glob (lower case)
    #: a frozen dataclass when the job gives this kind a mapping of options instead of a path
    #: (``- generate: {weights: g.safetensors, count: 100}``); it must have a ``path``
    Options: ClassVar[type | None] = None

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec
        #: links the walk did not follow, their real path outside the root: (path below root, real)
        self.outside: list[tuple[PurePath, str]] = []

    def _outside(self) -> list[tuple[PurePath, str]] | None:
        return self.outside if self.spec is None or self.spec.follow_links == "inside" else None

    def describe(self) -> str:
        """More about the source for ``validate``'s plan ('' for files)."""
        return ""

    def fingerprint(self) -> dict | None:
        """What, beside the stages, decides this source's output bytes (the job's fingerprint
        holds it, so a change is refused like a changed stage); None for files, whose units
        are their own content."""
        return None

    # -- planning -------------------------------------------------------------
    def root(self) -> Path:
        """The folder relative paths start from: itself, a glob's literal prefix, a file's folder."""
        try:
            root, _pattern = split_pattern(self.spec.path)
        except PatternError:
            return self.spec.path  # reported with its location by ``find``
        return root.parent if root.is_file() else root

    def numbered(self) -> range | None:
        """For a kind whose units are numbered rather than found (``generate:``): the numbers,
        which the plan holds as a range instead of listing them (``unit_name`` names each);
        None for sources of files."""
        return None

    def unit_name(self, number: int) -> str:
        """The name (relative to ``root()``) of a numbered source's unit ``number``."""
        raise NotImplementedError(f"{type(self).__name__} has no numbered units")

    def find(self, exclude: Path) -> Iterator[tuple[Path, PurePath]]:
        """(file, path relative to the root), sorted, one at a time; hidden entries skipped.
        A source that does not exist raises here, before the first file.

        Folders and globs are walked by ``walk.find``: symlinked folders are read,
        each real folder once; ``exclude`` (the output folder) is never read back."""
        spec = self.spec
        try:
            root, pattern = split_pattern(spec.path)
        except PatternError as exc:
            raise JobError(f"source '{spec.pattern}': {exc}", location=spec.location, where="sources",
                           hint="start the pattern at the folder that holds all the files, "
                                "e.g. 'photos/**/*.png'") from None
        keep = lambda name: Path(name).suffix.lower() in self.extensions  # noqa: E731
        skip = lambda folder: folder == exclude or exclude in folder.parents  # noqa: E731
        if pattern:
            found = find(root, keep, pattern=pattern, skip_dir=skip,
                         outside=self._outside()) if root.is_dir() else iter(())
        elif spec.path.is_file():  # named directly: checked as the walk checks what it finds
            self._check_named_file(spec.path)
            found = iter([(spec.path, PurePath(spec.path.name))])
        elif spec.path.is_dir():
            found = find(spec.path, keep, skip_dir=skip, outside=self._outside())
        else:
            raise JobError(f"source '{spec.pattern}' does not exist ({spec.path})",
                           location=spec.location, where="sources",
                           hint="relative paths resolve against the job file's folder")
        return self._not_excluded(found)

    def _check_named_file(self, path: Path) -> None:
        """A file named as the source: hidden names are the pipeline's own (a ledger, its lock,
        temporary files) and never sources, and a kind takes only its own file types."""
        spec = self.spec
        if path.name.startswith("."):
            raise JobError(f"source '{spec.pattern}' names a hidden file; hidden names are never "
                           "sources (a folder's walk skips them too: they are ledgers, locks and "
                           "temporary files)", location=spec.location, where="sources",
                           hint="rename the file without the leading '.'")
        if path.suffix.lower() not in self.extensions:
            raise JobError(f"source '{spec.pattern}' is not a file a '{self.key}' source reads "
                           f"(it takes {', '.join(sorted(self.extensions))})",
                           location=spec.location, where="sources",
                           hint="name a file of one of those types, or use the source kind for it")

    def _not_excluded(self, found: Iterable[tuple[Path, PurePath]]
                      ) -> Iterator[tuple[Path, PurePath]]:
        """``found`` less what the source's ``exclude:`` patterns match (relative to the root)."""
        if not self.spec.exclude:
            return iter(found)
        return ((path, rel) for path, rel in found  # ``rel`` is relative to ``root()``
                if not matches_any(self.spec.exclude, rel))

    def sidecars(self, has_stem: Callable[[tuple[str, str]], bool], exclude: Path
                 ) -> Iterator[tuple[Path, PurePath]]:
        """The files carried beside this source's units, by ``sidecars:``: other files under
        the root whose path matches a pattern, or (``same_stem``) whose (folder, stem) a unit
        has (``has_stem``, asked of each candidate: the planner keeps the units, not this);
        never a file this source would take as a unit; sorted, one at a time."""
        patterns = tuple(p for p in self.spec.sidecars if p != "same_stem")
        same_stem = "same_stem" in self.spec.sidecars
        root = self.root()
        if not (patterns or same_stem) or not root.is_dir():
            return iter(())
        skip = lambda folder: folder == exclude or exclude in folder.parents  # noqa: E731
        other = lambda name: Path(name).suffix.lower() not in self.extensions  # noqa: E731
        carried = ((path, rel) for path, rel in find(root, other, skip_dir=skip,
                                                     outside=self._outside())
                   if (same_stem and has_stem(folder_and_stem(rel))) or matches_any(patterns, rel))
        return self._not_excluded(carried)

    def nothing_found(self) -> str:
        """Why the source is reported as failed when ``find`` returned nothing."""
        return (f"no {self.key} found in '{self.spec.pattern}' (looked for "
                f"{', '.join(sorted(self.extensions))})")

    # -- reading (the engine calls the ones of the source's way) --------------
    def read(self, path: Path) -> np.ndarray:
        """An image unit: uint8 HxWx3 RGB or HxWx4 RGBA."""
        raise NotImplementedError(f"'{self.key}' sources are not read as images")

    def size(self, path: Path) -> tuple[int, int]:
        """An image unit's upright (width, height), without decoding it (from the header)."""
        from ..media.images import image_size

        return image_size(path)

    def probe(self, path: Path) -> VideoInfo:
        """A video unit's header: size, rate, frames, audio."""
        raise NotImplementedError(f"'{self.key}' sources are not read as videos")

    def frames(self, info: VideoInfo, *, after_pts: int | None, skip: int, threads: int,
               planes: bool = False) -> Iterator[DecodedFrame]:
        """A video unit's frames from a resume point (see media/video_read.py); ``planes``: the
        engine can take 4:2:0 frames as their planes (``DecodedFrame.planes``), unconverted."""
        raise NotImplementedError(f"'{self.key}' sources are not read as videos")
