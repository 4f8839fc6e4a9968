"""The image way: each image is a unit and one piece, batched with others of its shape.

Read: the header is checked against this machine's memory first (an image too
big fails alone, before decoding), then the file is decoded.  Run: one uint8
batch to the device, converted to the working dtype there, through the
transform stages (a temporal stage passes images through), rounded back to
uint8.  Write: at the source's size and orientation where the encoder asks
(``encode.image.size: source``), encoded under a temporary name and committed.
"""
from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np
import torch

from ..media.images import ImageHeader
from ..plan import Unit
from .batcher import Batch, Piece
from .device import frames_to_device, run_stages, to_host_uint8
from .way import Way


class ImageWay(Way):
    kind = "image"

    def pieces(self, unit: Unit) -> Iterator[Piece]:
        engine = self.engine
        with engine.times.timing("decode", 1):
            header = engine.memory_gate.check_image(unit.source)  # the header, read once
            image = unit.open().read(unit.source)
        if not engine.encode.params.image.needs_source_header:
            header = None  # written as the stages make it
        elif header is None:  # a header only the decoder could read: no orientation known
            header = ImageHeader(image.shape[1], image.shape[0])
        yield Piece(unit, image, data=header)

    def run(self, batch: Batch) -> list[tuple[Unit, np.ndarray, ImageHeader | None]]:
        """uint8 HxWxC images of one shape -> stages -> rounded uint8 images."""
        engine, images = self.engine, [p.image for p in batch.pieces]
        with torch.inference_mode(), engine.times.timing("device", len(images)):
            x = frames_to_device(images, engine.ctx.device, engine.ctx.dtype, None)
            out = to_host_uint8(run_stages(engine.middle, x), nhwc=True)
        return [(p.unit, image, p.data) for p, image in zip(batch.pieces, out)]

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
