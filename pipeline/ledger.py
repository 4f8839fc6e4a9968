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
folder is removed.

A lock file keeps two runs from writing the same output folder at once.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .atomic import PARTIAL_TAG, atomic_write
from .errors import JobError

LEDGER_NAME = ".ledger.jsonl"
LOCK_NAME = ".ledger.lock"
SEGMENTS_DIR = ".segments"
VERSION = 1


@dataclass(frozen=True)
class Segment:
    """A committed segment of a video output."""

    index: int
    path: Path
    frames: int  # frames of the video done through the end of this segment
    last_pts: int  # timestamp of its last frame, in the source's time base
    state: Path | None  # the state file for the next segment (None if there is no state)


class Ledger:
    def __init__(self, output: Path, fingerprint: dict[str, Any], *, restart: bool = False) -> None:
        self.output = output
        self.path = output / LEDGER_NAME
        self._lock = threading.Lock()
        output.mkdir(parents=True, exist_ok=True)
        self._lock_file = _take_lock(output / LOCK_NAME)
        header, committed, segments = _read(self.path)
        if restart and header is not None:
            _remove_outputs(output, committed)
            shutil.rmtree(output / SEGMENTS_DIR, ignore_errors=True)
            header, committed, segments = None, {}, {}
        if header is not None and header.get("fingerprint") != fingerprint:
            self.close()
            raise JobError(
                f"the job changed since the outputs in {output} were made: "
                + describe_changes(header.get("fingerprint", {}), fingerprint),
                hint="run again with --restart to start over (its outputs are replaced), "
                     "or point 'output' at a new folder")
        # Outputs deleted by hand are redone: only files still on disk count.
        self._done = {key for key in committed if (output / key).is_file()}
        self._segments = segments
        _sweep_partials(output)
        if header is None:
            self.path.unlink(missing_ok=True)
            self._append({"ledger": VERSION, "fingerprint": fingerprint, "created": time.time()})

    def is_done(self, key: str) -> bool:
        return key in self._done

    @property
    def done_count(self) -> int:
        return len(self._done)

    def commit(self, key: str, write: Callable[[Path], None]) -> None:
        """``write(tmp_path)`` writes the output; it is then moved into place and recorded."""
        final = self.output / key
        atomic_write(final, write)
        with self._lock:
            self._append({"done": key, "bytes": final.stat().st_size})
            self._done.add(key)

    # -- video segments -----------------------------------------------------
    def segment_path(self, key: str, index: int) -> Path:
        suffix = Path(key).suffix
        return self.output / SEGMENTS_DIR / key / f"{index:05d}{suffix}"

    def segments(self, key: str) -> list[Segment]:
        """The committed segments of ``key`` to resume from, in order.

        Only an unbroken run of segments from the first, with their files on
        disk and the last one's state, counts; anything else starts the
        video over (returns [])."""
        records = self._segments.get(key, {})
        out = []
        for index in range(len(records)):
            record = records.get(index)
            if record is None or not (self.output / record["path"]).is_file():
                return []
            out.append(Segment(index, self.output / record["path"], record["frames"],
                               record["last_pts"],
                               self.output / record["state"] if record.get("state") else None))
        if out and out[-1].state is not None and not out[-1].state.is_file():
            return []
        return out

    def commit_segment(self, key: str, index: int, written: Path, *, frames: int, last_pts: int,
                       state: dict[str, np.ndarray] | None) -> Segment:
        """Move the closed segment file ``written`` into place, save ``state`` beside it, record both.

        The previous segment's state file is removed once this line is
        written: resuming only ever needs the latest."""
        final = self.segment_path(key, index)
        with open(written, "rb") as f:
            os.fsync(f.fileno())
        os.replace(written, final)
        state_path = None
        if state is not None:
            state_path = final.with_name(f"{index:05d}.state.npz")
            atomic_write(state_path, lambda tmp: _save_npz(tmp, state))
        segment = Segment(index, final, frames, last_pts, state_path)
        record = {"segment": key, "index": index, "path": _rel(final, self.output),
                  "frames": frames, "last_pts": last_pts,
                  "state": _rel(state_path, self.output) if state_path else None}
        with self._lock:
            self._append(record)
            earlier = self._segments.setdefault(key, {})
            previous = earlier.get(index - 1)
            earlier[index] = record
        if previous and previous.get("state"):
            (self.output / previous["state"]).unlink(missing_ok=True)
        return segment

    def drop_segments(self, key: str) -> None:
        """Forget a video's segments (it is done, or must start over)."""
        with self._lock:
            self._segments.pop(key, None)
        shutil.rmtree(self.output / SEGMENTS_DIR / key, ignore_errors=True)

    def record_failure(self, source: str, stage: str, reason: str) -> None:
        """For the record only: failed sources are tried again on the next run."""
        with self._lock:
            self._append({"failed": source, "stage": stage, "reason": reason, "at": time.time()})

    def close(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()  # releases the flock
            self._lock_file = None

    def _append(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())


def _read(path: Path) -> tuple[dict[str, Any] | None, dict[str, int], dict[str, dict[int, dict]]]:
    if not path.is_file():
        return None, {}, {}
    header, committed, segments = None, {}, {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a kill mid-write
            if "ledger" in record and header is None:
                header = record
            elif "done" in record:
                committed[record["done"]] = record.get("bytes", 0)
            elif "segment" in record:
                segments.setdefault(record["segment"], {})[record["index"]] = record
    return header, committed, segments


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()  # the output folder may be moved between runs


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as f:  # an open file, so numpy does not append '.npz' to the name
        np.savez(f, **arrays)


def load_state(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _take_lock(path: Path):
    f = open(path, "a+")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise JobError(f"another run is already writing to {path.parent}",
                       hint="wait for it to finish, or stop it first") from None
    return f


def _remove_outputs(output: Path, committed: dict[str, int]) -> None:
    for key in committed:
        (output / key).unlink(missing_ok=True)


def _sweep_partials(output: Path) -> None:
    """Temporary files left by a killed run are never outputs: remove them."""
    for folder, _dirs, files in os.walk(output):
        for name in files:
            if name.startswith(".") and name.endswith(PARTIAL_TAG):
                Path(folder, name).unlink(missing_ok=True)


def describe_changes(old: dict[str, Any], new: dict[str, Any]) -> str:
    """'stages[2].weights.sha256: 1a2b3c4d... -> 9f8e7d6c...; precision: fp32 -> bf16'."""
    a, b = _flatten(old), _flatten(new)
    changes = []
    for key in sorted(set(a) | set(b), key=lambda k: (k.split(".")[0], k)):
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            changes.append(f"{key}: {_short(a.get(key, '<absent>'))} -> {_short(b.get(key, '<absent>'))}")
    return "; ".join(changes[:8]) + (f"; and {len(changes) - 8} more" if len(changes) > 8 else "")


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list):
        out = {f"{prefix}.length": len(value)}
        for i, v in enumerate(value):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def _short(value: Any) -> str:
    text = str(value)
    return text[:12] + "..." if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else text
