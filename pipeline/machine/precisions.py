"""The precisions a job, a trainer or a command accepts: one list, importable without torch
(``--help`` must not load it).  ``auto`` is resolved per device (``context.resolve_precision``)."""
from __future__ import annotations

from enum import Enum

PRECISIONS = ("auto", "fp32", "fp16", "bf16")

Precision = Enum("Precision", {name: name for name in PRECISIONS}, type=str)  # for typer options
