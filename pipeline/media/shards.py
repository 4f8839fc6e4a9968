"""WebDataset tar shards: members read in order and grouped into samples; shards written reproducibly.

The ``webdataset`` package's conventions: a sample's key is a member's path up to the first
'.' of its basename (``train/0001.left.jpg``: key ``train/0001``, field ``left.jpg``), and a
sample's members are consecutive in the tar (a key that comes back later starts another
sample).  Plain (uncompressed) tar only; the standard library's ``tarfile`` reads and writes.

Reading (``ShardReader``): every header is read first, and the end of the archive checked:
``tarfile`` takes a damaged header in the middle, or a file cut at a member's boundary, for
the end of the archive and would quietly give the members before it.  So a shard whose
members are not followed by the end-of-archive marker (a zero block) is refused as corrupt
or truncated, before any of its work is done.  Failures raise ``MediaError(path, reason,
stage="decode")``.

A member's bytes stay in the shard until they are needed (``Member.stored``): an image is
read when it is decoded (its header first, from its first bytes, so that the memory gate
can refuse it before the rest is read), and any other member is copied into the output in
bounded chunks, never held whole: a shard of 4 GiB of sidecars costs no memory.

Writing (``ShardWriter``): the members' names, types, contents and links, and nothing else
from the source: every header has the same mtime, owner, group and mode, and the format is
fixed (POSIX pax, as ``tarfile`` and ``webdataset`` write it), so the same members make the
same bytes in every run.
"""
from __future__ import annotations

import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator

from ..errors import MediaError
from .images import IMAGE_EXTENSIONS

SHARD_EXTENSIONS = frozenset({".tar"})
FORMAT = tarfile.PAX_FORMAT
MTIME = 0  # every output header's: the source's archiver metadata does not reach the output
FILE_MODE, DIR_MODE = 0o644, 0o755
_HINT = "re-copy or re-download the shard (partial copies are the usual cause), or remove it from the sources"
#: a member declaring more is refused unread (its sample left out, named): a 15 KB shard may
#: declare a member of a terabyte; ``STYLIZE_MAX_MEMBER_BYTES`` sets another limit
MAX_MEMBER_BYTES = 512 << 20
#: the bytes an image header is looked for in before the member is read whole
HEAD_BYTES = 64 << 10


def member_limit() -> int:
    value = os.environ.get("STYLIZE_MAX_MEMBER_BYTES", "")
    return int(value) if value.isdigit() else MAX_MEMBER_BYTES


def refusal(info: tarfile.TarInfo, limit: int) -> str:
    """Why a member is not read, or "": a name or link that leads out of the archive (an
    ``extractall`` downstream would follow it), a sparse member (it would grow to its declared
    size, whatever the shard holds) or one declaring more than ``limit`` bytes."""
    name = PurePosixPath(info.name)
    if name.is_absolute() or ".." in name.parts:
        return f"its name '{info.name}' leads out of the archive (absolute, or with '..')"
    if info.issym() or info.islnk():
        target = PurePosixPath(info.linkname)
        inside = target if info.islnk() else name.parent / target
        if target.is_absolute() or _climbs(inside):
            return f"a link to '{info.linkname}', outside the archive"
    if info.issparse():
        return (f"a sparse member declaring {info.size:,} bytes (a sparse file grows to its "
                "declared size when read)")
    if info.isreg() and info.size > limit:
        return f"it declares {info.size:,} bytes, over the limit of {limit:,}"
    return ""


@dataclass(frozen=True)
class Member:
    """One member of a shard: its name, its tar type, its bytes or where they lie, or its link."""

    name: str
    data: bytes = b""  # a member made in memory (an encoded image)
    type: bytes = tarfile.REGTYPE
    linkname: str = ""
    refused: str = ""  # why it was not read (sparse, or declaring more than the limit)
    stored: tuple[Path, int, int] | None = None  # (shard, offset, size): bytes left in the shard

    @property
    def is_file(self) -> bool:
        return self.type in tarfile.REGULAR_TYPES

    @property
    def is_image(self) -> bool:
        """A regular file with an image suffix (the field's last one: ``left.jpg``)."""
        return self.is_file and PurePosixPath(self.name).suffix.lower() in IMAGE_EXTENSIONS

    @property
    def size(self) -> int:
        return self.stored[2] if self.stored is not None else len(self.data)

    def head(self, count: int = HEAD_BYTES) -> bytes:
        """The first ``count`` bytes (fewer if the member is smaller)."""
        return self.read(min(count, self.size))

    def read(self, count: int | None = None) -> bytes:
        """The member's bytes (the first ``count``): a shard cut short since it was opened is a
        ``MediaError`` naming the shard and the member."""
        if self.stored is None:
            return self.data if count is None else self.data[:count]
        path, offset, size = self.stored
        want = size if count is None else count
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read(want)
        except OSError as exc:
            raise _error(path, exc, f"member '{self.name}'") from None
        if len(data) != want:
            raise MediaError(path, f"truncated member '{self.name}' ({len(data)} of {want} bytes)",
                             stage="decode", hint=_HINT)
        return data


@dataclass(frozen=True)
class Sample:
    key: str
    members: tuple[Member, ...]


def sample_key(name: str) -> str:
    """The member's path up to the first '.' of its basename (webdataset's ``base_plus_ext``)."""
    folder, slash, base = name.rpartition("/")
    return folder + slash + base.split(".", 1)[0]


def group_samples(members: Iterator[Member]) -> Iterator[Sample]:
    """Consecutive members with the same key, as samples, in order."""
    key, group = None, []
    for member in members:
        k = sample_key(member.name)
        if group and k != key:
            yield Sample(key, tuple(group))
            group = []
        key = k
        group.append(member)
    if group:
        yield Sample(key, tuple(group))


class ShardReader:
    """A shard open for reading: its headers read and checked whole (see above)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._tar: tarfile.TarFile | None = None
        try:
            self._tar = tarfile.open(self.path, "r:")  # plain tar: a compressed one is refused
            self.infos = self._tar.getmembers()
            self._check_end()
        except MediaError:
            self.close()
            raise
        except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
            self.close()
            raise _error(self.path, exc) from None

    @property
    def images(self) -> int:
        """Image members (see ``Member.is_image``), what the progress counts."""
        return sum(1 for info in self.infos if _member(info).is_image)

    def describe(self) -> str:
        members = [_member(info) for info in self.infos]
        samples = sum(1 for i, m in enumerate(members)
                      if i == 0 or sample_key(m.name) != sample_key(members[i - 1].name))
        limit = member_limit()
        refused = [info.name for info in self.infos if refusal(info, limit)]
        return (f"{samples} sample{'s' if samples != 1 else ''}, {len(members)} "
                f"member{'s' if len(members) != 1 else ''}, {self.images} "
                f"image{'s' if self.images != 1 else ''}"
                + (f"; {len(refused)} refused unread (sparse, or over {limit:,} bytes: "
                   f"{', '.join(refused[:3])}{' ...' if len(refused) > 3 else ''}); their "
                   "samples will be left out" if refused else ""))

    def samples(self) -> Iterator[Sample]:
        """The samples in order; their members' bytes are left in the shard (``Member.read``)."""
        return group_samples(self._members())

    def _members(self) -> Iterator[Member]:
        limit = member_limit()
        for info in self.infos:
            member = _member(info)
            why = refusal(info, limit)
            if why:  # never read: its sample is left out by the reader's user, named
                yield Member(member.name, b"", tarfile.REGTYPE, "", why)
                continue
            if member.is_file:
                member = Member(member.name, b"", member.type, member.linkname,
                                stored=(self.path, info.offset_data, info.size))
            yield member

    def _check_end(self) -> None:
        """The block after the last member must be the end-of-archive marker (zeros)."""
        tar = self._tar
        tar.fileobj.seek(tar.offset)
        block = tar.fileobj.read(tarfile.BLOCKSIZE)
        if len(block) == tarfile.BLOCKSIZE and not block.strip(b"\0"):
            return
        after = f"after member '{self.infos[-1].name}'" if self.infos else "at its start"
        size = tar.offset + len(block)
        if not block:
            reason = f"truncated tar shard: it ends {after} without the end-of-archive marker"
        elif len(block) < tarfile.BLOCKSIZE:
            reason = f"truncated tar shard: it ends inside the member header {after}"
        else:
            reason = f"corrupt tar shard: a damaged member header {after} (at byte {tar.offset})"
        raise MediaError(self.path, f"{reason} ({size} bytes read)", stage="decode", hint=_HINT)

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None

    def __enter__(self) -> ShardReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ShardWriter:
    """Members into a new tar at ``path``, in the order added (headers fixed: see above)."""

    def __init__(self, path: Path) -> None:
        self._tar = tarfile.open(path, "w", format=FORMAT, encoding="utf-8")

    def add(self, member: Member) -> None:
        """A member made in memory, or one left in its shard: copied in chunks, never held."""
        info = tarfile.TarInfo(member.name)
        info.type = tarfile.REGTYPE if member.is_file else member.type  # a sparse one: written whole
        info.linkname = member.linkname
        info.size = member.size if member.is_file else 0
        info.mtime, info.uid, info.gid, info.uname, info.gname = MTIME, 0, 0, "", ""
        info.mode = DIR_MODE if member.type == tarfile.DIRTYPE else FILE_MODE
        if not member.is_file:
            self._tar.addfile(info)
        elif member.stored is None:
            self._tar.addfile(info, io.BytesIO(member.data))
        else:
            path, offset, _size = member.stored
            try:
                with open(path, "rb") as f:
                    f.seek(offset)
                    self._tar.addfile(info, f)  # copies info.size bytes, 16 KiB at a time
            except OSError as exc:  # "unexpected end of data": the shard was cut short since
                raise _error(path, exc, f"member '{member.name}'") from None

    def close(self) -> None:
        self._tar.close()  # the end-of-archive marker

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _climbs(path: PurePosixPath) -> bool:
    """Whether a relative path, its '..' applied in order, leaves its root at some point."""
    depth = 0
    for part in path.parts:
        depth += -1 if part == ".." else 0 if part in (".", "") else 1
        if depth < 0:
            return True
    return False


def _member(info: tarfile.TarInfo) -> Member:
    return Member(info.name, b"", info.type, info.linkname)


def _error(path: Path, exc: BaseException, what: str = "") -> MediaError:
    where = f" ({what})" if what else ""
    if str(exc) == "unexpected end of data":
        return MediaError(path, f"truncated tar shard{where}: it ends inside a member's data",
                          stage="decode", hint=_HINT)
    reason = str(exc) if isinstance(exc, tarfile.TarError) else f"{type(exc).__name__}: {exc}"
    return MediaError(path, f"unreadable tar shard{where}: {reason}", stage="decode", hint=_HINT)
