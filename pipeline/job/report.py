"""What a run leaves for the people and tools after it, from the prepared job: the manifest of
its outputs (written by ``pipeline.record.manifest``) and the ``run --report`` summary.

The report is the run's summary for schedulers and dashboards: counts, failures with file,
stage and reason, per-step rates, wall time.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..media.atomic import atomic_write
from ..record.ledger import Ledger
from ..record.manifest import chain_hash, write_manifest
from ..record.results import Summary
from ..hashing import draw_seed
from ..stages.variants import chain_for, find_variants
from .build import Prepared


def write_outputs_manifest(p: Prepared, ledger: Ledger, fingerprint: dict[str, Any]) -> Path:
    """``output/manifest.jsonl`` (and ``.csv`` where the job asks) for what is committed;
    with a ``style_seed`` per output where its chain draws a style per image."""
    return write_manifest(p.job.output, p.job.path.parent, p.plan.units, ledger,
                          chain_hashes(p, fingerprint), csv_too=p.job.manifest.csv,
                          draws=style_draws(p))


def style_draws(p: Prepared):
    """``(variant, key) -> the seed of that image's style draw`` where a chain holds a
    ``style_augment`` in reach of the output's own key (no variants, in a branch, or after
    ``variants``); None if no chain does."""
    middle = list(p.stages[1:-1])
    fan = find_variants(middle)
    seeds: dict[str | None, int] = {}
    for variant in p.job.variants or (None,):
        reach = middle if fan is None else \
            [*fan.branches[variant], *middle[middle.index(fan) + 1:]]
        drawing = [s for s in reach if s.name == "style_augment"]
        if drawing:
            seeds[variant] = drawing[0].params.seed
    if not seeds:
        return None
    return lambda variant, key: draw_seed(seeds[variant], key) if variant in seeds else None


def chain_hashes(p: Prepared, fingerprint: dict[str, Any]) -> dict[str | None, str]:
    """Each variant's chain hash (the stages before ``variants``, its branch, the ones after);
    without variants, the job's."""
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
