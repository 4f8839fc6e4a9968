"""The shard way: a WebDataset tar shard is a unit, its images are ordered pieces, the shard
is committed whole.

    read (a reader thread)            run (the device thread)          write (the shard's lane)
    headers checked; each sample's -> the shard's images in order,  --> each sample's members, in
    images decoded, the sample's      sub-batched by shape: the        order, into a new tar under
    other members kept beside them    stages                           a temporary name; committed
                                                                       at the shard's end

A shard is the unit of commit and resume: its output (the same name, under ``output/``, or
``output/<variant>/``) is written under a temporary name as its samples come and renamed
into place complete, so a kill mid-shard leaves nothing that looks done and the rerun makes
it again, byte for byte (the writer's headers are fixed: ``media/shards.py``; a shard's
batches depend on its order alone).  Members keep their order and names: an image member's
suffix follows ``encode.image.format`` (its key stays), every other member (``.cls``,
``.json``, ``.txt``...) is copied byte for byte.  With ``variants``, each variant's shards
are read and written in turn (a flat chain each, as for clips).

Failures: a shard that cannot be read (corrupt, truncated, missing) fails as a unit at
``decode``.  A bad image member inside a readable shard (it does not decode, is too big for
this machine, breaks a stage or cannot be encoded) costs its sample only: the sample, all
its members, is left out of the output shard and reported (``Engine.fail_part``: the
summary, the ledger's failure lines, exit code 1), and the shard is committed without it.
A failure to write the output fails the shard (a full disk stops the run).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Iterator

import numpy as np

from ..errors import MediaError
from ..job.plan import Unit
from ..machine.start_up import import_torch
from ..machine.batching import is_out_of_memory
from ..media.images import ImageHeader, ImageTooLarge, decode_image, header_of
from ..media.shards import Member, Sample, ShardReader, ShardWriter
from ..stages.chain import StageFailed, run_stages
from .batcher import Batch, Piece
from .way import Way

if TYPE_CHECKING:
    from ..sources.shards import TarShards


@dataclass
class _Shard:
    """One shard in flight, set up by ``open``."""

    unit: Unit
    reader: ShardReader
    images: int  # image members, what its progress bar counts
    # image-less samples after its last image, set by the reader once it is done
    tail: list[Sample] = field(default_factory=list)


@dataclass(frozen=True)
class _Sample:
    """A sample whose images all decoded, on its way to the writer."""

    sample: Sample
    headers: dict[int, ImageHeader | None]  # member index -> its source's header, for encode
    before: tuple[Sample, ...]  # image-less samples that come before it, written first


@dataclass(frozen=True)
class _Slot:
    """A piece's ``data``: which member of which sample it is."""

    sample: _Sample
    index: int  # in ``sample.sample.members``
    last: bool  # the sample's last image


@dataclass
class _Computed:
    """A batch's results, in the shard's order: an image, or the failure that cost its sample."""

    results: list[tuple[_Slot, np.ndarray | None, StageFailed | None]]
    last: bool  # the shard's end


class ShardWay(Way):
    kind = "shard"
    ordered = True  # a shard's images are batched and written in order, in its own lane

    # -- read: a reader thread ----------------------------------------------
    def open(self, unit: Unit) -> _Shard:
        source: TarShards = unit.open()
        reader = source.open_shard(unit.source)
        shard = _Shard(unit, reader, reader.images)
        self.engine.progress.add_total(shard.images)
        self.engine.progress.clip_started(unit.key, shard.images, 0)
        return shard

    def pieces(self, shard: _Shard) -> Iterator[Piece]:
        """Each sample's images once all of them decoded (a bad one drops the sample here);
        samples without an image ride with the next one that has, or end the shard."""
        unit, carried = shard.unit, []
        with shard.reader:
            for sample in shard.reader.samples():
                refused = next((m for m in sample.members if m.refused), None)
                if refused is not None:  # sparse, or declaring too much: never read
                    self._drop(unit, sample, refused, self.engine.decode.name,
                               MediaError(unit.source, refused.refused, stage="decode",
                                          hint="rewrite the shard with the member as a plain "
                                               "file of its real size (or raise "
                                               "STYLIZE_MAX_MEMBER_BYTES if it is that big)"))
                    continue
                images = [i for i, m in enumerate(sample.members) if m.is_image]
                if not images:
                    carried.append(sample)
                    continue
                decoded = self._decode(unit, sample, images)
                if decoded is None:
                    continue
                pending = _Sample(sample, {i: header for i, _, header in decoded}, tuple(carried))
                carried = []
                for n, (i, image, _) in enumerate(decoded):
                    yield Piece(unit, image, ordered=True,
                                data=_Slot(pending, i, n == len(decoded) - 1))
        shard.tail = carried  # before the engine's unit end: the writer reads it after that

    def _decode(self, unit: Unit, sample: Sample, images: list[int]
                ) -> list[tuple[int, np.ndarray, ImageHeader | None]] | None:
        """The sample's images, upright, with the headers ``encode`` needs; None if one of
        them is bad (reported; the sample is dropped)."""
        engine, out = self.engine, []
        keep_header = engine.encode.params.image.needs_source_header
        for i in images:
            member = sample.members[i]
            where = f"{unit.source}/{member.name}"
            try:
                with engine.times.timing("decode", 1):
                    data = None
                    try:  # too big for this machine: refused from its first bytes, as a file is
                        header = header_of(member.head(), member.name)
                    except ImageTooLarge:
                        raise
                    except MediaError:  # a header further in (a large EXIF block), or none
                        data = member.read()
                        try:
                            header = header_of(data, member.name)
                        except MediaError:
                            header = None  # decoding says what is wrong
                    if header is not None:
                        engine.memory_gate.check_size(where, header.width, header.height)
                    image, header = decode_image(member.read() if data is None else data, member.name)
            except MediaError as exc:
                self._drop(unit, sample, member, engine.decode.name, exc)
                return None
            out.append((i, image, header if keep_header else None))
        return out

    # -- run: the device thread ---------------------------------------------
    def run(self, batch: Batch) -> list[_Computed]:
        """The stages on a batch of one shard's images, by shape; results in order."""
        pieces = batch.pieces
        images: list[np.ndarray | None] = [None] * len(pieces)
        errors: list[StageFailed | None] = [None] * len(pieces)
        if not self.middle:  # decode, encode: the images as decoded (what a round trip gives)
            return [_Computed([(p.data, p.image, None) for p in pieces], batch.last)]
        shapes: dict[tuple, list[int]] = {}
        for i, piece in enumerate(pieces):
            shapes.setdefault(piece.image.shape, []).append(i)
        torch = import_torch()  # only here: a job that only converts images never imports it

        with torch.inference_mode():
            for group in shapes.values():
                self._run_group(pieces, group, images, errors)
        return [_Computed([(p.data, images[i], errors[i]) for i, p in enumerate(pieces)],
                          batch.last)]

    def _run_group(self, pieces: list[Piece], group: list[int], images: list,
                   errors: list) -> None:
        """Images of one shape; a failing group is retried image by image, so that only the
        samples whose images really break are lost.  Out of memory on several images goes to
        the engine, which retries with smaller batches."""
        from ..machine.device import frames_to_device, to_host_uint8  # see ``run``

        engine = self.engine
        try:
            with engine.times.timing("device", len(group)):
                x = frames_to_device([pieces[i].image for i in group], engine.ctx.device,
                                     engine.ctx.dtype, None)
                keys = [f"{p.unit.key}/{p.data.sample.sample.members[p.data.index].name}"
                        for p in (pieces[i] for i in group)]  # the source member, in its shard
                out = to_host_uint8(run_stages(self.middle, x, keys), nhwc=True)
        except Exception as exc:
            failed = exc if isinstance(exc, StageFailed) else StageFailed("device", exc)
            if len(pieces) > 1 and is_out_of_memory(failed.cause):
                raise failed from exc
            if len(group) == 1:
                errors[group[0]] = failed
                return
            for i in group:
                self._run_group(pieces, [i], images, errors)
            return
        for i, image in zip(group, out):
            images[i] = image

    # -- write: the shard's lane --------------------------------------------
    def write(self, shard: _Shard, items: Iterable[_Computed]) -> None:
        """The output shard under a temporary name as its samples come; committed at the end.
        If the run stops or the shard fails first, the temporary file goes."""
        engine, unit = self.engine, shard.unit
        written: list[list] = []  # [source member, output member, width, height] per image

        def fill(tmp) -> list[list]:
            with ShardWriter(tmp) as out:
                if not self._fill(shard, items, out, written):
                    raise _Cancelled
            return written  # recorded in the shard's ledger line, for the manifest
        try:
            engine.commits.commit(unit.key, fill)
        except _Cancelled:
            return
        except Exception as exc:
            engine.fail(self, unit, engine.encode.name, exc)
            return
        engine.count(done=1, frames=len(written))
        engine.progress.unit_finished(True, unit.key)

    def _fill(self, shard: _Shard, items: Iterable[_Computed], out: ShardWriter,
              written: list[list]) -> bool:
        """Samples into ``out`` in order; True once the shard's end came."""
        gathered: list[tuple[_Slot, np.ndarray | None, StageFailed | None]] = []
        for computed in items:
            for result in computed.results:
                gathered.append(result)
                if result[0].last:
                    written += self._add(shard, out, gathered)
                    gathered = []
            if computed.last:
                for sample in shard.tail:
                    for member in sample.members:
                        out.add(member)
                return True
        return False

    def _add(self, shard: _Shard, out: ShardWriter, results: list) -> list[list]:
        """One sample (after the image-less ones before it): its images encoded, its other
        members as read; or, if one of its images failed, none of it.  The images written:
        [source member, output member, width, height] each."""
        engine, pending = self.engine, results[0][0].sample
        sample = pending.sample
        for before in pending.before:
            for member in before.members:
                out.add(member)
        encoded: dict[int, Member] = {}
        sizes: dict[int, tuple[int, int]] = {}
        for slot, image, failed in results:
            member = sample.members[slot.index]
            if failed is not None:
                self._drop(shard.unit, sample, member, failed.stage, failed.cause)
                return []
            try:
                with engine.times.timing("encode", 1):
                    data, sizes[slot.index] = engine.encode.image_bytes(
                        image, member.name, pending.headers[slot.index])
            except MediaError as exc:
                self._drop(shard.unit, sample, member, engine.encode.name, exc)
                return []
            encoded[slot.index] = Member(engine.encode.member_name(member.name), data)
        own = [m.name for m in sample.members]
        twice = next((n for n in own if own.count(n) > 1), None)
        if twice is not None:  # a tar may list one name twice (a member appended again)
            self._drop(shard.unit, sample, sample.members[own.index(twice)], engine.decode.name,
                       MediaError(shard.unit.source, f"the sample holds the member '{twice}' "
                                  "twice", stage="decode",
                                  hint="write the shard with one member per name (tar -r "
                                       "appends a second copy instead of replacing the first)"))
            return []
        members = [encoded.get(i, m) for i, m in enumerate(sample.members)]
        names = [m.name for m in members]
        clash = next((n for n in names if names.count(n) > 1), None)
        if clash is not None:  # a.jpg and a.png, both written as png
            self._drop(shard.unit, sample, sample.members[min(encoded)], engine.encode.name,
                       MediaError(shard.unit.source, f"two members would both be named "
                                  f"'{clash}' in the output shard", stage="encode",
                                  hint="keep the images' format (encode: {image: {format: same}})"))
            return []
        for member in members:
            out.add(member)
        engine.progress.frames_done(len(encoded), shard.unit.key)
        return [[sample.members[i].name, encoded[i].name, *sizes[i]] for i in sorted(encoded)]

    def _drop(self, unit: Unit, sample: Sample, member: Member, stage: str,
              exc: BaseException) -> None:
        self.engine.fail_part(unit, f"member '{member.name}' (its sample '{sample.key}' is left "
                                    "out of the output shard)", stage, exc)

    # -- failures -----------------------------------------------------------
    def failed(self, unit: Unit, opened: bool) -> None:
        self.engine.progress.unit_finished(False, unit.key if opened else None)


class _Cancelled(Exception):
    """The run stopped or the shard failed before its end: no output."""
