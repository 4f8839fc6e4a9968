"""Source kinds, one module each, in one registry (like the stages): ``images``, ``videos``.

Adding a kind: a module here with a ``Source`` subclass under ``@register_source``,
and its import below.  The job parser takes its key, the planner its units and
the engine reads them by its ``way``; nothing else changes.
"""
from __future__ import annotations

from .base import Source

_SOURCES: dict[str, type[Source]] = {}


def register_source(cls: type[Source]) -> type[Source]:
    """Class decorator; a duplicate key is a programming error."""
    if cls.key in _SOURCES:
        raise ValueError(f"source kind '{cls.key}' is registered twice "
                         f"({_SOURCES[cls.key].__module__} and {cls.__module__})")
    if cls.way not in ("image", "video"):
        raise ValueError(f"source kind '{cls.key}': way must be 'image' or 'video', not {cls.way!r}")
    _SOURCES[cls.key] = cls
    return cls


def get_source(key: str) -> type[Source]:
    try:
        return _SOURCES[key]
    except KeyError:
        raise KeyError(f"unknown source kind '{key}'; known: {', '.join(sorted(_SOURCES))}") from None


def source_keys() -> tuple[str, ...]:
    return tuple(_SOURCES)


from . import images, videos  # noqa: E402,F401  (the built-in kinds register themselves)

__all__ = ["Source", "get_source", "register_source", "source_keys"]
