"""``- shards: "shards/train-{000000..000009}.tar"``: WebDataset tar shards, each one unit.

A file, a folder (recursive) or a glob of ``.tar`` files, as for images, or brace notation
(the ``braceexpand`` package's, as ``webdataset`` reads it: ``{000000..000099}`` ranges,
``{train,val}`` lists).  Brace notation names the shards one by one, so one that does not
exist makes the job invalid (``validate`` says which), as a missing file would; a braced part
may still hold a glob.  Relative paths start at the folder before the first braced part,
so ``shards/train-{0..9}.tar`` writes ``output/train-0.tar`` and so on.  The engine processes
the units by the ``shard`` way (``pipeline/engine/shards.py``).
"""
from __future__ import annotations

import glob
from dataclasses import replace
from pathlib import Path, PurePath
from typing import Iterator

from ..errors import JobError
from ..media.shards import SHARD_EXTENSIONS, ShardReader
from .base import Source
from .registry import register_source


@register_source
class TarShards(Source):
    key = "shards"
    way = "shard"
    extensions = SHARD_EXTENSIONS

    def root(self) -> Path:
        braced = self._braced()
        return braced[0] if braced else super().root()

    def find(self, exclude: Path) -> Iterator[tuple[Path, PurePath]]:
        braced = self._braced()
        if braced is None:
            return super().find(exclude)
        root, names = braced
        found: dict[Path, PurePath] = {}
        missing = []
        for name in names:
            path = root / name
            if glob.has_magic(name) or path.is_dir():  # walked as a glob or a folder would be
                one = type(self)(replace(self.spec, pattern=name, path=path, exclude=()))
                for file, _ in one.find(exclude):
                    found.setdefault(file, PurePath(file.relative_to(root)))
                self.outside += [(PurePath(name) / rel, real) for rel, real in one.outside]
            elif path.is_file():
                self._check_named_file(path)
                found.setdefault(path, PurePath(name))
            else:
                missing.append(name)
        if missing:
            spec = self.spec
            raise JobError(f"source '{spec.pattern}': {len(missing)} of the {len(names)} shards "
                           f"it names do not exist: {_some(missing)} (in {root})",
                           location=spec.location, where="sources",
                           hint="fix the range or the list in braces; relative paths resolve "
                                "against the job file's folder")
        return self._not_excluded(list(found.items()))

    def _braced(self) -> tuple[Path, list[str]] | None:
        """(the folder before the first braced part, the rest of the path expanded), or None
        for a path without braces."""
        parts = self.spec.path.parts
        first = next((i for i, part in enumerate(parts) if "{" in part), None)
        if first is None:
            return None
        from braceexpand import UnbalancedBracesError, braceexpand

        rest = "/".join(parts[first:])
        try:
            names = list(dict.fromkeys(braceexpand(rest)))
        except UnbalancedBracesError as exc:
            raise JobError(f"source '{self.spec.pattern}': {exc}", location=self.spec.location,
                           where="sources", hint="e.g. 'shards/train-{000000..000099}.tar'"
                           ) from None
        if names == [rest]:  # braces that expand to nothing else: a plain name
            return None
        if any(".." in PurePath(name).parts or PurePath(name).is_absolute() for name in names):
            raise JobError(f"source '{self.spec.pattern}': a braced part may not hold '..' or "
                           "an absolute path", location=self.spec.location, where="sources",
                           hint="start the pattern at the folder that holds all the shards")
        return Path(*parts[:first]), names

    def open_shard(self, path: Path) -> ShardReader:
        """The shard's headers, read and checked (``MediaError`` if it is corrupt)."""
        return ShardReader(path)


def _some(names: list[str], most: int = 5) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")
