"""A file's SHA-256, cached per (path, size, mtime): what fingerprints and trainers' resume
checks name a weights file by.  Apart from the stages so that a trainer can use it without
importing them (and their video library: a GPU machine without PyAV can still train); and
the seed style_augment draws an image's style from (the manifest records it, without torch)."""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

__all__ = ["draw_seed", "file_sha256", "read_sha256"]


def file_sha256(path: Path) -> str:
    """The file's SHA-256, computed once per (path, size, mtime): a file rewritten in place
    (a test, a trainer saving over its checkpoint) is hashed again."""
    stat = Path(path).stat()
    return _sha256(Path(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=64)
def _sha256(path: Path, _size: int, _mtime_ns: int) -> str:
    return read_sha256(path)


def read_sha256(path: Path) -> str:
    """The file's SHA-256, read now (no cache: a resume file checked against the ledger may have
    been replaced with one of the same size and time)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def draw_seed(seed: int, key: str) -> int:
    """A 63-bit generator seed from the job's seed and an image's key (SHA-256 of both): what
    style_augment draws an image's style from, and the manifest records."""
    digest = hashlib.sha256(f"{seed}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1
