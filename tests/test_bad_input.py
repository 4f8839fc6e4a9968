"""Bad input through the real CLI: each gets the documented exit code and message.

Bad sources are recorded, skipped and summarised (exit 1, the rest done);
a bad job (YAML, weights, missing source path) is refused before any work (exit 2).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pipeline.record.manifest import MANIFEST
from pipeline.models.cyclegan import ResnetGenerator
from tests.conftest import make_photos, natural_image, run_cli_here, write_job


def _style_job(tmp_path: Path, weights: Path | str, sources: str = "- images: photos/") -> Path:
    return write_job(tmp_path, f"""
        sources:
          {sources}
        output: out
        stages:
          - decode
          - fast_style: {{weights: {weights}}}
          - encode: {{image: {{format: png}}}}
        """)


def test_bad_files_are_skipped_reported_and_the_rest_finish(tmp_path: Path, style_weights: Path) -> None:
    photos = tmp_path / "photos"
    make_photos(photos, 3)
    (photos / "empty.jpg").write_bytes(b"")
    (photos / "text.jpg").write_text("this is not a picture\n")
    good_png = io.BytesIO()
    Image.fromarray(natural_image(40, 40, seed=9)).save(good_png, format="PNG")
    (photos / "truncated.png").write_bytes(good_png.getvalue()[: len(good_png.getvalue()) // 2])
    # 16-bit and CMYK are not errors: they are converted to 8-bit RGB.
    Image.fromarray((np.arange(24 * 32, dtype=np.uint16).reshape(24, 32) * 80)).save(photos / "deep16.png")
    Image.fromarray(natural_image(24, 32, seed=4)).convert("CMYK").save(photos / "print.jpg")
    before = {p.name: p.read_bytes() for p in photos.iterdir()}

    result = run_cli_here(str(_style_job(tmp_path, style_weights)))
    assert result.returncode == 1, result.stderr
    assert "done 5, skipped 0 (already done), failed 3" in result.stderr
    assert f"{photos / 'empty.jpg'} [decode]: empty file (0 bytes)" in result.stderr
    assert f"{photos / 'text.jpg'} [decode]:" in result.stderr
    assert f"{photos / 'truncated.png'} [decode]:" in result.stderr
    outputs = sorted(p.name for p in (tmp_path / "out").iterdir()
                     if not p.name.startswith(".") and p.name != MANIFEST)
    assert outputs == ["deep16.png", "img000.png", "img001.png", "img002.png", "print.png"]
    assert Image.open(tmp_path / "out" / "deep16.png").mode == "RGB"
    assert {p.name: p.read_bytes() for p in photos.iterdir()} == before
    # Failed sources are tried again on the next run; done ones are not.
    again = run_cli_here(str(_style_job(tmp_path, style_weights)))
    assert again.returncode == 1 and "done 0, skipped 5 (already done), failed 3" in again.stderr


def test_folder_with_no_images_is_a_failed_source(tmp_path: Path, style_weights: Path) -> None:
    make_photos(tmp_path / "photos", 2)
    (tmp_path / "empty_folder").mkdir()
    (tmp_path / "empty_folder" / "readme.txt").write_text("nothing here")
    job = _style_job(tmp_path, style_weights, "- images: photos/\n          - images: empty_folder/")
    result = run_cli_here(str(job))
    assert result.returncode == 1
    assert "done 2" in result.stderr and "failed 1" in result.stderr
    assert "no images found in 'empty_folder/'" in result.stderr and f"{job}:3:" in result.stderr


def test_missing_source_path_is_an_invalid_job(tmp_path: Path, style_weights: Path) -> None:
    job = _style_job(tmp_path, style_weights, "- images: no_such_folder/")
    result = run_cli_here(str(job))
    assert result.returncode == 2
    assert f"{job}:2:5:" in result.stderr and "source 'no_such_folder/' does not exist" in result.stderr


def test_missing_weights_file(tmp_path: Path) -> None:
    make_photos(tmp_path / "photos", 1)
    job = _style_job(tmp_path, "weights/nope.pth")
    for command in ([str(job)], ["validate", str(job)]):
        result = run_cli_here(*command)
        assert result.returncode == 2
        assert f"{job}:6:5: stages[1] (fast_style):" in result.stderr
        assert "nope.pth" in result.stderr and not (tmp_path / "out").exists()


def test_weights_of_the_wrong_family(tmp_path: Path) -> None:
    make_photos(tmp_path / "photos", 1)
    gen = tmp_path / "latest_net_G_A.pth"
    torch.save(ResnetGenerator(ngf=8, n_blocks=6).state_dict(), gen)
    result = run_cli_here(str(_style_job(tmp_path, gen)))
    assert result.returncode == 2
    assert "latest_net_G_A.pth" in result.stderr and "CycleGAN" in result.stderr
    assert "stages[1] (fast_style)" in result.stderr


def test_yaml_mistakes_exit_2_with_location(tmp_path: Path, style_weights: Path) -> None:
    make_photos(tmp_path / "photos", 1)
    cases = {
        "unknown key": ("  - encode: {image: {format: png}}", "  - encode: {image: {fromat: png}}",
                        ["unknown key 'fromat'", "did you mean 'format'?"]),
        "wrong type": ("  - decode", "  - resize: {short_side: [1, 2]}",
                       ["stages[0] (resize).short_side", "expected an integer, got a list"]),
        "misspelled stage": ("  - decode", "  - decoed", ["unknown stage 'decoed'", "did you mean 'decode'?"]),
    }
    for name, (old, new, expected) in cases.items():
        job = _style_job(tmp_path, style_weights)
        job.write_text(job.read_text().replace(old, new))
        for command in ([str(job)], ["validate", str(job)]):
            result = run_cli_here(*command)
            assert result.returncode == 2, (name, result.stderr)
            assert f"{job}:" in result.stderr, name
            for part in expected:
                assert part in result.stderr, (name, part, result.stderr)


def test_validate_prints_the_plan(tmp_path: Path, style_weights: Path) -> None:
    make_photos(tmp_path / "photos", 3)
    result = run_cli_here("validate", str(_style_job(tmp_path, style_weights)))
    assert result.returncode == 0, result.stderr
    for part in ("device    cpu", "precision fp32", "(3 files)", "decode -> fast_style(", "-> encode", "units     3"):
        assert part in result.stdout
    assert not (tmp_path / "out").exists()
