"""Every command in the README's code blocks runs as written (issue 29: a new user's first hour).

The commands are read from README.md itself, so a changed or added example is run too.  They
run in a copy of the repo's jobs, scripts and run_pipeline.py (the weights linked), so their
outputs land in a temporary folder, with small stand-ins for the user's own files the README
names (photo.jpg, painting.jpg, photos/, holiday.mp4).  Not run here: the install lines (CI
runs them), the test, layer and docs lines (CI runs them too), and the lines that show a command's generic form
(JOB.yaml) or need what a test machine lacks (--ray auto: a running cluster; nohup: the same
run in the background).  The film job runs as written in tests/test_validate.py (beside its
estimate), which takes it 16 s; here only its ``validate`` line runs.
"""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image

from clips import make_clip
from tests.conftest import REPO, natural_image

SKIP = ("pip install", "python -m pytest", "lint-imports", "mkdocs build", "nohup ", "JOB.yaml", "--ray ")
COVERED_ELSEWHERE = ("python run_pipeline.py jobs/film_vangogh.yaml",)  # tests/test_validate.py


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    lines = [line for block in re.findall(r"```bash\n(.*?)```", text, re.S) for line in block.splitlines()]
    commands = [line.split("  #")[0].strip() for line in lines if line.strip() and not line.startswith("#")]
    return [part.strip() for command in commands for part in command.split("&&")]  # chained: each


def test_the_readme_commands_run_as_written(tmp_path: Path) -> None:
    commands = readme_commands()
    assert any("stylize" in c for c in commands) and any("jobs/demo.yaml" in c for c in commands)
    for name in ("jobs", "scripts"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("augment_data"))
    shutil.copy(REPO / "run_pipeline.py", tmp_path)
    (tmp_path / "weights").symlink_to(REPO / "weights")
    Image.fromarray(natural_image(48, 64, seed=1)).save(tmp_path / "photo.jpg")
    Image.fromarray(natural_image(40, 40, seed=2)).save(tmp_path / "painting.jpg")
    (tmp_path / "photos").mkdir()
    Image.fromarray(natural_image(32, 48, seed=3)).save(tmp_path / "photos" / "a.jpg")
    make_clip(tmp_path / "holiday.mp4", frames=4, size=(48, 32))
    ran = []
    for command in commands:
        if any(s in command for s in SKIP) or command in COVERED_ELSEWHERE:
            continue
        argv = shlex.split(command)
        assert argv[0] == "python", command
        done = subprocess.run([sys.executable, *argv[1:]], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        ran.append(command)
    assert len(ran) >= 7, ran
    assert (tmp_path / "out" / "demo").is_dir() and (tmp_path / "out" / "augment" / "manifest.jsonl").is_file()
    assert list((tmp_path / "out" / "photo").glob("*.png")) or list((tmp_path / "out" / "photo").glob("*.jpg"))
    assert (tmp_path / "out" / "scream" / "holiday.mp4").is_file()
