"""The file way: a sidecar (a label file, an annotation json) copied byte for byte, no device.

A unit is copied in its reader thread under a temporary name and committed like any output
(atomic, in the ledger, skipped by a rerun); it makes no piece for the device.
"""
from __future__ import annotations

import shutil
from typing import Iterable, Iterator

from ..errors import MediaError, file_error
from ..job.plan import Unit
from .batcher import Piece
from .way import Way

STAGE = "copy"  # the stage a failed copy is reported at


class FileWay(Way):
    kind = "file"
    fans_out = True  # no stages: every variant's copies in one pass

    def pieces(self, unit: Unit) -> Iterator[Piece]:
        engine = self.engine
        try:
            with engine.times.timing("copy", 0):
                engine.commits.commit(unit.key, lambda tmp: _copy(unit, tmp))
        except Exception as exc:  # one unreadable label fails alone
            engine.fail(self, unit, STAGE, exc)
            return
        engine.count(done=1)
        engine.progress.unit_finished(True)
        yield from ()

    def write(self, stream: None, items: Iterable) -> None:
        for _ in items:  # no piece, so nothing comes
            pass

    def failed(self, unit: Unit, opened: bool) -> None:
        self.engine.progress.unit_finished(False)


def _copy(unit: Unit, tmp) -> None:
    """The source's bytes into ``tmp``: a source that cannot be opened fails the unit; the
    output side's errors (a full disk) pass as they are, for the engine to stop the run."""
    try:
        source = open(unit.source, "rb")
    except OSError as exc:
        raise file_error(MediaError, exc)(
            unit.source, f"cannot read: {exc.strerror or exc}", stage=STAGE,
            hint="check the file's permissions, or remove it from the sources") from None
    with source, open(tmp, "wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)
