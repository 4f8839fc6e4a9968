"""Source kinds, one module each, in one registry (like the stages): ``images``, ``videos``,
``shards``, ``generate``.

Adding a kind: a module here with a ``Source`` subclass under ``@register_source``,
and its import below.  The job parser takes its key, the planner its units and
the engine reads them by its ``way``; nothing else changes.
"""
from __future__ import annotations

from .base import Source

_SOURCES: dict[str, type[Source]] = {}
# the engine's ways a source's units can take (``pipeline.engine.WAYS``; "file" is a sidecar's)
SOURCE_WAYS = ("image", "video", "shard")


def register_source(cls: type[Source]) -> type[Source]:
    """Class decorator; a duplicate key is a programming error."""
    if cls.key in _SOURCES:
        raise ValueError(f"source kind '{cls.key}' is registered twice "
                         f"({_SOURCES[cls.key].__module__} and {cls.__module__})")
    if cls.way not in SOURCE_WAYS:
        raise ValueError(f"source kind '{cls.key}': way must be one of {', '.join(SOURCE_WAYS)}, "
                         f"not {cls.way!r}")
    _SOURCES[cls.key] = cls
    return cls


def get_source(key: str) -> type[Source]:
    try:
        return _SOURCES[key]
    except KeyError:
        raise KeyError(f"unknown source kind '{key}'; known: {', '.join(sorted(_SOURCES))}") from None


def source_keys() -> tuple[str, ...]:
    return tuple(_SOURCES)


from . import images, videos, shards, generate  # noqa: E402,F401,I001  (the built-in kinds register)

__all__ = ["Source", "get_source", "register_source", "source_keys"]
