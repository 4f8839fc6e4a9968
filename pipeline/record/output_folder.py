"""The output folder as the ledger finds it: what its done lines say (``Committed``), which
of those files are in place (``on_disk``), temporary files a killed run left beside this
job's outputs (``sweep_partials``), and a restart's deletion of what this job recorded, and
only that (``remove_outputs``).  Never a walk of the whole folder: it may hold another job's
output folder, with its work in flight."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..media.atomic import partial_of, temporary_base
from .commits import SEGMENTS_DIR, is_safe_key, remove_segments
from .keyset import NONE, KeySet


@dataclass
class Committed:
    """What a ledger's done lines say, kept small: each key (a hash, with its packed size),
    the folders they lie in, and a tar shard's member list (shards are few)."""

    keys: KeySet = field(default_factory=KeySet)
    folders: set[str] = field(default_factory=set)
    members: dict[str, list[tuple]] = field(default_factory=dict)

    @classmethod
    def of(cls, records: Iterable[dict]) -> Committed:
        """From done lines, in order (a key's last line counts)."""
        made = cls()

        def sizes() -> Iterator[tuple[str, int]]:
            for record in records:
                key, w, h = record["done"], record.get("width"), record.get("height")
                made.folders.add(key.rpartition("/")[0])
                if isinstance(record.get("members"), list):
                    made.members[key] = [tuple(m) for m in record["members"]]
                else:
                    made.members.pop(key, None)
                yield key, (pack_size((w, h)) if isinstance(w, int) and isinstance(h, int)
                            else NONE)

        made.keys = KeySet.of(sizes())
        return made


def pack_size(size: tuple[int, int] | None) -> int:
    """(width, height) as one int (a ``KeySet`` value); None as ``NONE``."""
    return NONE if size is None else (size[0] << 32) | size[1]


def unpack_size(value: int | None) -> tuple[int, int] | None:
    return None if value is None or value == NONE else (value >> 32, value & 0xFFFFFFFF)


def remove_outputs(output: Path, records: Iterable[dict[str, Any]]) -> None:
    """``--restart``: delete what this job recorded, and only that.  A record is not proof:
    a key must be a plain path inside the output folder (no symlink leading out of it), and
    the file must still have the size recorded; anything else is left alone."""
    root = output.resolve()
    for record in records:
        size = record.get("bytes", 0)
        path = output / record["done"]
        try:
            if path.is_symlink() or not path.is_file() or path.stat().st_size != size:
                continue
            if root not in path.resolve().parents:
                continue
        except OSError:
            continue
        path.unlink(missing_ok=True)


def on_disk(output: Path, committed: Committed) -> KeySet:
    """The committed keys whose file is in place (with their sizes): each folder they lie in
    listed once, not a stat per key (a symlink to a file counts, as ``Path.is_file`` would
    have it)."""
    def files() -> Iterator[str]:
        for folder in committed.folders:
            try:
                with os.scandir(os.path.join(output, folder) if folder else output) as entries:
                    for entry in entries:
                        if entry.is_file():
                            yield f"{folder}/{entry.name}" if folder else entry.name
            except OSError:  # the folder is gone (or unreadable): its outputs are redone
                continue

    return committed.keys.among(files())


def sweep_partials(output: Path, keys: Iterable[str], *, also: Committed | None = None,
                   restart: bool = False) -> None:
    """Temporary files a killed run left beside this job's own outputs and segments (``keys``,
    and the ``also`` committed ones); never a walk of the folder, which may hold another
    job's output folder and its work in flight.  Each folder holding outputs is listed once,
    when its first key comes (a 100k-image folder is not listed per key), and only its
    temporary files are kept from the listing; ``keys`` is read once, and not kept.
    ``restart``: each key's segment folder goes too."""
    clips = (output / SEGMENTS_DIR).is_dir()  # no segment folder: no stat per key for one
    partials: dict[str, dict[str, list[str]]] = {}  # folder -> final name -> its temporary files

    def listed(folder: str) -> dict[str, list[str]]:
        if folder not in partials:
            found: dict[str, list[str]] = {}
            try:
                with os.scandir(os.path.join(output, folder) if folder else output) as entries:
                    for entry in entries:
                        base = partial_of(entry.name)
                        if base is not None and entry.is_file(follow_symlinks=False):
                            found.setdefault(base, []).append(entry.path)
            except OSError:
                pass
            partials[folder] = found
        return partials[folder]

    def sweep(folder: str, name: str) -> None:
        found = listed(folder)
        for path in found.pop(name, []) + found.pop(temporary_base(name), []):
            Path(path).unlink(missing_ok=True)

    for key in keys:
        if is_safe_key(key):
            sweep(*_folder_and_name(key))
            if clips:
                _sweep_segments(output, key, restart)
    if also is not None:  # outputs recorded but not planned now (a variant removed): theirs too
        for folder in also.folders:
            for name in list(listed(folder)):
                if (f"{folder}/{name}" if folder else name) in also.keys:
                    sweep(folder, name)


def _folder_and_name(key: str) -> tuple[str, str]:
    folder, _, name = key.rpartition("/")
    return folder, name


def _sweep_segments(output: Path, key: str, restart: bool) -> None:
    """A clip's temporary segment files (its whole segment folder on ``--restart``)."""
    if restart:
        remove_segments(output, key)
        return
    segments = output / SEGMENTS_DIR / key
    if segments.is_dir() and not segments.is_symlink():
        for path in segments.iterdir():
            if partial_of(path.name) is not None:
                path.unlink(missing_ok=True)
