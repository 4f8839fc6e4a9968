"""What a run leaves for the people and tools after it: ``output/manifest.jsonl`` and a report.

The manifest lists every output of the stage chain on disk, one JSON object a line, in the
plan's order: ``source`` (relative to the job file's folder when under it), ``output``
(relative to the output folder), ``kind`` (image or video), ``variant`` (null: one chain),
``width`` and ``height`` (as written: from the output's ledger line, else its header), and
``chain`` (a short hash of the fingerprint of the chain that made it: the stages, a
variant's own, with their options and weights, the precision).  An image inside a tar shard
has a row of its own, ``kind`` shard, with ``member`` (its name in the output shard) and
``source_member``.  The manifest is rebuilt from the ledger at the end of every run, so it
is right after a resume or a deletion by hand, and it is written atomically (``manifest:
{csv: true}``: ``manifest.csv`` too).  Sidecar copies are not listed (they are the
source's own files).

The report (``run --report FILE.json``) is the run's summary for schedulers and dashboards:
counts, failures with file, stage and reason, per-step rates, wall time.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

from ..media.atomic import atomic_write
from ..sources.walk import real_path


class Ledger(Protocol):
    """What the manifest asks of the ledger (``pipeline.record.ledger.Ledger``), as a protocol:
    the ledger removes the manifests on ``--restart``, so it is the one that imports."""

    def is_done(self, key: str) -> bool: ...

    def size_of(self, key: str) -> tuple[int, int] | None: ...

    def members_of(self, key: str) -> list[tuple[str, str, int, int]]: ...


MANIFEST = "manifest.jsonl"
MANIFEST_CSV = "manifest.csv"
FIELDS = ("source", "output", "kind", "variant", "width", "height", "chain", "member",
          "source_member")


def chain_hash(fingerprint: dict[str, Any]) -> str:
    """A short, stable name for a job's fingerprint."""
    text = json.dumps(fingerprint, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_manifest(output: Path, base: Path, units: Iterable, ledger: Ledger,
                   chains: dict[str | None, str], csv_too: bool = False,
                   draws: Callable[[str | None, str], int | None] | None = None) -> Path:
    """``output/manifest.jsonl`` for the outputs committed so far (see above): ``units`` are
    the plan's (``pipeline.job.plan.Unit``), in its order; sources are written relative to
    ``base`` (the job file's folder) when under it; ``chains`` maps each variant (None: the
    job's one chain) to its ``chain_hash``; ``draws(variant, key)``, where a chain draws
    something per image (``style_augment``), the seed of that image's draw (a column
    ``style_seed``).  Rows are streamed to the file, not gathered: a million outputs do not
    make a million dicts."""
    final = output / MANIFEST
    rows = lambda: _rows(output, base, units, ledger, chains, draws)  # noqa: E731
    atomic_write(final, lambda tmp: _write_lines(tmp, (json.dumps(r) + "\n" for r in rows())))
    if csv_too:  # the same rows; a null variant is an empty cell
        def write_csv(tmp) -> None:
            with open(tmp, "w", newline="") as f:
                fields = FIELDS + (("style_seed",) if draws else ())
                # every text cell quoted: a name holding "\r" (not the writer's own line
                # ending, so not quoted by QUOTE_MINIMAL) would split its row for readers
                writer = csv.DictWriter(f, fieldnames=fields, lineterminator="\n", restval="",
                                        quoting=csv.QUOTE_NONNUMERIC)
                writer.writeheader()
                writer.writerows(_csv_safe(row) for row in rows())
        atomic_write(output / MANIFEST_CSV, write_csv)
    return final


# a cell starting with one of these is a formula to a spreadsheet (CSV injection): OWASP's
# advice is a leading apostrophe, which spreadsheets show as text and do not display
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_safe(row: dict[str, Any]) -> dict[str, Any]:
    """A manifest row for the CSV: a name that a spreadsheet would run as a formula gets a
    leading apostrophe (the JSON lines keep every name as it is)."""
    return {k: "'" + v if isinstance(v, str) and v.startswith(_FORMULA_START) else v
            for k, v in row.items()}


def _write_lines(path, lines: Iterator[str]) -> None:
    with open(path, "w") as f:
        f.writelines(lines)


def _rows(output: Path, base: Path, units: Iterable, ledger: Ledger,
          chains: dict[str | None, str], draws: Callable | None = None) -> Iterator[dict[str, Any]]:
    """The manifest's rows, in the plan's order."""
    base = base.resolve()
    real: dict[str, str] = {}
    for unit in units:
        if unit.kind == "file" or not ledger.is_done(unit.key):
            continue
        if unit.kind == "shard":  # one row per image inside the output shard
            for name, out_name, w, h in ledger.members_of(unit.key):
                row = {"source": _relative(unit.source, base, real), "output": unit.key,
                       "kind": "shard", "variant": unit.variant, "width": w, "height": h,
                       "chain": chains[unit.variant], "member": out_name, "source_member": name}
                yield _drawn(row, draws, unit.variant, f"{unit.key}/{name}")
            continue
        size = ledger.size_of(unit.key) or _size(output / unit.key, unit.kind)
        if size is None:  # deleted by hand since: the next run redoes it
            continue
        yield _drawn({"source": _relative(unit.source, base, real), "output": unit.key,
                      "kind": unit.kind, "variant": unit.variant, "width": size[0],
                      "height": size[1], "chain": chains[unit.variant]}, draws, unit.variant, unit.key)


_NAMES = ("source", "output", "member", "source_member")


def faithful(name: str) -> str:
    """A file name as text any tool reads: valid UTF-8 as it is; a byte that is not (Python
    holds it as a lone surrogate, which a JSON or CSV reader sees as U+FFFD and a UTF-8
    writer refuses) as ``\\xNN``, its value, so the name can be matched back."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _drawn(row: dict[str, Any], draws: Callable | None, variant: str | None, key: str) -> dict:
    if draws is not None:
        seed = draws(variant, key)
        if seed is not None:
            row["style_seed"] = seed
    for field in _NAMES:
        if isinstance(row.get(field), str):
            row[field] = faithful(row[field])
    return row


def _size(path: Path, kind: str) -> tuple[int, int] | None:
    try:
        if kind == "video":
            from ..media.video import probe_video
            info = probe_video(path)
            return info.width, info.height
        from PIL import Image
        with Image.open(path) as im:  # as stored (an orientation tag is the file's own)
            return im.size
    except Exception:
        return None


def _relative(path: Path, base: Path, real: dict[str, str]) -> str:
    """``path`` relative to ``base`` when under it (symlinks resolved, each folder once:
    ``pipeline.sources.walk.real_path``), else as it is."""
    full, root = real_path(str(path), real), str(base).rstrip(os.sep) + os.sep
    return Path(full[len(root):]).as_posix() if full.startswith(root) else str(path)
