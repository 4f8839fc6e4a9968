"""What a job may never do with its output folder: write over a source, climb out of
the folder, or write into another job's output folder.

Checked when the plan is made, before anything is written, so each of these is
an invalid job (exit 2) that touches nothing.  The ledger checks again what it
deletes on ``--restart`` (see ledger.py): a record is not proof of ownership.
"""
from __future__ import annotations

import os
from pathlib import Path, PurePath
from typing import Container, Iterable

from ..errors import JobError, Location
from ..media.atomic import partial_of
from ..record.commits import SEGMENTS_DIR
from ..record.ledger import LEDGER_NAME, LOCK_NAME, committed_keys
from ..record.manifest import MANIFEST, MANIFEST_CSV
from ..sources.walk import real_path


#: the job's own names at the top of its output folder: no output may be or hold one
RESERVED = frozenset({LEDGER_NAME, LOCK_NAME, MANIFEST, MANIFEST_CSV, SEGMENTS_DIR})


def reserved_reason(rel: PurePath) -> str | None:
    """Why the output path ``rel`` would land on one of the job's own files, else None: the
    ledger, its lock, the manifests and the segment folder at the top, any hidden name at the
    top (the pipeline's), and a temporary file's name anywhere (the sweeps delete those)."""
    parts = rel.parts
    if not parts:
        return None
    if parts[0] in RESERVED:
        return f"'{parts[0]}' at the top of the output folder is the job's own"
    if parts[0].startswith("."):
        return f"hidden names at the top of the output folder ('{parts[0]}') are the job's own"
    temporary = next((p for p in parts if partial_of(p) is not None), None)
    if temporary is not None:
        return f"'{temporary}' is a temporary file's name, which the job's clean-up deletes"
    return None


def check_not_reserved(rel: PurePath, source: Path, where: str, location: Location | None) -> None:
    reason = reserved_reason(rel)
    if reason is not None:
        raise JobError(f"the output for '{source}' would be '{rel.as_posix()}': {reason}",
                       location=location, where=where,
                       hint="rename the file, or give its source an 'into: <folder>'")


def check_output_folder(output: Path, source_roots: Iterable[tuple[str, Path, Location]],
                        location: Location | None) -> None:
    """The output folder is neither a file system root nor the home folder, and holds no source.

    ``source_roots``: (where, folder, location) per source: the folder a source's
    relative paths start from (a file's parent, a glob's literal prefix).  An
    output *inside* a source folder is fine (it is never read back); an output
    that *is* a source folder, or contains one, would write over the sources
    and let ``--restart`` delete them."""
    out = output.resolve()
    if out == out.parent or out == Path.home().resolve():
        raise JobError(f"output '{output}' is {'the file system root' if out == out.parent else 'your home folder'}",
                       location=location, where="output",
                       hint="point 'output' at a folder of its own, e.g. 'out/<job name>'")
    for where, root, source_location in source_roots:
        real = root.resolve()
        if real == out or out in real.parents:
            relation = "is" if real == out else "contains"
            raise JobError(
                f"output '{output}' {relation} the source folder of {where} ('{root}'): outputs "
                f"would be written over the sources", location=location, where="output",
                hint=f"point 'output' at a folder outside the sources (the source is at "
                     f"{source_location}), e.g. 'out/<job name>'")


def check_writable(output: Path, location: Location | None) -> None:
    """The output folder exists and can be written, or can be made: checked before the night
    (``validate`` and ``run``), so it is a located job error and not a traceback at the first
    write.  Looks, and makes nothing."""
    import os

    existing = output
    while not existing.exists():
        if existing == existing.parent:
            break
        existing = existing.parent
    problem = None
    if not existing.is_dir():
        problem = f"'{existing}' is a file, not a folder"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = f"'{existing}' is not writable by this user"
    elif os.statvfs(existing).f_flag & os.ST_RDONLY:
        problem = f"'{existing}' is on a read-only file system"
    if problem:
        raise JobError(f"output '{output}' cannot be {'written' if existing == output else 'made'}: "
                       f"{problem}", location=location, where="output",
                       hint="point 'output' at a folder this user can write")


def check_output_paths(output: Path, rels: Iterable[tuple[PurePath, Path, int | str]],
                       sources: Container[str], location: Location | None) -> None:
    """Each output (relative path, its source, its source's index or where) lands inside
    ``output``, on no source file (``sources``: their real paths, see ``real_path``), and
    not inside another job's output folder (one holding its own ledger).  ``rels`` is
    read once, one at a time."""
    out = output.resolve()
    root = str(out) + os.sep
    real: dict[str, str] = {}  # folder -> its real path: each folder resolved once, not per file
    # Strings, not Paths, per file: a 100k-file job plans in a fraction of a second
    foreign: dict[Path, bool] = {}
    nested_of: dict[str, Path | None] = {}
    outer = _outer_outputs(out)
    for rel, source, index in rels:
        where = f"sources[{index}]" if isinstance(index, int) else index
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise JobError(f"{where}: output path '{rel}' for '{source}' would leave the output folder",
                           location=location, where="output")
        final = real_path(os.path.join(root, rel), real)  # follows a symlink planted inside
        if not final.startswith(root):
            raise JobError(f"{where}: the output for '{source}' resolves to '{final}', outside "
                           f"the output folder (a symlink inside it?)", location=location,
                           where="output", hint="remove the symlink from the output folder")
        if final in sources:
            raise JobError(f"{where}: the output for '{source}' would overwrite the source file "
                           f"'{final}'", location=location, where="output",
                           hint="point 'output' at a folder outside the sources")
        parent = os.path.dirname(final)
        if parent not in nested_of:  # once per output folder
            nested_of[parent] = _foreign_output(out, Path(parent), foreign)
        nested = nested_of[parent]
        if nested is not None:
            raise JobError(f"{where}: the output for '{source}' would be written into '{nested}', "
                           f"the output folder of another job (it has its own {LEDGER_NAME})",
                           location=location, where="output",
                           hint="give this source an 'into: <folder>', or move one job's output")
        for folder, theirs in outer:
            if (out / rel).relative_to(folder).as_posix() in theirs:
                raise JobError(f"{where}: the output for '{source}' ('{final}') is an output of the "
                               f"job whose output folder is '{folder}'", location=location,
                               where="output", hint="point 'output' at a folder of its own")


def check_side_file(path: Path, output: Path, source_roots: Iterable[Path], sources: Container[str],
                    location: Location | None, where: str) -> None:
    """A file the job writes beside its outputs (the contact sheet) is no source file (``sources``:
    their real paths), and lies in no source folder unless inside the output folder (which is
    never read back): else it would overwrite a source, or be stylized itself on the next run."""
    final, out = path.resolve(), output.resolve()
    if str(final) in sources:
        raise JobError(f"'{path}' is a source file; it would be overwritten", location=location,
                       where=where, hint="write it next to the outputs, e.g. 'out/sheet.png'")
    if out in final.parents:
        return
    for root in source_roots:
        if root.resolve() in final.parents:
            raise JobError(f"'{path}' lies in the source folder '{root}': the next run would "
                           f"read it as a source", location=location, where=where,
                           hint="write it next to the outputs, e.g. 'out/sheet.png'")


def _outer_outputs(out: Path) -> list[tuple[Path, set[str]]]:
    """Output folders of other jobs that contain ``out``, with the outputs they recorded."""
    return [(folder, committed_keys(folder / LEDGER_NAME)) for folder in out.parents
            if (folder / LEDGER_NAME).is_file()]


def _foreign_output(out: Path, folder: Path, cache: dict[Path, bool]) -> Path | None:
    """The folder between ``out`` (excluded) and ``folder`` (included) that holds a ledger."""
    while folder != out and out in folder.parents:
        if folder not in cache:
            cache[folder] = (folder / LEDGER_NAME).exists()
        if cache[folder]:
            return folder
        folder = folder.parent
    return None
