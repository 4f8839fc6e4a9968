"""encode.image size: source and orientation: outputs at their source's size and orientation,
so that labels in pixel coordinates stay valid (dataset conversion)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.errors import JobError
from pipeline.media.images import image_header, read_image, unorient
from pipeline.ops.resize import resize_to
from pipeline.stages.encode import ImageEncodeParams
from pipeline.typed_yaml import ParamError
from tests.conftest import draw_tree, natural_image, run_cli_here, write_job

SIZES = {"a.png": (37, 23), "b.jpg": (64, 48), "deep/c.png": (20, 52)}  # width, height


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """Images of odd sizes, and a PNG stored 40x30 that a viewer shows turned (EXIF 6: 30x40)."""
    root = tmp_path_factory.mktemp("sizes")
    draw_tree(root / "data", SIZES)
    Image.fromarray(natural_image(30, 40, seed=9)).save(root / "data" / "turned.png", exif=_exif(6))
    return root


def _run(root: Path, name: str, image: str) -> Path:
    job = write_job(root, f"""
        sources: [{{images: data/}}]
        output: {name}
        stages:
          - decode
          - resize: {{short_side: 16}}
          - tv_denoise: {{weight: 0.05}}
          - encode: {{image: {image}}}
        """, name=f"{name}.yaml")
    result = run_cli_here("run", str(job))
    assert result.returncode == 0, result.stderr
    return root / name


def test_size_source_writes_every_image_at_its_sources_size_and_orientation(tree: Path) -> None:
    out = _run(tree, "kept", "{format: png, size: source}")
    for name, (w, h) in SIZES.items():
        written = Image.open((out / name).with_suffix(".png"))
        assert written.size == (w, h), name  # the model saw a 16-px short side
    turned = Image.open(out / "turned.png")
    assert turned.size == (40, 30)  # as stored, not as shown
    assert turned.getexif().get(0x0112) == 6  # and tagged, so a viewer shows it as the source
    assert image_header(out / "turned.png") == image_header(tree / "data" / "turned.png")
    # the stages' output, upright, at the upright source size: the same pixels, turned back
    upright = _run(tree, "upright", "{format: png, size: source, orientation: apply}")
    assert Image.open(upright / "turned.png").size == (30, 40)
    assert not Image.open(upright / "turned.png").getexif()
    assert np.array_equal(read_image(out / "turned.png"), read_image(upright / "turned.png"))


def test_by_default_outputs_keep_the_stages_size_upright(tree: Path) -> None:
    out = _run(tree, "plain", "{format: png}")
    # short side 16, the other a multiple of 4: as the stages made it
    assert Image.open(out / "a.png").size == (24, 16)
    turned = Image.open(out / "turned.png")
    assert turned.size == (16, 20) and not turned.getexif()  # upright, no tag: as before
    kept = _run(tree, "kept_small", "{format: png, orientation: keep}")
    assert Image.open(kept / "turned.png").size == (20, 16)  # stored orientation, stages' size
    assert np.array_equal(read_image(kept / "turned.png"), read_image(out / "turned.png"))


def test_resizing_back_and_turning_back_are_exact_where_they_should_be() -> None:
    image = natural_image(30, 40, seed=3)
    assert resize_to(image, 40, 30) is image  # nothing to do
    small, big = resize_to(image, 13, 10), resize_to(image, 81, 59)
    assert small.shape == (10, 13, 3) and big.shape == (59, 81, 3) and big.dtype == np.uint8
    alpha = np.dstack([image, np.full((30, 40), 200, np.uint8)])
    assert resize_to(alpha, 17, 11).shape == (11, 17, 4)
    from pipeline.media.images import _orient
    for orientation in range(1, 9):
        assert np.array_equal(unorient(_orient(image, orientation), orientation), image)


def test_a_bmp_cannot_keep_an_orientation_and_bad_values_name_the_field(tree: Path) -> None:
    with pytest.raises(ParamError) as info:
        ImageEncodeParams(format="bmp", size="source")
    assert info.value.field_name == "orientation"
    assert not ImageEncodeParams(format="bmp", size="source", orientation="apply").keeps_orientation
    job = write_job(tree, """
        sources: [{images: data/}]
        output: bad
        stages: [decode, {encode: {image: {size: model}}}]
        """, name="bad.yaml")
    from pipeline.job.config import load_job
    with pytest.raises(JobError, match="size"):
        load_job(job)
