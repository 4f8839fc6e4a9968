"""The progress ledger and atomic commits.

``output/.ledger.jsonl``: the first line holds the job's fingerprint (the
normalized stage chain with weights by content hash, and the precision); each
further line records one committed output.  Lines are appended and fsynced
one at a time, so a kill at any moment leaves at worst one torn last line,
which is ignored.  An output is written under a temporary name, fsynced and
renamed into place before its line is written: a listed output is complete,
and a complete output that missed its line is simply redone.

A lock file keeps two runs from writing the same output folder at once.
"""
from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

from .atomic import PARTIAL_TAG, atomic_write
from .errors import JobError

LEDGER_NAME = ".ledger.jsonl"
LOCK_NAME = ".ledger.lock"
VERSION = 1


class Ledger:
    def __init__(self, output: Path, fingerprint: dict[str, Any], *, restart: bool = False) -> None:
        self.output = output
        self.path = output / LEDGER_NAME
        self._lock = threading.Lock()
        output.mkdir(parents=True, exist_ok=True)
        self._lock_file = _take_lock(output / LOCK_NAME)
        header, committed = _read(self.path)
        if restart and header is not None:
            _remove_outputs(output, committed)
            header, committed = None, {}
        if header is not None and header.get("fingerprint") != fingerprint:
            self.close()
            raise JobError(
                f"the job changed since the outputs in {output} were made: "
                + describe_changes(header.get("fingerprint", {}), fingerprint),
                hint="run again with --restart to start over (its outputs are replaced), "
                     "or point 'output' at a new folder")
        # Outputs deleted by hand are redone: only files still on disk count.
        self._done = {key for key in committed if (output / key).is_file()}
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


def _read(path: Path) -> tuple[dict[str, Any] | None, dict[str, int]]:
    if not path.is_file():
        return None, {}
    header, committed = None, {}
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
    return header, committed


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
