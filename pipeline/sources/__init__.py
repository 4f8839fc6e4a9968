"""Source kinds, one module each, in one registry (like the stages): ``images``, ``videos``,
``shards``, ``generate``.

Adding a kind: a module here with a ``Source`` subclass under ``@register_source``
(``registry.py``), and its import below.  The job parser takes its key, the planner its
units and the engine reads them by its ``way``; nothing else changes.  ``walk.py`` finds
a folder's or a glob's files, safely.

May import: ``models``, ``machine``, ``ops``, ``media`` and the bottom modules; never a
stage, the job, the record or the engine.
"""
from __future__ import annotations

from .base import Source
from .registry import SOURCE_WAYS, get_source, register_source, source_keys

from . import images, videos, shards, generate  # noqa: E402,F401,I001  (the built-in kinds register)

__all__ = ["SOURCE_WAYS", "Source", "get_source", "register_source", "source_keys"]
