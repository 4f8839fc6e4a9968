"""``stylize``: the quick path writes the job a user would write and runs it as ``run`` does."""
from __future__ import annotations

from pathlib import Path

import torch

from pipeline.record.manifest import MANIFEST
from pipeline.models.cyclegan import ResnetGenerator
from tests.conftest import make_photos, run_cli_here, write_job


def _outputs(folder: Path) -> dict[str, bytes]:
    """Every output file, by path under ``folder`` (the ledger and job are hidden; the manifest
    names the sources as each job gave them)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith(".") and p.name != MANIFEST}


def _job(tmp_path: Path, source: str, output: str, stage: str, weights: Path, size: str = "",
         device: str = "auto") -> Path:
    resize = f"\n          - resize: {{short_side: {size}}}" if size else ""
    return write_job(tmp_path, f"""
        sources:
          - images: {source}
        output: {output}
        device: {device}
        stages:
          - decode{resize}
          - {stage}: {{weights: {weights}}}
          - encode
        """, name=f"job_{output}.yaml")


def test_folder_gives_the_bytes_of_the_equivalent_job(tmp_path: Path, style_weights: Path) -> None:
    make_photos(tmp_path / "photos", 4, subdirs=2, ext="jpg")
    quick = run_cli_here("stylize", str(tmp_path / "photos"), "--weights", str(style_weights),
                         "-o", str(tmp_path / "quick"), "--size", "16", "--device", "cpu", "-q")
    assert quick.returncode == 0, quick.stderr
    job = _job(tmp_path, "photos/", "by_job", "fast_style", style_weights, size="16", device="cpu")
    by_job = run_cli_here(str(job), "-q")
    assert by_job.returncode == 0, by_job.stderr
    got, want = _outputs(tmp_path / "quick"), _outputs(tmp_path / "by_job")
    assert sorted(got) == ["set0/img000.jpg", "set0/img002.jpg", "set1/img001.jpg", "set1/img003.jpg"]
    assert got == want
    text = (tmp_path / "quick" / ".stylize_job.yaml").read_text()
    assert f"  - images: {tmp_path / 'photos'}\n" in text
    assert "  - resize: {short_side: 16}\n" in text and "device: cpu\n" in text
    assert text.index("resize") < text.index("fast_style")


def test_one_image_file_and_resume(tmp_path: Path, style_weights: Path) -> None:
    photo, _other = make_photos(tmp_path / "photos", 2, ext="png")
    args = ("stylize", str(photo), "--weights", str(style_weights), "-o", str(tmp_path / "out"), "-q")
    first = run_cli_here(*args)
    assert first.returncode == 0, first.stderr
    assert "done 1, skipped 0" in first.stderr
    assert list(_outputs(tmp_path / "out")) == ["img000.png"]  # only the file named, not its folder
    before = (tmp_path / "out" / "img000.png").read_bytes()
    again = run_cli_here(*args)
    assert again.returncode == 0, again.stderr
    assert "done 0, skipped 1 (already done)" in again.stderr
    assert (tmp_path / "out" / "img000.png").read_bytes() == before
    restarted = run_cli_here(*args, "--restart")
    assert restarted.returncode == 0 and "done 1, skipped 0" in restarted.stderr


def test_save_job_writes_a_job_that_validates_and_runs_to_the_same_bytes(
        tmp_path: Path, style_weights: Path) -> None:
    make_photos(tmp_path / "my photos", 3, subdirs=2)  # a space: the path must be quoted
    saved = tmp_path / "jobs" / "quick.yaml"
    base = ("stylize", str(tmp_path / "my photos"), "--weights", str(style_weights), "-q")
    result = run_cli_here(*base, "-o", str(tmp_path / "from_saved"), "--save-job", str(saved))
    assert result.returncode == 0, result.stderr
    assert saved.is_file() and str(saved) in result.stderr
    assert not (tmp_path / "from_saved").exists()  # --save-job writes the job and runs nothing
    assert run_cli_here("validate", str(saved)).returncode == 0
    ran = run_cli_here(str(saved), "-q")
    assert ran.returncode == 0, ran.stderr
    quick = run_cli_here(*base, "-o", str(tmp_path / "quick"))
    assert quick.returncode == 0, quick.stderr
    got = _outputs(tmp_path / "from_saved")
    assert len(got) == 3 and got == _outputs(tmp_path / "quick")


def test_cyclegan_weights_pick_the_cyclegan_stage(tmp_path: Path) -> None:
    make_photos(tmp_path / "photos", 2)
    torch.manual_seed(0)
    gen = tmp_path / "latest_net_G_A.pth"
    torch.save(ResnetGenerator(ngf=4, n_blocks=1).state_dict(), gen)
    quick = run_cli_here("stylize", str(tmp_path / "photos"), "--weights", str(gen),
                         "-o", str(tmp_path / "quick"), "-q")
    assert quick.returncode == 0, quick.stderr
    text = (tmp_path / "quick" / ".stylize_job.yaml").read_text()
    assert f"  - cyclegan: {{weights: {gen}}}\n" in text and "fast_style" not in text
    by_job = run_cli_here(str(_job(tmp_path, "photos/", "by_job", "cyclegan", gen)), "-q")
    assert by_job.returncode == 0, by_job.stderr
    got = _outputs(tmp_path / "quick")
    assert len(got) == 2 and got == _outputs(tmp_path / "by_job")


def test_weights_of_the_wrong_kind_exit_2_naming_them(tmp_path: Path) -> None:
    make_photos(tmp_path / "photos", 1)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a checkpoint\n")
    result = run_cli_here("stylize", str(tmp_path / "photos"), "--weights", str(notes),
                          "-o", str(tmp_path / "out"))
    assert result.returncode == 2
    assert str(notes) in result.stderr and "not a PyTorch or safetensors checkpoint" in result.stderr
    assert not (tmp_path / "out").exists()
    missing = run_cli_here("stylize", str(tmp_path / "photos"), "--weights", str(tmp_path / "no.pth"),
                           "-o", str(tmp_path / "out"))
    assert missing.returncode == 2 and "no.pth does not exist" in missing.stderr


def test_bad_inputs_exit_2_naming_them(tmp_path: Path, style_weights: Path) -> None:
    make_photos(tmp_path / "photos", 1)
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hello")
    cases = {"missing.png": "does not exist", "empty": "no images or videos in this folder",
             "notes.txt": "not an image or video file"}
    for name, reason in cases.items():
        result = run_cli_here("stylize", str(tmp_path / "photos"), str(tmp_path / name),
                              "--weights", str(style_weights), "-o", str(tmp_path / "out"))
        assert result.returncode == 2, (name, result.stderr)
        assert f"input {tmp_path / name}" in result.stderr and reason in result.stderr
        assert not (tmp_path / "out").exists()
    bad_device = run_cli_here("stylize", str(tmp_path / "photos"), "--weights", str(style_weights),
                              "-o", str(tmp_path / "out"), "--device", "gpu")
    assert bad_device.returncode == 2 and "gpu" in bad_device.stderr


def test_inputs_are_sorted_by_suffix_and_folders_by_what_they_hold(tmp_path: Path,
                                                                   style_weights: Path) -> None:
    make_photos(tmp_path / "mixed", 1)
    (tmp_path / "mixed" / "deep").mkdir()
    (tmp_path / "mixed" / "deep" / "clip.mkv").write_bytes(b"")  # the suffix decides, not the bytes
    (tmp_path / "film.MOV").write_bytes(b"")
    saved = tmp_path / "quick.yaml"
    result = run_cli_here("stylize", str(tmp_path / "mixed"), str(tmp_path / "film.MOV"),
                          "--weights", str(style_weights), "-o", str(tmp_path / "out"),
                          "--save-job", str(saved))
    assert result.returncode == 0, result.stderr
    text = saved.read_text()
    assert (f"sources:\n  - images: {tmp_path / 'mixed'}\n  - videos: {tmp_path / 'mixed'}\n"
            f"  - videos: {tmp_path / 'film.MOV'}\n") in text


def test_output_inside_the_input_folder_is_not_read_back(tmp_path: Path, style_weights: Path) -> None:
    make_photos(tmp_path / "photos", 2)
    args = ("stylize", str(tmp_path / "photos"), "--weights", str(style_weights),
            "-o", str(tmp_path / "photos" / "styled"), "-q")
    assert run_cli_here(*args).returncode == 0
    again = run_cli_here(*args)
    assert again.returncode == 0 and "done 0, skipped 2 (already done), failed 0" in again.stderr
    assert sorted(_outputs(tmp_path / "photos" / "styled")) == ["img000.png", "img001.png"]
    for out in (tmp_path / "photos", tmp_path):  # the input folder itself, or above it
        result = run_cli_here("stylize", str(tmp_path / "photos"), "--weights", str(style_weights),
                              "-o", str(out))
        assert result.returncode == 2 and "holds the input" in result.stderr
    assert not (tmp_path / "photos" / ".stylize_job.yaml").exists()
    assert not (tmp_path / ".stylize_job.yaml").exists()


def test_strength_and_preserve_color_go_into_the_job_and_its_outputs(
        tmp_path: Path, style_weights: Path) -> None:
    make_photos(tmp_path / "in", 2)
    saved = tmp_path / "controls.yaml"
    base = ("stylize", str(tmp_path / "in"), "--weights", str(style_weights), "-q")
    result = run_cli_here(*base, "-o", str(tmp_path / "soft"), "--strength", "0.4",
                          "--preserve-color", "--save-job", str(saved))
    assert result.returncode == 0, result.stderr
    assert "strength: 0.4, preserve_color: true}" in saved.read_text()
    assert run_cli_here(*base, "-o", str(tmp_path / "soft"), "--strength", "0.4",
                        "--preserve-color").returncode == 0
    assert run_cli_here(*base, "-o", str(tmp_path / "full")).returncode == 0
    soft, full = _outputs(tmp_path / "soft"), _outputs(tmp_path / "full")
    assert soft.keys() == full.keys() and len(soft) == 2
    assert all(soft[name] != full[name] for name in soft)  # the controls changed the pixels
    refused = run_cli_here(*base, "-o", str(tmp_path / "x"), "--strength", "1.5")
    assert refused.returncode == 2 and "--strength" in refused.stderr
