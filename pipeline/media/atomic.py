"""Atomic file writes: a kill at any moment never leaves half a file under the final name."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

PARTIAL_TAG = ".partial"


NAME_MAX = 255  # bytes in one file name (ext4, XFS, APFS, NTFS in UTF-16 units)
_TAG_ROOM = 32  # bytes kept for a "~tag" (a Ray attempt's) on a long name's temporary


def partial_name(final: Path, tag: str = "") -> Path:
    """The temporary name beside ``final``: hidden, and tagged so sweeps can find it.  ``tag``
    (a Ray attempt's) keeps two writers of one output, one of them late, off each other's file.
    A name too long to take the 9 more bytes is stood for by ``temporary_base``'s short hash."""
    return final.with_name(f".{temporary_base(final.name)}{'~' + tag if tag else ''}{PARTIAL_TAG}")


def temporary_base(name: str) -> str:
    """What a temporary name is made from: the final name, or for a name of more than
    ``NAME_MAX`` less room for the dots, the tag and ".partial", ``#`` and a hash of it
    (a 250-byte name is a valid output; its temporary must be a valid name too)."""
    if len(name.encode("utf-8", "surrogateescape")) + 1 + len(PARTIAL_TAG) + _TAG_ROOM <= NAME_MAX:
        return name
    import hashlib

    return "#" + hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def partial_of(name: str) -> str | None:
    """The final name a temporary name belongs to (``.a.png~w1.partial`` -> ``a.png``; for a
    long name, its ``temporary_base``), else None."""
    if not (name.startswith(".") and name.endswith(PARTIAL_TAG)):
        return None
    inner = name[1:-len(PARTIAL_TAG)]
    base, sep, tag = inner.rpartition("~")
    return base if sep and tag and "/" not in tag else inner


def atomic_write(final: Path, write: Callable[[Path], Any], tag: str = "",
                 check: Callable[[], None] | None = None) -> Any:
    """``write(tmp)``, fsync, ``check()`` (may raise to refuse), then rename over ``final``;
    the temporary is removed on failure.  Returns what ``write`` returned."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_name(final, tag)
    try:
        result = write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        if check is not None:
            check()
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return result
