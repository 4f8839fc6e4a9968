"""The image executor: threads, queues, batching, device transfer and commits.

    decode threads --(bounded queue)--> device loop --(bounded queue)--> encode threads
                                        (this thread)                      commit to ledger

A blocking put on a full queue is the back-pressure.  The device loop groups
decoded images by shape and sends each group to the device as one uint8 batch,
converted to the working dtype there.  A batch that fails is retried one image
at a time, so one bad image fails alone; an out-of-memory error halves the
batch size for that shape instead of killing the run.  The executor names no
concrete stage: it sees one decode stage, transform stages and one encode stage.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..batching import is_out_of_memory
from ..plan import Unit
from ..stages.base import Stage
from .common import (POLL_S, ExecutorBase, StageFailed, Summary, download, put, put_end,
                     run_stages, to_uint8_nhwc, upload)

_DONE = object()  # end-of-stream marker on the queues
_MAX_WAITING = 64  # decoded images held back waiting for same-size company, at most
_POLL_S = POLL_S  # how long the device loop waits for more images before running a partial batch


@dataclass
class _Decoded:
    unit: Unit
    image: np.ndarray


class ImageExecutor(ExecutorBase):
    """Images: independent units, batched by size; a temporal stage passes them through."""

    @property
    def transforms(self) -> list[Stage]:
        return self.middle

    # -- public -------------------------------------------------------------
    def run(self, units: Sequence[Unit]) -> Summary:
        start = time.perf_counter()
        todo: queue.Queue = queue.Queue()
        for unit in units:
            todo.put(unit)
        decoded: queue.Queue = queue.Queue(maxsize=4 * self.workers + 16)
        encoded: queue.Queue = queue.Queue(maxsize=2 * self.workers + 8)
        decoders = [threading.Thread(target=self._guarded(self._decode_loop), args=(todo, decoded),
                                     name=f"decode-{i}", daemon=True) for i in range(self.workers)]
        encoders = [threading.Thread(target=self._guarded(self._encode_loop), args=(encoded,),
                                     name=f"encode-{i}", daemon=True) for i in range(self.workers)]
        def wind_down() -> None:
            for _ in encoders:  # encoders drain until they see it (or died, and stopped the run)
                put_end(encoded, _DONE, encoders)

        return self._drive(start, decoders + encoders,
                           lambda: self._device_loop(decoded, encoded, len(decoders)), wind_down)

    # -- threads ------------------------------------------------------------
    def _decode_loop(self, todo: queue.Queue, decoded: queue.Queue) -> None:
        try:
            while not self._stop.is_set():
                try:
                    unit = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    with self._summary.times.timing("decode", 1):
                        # From the header: an image too big for this machine fails alone, here,
                        # instead of the process being killed for memory mid-run, every run.
                        self.memory_gate.check_image(unit.source)
                        image = unit.open().read(unit.source)
                except Exception as exc:  # one bad file must not end the run
                    self._fail(unit, self.decode.name, exc, frames=1)
                    continue
                self._put(decoded, _Decoded(unit, image))
        finally:
            self._put(decoded, _DONE)

    def _encode_loop(self, encoded: queue.Queue) -> None:
        while True:
            item = encoded.get()
            if item is _DONE:
                return
            if self._stop.is_set():
                continue  # interrupted: drain without writing; the rerun redoes these
            unit, image = item
            try:
                with self._summary.times.timing("encode", 1):
                    self.ledger.commit(unit.key,
                                       lambda tmp: self.encode.write(image, tmp, unit.source.suffix))
            except Exception as exc:
                self._fail(unit, self.encode.name, exc, frames=1)
                continue
            with self._lock:
                self._summary.done += 1
                self._summary.frames += 1
            self.progress.frames_done(1)
            self.progress.unit_finished(True)

    def _device_loop(self, decoded: queue.Queue, encoded: queue.Queue, producers: int) -> None:
        groups: dict[tuple[int, ...], list[_Decoded]] = {}
        running = producers
        self._follow_load(start=True)
        while (running or groups) and not self._stop.is_set():
            self._follow_load()
            item = None
            if running:
                try:  # wait briefly when a partial batch is waiting, else until something comes
                    item = decoded.get(timeout=_POLL_S if groups else 1.0)
                except queue.Empty:
                    if not groups:
                        continue
            if item is _DONE:
                running -= 1
            elif item is None:  # nothing new came in time, or no more will: run the oldest group
                self._run_group(groups.pop(next(iter(groups))), encoded)
            else:
                group = groups.setdefault(item.image.shape, [])
                group.append(item)
                if len(group) >= self.sizer.size_for(item.image.shape):
                    self._run_group(groups.pop(item.image.shape), encoded)
                elif sum(map(len, groups.values())) > _MAX_WAITING:
                    # Many sizes, few of each: memory stays bounded, the oldest goes now.
                    self._run_group(groups.pop(next(iter(groups))), encoded)

    # -- batches ------------------------------------------------------------
    def _run_group(self, items: list[_Decoded], encoded: queue.Queue) -> None:
        while items:
            size = self.sizer.size_for(items[0].image.shape)
            batch, items = items[:size], items[size:]
            try:
                outputs = self._on_device([it.image for it in batch])
            except StageFailed as exc:
                if is_out_of_memory(exc.cause) and self.sizer.shrink(batch[0].image.shape, len(batch)):
                    items = batch + items  # retry with the smaller size
                    continue
                if len(batch) > 1:  # find the image that fails; the others go on
                    for single in batch:
                        self._run_group([single], encoded)
                    continue
                self._fail(batch[0].unit, exc.stage, exc.cause, frames=1)
                continue
            for it, out in zip(batch, outputs):
                self._put(encoded, (it.unit, out))

    def _on_device(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """uint8 HxWxC images of one shape -> stages -> rounded uint8 images."""
        ctx = self.ctx
        with torch.inference_mode(), self._summary.times.timing("device", len(images)):
            x = upload(images, ctx.device).permute(0, 3, 1, 2).to(ctx.dtype)
            out = download(to_uint8_nhwc(run_stages(self.transforms, x)))
        return list(out)

    # -- helpers ------------------------------------------------------------
    def _put(self, q: queue.Queue, item: object) -> None:
        put(q, item, self._stop)  # gives up once the run is stopping
