"""The house's layout: rooms that say what they own, small files, and the old module names
that still import for one release (``pipeline.MOVED``).  The layer rules themselves are
``lint-imports``' (pyproject.toml), which CI runs beside these tests."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pipeline

PIPELINE = Path(pipeline.__file__).parent
MAX_LINES = 450  # "files stay small": a file past 450 lines is missing a module


def test_every_room_says_what_it_owns() -> None:
    rooms = sorted(p.parent for p in PIPELINE.glob("*/__init__.py"))
    assert {r.name for r in rooms} >= {"job", "record", "machine", "engine", "sources", "stages"}
    for room in rooms:
        doc = ast.get_docstring(ast.parse((room / "__init__.py").read_text()))
        assert doc and len(doc) >= 60, f"pipeline/{room.name}/__init__.py has no docstring saying what it owns"


def test_no_module_is_over_the_size_limit() -> None:
    long = {str(p.relative_to(PIPELINE.parent)): n for p in PIPELINE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules (over {MAX_LINES} lines): {long}"


def test_the_root_holds_only_the_command_line_and_the_bottom_modules() -> None:
    root = {p.name for p in PIPELINE.glob("*.py")}
    assert root == {"__init__.py", "cli.py", "errors.py", "hashing.py", "typed_yaml.py"}


def test_old_module_names_still_import_with_a_warning() -> None:
    """In a fresh interpreter (here, another test may have imported them already): each old
    name warns once, naming the new path, and is the very module object of the new name."""
    script = """
import importlib, json, sys, warnings
import pipeline
out = {}
for old, new in pipeline.MOVED.items():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    out[old] = {"same": module is importlib.import_module(new),
                "warnings": [str(w.message) for w in caught if w.category is DeprecationWarning]}
print(json.dumps(out))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, cwd=PIPELINE.parent)
    result = json.loads(done.stdout)
    assert set(result) == set(pipeline.MOVED) and len(result) >= 20
    for old, seen in result.items():
        assert seen["same"], old
        assert any(pipeline.MOVED[old] in w for w in seen["warnings"]), (old, seen["warnings"])
    # and a name that never existed is still an ImportError, not swallowed by the alias finder
    missing = subprocess.run([sys.executable, "-c", "import pipeline.no_such_module"],
                             capture_output=True, text=True, cwd=PIPELINE.parent)
    assert missing.returncode != 0 and "ModuleNotFoundError" in missing.stderr
