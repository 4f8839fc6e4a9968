"""The source kinds' registry: ``@register_source`` and the look-ups; a duplicate key is refused."""
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
