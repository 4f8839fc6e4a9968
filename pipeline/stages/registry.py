"""The one stage registry: name -> Stage class, each stage's module imported when a job first
names it.

A job that only decodes and encodes never imports the modules of the stages that compute, and so
never imports torch: its start-up is PyAV's and ours, not torch's second (issue 30).  Adding a
stage is its module (which ``@register``s the class) and its line in ``MODULES``; a stage
registered twice, or under a name its line does not give, is refused at import.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..machine.start_up import collector_paused

if TYPE_CHECKING:
    from .base import Stage

#: stage name -> its module in ``pipeline.stages``, in the order the docs list them
MODULES: dict[str, str] = {
    "decode": "decode",
    "encode": "encode",
    "resize": "resize",
    "fast_style": "fast_style",
    "arbitrary_style": "arbitrary_style",
    "style_augment": "style_augment",
    "cyclegan": "cyclegan",
    "tv_denoise": "tv_denoise",
    "temporal_smooth": "temporal_smooth",
    "gatys": "gatys",
    "variants": "variants",
}

_STAGES: dict[str, type[Stage]] = {}


def register(cls: type[Stage]) -> type[Stage]:
    """Class decorator; a duplicate name, or one ``MODULES`` does not place in the class's own
    module, is a programming error."""
    if cls.name in _STAGES:
        raise ValueError(f"stage '{cls.name}' is registered twice "
                         f"({_STAGES[cls.name].__module__} and {cls.__module__})")
    where = MODULES.get(cls.name)
    if where is None or cls.__module__ != f"{__package__}.{where}":
        raise ValueError(f"stage '{cls.name}' ({cls.__module__}) needs its line in "
                         f"pipeline/stages/registry.py MODULES: \"{cls.name}\": "
                         f"\"{cls.__module__.rsplit('.', 1)[-1]}\"")
    _STAGES[cls.name] = cls
    return cls


def get_stage(name: str) -> type[Stage]:
    """The class of stage ``name``, its module imported the first time."""
    if name not in _STAGES:
        if name not in MODULES:
            raise KeyError(f"unknown stage '{name}'; known stages: {', '.join(sorted(MODULES))}")
        with collector_paused():  # the first stage that computes imports torch
            importlib.import_module(f"{__package__}.{MODULES[name]}")
        if name not in _STAGES:
            raise ValueError(f"pipeline/stages/{MODULES[name]}.py registers no stage '{name}'")
    return _STAGES[name]


def stage_names() -> list[str]:
    """Every stage's name, without importing any stage's module."""
    return list(MODULES)
