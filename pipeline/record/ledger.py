"""The progress ledger and atomic commits.

``output/.ledger.jsonl``: the first line holds the job's fingerprint (the
normalized stage chain with weights by content hash, and the precision); each
further line records one committed output.  Lines are appended and fsynced
one at a time, so a kill at any moment leaves at worst one torn last line,
which is ignored.  An output is written under a temporary name, fsynced and
renamed into place before its line is written: a listed output is complete,
and a complete output that missed its line is simply redone.

A video is committed in closed segments before it is done: each segment is
its own small file under ``output/.segments/<key>/``, recorded with the frame
count and last timestamp it ends at, beside the state the next segment needs
(the temporal smoothing state, saved losslessly; only the latest is kept).
When all segments are done they are joined into the output and the segment
folder is removed.  Between segment ends, the frames encoded into the open
segment are saved on a wall-clock cadence (``commit_scratch``: lossless npz
parts with the state after them), so a kill at a slow model costs about
``commit_every`` seconds, not a segment.

A lock file keeps two runs from writing the same output folder at once.

One writer: the work reports records (``pipeline.record.records``) after putting its
files in place (``pipeline.record.commits``), and ``Ledger.apply`` alone turns them
into lines and deletes what a line supersedes, whether the work ran in this
process or on a Ray actor.

What the ledger trusts (issue 9): a record is not proof of ownership.  Keys
that are not plain relative paths are ignored when read; ``--restart``
deletes a recorded output only while it is a plain file inside the output
folder with the size recorded; the sweep of temporary files looks only beside
this job's own keys, never through the folder (which may hold another job's
output folder, with its work in flight).  A segment record also says whether
any timestamp up to it was bumped (``pts_adjusted``): such a clip resumes by
counting frames, not by seeking (see media/video_read.py).
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import threading
import time
from itertools import chain
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..errors import JobError, PipelineError
from .commits import Commits, Scratch, Segment, is_safe_key, load_state, remove_segments
from .fingerprint_changes import amendment, describe_changes, runtime_hint
from .keyset import KeySet
from .manifest import MANIFEST, MANIFEST_CSV
from .output_folder import (Committed, on_disk, pack_size, remove_outputs, sweep_partials,
                            unpack_size)
from .records import Done, ScratchSaved, SegmentSaved, SegmentsDropped

LEDGER_NAME = ".ledger.jsonl"
LOCK_NAME = ".ledger.lock"
VERSION = 1

__all__ = ["LEDGER_NAME", "Ledger", "LedgerWriteError", "Scratch", "Segment", "committed_keys",
           "is_safe_key", "load_state", "sweep_partials"]


class Ledger(Commits):
    def __init__(self, output: Path, fingerprint: dict[str, Any], *, restart: bool = False,
                 keys: Iterable[str] = ()) -> None:
        """``keys``: the outputs this run may write; only their leftovers are swept."""
        super().__init__(output, self.apply)
        self.path = output / LEDGER_NAME
        self._lock = threading.Lock()
        output.mkdir(parents=True, exist_ok=True)
        self._lock_file = _take_lock(output / LOCK_NAME)
        _repair_tail(self.path)
        header, committed, segments, scratches = _read(self.path)
        if restart and header is not None:
            # the manifests first: killed from here on, none lists an output that is gone
            for name in (MANIFEST, MANIFEST_CSV):
                (output / name).unlink(missing_ok=True)
            remove_outputs(output, _done_records(self.path))
            for key in segments:
                remove_segments(output, key)
            header, committed, segments, scratches = None, Committed(), {}, {}
        amends = header is not None and amendment(header.get("fingerprint", {}), fingerprint)
        if header is not None and header.get("fingerprint") != fingerprint and not amends:
            self.close()
            raise JobError(
                f"the job changed since the outputs in {output} were made: "
                + describe_changes(header.get("fingerprint", {}), fingerprint),
                hint=runtime_hint(header.get("fingerprint", {}), fingerprint)
                     + "run again with --restart to start over (its outputs are replaced), "
                     "or point 'output' at a new folder"
                     + ("; or, to keep the other variants' outputs, give a changed variant a "
                        "new name (variants may be added and removed freely)"
                        if any(s.get("stage") == "variants" for s in fingerprint.get("stages", []))
                        else ""))
        # Outputs deleted by hand are redone: only files still on disk count.  Each done key
        # holds its (width, height) as the line said (images), for the manifest.
        self._done = on_disk(output, committed)
        # a tar shard's images, as its line lists them, for the manifest
        self._members = {key: members for key, members in committed.members.items()
                         if key in self._done}
        for key in [k for k in (*segments, *scratches) if k in self._done]:  # killed after the final line
            remove_segments(output, key)
            segments.pop(key, None)
            scratches.pop(key, None)
        self._segments = segments
        self._scratches = scratches  # key -> segment index -> part -> record
        # ``keys`` is read once, here: a 1M-output job passes a generator, not a list
        sweep_partials(output, chain(keys, segments), also=committed, restart=restart)
        if header is None:
            self.path.unlink(missing_ok=True)
            self._append({"ledger": VERSION, "fingerprint": fingerprint, "created": time.time()})
        elif amends:  # a variant or generator added or removed: the others' outputs stand;
            # the last header rules
            self._append({"ledger": VERSION, "fingerprint": fingerprint, "created": time.time(),
                          "amends": amends})

    # -- what to resume from ------------------------------------------------------
    def is_done(self, key: str) -> bool:
        with self._lock:
            return key in self._done

    def size_of(self, key: str) -> tuple[int, int] | None:
        """(width, height) of a done output as its line recorded it (None: not recorded)."""
        with self._lock:
            return unpack_size(self._done.get(key))

    def members_of(self, key: str) -> list[tuple[str, str, int, int]]:
        """A done tar shard's images: (source member, output member, width, height) each."""
        with self._lock:
            return list(self._members.get(key, ()))

    def segments(self, key: str) -> list[Segment]:
        """The committed segments of ``key`` to resume from, in order.

        Only an unbroken run of segments from the first, with their files on
        disk and the last one's state, counts; anything else starts the
        video over (returns [])."""
        return self._unbroken(self._segments.get(key, {}), lambda index, path, state, record: Segment(
            index, path, record["frames"], record["last_pts"], state,
            bool(record.get("pts_adjusted", False)), record.get("sha256"), record.get("state_sha256")))

    def scratches(self, key: str, segment: int) -> list[Scratch]:
        """The saved parts of open segment ``segment``, in order: an unbroken run from part 0
        with its files on disk and the last one's state (if it has one); else []."""
        records = self._scratches.get(key, {}).get(segment, {})
        return self._unbroken(records, lambda part, path, state, record: Scratch(
            segment, part, path, record["frames"], record["last_pts"], state,
            bool(record.get("pts_adjusted", False)), record.get("sha256"), record.get("state_sha256")))

    def _unbroken(self, records: dict[int, dict], make: Callable) -> list:
        """``make(n, file, state file, record)`` for records 0, 1, ... while each one's file is
        on disk, and only if the last one's state file is too (if it has one); else []."""
        out = []
        for n in range(len(records)):
            record = records.get(n)
            if record is None or not (self.output / record["path"]).is_file():
                return []
            state = self.output / record["state"] if record.get("state") else None
            out.append(make(n, self.output / record["path"], state, record))
        if out and out[-1].state is not None and not out[-1].state.is_file():
            return []
        return out

    # -- the one writer -------------------------------------------------------------
    def apply(self, record) -> None:
        """Turn a record into its ledger line (files are already in place), then delete what
        the line supersedes.  Thread-safe; the only place lines are written after the header."""
        line = record.line()
        stale: list[str] = []
        with self._lock:
            if line is not None:
                self._append(line)
            if isinstance(record, Done):
                self._done.add(record.key, pack_size(record.size))
                if record.members is not None:
                    self._members[record.key] = record.members
                else:
                    self._members.pop(record.key, None)
            elif isinstance(record, SegmentSaved):
                earlier = self._segments.setdefault(record.key, {})
                previous = earlier.get(record.index - 1)
                earlier[record.index] = line
                stale += [previous["state"]] if previous and previous.get("state") else []
                for part in self._scratches.get(record.key, {}).pop(record.index, {}).values():
                    stale += [part[name] for name in ("path", "state") if part.get(name)]
            elif isinstance(record, ScratchSaved):
                parts = self._scratches.setdefault(record.key, {}).setdefault(record.segment, {})
                previous = parts.get(record.part - 1)
                parts[record.part] = line
                stale += [previous["state"]] if previous and previous.get("state") else []
            if isinstance(record, SegmentsDropped) or (isinstance(record, Done) and record.video):
                self._segments.pop(record.key, None)
                self._scratches.pop(record.key, None)
        for rel in stale:
            if is_safe_key(rel):
                (self.output / rel).unlink(missing_ok=True)
        if (isinstance(record, SegmentsDropped) and record.remove) or (
                isinstance(record, Done) and record.video):
            remove_segments(self.output, record.key)

    def close(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()  # releases the flock
            self._lock_file = None

    def _append(self, record: dict[str, Any]) -> None:
        """One whole line or nothing: a failed write (a full disk) is cut back off, so the
        ledger never holds a torn line that the next record would be glued onto."""
        line = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise LedgerWriteError(self.path, exc) from exc
        try:
            size = os.fstat(fd).st_size
            try:
                written = os.write(fd, line)
                if written != len(line):
                    raise OSError(errno.ENOSPC, "short write")
                os.fsync(fd)
            except OSError as exc:
                try:
                    os.ftruncate(fd, size)
                except OSError:
                    pass  # _repair_tail cuts it on the next start
                raise LedgerWriteError(self.path, exc) from exc
        finally:
            os.close(fd)


class LedgerWriteError(PipelineError, OSError):
    """The ledger could not be appended to (a full disk, a read-only folder): progress can
    no longer be recorded, so the run must stop; nothing recorded so far is lost."""

    def __init__(self, path: Path, cause: OSError) -> None:
        super().__init__(cause.errno, f"cannot write the progress ledger {path}: "
                                      f"{cause.strerror or cause}")
        self.path = path

    def __str__(self) -> str:
        return self.strerror


def _records(path: Path) -> Iterator[dict[str, Any]]:
    """The ledger's whole lines, parsed, one at a time (a torn or foreign line is skipped)."""
    if not path.is_file():
        return
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a kill mid-write
            if isinstance(record, dict):
                yield record


def _done_records(path: Path) -> Iterator[dict[str, Any]]:
    return (r for r in _records(path) if "done" in r and is_safe_key(r["done"]))


def _read(path: Path) -> tuple[dict[str, Any] | None, Committed, dict[str, dict[int, dict]],
                               dict[str, dict[int, dict[int, dict]]]]:
    """(header, the committed outputs, segments by key and index, scratches by key, segment and
    part).  Read line by line: a 1M-line ledger never sits in memory as records."""
    header, segments, scratches = None, {}, {}

    def done_lines() -> Iterator[dict[str, Any]]:  # the rest is sorted out on the way
        nonlocal header
        for record in _records(path):
            if "ledger" in record:  # the last one: a later one amends the variants
                header = record
            elif "done" in record and is_safe_key(record["done"]):
                yield record
            elif "segment" in record and is_safe_key(record["segment"]):
                segments.setdefault(record["segment"], {})[record["index"]] = record
            elif "scratch" in record and is_safe_key(record["scratch"]):
                scratches.setdefault(record["scratch"], {}).setdefault(
                    record["in_segment"], {})[record["part"]] = record

    committed = Committed.of(done_lines())
    return header, committed, segments, scratches


def committed_keys(path: Path) -> KeySet:
    """The outputs a ledger file records as done (for another job's checks)."""
    try:
        return _read(path)[1].keys
    except OSError:
        return KeySet()


def _repair_tail(path: Path) -> None:
    """Cut a torn last line (a kill or a full disk mid-write) so the next line starts clean."""
    try:
        with open(path, "rb+") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return
            f.seek(max(0, size - 1))
            if f.read(1) == b"\n":
                return
            f.seek(0)
            data = f.read()
            f.truncate(data.rfind(b"\n") + 1)
            f.flush()
            os.fsync(f.fileno())
    except FileNotFoundError:
        return


def _take_lock(path: Path):
    f = open(path, "a+")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise JobError(f"another run is already writing to {path.parent}",
                       hint="wait for it to finish, or stop it first") from None
    return f
