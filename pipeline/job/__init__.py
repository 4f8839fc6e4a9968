"""The job: read, check and plan.

A job file becomes a ``Job`` (``config.py``: typed, every mistake located at file:line),
then a ``Prepared`` run (``build.py``: the stages built, the device chosen) and a
``Plan`` of keyed units (``plan.py``, with ``safety.py`` refusing outputs that would land
on a source or outside the output folder); ``estimate.py`` times a sample on the device and
``report.py`` says what a finished run made.

May import: ``record``, ``sources``, ``stages``, ``models``, ``machine``, ``ops``,
``media`` and the bottom modules (``errors``, ``hashing``, ``typed_yaml``); never the
engine, the backends or the command line.
"""
