"""What the repo ships: every job validates, and the shipped weights load with their provenance."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from safetensors import safe_open

from pipeline.models.checkpoints import load_adain_decoder, load_fast_style, load_generator
from tests.conftest import REPO, run_cli

JOBS = sorted((REPO / "jobs").glob("*.yaml"))
WEIGHTS = sorted((REPO / "weights").glob("*.safetensors"))


@pytest.fixture(scope="module")
def jobs_copy(tmp_path_factory) -> Path:
    """The jobs folder as a fresh clone has it (the job files copied: paths resolve from a job
    file's real folder; links to the rest), with what the README says to draw first (the
    augment example's tree, the style_augment example's paintings) drawn, and the weights
    beside it."""
    root = tmp_path_factory.mktemp("shipped")
    (root / "jobs").mkdir()
    for entry in (REPO / "jobs").iterdir():
        if entry.suffix == ".yaml":
            (root / "jobs" / entry.name).write_text(entry.read_text())
        elif entry.name not in ("augment_data", "augment_paintings"):  # drawn below
            (root / "jobs" / entry.name).symlink_to(entry)
    (root / "weights").symlink_to(REPO / "weights")
    for script, *args in (("make_augment_dataset.py", "augment_data"),
                          ("make_procedural_styles.py", "augment_paintings", "--count", "4",
                           "--size", "96")):
        drawn = subprocess.run([sys.executable, str(REPO / "scripts" / script),
                                str(root / "jobs" / args[0]), *args[1:]], capture_output=True, text=True)
        assert drawn.returncode == 0, drawn.stderr
    return root / "jobs"


@pytest.mark.parametrize("job", JOBS, ids=[j.stem for j in JOBS])
def test_shipped_job_validates(job: Path, jobs_copy: Path) -> None:
    result = run_cli("validate", str(jobs_copy / job.name))
    assert result.returncode == 0, result.stderr
    assert "units" in result.stdout and "units     0" not in result.stdout


@pytest.mark.parametrize("weights", WEIGHTS, ids=[w.stem for w in WEIGHTS])
def test_shipped_weights_load_and_say_how_they_were_made(weights: Path) -> None:
    assert len(WEIGHTS) >= 2
    with safe_open(str(weights), "pt") as f:
        meta = f.metadata()
    if meta.get("family") == "adain_decoder":  # any painting is its style
        assert load_adain_decoder(weights).size_multiple == 8
        keys = ("architecture", "encoder", "style_images", "content_images", "steps",
                "content_weight", "style_weight")
    elif meta.get("family") in ("dcgan", "gan_mlp"):  # a generator from noise: a source
        net = load_generator(weights)
        assert f"{'x'.join(map(str, net.arch.image_shape))}" == meta["image_shape"]
        keys = ("architecture", "latent_dim", "image_shape", "images_folder", "images", "steps",
                "seed", "data")
    else:
        assert load_fast_style(weights).size_multiple == 4
        keys = ("architecture", "style_image", "style_sha256", "steps", "content_weight",
                "style_weight")
    for key in keys:
        assert meta.get(key), key
    assert (REPO / "weights" / f"{weights.stem}_contact_sheet.png").is_file()
    assert (REPO / "weights" / f"{weights.stem}_losses.csv").is_file()


def test_sheet_runs_with_its_defaults_on_the_shipped_weights(tmp_path) -> None:
    """``sheet photo.png`` as the README shows it: every shipped style model, the generator
    from noise named and left out (it makes images, it does not paint one)."""
    from PIL import Image

    from pipeline.media.images import read_image
    from tests.conftest import natural_image, run_cli_here

    photo, out = tmp_path / "photo.png", tmp_path / "sheet.png"
    Image.fromarray(natural_image(40, 48, 1)).save(photo)
    done = run_cli_here("sheet", str(photo), "--size", "32", "-o", str(out), "--device", "cpu")
    assert done.returncode == 0, done.stderr
    assert "landscapes_dcgan.safetensors left out" in done.stderr
    assert read_image(out).shape[0] > 4 * 32  # a row per style at least
    # each tile says what it is, the style named from the file's metadata
    assert "four_styles: The Scream, strength 1" in done.stderr
    assert "four_styles: even blend of 4, strength 1" in done.stderr
    assert "starry_night_light: Starry Night, strength 1" in done.stderr
