"""The job file: the documented shape parses; every mistake is located and explained."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import load_job
from pipeline.errors import JobError
from tests.conftest import write_job

FULL = """
name: portraits            # optional, defaults to the file's stem
sources:
  - images: photos/        # a file, a folder (recursive) or a glob
output: out/portraits
device: auto
precision: auto
batch_size: auto
stages:
  - decode
  - resize: {short_side: 512}
  - tv_denoise: {weight: 0.05}
  - encode: {image: {format: png}}
"""


def test_documented_shape_parses_into_frozen_dataclasses(tmp_path: Path) -> None:
    job = load_job(write_job(tmp_path, FULL))
    assert job.name == "portraits"
    assert job.output == (tmp_path / "out/portraits").resolve()
    assert job.sources[0].path == tmp_path / "photos/"
    assert [s.name for s in job.stages] == ["decode", "resize", "tv_denoise", "encode"]
    assert job.stages[1].params.short_side == 512 and job.stages[1].params.multiple_of == 4
    assert job.stages[3].params.image.format == "png"
    assert job.batch_size is None and job.device == "auto" and job.precision == "auto"
    with pytest.raises(AttributeError):
        job.stages[1].params.short_side = 3  # frozen


def test_name_defaults_to_stem_and_io_stages_are_added(tmp_path: Path) -> None:
    job = load_job(write_job(tmp_path, """
        sources: [{images: a.png}]
        output: out
        batch_size: 3
        stages: [{tv_denoise: {weight: 0.1}}]
        """, name="my_job.yaml"))
    assert job.name == "my_job" and job.batch_size == 3
    assert [s.name for s in job.stages] == ["decode", "tv_denoise", "encode"]


def _error(tmp_path: Path, body: str) -> str:
    with pytest.raises(JobError) as info:
        load_job(write_job(tmp_path, body))
    return str(info.value)


def test_unknown_stage_key_has_location_stage_and_suggestion(tmp_path: Path) -> None:
    msg = _error(tmp_path, """
        sources: [{images: a.png}]
        output: out
        stages:
          - decode
          - resize: {short_sid: 512}
        """)
    assert f"{tmp_path / 'job.yaml'}:5:14:" in msg
    assert "stages[1] (resize)" in msg
    assert "unknown key 'short_sid'" in msg and "did you mean 'short_side'?" in msg
    assert "valid keys: short_side, long_side" in msg


def test_misspelled_stage_lists_known_stages(tmp_path: Path) -> None:
    msg = _error(tmp_path, """
        sources: [{images: a.png}]
        output: out
        stages:
          - decode
          - fast_stlye: {weights: x.pth}
        """)
    assert ":5:5:" in msg and "unknown stage 'fast_stlye'" in msg
    assert "did you mean 'fast_style'?" in msg and "known stages:" in msg and "cyclegan" in msg


def test_wrong_type_says_what_was_expected(tmp_path: Path) -> None:
    msg = _error(tmp_path, """
        sources: [{images: a.png}]
        output: out
        stages:
          - resize: {short_side: big}
        """)
    assert ":4:26:" in msg and "stages[0] (resize).short_side" in msg
    assert "expected an integer or nothing" not in msg  # None is optional, not advertised
    assert "expected an integer, got 'big' (a string)" in msg


def test_bad_literal_and_nested_key(tmp_path: Path) -> None:
    msg = _error(tmp_path, """
        sources: [{images: a.png}]
        output: out
        stages:
          - encode: {image: {format: jpeg}}
        """)
    assert "stages[0] (encode).image.format" in msg
    assert "expected one of same, png, jpg, webp, bmp, tiff" in msg and "did you mean 'jpg'?" in msg


def test_semantic_errors_point_at_the_field(tmp_path: Path) -> None:
    msg = _error(tmp_path, """
        sources: [{images: a.png}]
        output: out
        stages:
          - resize: {short_side: 10, long_side: 20}
        """)
    assert "exactly one of short_side, long_side" in msg and ":4:13:" in msg
    msg = _error(tmp_path, """
        sources: [{images: a.png}]
        output: out
        stages:
          - encode: {image: {format: jpg, quality: 150}}
        """)
    assert "quality must be between 1 and 100" in msg and ":4:35:" in msg


@pytest.mark.parametrize("body, expected", [
    ("sources: [{images: a.png}]\noutput: out\nstages: [decode]\nbatchsize: 4\n",
     ["4:1", "unknown key 'batchsize'", "did you mean 'batch_size'?"]),
    ("sources: [{images: a.png}]\nstages: [decode]\n", ["missing required key 'output'"]),
    ("sources: [{images: a.png}]\noutput: out\nstages: [decode]\ndevice: gpu\n",
     ["4:9", "device", "'gpu' (a string) is not valid; expected auto, cpu, cuda or cuda:N"]),
    ("sources: [{images: a.png}]\noutput: out\nstages: [decode]\nprecision: half\n",
     ["precision", "expected one of auto, fp32, fp16, bf16"]),
    ("sources: [{images: a.png}]\noutput: out\nstages: [decode]\nbatch_size: 0\n",
     ["batch_size", "expected 'auto' or a positive integer"]),
    ("sources: [{image: a.png}]\noutput: out\nstages: [decode]\n",
     ["sources[0]", "unknown key 'image'", "did you mean 'images'?"]),
    ("sources: [{images: a.png}]\noutput: out\nstages: [decode]\noutput: again\n",
     ["4:1", "duplicate key 'output'"]),
    ("sources: [{images: a.png}]\noutput: out\nstages: [decode, {resize: {scale: 2}}, decode]\n",
     ["decode must be the first stage"]),
    ("sources: [{images: a.png}\noutput: out\n", ["invalid YAML"]),
    ("", ["the job file is empty"]),
])
def test_top_level_errors(tmp_path: Path, body: str, expected: list[str]) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(body)
    with pytest.raises(JobError) as info:
        load_job(path)
    for part in expected:
        assert part in str(info.value)
    assert str(path) in str(info.value)


def test_missing_job_file(tmp_path: Path) -> None:
    with pytest.raises(JobError, match="does not exist"):
        load_job(tmp_path / "nope.yaml")
