"""The machine a run is on: sizing the work to it and showing how it goes.

``context.py`` (the device, precision and seed every stage receives), ``precisions.py``,
``device.py`` (frames to and from the device), ``threads.py`` (the thread budget and the
load follower), ``memory.py`` (the gate that refuses what will not fit, before decoding),
``batching.py`` (batch sizes and out-of-memory back-off), ``progress.py`` (bars, log
lines, JSON progress) and ``logs.py`` (FFmpeg's log level).

May import: ``ops``, ``media`` and the bottom modules (``errors``, ``hashing``,
``typed_yaml``); nothing above (no stage, model, source, job or engine).
"""
