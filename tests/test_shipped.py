"""What the repo ships: every job validates, and the shipped weights load with their provenance."""
from __future__ import annotations

from pathlib import Path

import pytest
from safetensors import safe_open

from pipeline.models.checkpoints import load_fast_style
from tests.conftest import REPO, run_cli

JOBS = sorted((REPO / "jobs").glob("*.yaml"))
WEIGHTS = sorted((REPO / "weights").glob("*.safetensors"))


@pytest.mark.parametrize("job", JOBS, ids=[j.stem for j in JOBS])
def test_shipped_job_validates(job: Path) -> None:
    result = run_cli("validate", str(job))
    assert result.returncode == 0, result.stderr
    assert "units" in result.stdout and "units     0" not in result.stdout


@pytest.mark.parametrize("weights", WEIGHTS, ids=[w.stem for w in WEIGHTS])
def test_shipped_weights_load_and_say_how_they_were_made(weights: Path) -> None:
    assert len(WEIGHTS) >= 2
    net = load_fast_style(weights)
    assert net.size_multiple == 4
    with safe_open(str(weights), "pt") as f:
        meta = f.metadata()
    for key in ("architecture", "style_image", "style_sha256", "steps", "content_weight", "style_weight"):
        assert meta.get(key), key
    assert (REPO / "weights" / f"{weights.stem}_contact_sheet.png").is_file()
    assert (REPO / "weights" / f"{weights.stem}_losses.csv").is_file()
