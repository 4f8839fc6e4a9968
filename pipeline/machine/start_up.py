"""Start-up's imports, kept out of the garbage collector's way.

Importing torch makes hundreds of thousands of objects; collecting while they come cost about
0.4 s of a 2.2 s start-up here, and every later full collection walked them all again.  So big
imports run with the collector off, and what they made is frozen (``gc.freeze``: never scanned
again; reference counting still frees it) before the collector is turned back on.  Used by the
command line's own imports (``pipeline.cli.entry``), by the stage registry, which imports a
stage's module (and with it, often, torch) when a job first names the stage, and wherever
torch is first needed (``import_torch``).
"""
from __future__ import annotations

import gc
import sys
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def collector_paused() -> Iterator[None]:
    """The collector off for the block, then what it made frozen; nested or already off: the
    outer block decides."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.freeze()
            gc.enable()


def import_torch():
    """torch, imported with the collector paused where this is its first import (a stage that
    computes, a device to resolve, a frame that meets the device), its pools sized to the run's
    thread budget if one was applied before it (``threads.torch_imported``): a run that never
    needs it never pays for it.  Cheap once it is loaded (the engine calls it per batch)."""
    torch = sys.modules.get("torch")
    if torch is None:
        with collector_paused():
            import torch
    from .threads import torch_imported

    torch_imported(torch)
    return torch
