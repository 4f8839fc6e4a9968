"""Atomic file writes: a kill at any moment never leaves half a file under the final name."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

PARTIAL_TAG = ".partial"


def partial_name(final: Path) -> Path:
    """The temporary name beside ``final``: hidden, and tagged so sweeps can find it."""
    return final.with_name(f".{final.name}{PARTIAL_TAG}")


def atomic_write(final: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)``, fsync, then rename over ``final``; the temporary is removed on failure."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_name(final)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
