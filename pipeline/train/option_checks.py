"""Checks the trainers' option dataclasses share (``__post_init__``), one message each."""
from __future__ import annotations

import math
from pathlib import Path

from ..machine.context import DTYPE_NAMES


def positive_ints(opts: object, *names: str) -> None:
    for name in names:
        value = getattr(opts, name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def non_negative_numbers(opts: object, *names: str) -> None:
    for name in names:
        value = getattr(opts, name)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def precision(value: str) -> None:
    if value not in ("auto", *DTYPE_NAMES):
        raise ValueError(f"precision must be auto, {', '.join(DTYPE_NAMES)}; got {value!r}")


def safetensors_out(out: Path) -> None:
    if out.suffix.lower() != ".safetensors":
        raise ValueError(f"out must end in .safetensors, got {out.name!r}")
