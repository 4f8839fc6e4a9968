"""The image way: each image is a unit and one piece, batched with others of its shape.

Read: the header is checked against this machine's memory first (an image too
big fails alone, before decoding), then the file is decoded.  Run: one uint8
batch to the device, converted to the working dtype there, through the
transform stages (a temporal stage passes images through), rounded back to
uint8.  Write: at the source's size and orientation where the encoder asks
(``encode.image.size: source``), encoded under a temporary name and committed.

With a ``variants`` stage an image's units (one per variant) are read once, as
one unit whose ``members`` they are: the stages before ``variants`` run once,
then each branch on the images that go through it, and each (image, variant)
is written, or fails, alone.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Iterable, Iterator

import numpy as np

from ..job.plan import Unit
from ..machine.start_up import import_torch
from ..machine import host
from ..media.images import ImageHeader
from ..stages.chain import StageFailed, run_stages
from ..stages.variants import find_variants
from .batcher import Batch, Piece
from .way import Way

if TYPE_CHECKING:
    import torch


class ImageWay(Way):
    kind = "image"
    fans_out = True

    def __init__(self, engine, variant: str | None = None) -> None:
        super().__init__(engine, variant)
        self.fan = find_variants(self.middle)
        if self.fan is not None:
            i = self.middle.index(self.fan)
            self.before, self.after = self.middle[:i], self.middle[i + 1:]
        # every stage takes numpy batches (fast_style in ONNX Runtime): run without torch
        self._host = bool(self.middle) and self.fan is None and all(s.host_arrays for s in self.middle)

    def admit(self, units: Iterable[Unit]) -> Iterator[Unit]:
        """With variants, one unit per image: the first of its variants', with all of them as
        ``members``, so that it is read once.  An image's variants come together (the plan
        makes them so), so units are grouped as they come, never all held."""
        if self.fan is None:
            yield from units
            return
        group: list[Unit] = []
        for unit in units:
            if group and (unit.source, unit.source_index) != (group[0].source, group[0].source_index):
                yield replace(group[0], members=tuple(group))
                group = []
            group.append(unit)
        if group:
            yield replace(group[0], members=tuple(group))

    def pieces(self, unit: Unit) -> Iterator[Piece]:
        engine = self.engine
        with engine.times.timing("decode", 1):
            header = engine.memory_gate.check_image(unit.source)  # the header, read once
            image = unit.open().read(unit.source)
            if header is None:  # no header to judge it by (a generated image): judged now
                engine.memory_gate.check_size(unit.source, image.shape[1], image.shape[0],
                                              image.shape[2])
        if not engine.encode.params.image.needs_source_header:
            header = None  # written as the stages make it
        elif header is None:  # a header only the decoder could read: no orientation known
            header = ImageHeader(image.shape[1], image.shape[0])
        yield Piece(unit, image, data=header)

    def run(self, batch: Batch) -> list[tuple[Unit, np.ndarray, ImageHeader | None]]:
        """uint8 HxWxC images of one shape -> stages -> rounded uint8 images."""
        engine, images = self.engine, [p.image for p in batch.pieces]
        if not self.middle:  # decode, encode: the images as decoded (what a round trip gives)
            return [(p.unit, image, p.data) for p, image in zip(batch.pieces, images)]
        if self._host:
            with engine.times.timing("device", len(images)):
                x = run_stages(self.middle, host.frames_to_batch(images),
                               [p.unit.key for p in batch.pieces])
                out = host.to_uint8(x, nhwc=True)
            return [(p.unit, image, p.data) for p, image in zip(batch.pieces, out)]
        # torch (and the device) only here: a job that only converts images never imports it
        torch = import_torch()

        from ..machine.device import frames_to_device, to_host_uint8

        with torch.inference_mode(), engine.times.timing("device", len(images)):
            x = frames_to_device(images, engine.ctx.device, engine.ctx.dtype, None)
            if self.fan is None:
                out = to_host_uint8(run_stages(self.middle, x, [p.unit.key for p in batch.pieces]),
                                    nhwc=True)
                return [(p.unit, image, p.data) for p, image in zip(batch.pieces, out)]
            # before the fan-out, an image is named by its first variant's output
            return self._fan_out(batch.pieces, run_stages(self.before, x,
                                                          [p.unit.key for p in batch.pieces]))

    def _fan_out(self, pieces: list[Piece], x: torch.Tensor) -> list[tuple]:
        """Each branch (and the stages after ``variants``) on the trunk's images that go
        through it.  A branch that fails on several images is raised for the engine to retry
        them one by one; on one image it fails that (image, variant) alone."""
        results = []
        for name in self.fan.names:
            members = [next((m for m in p.unit.members if m.variant == name), None)
                       for p in pieces]
            take = [i for i, m in enumerate(members) if m is not None
                    and not self.engine.stopping(m)]
            if not take:
                continue
            try:
                keys = [members[i].key for i in take]
                out = self.fan.run_branch(name, x[take] if len(take) < len(pieces) else x,
                                          run_stages, keys)
                from ..machine.device import to_host_uint8  # imported by ``run`` already

                out = to_host_uint8(run_stages(self.after, out, keys), nhwc=True)
            except StageFailed as exc:
                if len(pieces) > 1:
                    raise
                self.engine.fail(self, members[take[0]], exc.stage, exc.cause)
                continue
            results += [(members[i], image, pieces[i].data) for i, image in zip(take, out)]
        return results

    def write(self, stream: None, items: Iterable[tuple[Unit, np.ndarray, ImageHeader | None]]
              ) -> None:
        engine, encode = self.engine, self.engine.encode
        for unit, image, header in items:
            try:
                with engine.times.timing("encode", 1):
                    engine.commits.commit(unit.key, lambda tmp: encode.write(
                        image, tmp, unit.source.suffix, header))
            except Exception as exc:  # one image that cannot be written fails alone
                engine.fail(self, unit, encode.name, exc)
                continue
            engine.count(done=1, frames=1)
            engine.progress.frames_done(1)
            engine.progress.unit_finished(True)

    def failed(self, unit: Unit, opened: bool) -> None:
        self.engine.progress.frames_done(1)
        self.engine.progress.unit_finished(False)
