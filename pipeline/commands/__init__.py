"""The command line's commands, one module each (``run``, ``validate``, ``stylize``, ``sheet``,
``stylize-still``, ``train ...``), wired into the app in ``pipeline/cli.py``; with it, the only
modules that print or exit.

May import: every room below (backends, train, engine, job, ...), lazily inside the command
functions where a room pulls in torch or PyAV, so that ``--help`` stays quick.
"""
