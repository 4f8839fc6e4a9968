"""Finding source files: folders and globs, every real directory once, never above the root.

Two hostile inputs shaped this module (issue 9):

* Symlink loops.  ``glob.glob("**", recursive=True)`` follows a symlink that
  points back up the tree until the path gets too long: 7 real images became
  287 units.  Here a directory symlink is followed, but each real directory
  (device, inode) is entered once, so a loop ends where it starts and a
  symlinked sub-tree is read once.
* ``..`` after a wildcard.  ``gt/*/../../victim/*.png`` matched files outside
  the glob's root, whose relative path (``sub1/../../victim/v.png``) then
  pointed the output outside the output folder.  A pattern is split into a
  literal root and a pattern below it; ``..`` below the root is refused, and
  every path found is the root joined with plain names, so its relative path
  never climbs.

Matching follows ``glob``'s rules: ``*``, ``?`` and ``[...]`` within one
name, ``**`` for any number of folders (none included); names starting with
``.`` are skipped (hidden files, and our own ``.partial`` and ``.segments``).
"""
from __future__ import annotations

import fnmatch
import glob
import os
from functools import lru_cache
from pathlib import Path, PurePath
from typing import Callable, Iterator


class PatternError(ValueError):
    """A glob this module will not run; the caller locates it in the job file."""


def split_pattern(path: Path) -> tuple[Path, tuple[str, ...]]:
    """``/a/b/*/c/*.png`` -> (``/a/b``, (``*``, ``c``, ``*.png``)); no pattern -> (path, ())."""
    parts = path.parts
    for i, part in enumerate(parts):
        if glob.has_magic(part):
            below = tuple(p for p in parts[i:] if p != ".")
            if ".." in below:
                raise PatternError(
                    f"'..' after a wildcard is not allowed: it would match files outside the "
                    f"folder the pattern starts from ({Path(*parts[:i])})")
            return Path(*parts[:i]), below
    return path, ()


def find(root: Path, keep: Callable[[str], bool], *, pattern: tuple[str, ...] = (),
         skip_dir: Callable[[Path], bool] = lambda _: False,
         outside: list[tuple[PurePath, str]] | None = None) -> Iterator[tuple[Path, PurePath]]:
    """Files under ``root`` whose name passes ``keep`` (and whose path below root matches
    ``pattern``, if given), as (path, path relative to root) pairs sorted by relative path,
    one at a time as the walk finds them (a 1M-file tree is never a list here).

    ``skip_dir(real_path)`` prunes folders (the job's own output folder).  ``outside``: a list
    to keep the walk inside the root's real folder: a symlinked file or folder whose real path
    lies elsewhere is not followed but put there, (its path below root, its real path), for
    the caller to report; None follows every link (once per real folder)."""
    # The walk goes depth first through sorted entries: its order is already sorted by
    # relative path (sorting Paths again costs more than the walk, on 100k files)
    base = str(root)
    inside = None if outside is None else os.path.realpath(root).rstrip(os.sep) + os.sep
    for rel in _walk(root, (), set(), pattern, keep, skip_dir, inside, outside):
        yield Path(os.path.join(base, *rel)), PurePath(*rel)


def _walk(folder: Path, rel: tuple[str, ...], seen: set[tuple[int, int]],
          pattern: tuple[str, ...], keep: Callable[[str], bool],
          skip_dir: Callable[[Path], bool], inside: str | None = None,
          outside: list | None = None) -> Iterator[tuple[str, ...]]:
    try:
        stat = folder.stat()
    except OSError:
        return  # a dangling link, or a folder that vanished: nothing to read there
    if (stat.st_dev, stat.st_ino) in seen:
        return  # a symlink back into the tree, or a second link to the same folder
    seen.add((stat.st_dev, stat.st_ino))
    if rel and skip_dir(folder.resolve()):
        return
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        here = rel + (entry.name,)
        try:
            is_dir = entry.is_dir()  # follows symlinks: a linked folder is read (once)
            if inside is not None and entry.is_symlink():
                real = os.path.realpath(entry.path)
                if not (real + os.sep).startswith(inside) and (is_dir or keep(entry.name)):
                    outside.append((PurePath(*here), real))  # not followed: reported
                    continue
        except OSError:
            continue
        if is_dir:
            if not pattern or _could_match_below(pattern, here):
                yield from _walk(Path(entry.path), here, seen, pattern, keep, skip_dir,
                                 inside, outside)
        elif keep(entry.name) and (not pattern or _matches(pattern, here)):
            try:
                if entry.is_file():
                    yield here
            except OSError:
                continue


def folder_and_stem(rel: PurePath) -> tuple[str, str]:
    """(folder, stem) of a relative path, as strings (no Path per file): ``a/b.tar.gz`` ->
    ``("a", "b.tar")``; a label and its image share them (``same_stem``)."""
    folder, _, name = rel.as_posix().rpartition("/")
    return folder, stem_of(name)


def stem_of(name: str) -> str:
    """A file name less its last suffix, as a string: ``b.tar.gz`` -> ``b.tar``."""
    return name.rpartition(".")[0] or name


def matches_any(patterns: tuple[str, ...], rel: PurePath) -> bool:
    """Whether the relative path ``rel`` matches one of ``patterns`` (``sidecars:``,
    ``exclude:``): glob rules per name, ``**`` for any folders; a pattern without a ``/``
    matches a name at any depth, as in .gitignore (``*.txt``, ``thumbs``... a folder's name
    matches every file below it)."""
    parts = rel.parts
    return any(_matches(split, parts) for split, names in _compiled(patterns)
               if all(name in parts for name in names))  # a literal name missing: no match


@lru_cache(maxsize=64)
def _compiled(patterns: tuple[str, ...]) -> tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]:
    """Each pattern as names, twice: as given (a file) and with ``**`` after it (a folder);
    with the names in it that have no wildcard, which a matching path must hold (a quick
    test first: ``**/thumbs/**`` rules out most paths without a glob match)."""
    out = []
    for pattern in patterns:
        split = tuple(p for p in pattern.strip("/").split("/") if p not in ("", "."))
        if len(split) == 1:
            split = ("**", split[0])
        names = tuple(p for p in split if not any(c in p for c in "*?["))
        out += [(split, names), (split + ("**",), names)]
    return tuple(out)


def _matches(pattern: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_matches(rest, parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], head) and _matches(rest, parts[1:])


def _could_match_below(pattern: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    """Whether some file below the folder ``parts`` could match: prunes the walk."""
    if not parts:
        return bool(pattern)
    if not pattern:
        return False
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return True
    return fnmatch.fnmatchcase(parts[0], head) and _could_match_below(rest, parts[1:])


def real_path(path: str, real: dict[str, str]) -> str:
    """``os.path.realpath(path)``, with each folder's real path cached in ``real``: a
    100k-file tree has a few hundred folders, and resolving costs a stat per component."""
    folder, name = os.path.split(path)
    if folder not in real:
        real[folder] = os.path.realpath(folder)
    joined = os.path.join(real[folder], name)
    return os.path.realpath(joined) if os.path.islink(joined) else joined
