"""The file side of a commit: outputs, segments, scratch parts and states put in place, then reported.

Whoever does the work (a thread of the local engine, a Ray actor on another
node) holds a ``Commits``: it writes each file under a temporary name (unique
per attempt, see ``atomic.partial_name``), fsyncs it, renames it into place
and hands a record (``pipeline.record.records``) to ``emit``.  It never writes the
ledger: locally ``emit`` is ``Ledger.apply``; on Ray it sends the record to the
driver, whose ledger applies it.  What to resume from (``segments``,
``scratches``) comes from the ledger too: read from it locally, passed down
with the unit on Ray.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..hashing import read_sha256
from ..media.atomic import atomic_write, partial_name
from .records import Done, Failed, ScratchSaved, SegmentSaved, SegmentsDropped

SEGMENTS_DIR = ".segments"


@dataclass(frozen=True)
class Segment:
    """A committed segment of a video output."""

    index: int
    path: Path
    frames: int  # frames of the video done through the end of this segment
    last_pts: int  # timestamp of its last frame, in the source's time base
    state: Path | None  # the state file for the next segment (None if there is no state)
    # the reader bumped some pts up to here: resume by decoding from the start and skipping
    # ``frames`` frames, not by seeking to ``last_pts`` (see pipeline.media.video_read)
    pts_adjusted: bool = False
    sha256: str | None = None  # of ``path`` and of ``state`` as saved (None: a ledger from before)
    state_sha256: str | None = None

    @classmethod
    def of(cls, output: Path, r: SegmentSaved) -> Segment:
        """The resume point a record reports (a worker's own view of its clip)."""
        return cls(r.index, output / r.path, r.frames, r.last_pts,
                   output / r.state if r.state else None, r.pts_adjusted, r.sha256, r.state_sha256)


@dataclass(frozen=True)
class Scratch:
    """Frames of a segment still open, saved losslessly on the wall-clock cadence
    (``commit_every``): a kill costs at most that much work.  A resumed run feeds them to the
    segment's encoder again, so the segment's bytes are those of an uninterrupted run."""

    segment: int  # the open segment's index
    part: int
    path: Path  # npz: frames (uint8 N x H x W x 3), pts, durations (-1: none)
    frames: int  # frames of the video done through the end of this part
    last_pts: int
    state: Path | None  # the state after its last frame (only the latest part keeps one)
    pts_adjusted: bool = False
    sha256: str | None = None  # as for Segment
    state_sha256: str | None = None

    @classmethod
    def of(cls, output: Path, r: ScratchSaved) -> Scratch:
        return cls(r.segment, r.part, output / r.path, r.frames, r.last_pts,
                   output / r.state if r.state else None, r.pts_adjusted, r.sha256, r.state_sha256)


class Commits:
    """Put files in place and report them; subclasses say where records go and what to resume."""

    def __init__(self, output: Path, emit: Callable[[object], None], *, tag: str = "") -> None:
        self.output = output
        self.emit = emit
        self.tag = tag  # part of every temporary name: attempts never share one

    # -- what to resume from (the ledger's view) ------------------------------
    def is_done(self, key: str) -> bool:
        raise NotImplementedError

    def segments(self, key: str) -> list[Segment]:
        raise NotImplementedError

    def scratches(self, key: str, segment: int) -> list[Scratch]:
        raise NotImplementedError

    def check_current(self) -> None:
        """Called before each rename into place: raise to refuse it (a Ray actor whose run is
        gone, see backends/ray_worker.py).  Locally the ledger's lock already says so."""

    # -- files ------------------------------------------------------------------
    def partial(self, final: Path) -> Path:
        return partial_name(final, self.tag)

    def segment_path(self, key: str, index: int) -> Path:
        suffix = Path(key).suffix
        return self.output / SEGMENTS_DIR / key / f"{index:05d}{suffix}"

    def commit(self, key: str, write: Callable[[Path], Any], *, video: bool = False) -> None:
        """``write(tmp_path)`` writes the output (and may return its (width, height), or a tar
        shard's list of images [source member, output member, width, height], recorded for
        the manifest); it is then moved into place and reported."""
        if not is_safe_key(key):  # the plan never makes one; a last guard before writing
            raise ValueError(f"refusing to write outside the output folder: {key!r}")
        final = self.output / key
        written = atomic_write(final, write, self.tag, self.check_current)
        size = tuple(written) if isinstance(written, tuple) and len(written) == 2 else None
        members = [tuple(m) for m in written] if isinstance(written, list) else None
        self.emit(Done(key, final.stat().st_size, video=video, size=size, members=members))

    def commit_segment(self, key: str, index: int, written: Path, *, frames: int, last_pts: int,
                       state: dict[str, np.ndarray] | None, pts_adjusted: bool = False) -> None:
        """Move the closed segment file ``written`` into place, save ``state`` beside it, report both."""
        final = self.segment_path(key, index)
        with open(written, "rb") as f:
            os.fsync(f.fileno())
        self.check_current()
        os.replace(written, final)
        state_path = None
        if state is not None:
            state_path = final.with_name(f"{index:05d}.state.npz")
            atomic_write(state_path, lambda tmp: save_npz(tmp, state), self.tag, self.check_current)
        self.emit(SegmentSaved(key, index, self._rel(final), frames, last_pts, pts_adjusted,
                               self._rel(state_path) if state_path else None, read_sha256(final),
                               read_sha256(state_path) if state_path else None))

    def commit_scratch(self, key: str, segment: int, part: int,
                       frames: np.ndarray | dict[str, np.ndarray], pts: list[int],
                       durations: list[int | None], *, frames_total: int, pts_adjusted: bool,
                       state: dict[str, np.ndarray] | None) -> None:
        """Save the frames encoded into open segment ``segment`` since its last part (RGB, or
        the decoder's planes as arrays ``y``, ``u``, ``v``), and the state after them; report
        both."""
        folder = self.segment_path(key, segment).parent
        path = folder / f"{segment:05d}.scratch.{part:03d}.npz"
        arrays = {**(frames if isinstance(frames, dict) else {"frames": frames}),
                  "pts": np.asarray(pts, np.int64),
                  "durations": np.asarray([-1 if d is None else d for d in durations], np.int64)}
        atomic_write(path, lambda tmp: save_npz(tmp, arrays), self.tag, self.check_current)
        state_path = None
        if state is not None:
            state_path = folder / f"{segment:05d}.scratch.{part:03d}.state.npz"
            atomic_write(state_path, lambda tmp: save_npz(tmp, state), self.tag, self.check_current)
        self.emit(ScratchSaved(key, segment, part, self._rel(path), frames_total, int(pts[-1]),
                               pts_adjusted, self._rel(state_path) if state_path else None,
                               read_sha256(path), read_sha256(state_path) if state_path else None))

    def drop_segments(self, key: str) -> None:
        """The clip must start over: its segments are forgotten and deleted (by the ledger)."""
        self.emit(SegmentsDropped(key))

    def record_failure(self, source: str, stage: str, reason: str, key: str = "") -> None:
        self.emit(Failed(source, stage, reason, key))

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.output).as_posix()  # the output folder may be moved between runs


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as f:  # an open file, so numpy does not append '.npz' to the name
        np.savez(f, **arrays)


def load_state(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def is_safe_key(key: object) -> bool:
    """A key is a plain relative path below the output folder: never absolute, never '..'."""
    if not isinstance(key, str) or not key or "\\" in key or "\0" in key:
        return False
    parts = key.split("/")  # strings, not PurePosixPath: called per key of a 100k-file job
    return not key.startswith("/") and ".." not in parts and "." not in parts


def remove_segments(output: Path, key: str) -> None:
    """Delete a clip's segment folder, and the empty folders above it up to ``.segments``."""
    folder = output / SEGMENTS_DIR / key
    if is_safe_key(key) and folder.is_dir() and not folder.is_symlink():
        shutil.rmtree(folder, ignore_errors=True)
    top = output / SEGMENTS_DIR
    for parent in [folder.parent, *folder.parent.parents]:  # empty folders left above it
        if parent != top and top not in parent.parents:
            break
        try:
            parent.rmdir()
        except OSError:
            break  # not empty (another clip's segments), or gone
