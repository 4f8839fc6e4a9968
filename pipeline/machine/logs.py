"""How loud FFmpeg is: its own log lines (``[matroska,webm @ 0x...] File ended prematurely``).

The pipeline reports every failure itself, in its own words, so FFmpeg's lines
are detail: off at the default ``warning`` and above, FFmpeg's warnings and
errors at ``info``, its verbose lines too at ``debug``.  When on they go
straight from FFmpeg to stderr (its own C callback), not through Python
``logging``: PyAV's Python callback must take the GIL inside FFmpeg's decoder
threads and deadlocks threaded decoding (seen on PyAV 18.1 with a truncated MKV).

``configure`` is called once by the CLI (``--log-level``); it also sets the
level of the ``stylize`` loggers.
"""
from __future__ import annotations

import logging

import av.logging

LOGGER = "stylize"
LEVELS = ("debug", "info", "warning", "error", "critical")
# Our level -> FFmpeg's (absent: FFmpeg's lines are dropped, PyAV's default).
_FFMPEG_LEVEL = {"debug": av.logging.VERBOSE, "info": av.logging.WARNING}


def configure(level: str = "warning") -> None:
    """Set the ``stylize`` loggers' level and how much of FFmpeg's log reaches stderr.

    ``level``: debug, info, warning (the default: nothing from FFmpeg), error, critical.
    """
    name = level.lower()
    if name not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    logger = logging.getLogger(LOGGER)
    logger.setLevel(name.upper())
    if not logger.handlers:  # our lines to stderr, as "info: ..." (without one, only warnings show)
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    ffmpeg = _FFMPEG_LEVEL.get(name)
    if ffmpeg is None:
        av.logging.set_level(None)  # PyAV's no-op callback: nothing formatted, nothing printed
    else:
        av.logging.set_libav_level(ffmpeg)
        av.logging.restore_default_callback()  # FFmpeg prints to stderr itself, no GIL needed
