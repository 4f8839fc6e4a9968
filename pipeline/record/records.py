"""Records: what processing a unit reports, and what the ledger's one writer turns into lines.

The work (a thread of the local engine, or a Ray actor on another node) writes
its files under temporary names, moves them into place (``pipeline.record.commits``)
and reports a record; only the driver's ``Ledger.apply`` appends the matching
ledger line and deletes what the line supersedes (the previous state file, a
committed segment's scratch parts, a finished clip's segments).  A record is a
plain, picklable dataclass; its ``line`` is the ledger line as it always was, so
ledgers written before records existed still resume.

Events (``Progress``-like: a clip started, frames done, a unit over, step times)
are records too, but write no line: the driver forwards them to its progress
display and summary, so a run on a cluster reports like one on one machine.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Done:
    """An output is in place, complete."""

    key: str
    bytes: int
    video: bool = False  # a joined clip: its segments go once the line is written
    size: tuple[int, int] | None = None  # (width, height) as written, where the writer says
    # a tar shard's images: (source member, output member, width, height) each
    members: list[tuple[str, str, int, int]] | None = None

    def line(self) -> dict[str, Any]:
        line: dict[str, Any] = {"done": self.key, "bytes": self.bytes}
        if self.size is not None:  # for the manifest, without reopening the file
            line["width"], line["height"] = self.size
        if self.members is not None:
            line["members"] = [list(m) for m in self.members]
        return line


@dataclass(frozen=True)
class SegmentSaved:
    """A closed segment of a clip is in place, with the state the next one needs."""

    key: str
    index: int
    path: str  # relative to the output folder
    frames: int  # frames of the clip done through the end of this segment
    last_pts: int
    pts_adjusted: bool
    state: str | None  # relative path of the state file, or None
    # the SHA-256 of the segment file and of the state file: a resume checks them, so a file of
    # the right shape but other content (another run's, zeros) is not taken for this one
    sha256: str | None = None
    state_sha256: str | None = None

    def line(self) -> dict[str, Any]:
        return {"segment": self.key, "index": self.index, "path": self.path, "frames": self.frames,
                "last_pts": self.last_pts, "pts_adjusted": self.pts_adjusted, "state": self.state,
                "sha256": self.sha256, "state_sha256": self.state_sha256}


@dataclass(frozen=True)
class ScratchSaved:
    """Frames of an open segment saved losslessly, with the state after them."""

    key: str
    segment: int
    part: int
    path: str
    frames: int
    last_pts: int
    pts_adjusted: bool
    state: str | None
    sha256: str | None = None  # of the part's file and of its state file (see SegmentSaved)
    state_sha256: str | None = None

    def line(self) -> dict[str, Any]:
        return {"scratch": self.key, "in_segment": self.segment, "part": self.part, "path": self.path,
                "frames": self.frames, "last_pts": self.last_pts, "pts_adjusted": self.pts_adjusted,
                "state": self.state, "sha256": self.sha256, "state_sha256": self.state_sha256}


@dataclass(frozen=True)
class Failed:
    """A unit failed at a stage; for the record only (it is tried again on the next run)."""

    source: str
    stage: str
    reason: str
    key: str = ""  # the unit's key ("" for a source that found nothing)
    at: float = field(default_factory=time.time)

    def line(self) -> dict[str, Any]:
        return {"failed": self.source, "stage": self.stage, "reason": self.reason, "at": self.at}


@dataclass(frozen=True)
class SegmentsDropped:
    """A clip starts over (its saved state could not be read): forget its segments, and delete
    them unless the worker that owns the clip already did (``remove``)."""

    key: str
    remove: bool = True

    def line(self) -> None:
        return None


# -- events: no ledger line ----------------------------------------------------
@dataclass(frozen=True)
class Started:
    """A worker took a call's units in hand: if it dies now, they had their chance on it."""

    def line(self) -> None:
        return None



@dataclass(frozen=True)
class Event:
    """A progress event: ``name`` is a ``Progress`` method, ``args`` its arguments."""

    name: str  # add_total | clip_started | frames_done | unit_finished | note
    args: tuple

    def line(self) -> None:
        return None


@dataclass(frozen=True)
class Tally:
    """What a call added to the run's summary: counts and per-step busy times."""

    done: int = 0
    frames: int = 0
    segments: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    step_frames: dict[str, int] = field(default_factory=dict)
    fatal: str = ""  # the call stopped on a storage error: the driver stops the run

    def line(self) -> None:
        return None
