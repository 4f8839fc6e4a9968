"""The video executor: clips streamed through the stages, committed in segments.

    reader thread per clip in flight         device loop (this thread)          writer thread per clip
    decode frames, temporal guides  --(bounded)-->  batches of consecutive  --(bounded)-->  encode the segment,
    (flow on the CPU, ahead)                        frames: stages, then the                commit it with its state;
                                                    smoothing scan in order                 join all at the end

Up to ``workers`` clips are in flight at once, so one clip's decoding or
encoding never leaves the device idle.  A batch never crosses a segment
boundary, so each segment's frames are computed identically whether the run
was interrupted before it or not: a resumed clip decodes from just after its
last committed segment (by seeking where that is exact, else by counting
frames from the start: see video_read.py), restores the smoothing state saved
with it, and the final video is frame for frame what an uninterrupted run
makes.  Memory is bounded by the queue sizes, whatever a clip's length.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from ..batching import is_out_of_memory
from ..context import RunContext
from ..errors import MediaError
from ..commits import Commits, load_state
from ..media.video import VideoInfo
from ..media.video_write import check_frame_size
from ..plan import Unit
from ..stages.base import Stage
from .common import (POLL_S, ExecutorBase, Progress, StageFailed, Summary, download, join, put,
                     run_stages, thread_budget, to_uint8_nhwc, upload)

if TYPE_CHECKING:
    from ..stages.temporal_smooth import ClipState

_DONE = object()


@dataclass
class _Clip:
    """One clip in flight; set up before its frames reach the device (``smoothing.prev_out``
    then belongs to the device loop, ``smoothing.guider`` to the reader)."""

    unit: Unit
    info: VideoInfo
    segment_frames: int
    first_segment: int  # the index of the first segment this run writes
    frames_before: int  # frames already committed by earlier runs
    smoothing: ClipState | None  # the temporal stage's state for this clip (None without one)
    scratch: list = field(default_factory=list)  # saved parts of the open segment, to replay
    sink: queue.Queue = field(default_factory=lambda: queue.Queue(maxsize=4))
    # the writer is due to save the open segment's frames: the device keeps the state it needs
    want_state: threading.Event = field(default_factory=threading.Event)
    dead: threading.Event = field(default_factory=threading.Event)  # failed: drop its work

    @property
    def name(self) -> str:
        return self.unit.key


@dataclass
class _Chunk:
    """Consecutive frames of one clip, never crossing a segment boundary."""

    clip: _Clip
    frames: list[np.ndarray]
    pts: list[int]
    durations: list[int | None]
    guides: list  # one temporal guide per frame (empty without a temporal stage)
    ends_segment: bool = False
    last: bool = False  # the clip's end
    pts_adjusted: bool = False  # the reader bumped some pts of the clip up to this chunk's end
    input_state: np.ndarray | None = None  # the guider's state after the last frame
    state: dict[str, np.ndarray] | None = None  # filled on the device at a commit point
    outputs: np.ndarray | None = None


class VideoExecutor(ExecutorBase):
    def __init__(self, stages: Sequence[Stage], ctx: RunContext, ledger: Commits, *,
                 workers: int | None = None, progress: Progress | None = None,
                 commit_every: float = 60.0) -> None:
        super().__init__(stages, ctx, ledger, workers=workers, progress=progress,
                         commit_every=commit_every)
        middle = self.middle
        temporal = [i for i, s in enumerate(middle) if s.kind == "temporal"]
        split = temporal[0] if temporal else len(middle)
        self.before = middle[:split]  # batched model stages, before smoothing
        self.temporal = middle[split] if temporal else None
        self.after = middle[split + 1:]
        self._writers: list[threading.Thread] = []
        self._announced: dict[str, int] = {}  # frames each clip added to the job's total

    # -- public -------------------------------------------------------------
    def run(self, units: Sequence[Unit]) -> Summary:
        start = time.perf_counter()
        todo: queue.Queue = queue.Queue()
        for unit, info in self._probe_all(units):
            todo.put((unit, info))
        chunks: queue.Queue = queue.Queue(maxsize=2 * self.workers + 2)
        readers = [threading.Thread(target=self._guarded(self._reader_loop), args=(todo, chunks),
                                    name=f"video-read-{i}", daemon=True) for i in range(self.workers)]
        def wind_down() -> None:  # writers finish (or drop, when stopped) their clip's last chunks
            for t in readers:
                join(t)
            for t in list(self._writers):
                join(t)

        return self._drive(start, readers, lambda: self._device_loop(chunks, len(readers)),
                           wind_down)

    # -- probing ------------------------------------------------------------
    def _probe_all(self, units: Sequence[Unit]) -> list[tuple[Unit, VideoInfo]]:
        """Headers only, so the job's progress bar knows its total before the first frame."""
        ok = []
        for unit in units:
            try:
                with self._summary.times.timing("probe", 0):
                    info = unit.open().probe(unit.source)
            except Exception as exc:  # one bad file must not end the run
                self._fail(unit, self.decode.name, exc)
                continue
            try:  # frames too big for this machine's memory: refused before decoding
                self.memory_gate.check_size(unit.source, info.width, info.height)
            except MediaError as exc:
                self._fail(unit, self.decode.name, exc)
                continue
            try:  # a size the encoder cannot take fails now, before any frame is decoded
                hw = (info.height, info.width)
                for stage in self.middle:
                    hw = stage.output_size(*hw)
                check_frame_size(hw[1], hw[0], self.encode.params.video, unit.source,
                                 source=(info.width, info.height))
            except Exception as exc:
                self._fail(unit, self.encode.name, exc)
                continue
            ok.append((unit, info))
            done = self._resume_point(unit)[0]
            self._announced[unit.key] = max(0, (info.frames or 0) - done)
            self.progress.add_total(self._announced[unit.key])
        return ok

    def _resume_point(self, unit: Unit) -> tuple[int, list, list]:
        """(frames done, committed segments, saved parts of the open segment)."""
        segments = self.ledger.segments(unit.key)
        scratch = self.ledger.scratches(unit.key, len(segments))
        done = scratch[-1].frames if scratch else segments[-1].frames if segments else 0
        return done, segments, scratch

    # -- reader threads -----------------------------------------------------
    def _reader_loop(self, todo: queue.Queue, chunks: queue.Queue) -> None:
        try:
            while not self._stop.is_set():
                try:
                    unit, info = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    self._read_clip(unit, info, chunks)
                except Exception as exc:  # setting up the clip failed, before its bar started
                    self._fail(unit, self.decode.name, exc)
                    self.progress.add_total(-self._announced.get(unit.key, 0))
        finally:
            put(chunks, _DONE, self._stop)  # once stopping, nobody reads the queue any more

    def _read_clip(self, unit: Unit, info: VideoInfo, chunks: queue.Queue) -> None:
        frames_before, segments, scratch = self._resume_point(unit)
        last = scratch[-1] if scratch else segments[-1] if segments else None  # where to resume
        state = None
        if last is not None and last.state is not None:
            try:
                state = load_state(last.state)
            except (OSError, ValueError):  # unreadable state: this clip starts over
                self.ledger.drop_segments(unit.key)
                frames_before, segments, scratch, last = 0, [], [], None
        smoothing = None
        if self.temporal is not None:
            hw = (info.height, info.width)
            for stage in self.before:
                hw = stage.output_size(*hw)
            smoothing = self.temporal.clip_state(hw, self.ctx.device)
            smoothing.load_state_dict(state)
        seconds = self.encode.params.video.segment_seconds
        clip = _Clip(unit=unit, info=info, first_segment=len(segments), frames_before=frames_before,
                     segment_frames=max(1, round(seconds * float(info.rate or 25))),
                     smoothing=smoothing, scratch=scratch)
        guider = smoothing.guider if smoothing is not None else None
        writer = threading.Thread(target=self._guarded(self._writer_loop), args=(clip,), daemon=True,
                                  name=f"video-write-{unit.key}")
        with self._lock:
            self._writers.append(writer)
        writer.start()
        self.progress.clip_started(clip.name, info.frames, frames_before)
        # Resume after the committed frames: counted from the start, or found by seeking just past
        # the last committed pts where the reader says that is exact; never by seeking once a pts
        # up to there was bumped (see pipeline.media.video_read: a seek cannot redo the cascade).
        adjusted = last is not None and last.pts_adjusted
        after_pts = last.last_pts if last is not None and not adjusted else None
        index = frames_before
        chunk = self._new_chunk(clip)
        # The decoder's threads are the worker's share of the budget (flow runs in this thread)
        frames = unit.open().frames(info, after_pts=after_pts, skip=frames_before,
                                    threads=thread_budget().opencv)
        try:
            while not (self._stop.is_set() or clip.dead.is_set()):
                with self._summary.times.timing("decode", 1):
                    frame = next(frames, None)
                if frame is None:
                    break
                chunk.frames.append(frame.rgb)
                chunk.pts.append(frame.pts)
                chunk.durations.append(frame.duration)
                adjusted = frame.pts_adjusted
                if guider is not None:
                    with self._summary.times.timing("flow", 1):
                        chunk.guides.append(guider.next(frame.rgb))
                index += 1
                ends_segment = index % clip.segment_frames == 0
                if ends_segment or len(chunk.frames) >= self.sizer.size_for(frame.rgb.shape):
                    chunk.ends_segment = ends_segment
                    chunk.input_state = guider.state if guider is not None else None
                    chunk.pts_adjusted = adjusted
                    if not self._put_chunk(chunks, chunk):
                        return
                    chunk = self._new_chunk(clip)
        except Exception as exc:  # a corrupt stream mid-way: this clip fails, the run goes on
            self._fail_clip(clip, self.decode.name, exc)
            return
        finally:
            getattr(frames, "close", lambda: None)()  # closes the container now, not at garbage collection
        if self._stop.is_set() or clip.dead.is_set():
            return
        if index == 0:
            self._fail_clip(clip, self.decode.name,
                            MediaError(unit.source, "no video frames could be decoded", stage="decode"))
            return
        chunk.ends_segment = True  # closes the last, shorter segment, if one is open
        chunk.last = True
        chunk.input_state = guider.state if guider is not None else None
        chunk.pts_adjusted = adjusted
        self._put_chunk(chunks, chunk)

    def _new_chunk(self, clip: _Clip) -> _Chunk:
        return _Chunk(clip=clip, frames=[], pts=[], durations=[], guides=[])

    def _put_chunk(self, q: queue.Queue, chunk: _Chunk) -> bool:
        while not (self._stop.is_set() or chunk.clip.dead.is_set()):
            try:
                q.put(chunk, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    # -- device loop --------------------------------------------------------
    def _device_loop(self, chunks: queue.Queue, producers: int) -> None:
        running = producers
        self._follow_load(start=True)
        while running and not self._stop.is_set():  # stopped: a full disk, a thread that died
            self._follow_load()
            try:
                chunk = chunks.get(timeout=1.0)
            except queue.Empty:
                continue
            if chunk is _DONE:
                running -= 1
                continue
            clip = chunk.clip
            if clip.dead.is_set():
                continue
            if chunk.frames:
                try:
                    self._on_device(chunk)
                except StageFailed as exc:
                    self._fail_clip(clip, exc.stage, exc.cause)
                    continue
            wanted = chunk.ends_segment or clip.want_state.is_set()
            if wanted and clip.smoothing is not None:
                chunk.state = clip.smoothing.state_dict(chunk.input_state)
            self._put_chunk(clip.sink, chunk)

    def _on_device(self, chunk: _Chunk) -> None:
        """Stages, then the smoothing scan, on a chunk; halves it on out-of-memory."""
        clip, n = chunk.clip, len(chunk.frames)
        prev_out = clip.smoothing.prev_out if clip.smoothing is not None else None
        try:
            out, prev_out = self._stages(chunk.frames, chunk.guides, prev_out)
        except StageFailed as exc:
            if n > 1 and is_out_of_memory(exc.cause) and self.sizer.shrink(chunk.frames[0].shape, n):
                half = n // 2
                parts = [_Chunk(clip, chunk.frames[a:b], chunk.pts[a:b], chunk.durations[a:b],
                                chunk.guides[a:b]) for a, b in ((0, half), (half, n))]
                for part in parts:
                    self._on_device(part)
                chunk.outputs = np.concatenate([p.outputs for p in parts])
                return
            raise
        if clip.smoothing is not None:
            clip.smoothing.prev_out = prev_out  # only after the whole chunk succeeded
        chunk.outputs = out

    def _stages(self, frames: list[np.ndarray], guides: list, prev_out: torch.Tensor | None
                ) -> tuple[np.ndarray, torch.Tensor | None]:
        ctx, times, n = self.ctx, self._summary.times, len(frames)
        with torch.inference_mode():
            with times.timing("device", n):
                try:
                    x = upload(frames, ctx.device).permute(0, 3, 1, 2).to(ctx.dtype)
                except Exception as exc:  # e.g. a clip whose frame size changes mid-stream
                    raise StageFailed("device", exc) from exc
                x = run_stages(self.before, x)
                _sync(ctx.device)
            if self.temporal is not None:
                with times.timing("smoothing", n):
                    try:
                        x, prev_out = self.temporal.scan(x, guides, prev_out)
                    except Exception as exc:
                        raise StageFailed(self.temporal.name, exc) from exc
                    _sync(ctx.device)
            with times.timing("device", 0):
                out = download(to_uint8_nhwc(run_stages(self.after, x)))
        return out, prev_out

    # -- writer threads -----------------------------------------------------
    def _writer_loop(self, clip: _Clip) -> None:
        """Encode each chunk into its segment; commit the segment at its end, and on the
        wall-clock cadence save the frames encoded since the last commit (``_save_scratch``)."""
        key, times = clip.unit.key, self._summary.times
        index, frames_total = clip.first_segment, clip.frames_before
        writer, partial, last_pts = None, None, None
        pending: list[tuple[np.ndarray, int, int | None]] = []  # encoded, not yet saved
        part, last_commit = len(clip.scratch), time.monotonic()
        # Keep the open segment's frames for a save only while it looks slow enough to need one:
        # at GPU speed a segment closes in well under commit_every, and holding its frames would
        # cost hundreds of MB a clip for nothing (a kill then costs at most that short segment).
        keep, started, in_segment = True, time.monotonic(), 0

        def encode(frames) -> None:
            nonlocal writer, partial
            if writer is None:
                final = self.ledger.segment_path(key, index)
                final.parent.mkdir(parents=True, exist_ok=True)
                partial = self.ledger.partial(final)
                writer = self.encode.open_segment(partial, clip.info, clip.unit.output_rel)
            for rgb, pts, duration in frames:
                writer.write(rgb, pts, duration)

        try:
            for saved in clip.scratch:  # a resumed open segment: the same frames, the same bytes
                with times.timing("encode", 0):
                    encode(_load_scratch(saved.path))
            while True:
                try:
                    chunk = clip.sink.get(timeout=POLL_S)
                except queue.Empty:
                    if self._stop.is_set() or clip.dead.is_set():
                        return
                    continue
                if chunk.frames:
                    frames = list(zip(chunk.outputs, chunk.pts, chunk.durations))
                    with times.timing("encode", len(frames)):
                        encode(frames)
                    in_segment += len(frames)
                    expected = (time.monotonic() - started) / in_segment * clip.segment_frames
                    if keep and expected < self.commit_every / 2:
                        keep = False  # this segment will close long before a save is due
                    pending = pending + frames if keep else []
                    last_pts = chunk.pts[-1]
                    frames_total += len(chunk.frames)
                    with self._lock:
                        self._summary.frames += len(chunk.frames)
                    self.progress.frames_done(len(chunk.frames), clip.name)
                if chunk.ends_segment and writer is not None:
                    with times.timing("encode", 0):
                        writer.close()
                        writer = None
                        self.ledger.commit_segment(key, index, partial, frames=frames_total,
                                                   last_pts=last_pts, state=chunk.state,
                                                   pts_adjusted=chunk.pts_adjusted)
                        with self._lock:
                            self._summary.segments += 1
                    index, part, pending, last_commit = index + 1, 0, [], time.monotonic()
                    keep, started, in_segment = True, time.monotonic(), 0
                    clip.want_state.clear()
                elif keep and pending and time.monotonic() - last_commit >= self.commit_every:
                    if self.temporal is not None and chunk.state is None:
                        clip.want_state.set()  # the device keeps the state of a coming chunk
                    else:
                        self._save_scratch(clip, index, part, pending, frames_total, chunk)
                        part, pending, last_commit = part + 1, [], time.monotonic()
                        clip.want_state.clear()
                if chunk.last:
                    self._finish(clip)
                    return
        except Exception as exc:
            self._fail_clip(clip, self.encode.name, exc)
        finally:
            if writer is not None:
                writer.abort()
                Path(partial).unlink(missing_ok=True)

    def _save_scratch(self, clip: _Clip, index: int, part: int, pending: list, frames_total: int,
                      chunk: _Chunk) -> None:
        """Segments close on frame counts (so a resumed clip decodes to the same frames), which
        at a slow model can be many minutes apart; between them, the frames encoded so far are
        saved losslessly with the state after them, so a kill costs about ``commit_every``."""
        with self._summary.times.timing("encode", 0):
            self.ledger.commit_scratch(
                clip.unit.key, index, part, np.stack([rgb for rgb, _, _ in pending]),
                [pts for _, pts, _ in pending], [duration for _, _, duration in pending],
                frames_total=frames_total, pts_adjusted=chunk.pts_adjusted, state=chunk.state)

    def _finish(self, clip: _Clip) -> None:
        """All segments are committed: join them, with the audio, into the output."""
        key = clip.unit.key
        segments = [s.path for s in self.ledger.segments(key)]
        with self._summary.times.timing("join", 0):
            self.ledger.commit(key, lambda tmp: self.encode.join(segments, clip.info, tmp,
                                                                 clip.unit.output_rel),
                               video=True)  # its segments go once the line is written
        with self._lock:
            self._summary.done += 1
            # ``segments`` counts the saved work of clips still in flight: this one is whole now
            self._summary.segments -= len(segments) - clip.first_segment
        self.progress.unit_finished(True, clip.name)

    # -- failures -----------------------------------------------------------
    def _fail_clip(self, clip: _Clip, stage: str, exc: BaseException) -> None:
        if clip.dead.is_set():
            return
        clip.dead.set()
        self._fail(clip.unit, stage, exc, clip=clip.name)


def _load_scratch(path: Path) -> list[tuple[np.ndarray, int, int | None]]:
    with np.load(path) as data:
        return [(rgb, int(pts), None if duration < 0 else int(duration))
                for rgb, pts, duration in zip(data["frames"], data["pts"], data["durations"])]


def _sync(device: torch.device) -> None:
    """Make the step timings honest on CUDA, where kernels run asynchronously."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
