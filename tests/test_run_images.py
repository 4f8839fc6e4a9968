"""Image jobs end to end through the real CLI: outputs, mirroring, resume, refusal."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.record.manifest import MANIFEST
from tests.conftest import REPO, make_photos, run_cli_here, write_job


def _job(tmp_path: Path, weights: Path, output: str = "out", extra: str = "", fmt: str = "png") -> Path:
    return write_job(tmp_path, f"""
        sources:
          - images: photos/
        output: {output}
        {extra}
        stages:
          - decode
          - fast_style: {{weights: {weights}}}
          - encode: {{image: {{format: {fmt}}}}}
        """, name=f"job_{output}.yaml")


def _outputs(folder: Path) -> dict[str, bytes]:
    """Every output file by path under ``folder`` (not the hidden ledger, not the manifest)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith(".") and p.name != MANIFEST}


def test_tree_is_mirrored_and_pixels_are_the_networks(tmp_path: Path, style_weights: Path) -> None:
    make_photos(tmp_path / "photos", 4, subdirs=2, ext="jpg")
    (tmp_path / "photos" / "notes.txt").write_text("not an image")
    result = run_cli_here(str(_job(tmp_path, style_weights)))
    assert result.returncode == 0, result.stderr
    assert "done 4, skipped 0 (already done), failed 0" in result.stderr
    outputs = _outputs(tmp_path / "out")
    assert sorted(outputs) == ["set0/img000.png", "set0/img002.png", "set1/img001.png", "set1/img003.png"]
    # Same pixels as a direct forward pass of the network, rounded and clamped.
    from pipeline.models.checkpoints import load_fast_style
    net = load_fast_style(style_weights)
    src = np.array(Image.open(tmp_path / "photos/set1/img003.jpg").convert("RGB"))
    with torch.no_grad():
        y = net(torch.from_numpy(src).permute(2, 0, 1)[None].float())
    y = y[0].clamp(0, 255).permute(1, 2, 0).numpy()
    expected = y.round().astype(np.uint8)
    actual = np.asarray(Image.open(tmp_path / "out/set1/img003.png"))
    # Equal, except where the float output sits on a rounding boundary (124.49998 vs 124.50001:
    # a different but equally valid summation order in the batched path flips those).
    differ = actual != expected
    assert np.abs(actual.astype(int) - expected).max() <= 1
    assert np.all(np.abs(y[differ] - np.floor(y[differ]) - 0.5) < 1e-3), y[differ]


def test_second_run_skips_and_deleted_output_is_redone(tmp_path: Path, style_weights: Path) -> None:
    make_photos(tmp_path / "photos", 3)
    job = _job(tmp_path, style_weights)
    assert run_cli_here(str(job)).returncode == 0
    first = _outputs(tmp_path / "out")
    again = run_cli_here(str(job))
    assert again.returncode == 0 and "done 0, skipped 3" in again.stderr
    (tmp_path / "out" / "img001.png").unlink()
    redo = run_cli_here(str(job))
    assert redo.returncode == 0 and "done 1, skipped 2" in redo.stderr
    assert _outputs(tmp_path / "out") == first


def test_changed_job_is_refused_until_restart(tmp_path: Path, style_weights: Path) -> None:
    make_photos(tmp_path / "photos", 2)
    job = _job(tmp_path, style_weights)
    assert run_cli_here(str(job)).returncode == 0
    other = lively_weights(tmp_path, seed=5)
    job.write_text(job.read_text().replace(str(style_weights), str(other)))
    refused = run_cli_here(str(job))
    assert refused.returncode == 2
    assert "the job changed" in refused.stderr and "weights.sha256" in refused.stderr
    assert "--restart" in refused.stderr
    restarted = run_cli_here(str(job), "--restart")
    assert restarted.returncode == 0 and "done 2, skipped 0" in restarted.stderr


def lively_weights(tmp_path: Path, seed: int) -> Path:
    from tests.conftest import lively_transformer_net
    path = tmp_path / f"other{seed}.pth"
    torch.save(lively_transformer_net(seed).state_dict(), path)
    return path


def test_alpha_is_carried_to_png_and_flattened_for_jpg(tmp_path: Path, style_weights: Path) -> None:
    (tmp_path / "photos").mkdir()
    rgba = np.zeros((20, 24, 4), np.uint8)
    rgba[..., :3] = 120
    rgba[..., 3] = np.linspace(0, 255, 24).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "photos" / "a.png")
    assert run_cli_here(str(_job(tmp_path, style_weights))).returncode == 0
    out = np.asarray(Image.open(tmp_path / "out" / "a.png"))
    assert out.shape == (20, 24, 4)
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])
    assert run_cli_here(str(_job(tmp_path, style_weights, output="outj", fmt="jpg"))).returncode == 0
    assert Image.open(tmp_path / "outj" / "a.jpg").mode == "RGB"


def _wait_for_commits(ledger: Path, count: int, proc: subprocess.Popen, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if ledger.exists():
            done = sum(1 for line in ledger.read_text().splitlines() if '"done"' in line)
            if done >= count:
                return done
        time.sleep(0.02)
    raise AssertionError(f"run ended or stalled before {count} commits: rc={proc.poll()}")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM], ids=["kill", "int", "term"])
def test_killed_run_resumes_to_identical_outputs(tmp_path: Path, style_weights: Path, sig) -> None:
    n = 36
    make_photos(tmp_path / "photos", n, size=(72, 96), subdirs=3)
    reference = _job(tmp_path, style_weights, output="ref")
    assert run_cli_here(str(reference)).returncode == 0
    job = _job(tmp_path, style_weights, output="out")
    proc = subprocess.Popen([sys.executable, str(REPO / "run_pipeline.py"), str(job), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    at_kill = _wait_for_commits(tmp_path / "out" / ".ledger.jsonl", 4, proc)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    if sig != signal.SIGKILL:  # Ctrl-C and a service manager's stop are clean stops
        assert proc.returncode == 130, stderr
        assert "interrupted" in stderr and "run the same command again" in stderr
        # A clean stop leaves no temporary files behind.
        assert not [p for p in (tmp_path / "out").rglob(".*.partial")]
    else:
        assert proc.returncode == -signal.SIGKILL
    partial = _outputs(tmp_path / "out")
    assert at_kill <= len(partial) < n, "the kill came too late to test anything"
    resumed = run_cli_here(str(job))
    assert resumed.returncode == 0, resumed.stderr
    skipped = int(resumed.stderr.split("skipped ")[1].split()[0])
    assert skipped >= at_kill
    assert _outputs(tmp_path / "out") == _outputs(tmp_path / "ref")
    ledger = [json.loads(line) for line in (tmp_path / "out" / ".ledger.jsonl").read_text().splitlines()
              if line.strip().startswith("{") and line.strip().endswith("}")]
    assert "fingerprint" in ledger[0]


def test_source_tree_is_never_modified(tmp_path: Path, style_weights: Path) -> None:
    make_photos(tmp_path / "photos", 3, subdirs=2)
    before = {p: p.read_bytes() for p in (tmp_path / "photos").rglob("*") if p.is_file()}
    job = write_job(tmp_path, f"""
        sources: [{{images: photos/}}]
        output: photos/stylized     # inside the source tree: must not be read back as input
        stages: [decode, {{fast_style: {{weights: {style_weights}}}}}, {{encode: {{image: {{format: png}}}}}}]
        """)
    assert run_cli_here(str(job)).returncode == 0
    assert run_cli_here(str(job)).returncode == 0
    after = {p: p.read_bytes() for p in (tmp_path / "photos").rglob("*")
             if p.is_file() and "stylized" not in p.parts}
    assert after == before
    assert len(_outputs(tmp_path / "photos" / "stylized")) == 3


def test_contact_sheet_shows_input_beside_output(tmp_path: Path, style_weights: Path) -> None:
    make_photos(tmp_path / "photos", 3, size=(30, 40))
    job = _job(tmp_path, style_weights, extra="contact_sheet: {path: sheet.png, images: 2, height: 30}")
    result = run_cli_here(str(job))
    assert result.returncode == 0, result.stderr
    sheet = np.array(Image.open(tmp_path / "sheet.png"))
    assert sheet.shape == (2 * 30 + 4, 40 + 4 + 40, 3)  # two rows of input | output
    np.testing.assert_array_equal(sheet[:30, :40], np.array(Image.open(tmp_path / "photos/img000.png")))
    np.testing.assert_array_equal(sheet[:30, 44:], np.array(Image.open(tmp_path / "out/img000.png")))
