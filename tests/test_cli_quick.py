"""The quick paths of the command line: --version, and --help without torch or PyAV."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO, run_cli_here

_PROBE = """
import sys
from pipeline.cli import main
try:
    main({args!r})
except SystemExit as exc:
    code = exc.code
heavy = sorted(m for m in ("torch", "av", "cv2") if m in sys.modules)
print("HEAVY", heavy, "CODE", code, file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["train", "cyclegan", "--help"],
                                  ["train", "style", "--help"], ["stylize-still", "--help"],
                                  ["stylize", "--help"],
                                  ["run", "--help"], ["validate", "--help"]])
def test_help_and_version_import_neither_torch_nor_pyav(args: list[str]) -> None:
    # A fresh interpreter: this test process has imported torch long ago.
    proc = subprocess.run([sys.executable, "-c", _PROBE.format(args=args)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert "HEAVY [] CODE 0" in proc.stderr, proc.stderr
    assert proc.stdout.strip()  # it did print the help or the version


def test_version_names_the_package() -> None:
    from importlib.metadata import version

    result = run_cli_here("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"stylize-pipeline {version('stylize-pipeline')}"


def test_log_levels_are_the_loggers() -> None:
    from pipeline.commands.run import LogLevel
    from pipeline.machine.logs import LEVELS

    assert tuple(level.value for level in LogLevel) == LEVELS
