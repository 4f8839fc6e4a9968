"""The video way: a clip is a unit, its frames are ordered pieces, committed in segments.

    read (a reader thread)         run (the device thread)         write (the clip's lane)
    decode frames, temporal  -->   consecutive frames: stages,  --> encode the segment, commit
    guides (flow on the CPU,       then the smoothing scan in       it with its state; join all
    ahead of the device)           order                            at the end

The engine keeps up to ``workers`` clips in flight, so one clip's decoding or
encoding never leaves the device idle.  Each frame that ends a segment is a
cut, so a batch never crosses a segment boundary and each segment's frames are
computed identically whether the run was interrupted before it or not: a
resumed clip decodes from just after its last committed segment (by seeking
where that is exact, else by counting frames from the start: see
video_read.py), restores the smoothing state saved with it, and the final video
is frame for frame what an uninterrupted run makes.  Memory is bounded by the
engine's queue sizes, whatever a clip's length.
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

import numpy as np

from ..errors import MediaError
from ..job.plan import Unit
from ..machine.start_up import import_torch
from ..machine.memory import host_available_bytes
from ..machine.threads import current as thread_budget
from ..media.video import PASS_THROUGH_FORMATS, Planes, VideoInfo
from ..media.video_write import check_frame_size
from ..ops.colour_host import yuv420_to_rgb_small
from ..stages.chain import StageFailed, run_stages
from .batcher import Batch, Piece
from .clips import (Clip, Computed, Frame, device_colour, load_scratch, resume_problem,
                    scratch_frames)
from .segments import SegmentJob, clip_segment
from .way import Way

if TYPE_CHECKING:
    from .run_state import RunState

_log = logging.getLogger("stylize.video")


class VideoWay(Way):
    kind = "video"
    ordered = True
    device_colour: bool | None = None  # convert 4:2:0 on the device; None: on CUDA only
    smooth_planes: bool = True  # False: temporal_smooth always on RGB (to compare the two)
    host_smoothing: bool = True  # False: on a CPU too, the planes go through torch (to compare)

    def __init__(self, engine: RunState, variant: str | None = None) -> None:
        super().__init__(engine, variant)
        middle = self.middle  # this variant's flat chain: a clip is decoded once per variant
        temporal = [i for i, s in enumerate(middle) if s.kind == "temporal"]
        split = temporal[0] if temporal else len(middle)
        self.before = middle[:split]  # batched model stages, before smoothing
        self.temporal = middle[split] if temporal else None
        self.after = middle[split + 1:]
        self._infos: dict[str, VideoInfo] = {}
        self._clips: dict[str, Clip] = {}
        self._announced: dict[str, int] = {}  # frames each clip added to the job's total
        self._output_hw: dict[str, tuple[int, int]] = {}  # each clip's frames as encoded
        # No stage touches the pixels: frames go from the decoder to the encoder as they are
        # (4:2:0 planes where both sides are yuv420p: no colour conversion, no float round trip)
        self._pass_through = not self.before and self.temporal is None and not self.after
        # Otherwise, on a GPU, the device converts 4:2:0 planes to RGB where nothing on the CPU
        # needs RGB (the flow does), and makes the encoder's yuv420p planes: no colour
        # conversion on the CPU either way, and half the bytes on the wire (ops/colour.py).
        # On a CPU "device" that is the same CPU, and libswscale does it cheaper (1080p: 68 ms
        # for RGB->YUV in torch against 39 for the round to uint8 and libswscale).
        self._yuv420 = engine.encode.params.video.pix_fmt == "yuv420p"
        self._device_colour = (self.device_colour if self.device_colour is not None
                               else not self._pass_through and engine.ctx.device_type == "cuda")
        # temporal_smooth last before a yuv420p encoder smooths the encoder's planes, not RGB:
        # the same blend (linear, it commutes with the colour matrix), on half the pixels, and
        # with no stage before it no RGB at all (TemporalSmooth.scan_planes).  Per clip, where
        # the device knows the clip's matrix (``device_colour``).
        self._smooth_planes = (self.smooth_planes and self.temporal is not None and not self.after
                               and self._yuv420)
        # ... and with nothing before it on a CPU, in numpy and OpenCV: no torch at all
        self._host_planes = (self._smooth_planes and not self.before and self.host_smoothing
                             and engine.ctx.device_type == "cpu")

    def queue_size(self, workers: int) -> int:
        """Frames (of any clip) read ahead of the device: a few per clip in flight, so that the
        clips advance together (a long queue lets one clip's reader fill it and finish first)
        and memory stays small at 4K."""
        return 2 * workers + 2

    # -- admit: headers only ------------------------------------------------
    def admit(self, units: Sequence[Unit]) -> list[Unit]:
        """Headers only, so the job's progress bar knows its total before the first frame."""
        engine, decode, encode = self.engine, self.engine.decode.name, self.engine.encode
        ok = []
        for unit in units:
            try:
                with engine.times.timing("probe", 0):
                    info = unit.open().probe(unit.source)
            except Exception as exc:  # one bad file must not end the run
                engine.fail(self, unit, decode, exc, opened=False)
                continue
            try:  # frames too big for this machine's memory: refused before decoding
                engine.memory_gate.check_size(unit.source, info.width, info.height)
            except MediaError as exc:
                engine.fail(self, unit, decode, exc, opened=False)
                continue
            try:  # a size the encoder cannot take fails now, before any frame is decoded
                hw = (info.height, info.width)
                for stage in self.middle:
                    hw = stage.output_size(*hw)
                check_frame_size(hw[1], hw[0], encode.params.video, unit.source,
                                 source=(info.width, info.height))
            except Exception as exc:
                engine.fail(self, unit, encode.name, exc, opened=False)
                continue
            ok.append(unit)
            self._infos[unit.key] = info
            self._output_hw[unit.key] = hw
            done = self._resume_point(unit)[0]
            self._announced[unit.key] = max(0, (info.frames or 0) - done)
            engine.progress.add_total(self._announced[unit.key])
        return ok

    def _resume_point(self, unit: Unit) -> tuple[int, list, list]:
        """(frames done, committed segments, saved parts of the open segment)."""
        commits = self.engine.commits
        segments = commits.segments(unit.key)
        scratch = commits.scratches(unit.key, len(segments))
        done = scratch[-1].frames if scratch else segments[-1].frames if segments else 0
        return done, segments, scratch

    # -- read: a reader thread ----------------------------------------------
    def open(self, unit: Unit) -> Clip:
        engine, info = self.engine, self._infos[unit.key]
        frames_before, segments, scratch = self._resume_point(unit)
        last = scratch[-1] if scratch else segments[-1] if segments else None  # where to resume
        smoothing, colour = None, device_colour(info)
        if self.temporal is not None:
            hw = (info.height, info.width)
            for stage in self.before:
                hw = stage.output_size(*hw)
            host = (self._host_planes and colour is not None and not info.rotation  # planes
                    and info.pix_fmt in PASS_THROUGH_FORMATS)  # come as decoded (video_read)
            smoothing = self.temporal.clip_state(hw, None if host else engine.ctx.device)
        problem = resume_problem(last, scratch, smoothing, segments)
        if problem:  # a resume file that does not load: the clip starts over, said
            _log.warning("%s: %s; the clip starts over", unit.source, problem)
            engine.commits.drop_segments(unit.key)
            frames_before, segments, scratch, last = 0, [], [], None
            if smoothing is not None:
                smoothing.load_state_dict(None)
        seconds = engine.encode.params.video.segment_seconds
        segment_frames = max(1, round(seconds * float(info.rate or 25)))
        clip = Clip(unit=unit, info=info, first_segment=len(segments), frames_before=frames_before,
                     segment_frames=segment_frames, smoothing=smoothing, scratch=scratch,
                     resume_from=last, encoders=self._encoders_for(unit, segment_frames),
                     colour=colour, smooth_planes=self._smooth_planes and colour is not None)
        self._clips[unit.key] = clip
        engine.progress.clip_started(clip.name, info.frames, frames_before)
        if frames_before:
            saved = f", {frames_before - segments[-1].frames if segments else frames_before} more " \
                    "frames saved in the open one" if scratch else ""
            engine.progress.note(f"{clip.name}: resuming at frame {frames_before:,} of "
                                 f"{info.frames or 0:,} ({len(segments)} segment"
                                 f"{'s' if len(segments) != 1 else ''} committed{saved})")
        return clip

    def _encoders_for(self, unit: Unit, segment_frames: int) -> int:
        """This clip's share of the run's segment encoders (``engine.encoders``, shared by the
        clips in flight), so that all of them hold at most a quarter of the free memory: a
        segment waiting for its encoder holds its frames."""
        engine = self.engine
        share = max(1, engine.encoders // max(1, min(engine.workers, len(self._infos))))
        h, w = self._output_hw[unit.key]
        room = host_available_bytes() // 4 // max(1, engine.workers)
        return max(1, min(share, room // max(1, segment_frames * h * w * 3)))

    def pieces(self, clip: Clip) -> Iterator[Piece]:
        engine, unit, last = self.engine, clip.unit, clip.resume_from
        # Resume after the committed frames: counted from the start, or found by seeking just past
        # the last committed pts where the reader says that is exact; never by seeking once a pts
        # up to there was bumped (see pipeline.media.video_read: a seek cannot redo the cascade).
        adjusted = last is not None and last.pts_adjusted
        after_pts = last.last_pts if last is not None and not adjusted else None
        guider = clip.smoothing.guider if clip.smoothing is not None else None
        index = clip.frames_before
        # The decoder's threads are the worker's share of the budget; the flow runs in the pool.
        # Planes (unconverted 4:2:0) where the device converts them, or nothing needs RGB (the
        # flow takes its small frames from the planes: ``_flow_input``).
        if self._pass_through:
            planes = self._yuv420
        else:
            planes = clip.colour is not None and (
                self._device_colour or (clip.smooth_planes and not self.before))
        frames = unit.open().frames(clip.info, after_pts=after_pts, skip=clip.frames_before,
                                    threads=thread_budget().opencv, planes=planes)
        try:
            while True:
                with engine.times.timing("decode", 1):
                    frame = next(frames, None)
                if frame is None:
                    break
                guide = None
                if guider is not None:  # the pair's flow in the pool, ahead of the device
                    guide = engine.flow_pool().submit(
                        self._flow, guider, *guider.advance(self._flow_input(frame, clip, guider)))
                index += 1
                adjusted = frame.pts_adjusted
                ends_segment = index % clip.segment_frames == 0
                taken = guider is not None and (ends_segment or clip.want_state.is_set())
                image = frame.planes if frame.planes is not None else frame.rgb
                yield Piece(unit, image, ordered=True, cut=ends_segment,
                            data=Frame(frame.pts, frame.duration, guide, adjusted,
                                        guider.state if taken else None))
        finally:
            getattr(frames, "close", lambda: None)()  # closes the container now, not at GC
        if index == 0:
            raise MediaError(unit.source, "no video frames could be decoded", stage="decode")
        clip.end_input_state = guider.state if guider is not None else None
        clip.end_pts_adjusted = adjusted

    @staticmethod
    def _flow_input(frame, clip: Clip, guider) -> np.ndarray:
        """The RGB frame the guider takes: decoded planes converted at the flow's size."""
        if frame.planes is None:
            return frame.rgb
        p = frame.planes
        return yuv420_to_rgb_small(p.y, p.u, p.v, guider.size, *clip.colour)

    def _flow(self, guider, prev: np.ndarray | None, cur: np.ndarray):
        with self.engine.times.timing("flow", 1):
            return guider.pair(prev, cur)

    # -- run: the device thread ---------------------------------------------
    def run(self, batch: Batch) -> list[Computed]:
        """Stages, then the smoothing scan, on consecutive frames of one clip."""
        clip, pieces = self._clips.get(batch.unit.key), batch.pieces
        if clip is None:  # its lane is over (it failed or the run stopped): nothing to write
            return []
        frames: np.ndarray = np.empty((0,), np.uint8)
        if pieces:
            prev_out = clip.smoothing.prev_out if clip.smoothing is not None else None
            frames, prev_out = self._stages(clip, [p.image for p in pieces],
                                            [self._guide(p.data.guide) for p in pieces], prev_out)
            if clip.smoothing is not None:
                clip.smoothing.prev_out = prev_out  # only after the whole batch succeeded
        tail: Frame | None = pieces[-1].data if pieces else None
        ends_segment = batch.last or (tail is not None and pieces[-1].cut)
        if batch.last:
            input_state, adjusted = clip.end_input_state, clip.end_pts_adjusted
        else:
            input_state, adjusted = tail.input_state, tail.pts_adjusted
        state = None
        if (clip.smoothing is not None and (ends_segment or clip.want_state.is_set())
                and (batch.last or input_state is not None)):
            state = clip.smoothing.state_dict(input_state)
        return [Computed(frames, [p.data.pts for p in pieces], [p.data.duration for p in pieces],
                          ends_segment, batch.last, adjusted, state)]

    def _guide(self, pending):
        """A frame's guide, once the flow pool has it."""
        if pending is None:
            return None
        try:
            return pending.result()
        except Exception as exc:
            raise StageFailed(self.temporal.name, exc) from exc

    def _stages(self, clip: Clip, frames: list, guides: list, prev_out
                ) -> tuple[list, object]:
        ctx, times, n = self.engine.ctx, self.engine.times, len(frames)
        if self._pass_through:
            return list(frames), prev_out  # no stage: what was decoded goes to the encoder
        if clip.smoothing is not None and clip.smoothing.device is None:  # ``_host_planes``
            with times.timing("smoothing", n):
                try:
                    return self.temporal.scan_planes_host(frames, guides, prev_out)
                except Exception as exc:
                    raise StageFailed(self.temporal.name, exc) from exc
        torch = import_torch()  # torch and the device only from here: a transcode never imports them

        from ..machine import device as dev
        from ..ops.colour import rgb_to_yuv420_float

        with torch.inference_mode():
            with times.timing("device", n):
                try:
                    if (clip.smooth_planes and not self.before
                            and all(isinstance(f, Planes) for f in frames)):
                        x = dev.planes_to_device(frames, ctx.device)  # smoothed as decoded
                    else:
                        x = dev.frames_to_device(frames, ctx.device, ctx.dtype, clip.colour)
                except Exception as exc:  # e.g. a clip whose frame size changes mid-stream
                    raise StageFailed("device", exc) from exc
                if isinstance(x, torch.Tensor):
                    x = run_stages(self.before, x, [clip.unit.key] * n)
                    if clip.smooth_planes:
                        x = rgb_to_yuv420_float(x, *clip.colour)
                dev.sync(ctx.device)
            if self.temporal is not None:
                with times.timing("smoothing", n):
                    try:
                        if clip.smooth_planes:
                            *x, prev_out = self.temporal.scan_planes(*x, guides, prev_out)
                        else:
                            x, prev_out = self.temporal.scan(x, guides, prev_out)
                    except Exception as exc:
                        raise StageFailed(self.temporal.name, exc) from exc
                    dev.sync(ctx.device)
            with times.timing("device", 0):
                if clip.smooth_planes:  # nothing after it (``_smooth_planes``)
                    out = dev.planes_to_host(*x)
                else:
                    x = run_stages(self.after, x, [clip.unit.key] * n)
                    if self._device_colour and self._yuv420 and clip.colour is not None:
                        out = dev.planes_from_device(x, clip.colour)  # 4:2:0 here
                    else:
                        out = list(dev.to_host_uint8(x, nhwc=True))
        return out, prev_out

    # -- write: the clip's lane ---------------------------------------------
    def write(self, clip: Clip, items: Iterable[Computed]) -> None:
        """Feed each batch to its segment's encoder (``segments.SegmentJob``: up to
        ``clip.encoders`` segments encode at once, committed in order), and on the wall-clock
        cadence save the open segment's frames so far (``_save_scratch``)."""
        engine = self.engine
        index, frames_total, last_pts = clip.first_segment, clip.frames_before, None
        jobs: list[SegmentJob] = []  # alive, oldest first; the last one is open while ``job``
        job: SegmentJob | None = None
        pending: list[tuple[np.ndarray, int, int | None]] = []  # fed, not yet saved
        part, last_commit = len(clip.scratch), time.monotonic()
        # Keep the open segment's frames for a save only while it looks slow enough to need one:
        # at GPU speed a segment closes in well under commit_every, and holding its frames would
        # cost hundreds of MB a clip for nothing (a kill then costs at most that short segment).
        keep, started, in_segment = True, time.monotonic(), 0

        def cancelled() -> bool:
            return engine.stopping(clip.unit)

        def open_job() -> SegmentJob:
            while len(jobs) >= clip.encoders:  # the oldest must finish first: memory, CPU
                if not jobs[0].wait(cancelled):
                    raise _Cancelled
                jobs.pop(0)
            final = engine.commits.segment_path(clip.unit.key, index)
            final.parent.mkdir(parents=True, exist_ok=True)
            new = clip_segment(self, clip, index, engine.commits.partial(final), cancelled,
                               jobs[-1] if jobs else None)
            jobs.append(new)
            return new

        try:
            for saved in clip.scratch:  # a resumed open segment: the same frames, the same bytes
                job = job or open_job()
                job.feed(load_scratch(saved.path))
            for done in items:
                n = len(done.pts)
                if n:
                    frames = list(zip(done.frames, done.pts, done.durations))
                    job = job or open_job()
                    job.feed(frames)
                    in_segment += n
                    expected = (time.monotonic() - started) / in_segment * clip.segment_frames
                    if keep and expected < engine.commit_every / 2:
                        keep = False  # this segment will close long before a save is due
                    pending = pending + frames if keep else []
                    last_pts = done.pts[-1]
                    frames_total += n
                    engine.count(frames=n)
                    engine.progress.frames_done(n, clip.name)
                if done.ends_segment and job is not None:
                    job.close(frames=frames_total, last_pts=last_pts, state=done.state,
                              pts_adjusted=done.pts_adjusted)
                    job, index = None, index + 1
                    part, pending, last_commit = 0, [], time.monotonic()
                    keep, started, in_segment = True, time.monotonic(), 0
                    clip.want_state.clear()
                elif (keep and pending and time.monotonic() - last_commit >= engine.commit_every
                      and all(j.committed.is_set() for j in jobs[:-1])):  # saves stay in order
                    if self.temporal is not None and done.state is None:
                        clip.want_state.set()  # the device keeps the state of a coming batch
                    else:
                        self._save_scratch(clip, index, part, pending, frames_total, done)
                        part, pending, last_commit = part + 1, [], time.monotonic()
                        clip.want_state.clear()
                if done.last:
                    for j in jobs:
                        if not j.wait(cancelled):
                            return
                    if all(j.committed.is_set() for j in jobs):  # else a job failed the clip
                        self._finish(clip)
                    return
        except _Cancelled:
            return
        except Exception as exc:
            engine.fail(self, clip.unit, engine.encode.name, exc)
        finally:
            for j in jobs:  # stopping or failed: they drop their files; finished: nothing to do
                j.thread.join()
            # The clip is over: its smoothing state (a float frame on the device) goes with it,
            # not at the end of a run of many clips.
            self._clips.pop(clip.unit.key, None)

    def _save_scratch(self, clip: Clip, index: int, part: int, pending: list, frames_total: int,
                      done: Computed) -> None:
        """Segments close on frame counts (so a resumed clip decodes to the same frames), which
        at a slow model can be many minutes apart; between them, the frames encoded so far are
        saved losslessly with the state after them, so a kill costs about ``commit_every``."""
        with self.engine.times.timing("encode", 0):
            self.engine.commits.commit_scratch(
                clip.unit.key, index, part, scratch_frames([image for image, _, _ in pending]),
                [pts for _, pts, _ in pending], [duration for _, _, duration in pending],
                frames_total=frames_total, pts_adjusted=done.pts_adjusted, state=done.state)

    def _finish(self, clip: Clip) -> None:
        """All segments are committed: join them, with the audio, into the output."""
        engine, key = self.engine, clip.unit.key
        segments = [s.path for s in engine.commits.segments(key)]
        with engine.times.timing("join", 0):
            engine.commits.commit(key, lambda tmp: engine.encode.join(segments, clip.info, tmp,
                                                                       clip.unit.output_rel),
                                  video=True)  # its segments go once the line is written
        # ``segments`` counts the saved work of clips still in flight: this one is whole now
        engine.count(done=1, segments=-(len(segments) - clip.first_segment))
        engine.progress.unit_finished(True, clip.name)

    # -- failures -----------------------------------------------------------
    def failed(self, unit: Unit, opened: bool) -> None:
        if opened:
            self.engine.progress.unit_finished(False, unit.key)
        else:  # before its bar started: its frames leave the job's total
            self.engine.progress.unit_finished(False, None)
            if unit.key in self._announced:  # not when its header could not be read
                self.engine.progress.add_total(-self._announced.pop(unit.key))


class _Cancelled(Exception):
    """The run is stopping or the clip failed while its lane waited."""


