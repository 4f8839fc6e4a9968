"""Timing whole processes: what a user's command costs, start-up and every thread included.

``child(argv)`` runs one command and returns its wall time (this process's clock around it)
and its CPU time from its own accounting (``os.wait4``'s rusage: user + system of the child
and all its threads), so that nothing this process or an earlier child ran is counted.
Benchmarks that compare the pipeline with a yardstick run each side this way, one after the
other in turn, and report medians.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time


def user_env(**extra: str) -> dict[str, str]:
    """This environment as a user's shell has it: Python writes and reads its bytecode caches.
    (This sandbox sets PYTHONDONTWRITEBYTECODE, so every start compiled our 80-odd modules
    from source again, 0.1 to 0.15 s; an installed package, the peer's and torch's, was
    compiled by pip when installed.)  The first run of a command writes them: run it once
    untimed (``warm``)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, **extra}


def warm(*argvs: list[str], env: dict[str, str] | None = None) -> list[float]:
    """Run each command once before the timed runs: bytecode caches written, files in the page
    cache (and, for ours, the network exported for ONNX Runtime).  Their wall times."""
    return [child(argv, env)[0] for argv in argvs]


def child(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(wall s, CPU s, stdout) of one child process (in ``user_env`` unless ``env``); exits
    naming it if it fails."""
    env = user_env() if env is None else env
    with tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        out = proc.stdout.read()  # until the child closes it; stderr goes to a file (no deadlock)
        _, status, usage = os.wait4(proc.pid, 0)  # reaped here, not by Popen: its rusage is ours
        wall = time.perf_counter() - start
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        proc.stdout.close()
        if code != 0:
            err.seek(0)
            sys.exit(f"{' '.join(map(str, argv))} failed ({code}):\n{err.read()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, out


def medians(rows: list[tuple[float, float]]) -> tuple[float, float]:
    """The median wall and the median CPU of (wall, CPU) rows."""
    return statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows)
