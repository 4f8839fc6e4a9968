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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from ..media.atomic import atomic_write
from ..job.safety import real_path

if TYPE_CHECKING:
    from ..job.build import Prepared
    from .results import Summary
    from .ledger import Ledger

MANIFEST = "manifest.jsonl"
MANIFEST_CSV = "manifest.csv"
FIELDS = ("source", "output", "kind", "variant", "width", "height", "chain", "member",
          "source_member")


@dataclass(frozen=True)
class ManifestOptions:
    """The job's ``manifest:`` key."""

    csv: bool = False  # also output/manifest.csv: the same rows, a header line first


def chain_hash(fingerprint: dict[str, Any]) -> str:
    """A short, stable name for a job's fingerprint."""
    text = json.dumps(fingerprint, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_manifest(p: Prepared, ledger: Ledger, fingerprint: dict[str, Any]) -> Path:
    """``output/manifest.jsonl`` for the outputs committed so far (see above).  Rows are
    streamed to the file, not gathered: a million outputs do not make a million dicts."""
    final = p.job.output / MANIFEST
    rows = lambda: _rows(p, ledger, fingerprint)  # noqa: E731
    atomic_write(final, lambda tmp: _write_lines(tmp, (json.dumps(r) + "\n" for r in rows())))
    if p.job.manifest.csv:  # the same rows; a null variant is an empty cell
        def write_csv(tmp) -> None:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=FIELDS, lineterminator="\n", restval="")
                writer.writeheader()
                writer.writerows(rows())
        atomic_write(p.job.output / MANIFEST_CSV, write_csv)
    return final


def _write_lines(path, lines: Iterator[str]) -> None:
    with open(path, "w") as f:
        f.writelines(lines)


def _rows(p: Prepared, ledger: Ledger, fingerprint: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The manifest's rows, in the plan's order."""
    output, base = p.job.output, p.job.path.parent.resolve()
    chains = _chain_hashes(p, fingerprint)
    real: dict[str, str] = {}
    for unit in p.plan.units:
        if unit.kind == "file" or not ledger.is_done(unit.key):
            continue
        if unit.kind == "shard":  # one row per image inside the output shard
            for name, out_name, w, h in ledger.members_of(unit.key):
                yield {"source": _relative(unit.source, base, real), "output": unit.key,
                       "kind": "shard", "variant": unit.variant, "width": w, "height": h,
                       "chain": chains[unit.variant], "member": out_name, "source_member": name}
            continue
        size = ledger.size_of(unit.key) or _size(output / unit.key, unit.kind)
        if size is None:  # deleted by hand since: the next run redoes it
            continue
        yield {"source": _relative(unit.source, base, real), "output": unit.key,
               "kind": unit.kind, "variant": unit.variant, "width": size[0], "height": size[1],
               "chain": chains[unit.variant]}


def _chain_hashes(p: Prepared, fingerprint: dict[str, Any]) -> dict[str | None, str]:
    """Each variant's chain hash (the stages before ``variants``, its branch, the ones after);
    without variants, the job's."""
    from ..stages.variants import chain_for

    if not p.job.variants:
        return {None: chain_hash(fingerprint)}
    decode, *middle, encode = p.stages
    return {v: chain_hash({**fingerprint, "stages": [s.fingerprint() for s in
                                                     (decode, *chain_for(middle, v), encode)]})
            for v in p.job.variants}


def write_report(path: Path, p: Prepared, s: Summary, exit_code: int) -> None:
    """The run's summary as one JSON object in ``path`` (written atomically)."""
    state = "interrupted" if s.interrupted else "stopped" if s.fatal else "finished"
    report = {
        "job": p.job.name, "job_file": str(p.job.path), "output": str(p.job.output),
        "state": state, "exit_code": exit_code, "wall_s": round(s.wall_s, 3),
        "units": len(p.plan.units), "done": s.done, "skipped": s.skipped, "frames": s.frames,
        "failed": len(s.failures) + len(p.plan.empty_sources),
        "failures": [{"source": str(f.source), "variant": f.variant, "stage": f.stage,
                      "reason": f.reason}
                     for f in s.failures]
                    + [{"source": spec.pattern, "stage": "sources", "reason": reason}
                       for spec, reason in p.plan.empty_sources],
        "rates": {step: round(rate, 3) for step, rate in s.times.rates().items()},
        "busy_s": {step: round(sec, 3) for step, sec in s.times.seconds.items()},
        "fatal": s.fatal,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(report, indent=1) + "\n"))


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
    ``safety.real_path``), else as it is."""
    full, root = real_path(str(path), real), str(base).rstrip(os.sep) + os.sep
    return Path(full[len(root):]).as_posix() if full.startswith(root) else str(path)
