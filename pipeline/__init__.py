"""Batch stylization pipeline for images and video.

Rooms by the flow of a run, top to bottom; a room imports only rooms below it
(``lint-imports`` checks the contract in pyproject.toml):

    cli.py, commands/   the command line: the only place that prints or exits
    backends/, train/   where a run's units go (this process or Ray); training loops
    engine/             scheduling: threads, bounded queues, batching, the ways units are done
    job/                read, check and plan a job file
    record/             what is done: ledger, commits, records, manifest
    sources/, stages/   one module per source kind / per stage, each registered
    models/             nn.Modules whose keys match users' checkpoints; the families table
    machine/            device, precision, threads, memory gate, batch sizes, progress, logs
    ops/                pure tensor kernels
    media/              PyAV, Pillow, tar shards, atomic writes
    errors.py, hashing.py, typed_yaml.py   the bottom
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

#: Modules that moved when the root was grouped into rooms (0.2) -> where they are now.
#: The old names keep working for one release, with a DeprecationWarning; 0.3 drops them.
MOVED = {
    "pipeline.build": "pipeline.job.build",
    "pipeline.config": "pipeline.job.config",
    "pipeline.plan": "pipeline.job.plan",
    "pipeline.safety": "pipeline.job.safety",
    "pipeline.estimate": "pipeline.job.estimate",
    "pipeline.walk": "pipeline.sources.walk",
    "pipeline.ledger": "pipeline.record.ledger",
    "pipeline.commits": "pipeline.record.commits",
    "pipeline.records": "pipeline.record.records",
    "pipeline.keyset": "pipeline.record.keyset",
    "pipeline.manifest": "pipeline.record.manifest",
    "pipeline.atomic": "pipeline.media.atomic",
    "pipeline.context": "pipeline.machine.context",
    "pipeline.threads": "pipeline.machine.threads",
    "pipeline.memory": "pipeline.machine.memory",
    "pipeline.batching": "pipeline.machine.batching",
    "pipeline.precisions": "pipeline.machine.precisions",
    "pipeline.progress": "pipeline.machine.progress",
    "pipeline.logs": "pipeline.machine.logs",
    "pipeline.stylize_still": "pipeline.stages.gatys_optimize",
    "pipeline.contact_sheet": "pipeline.commands.contact_sheet",
    "pipeline.train.losses": "pipeline.ops.losses",
    "pipeline.engine.device": "pipeline.machine.device",
    "pipeline.engine.results": "pipeline.record.results",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``import pipeline.ledger`` -> the module ``pipeline.record.ledger`` itself (one module
    object under two names: state and ``isinstance`` agree), with a warning naming the new path."""

    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec):
        warnings.warn(f"{spec.name} has moved to {MOVED[spec.name]}; the old name goes in 0.3",
                      DeprecationWarning, stacklevel=2)
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module) -> None:
        pass  # already executed under its new name


if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
    sys.meta_path.append(_MovedModules())
