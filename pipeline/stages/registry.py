"""The one stage registry: name -> Stage class."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Stage

_STAGES: dict[str, type[Stage]] = {}


def register(cls: type[Stage]) -> type[Stage]:
    """Class decorator; a duplicate name is a programming error."""
    if cls.name in _STAGES:
        raise ValueError(f"stage '{cls.name}' is registered twice "
                         f"({_STAGES[cls.name].__module__} and {cls.__module__})")
    _STAGES[cls.name] = cls
    return cls


def get_stage(name: str) -> type[Stage]:
    try:
        return _STAGES[name]
    except KeyError:
        raise KeyError(f"unknown stage '{name}'; known stages: {', '.join(sorted(_STAGES))}") from None


def stage_names() -> list[str]:
    return list(_STAGES)
