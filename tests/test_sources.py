"""Sources as plug-ins: a new kind is one class and its registration; the job parser, the
planner, the engine and the CLI take it without an edit."""
from __future__ import annotations

from pathlib import Path, PurePath

import numpy as np
import pytest
from PIL import Image

from pipeline.sources import registry
from pipeline.media.images import read_image
from pipeline.sources import Source, get_source, register_source, source_keys
from tests.conftest import make_photos, run_cli_here, write_job


class ListedImages(Source):
    """``- listed: files.txt``: the images named in a text file, one path per line."""

    key = "listed"
    way = "image"
    extensions = frozenset({".png"})

    def root(self) -> Path:
        return self.spec.path.parent

    def find(self, exclude: Path) -> list[tuple[Path, PurePath]]:
        names = self.spec.path.read_text().split()
        return [(self.root() / name, PurePath(name)) for name in names]

    def read(self, path: Path) -> np.ndarray:
        return 255 - read_image(path)  # a reader of its own: outputs show it was used


@pytest.fixture
def listed():
    register_source(ListedImages)
    try:
        yield ListedImages
    finally:
        registry._SOURCES.pop("listed")


def test_a_new_source_kind_runs_without_touching_anything_else(tmp_path: Path, listed) -> None:
    photos = make_photos(tmp_path / "photos", 3)
    (tmp_path / "files.txt").write_text("photos/img000.png\nphotos/img002.png\n")
    job = write_job(tmp_path, """
        sources:
          - listed: files.txt
        output: out
        stages:
          - decode
          - encode: {image: {format: png}}
        """)
    result = run_cli_here(str(job))
    assert result.returncode == 0, result.stderr
    assert "done 2" in result.stderr
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert written == ["photos/img000.png", "photos/img002.png"]
    np.testing.assert_array_equal(read_image(tmp_path / "out" / "photos" / "img002.png"),
                                  255 - read_image(photos[2]))


def test_the_registry_refuses_duplicates_and_names_the_known_kinds() -> None:
    assert source_keys()[:2] == ("images", "videos")
    with pytest.raises(ValueError, match="registered twice"):
        register_source(type("Again", (Source,), {"key": "images", "way": "image",
                                                   "extensions": frozenset()}))
    with pytest.raises(ValueError, match="way must be"):
        register_source(type("Odd", (Source,), {"key": "odd", "way": "audio",
                                                 "extensions": frozenset()}))
    with pytest.raises(KeyError, match="known: generate, images, shards, videos"):
        get_source("tarballs")


def test_an_unknown_source_key_is_a_located_job_error(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    job = write_job(tmp_path, """
        sources:
          - imges: a.png
        output: out
        stages: [decode, encode]
        """)
    result = run_cli_here("validate", str(job))
    assert result.returncode == 2
    assert "job.yaml:2:" in result.stderr and "unknown key 'imges'" in result.stderr
    assert "did you mean 'images'" in result.stderr
