"""Tests for the resize, pad and tv_denoise kernels (pipeline/ops)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.ops.pad import crop_to, pad_to_multiple
from pipeline.ops.resize import resize, target_size
from pipeline.ops.tv_denoise import tv_denoise

skimage_restoration = pytest.importorskip("skimage.restoration")

FLOATS = [torch.float32, torch.float16, torch.bfloat16]


def natural_ish(h: int, w: int, seed: int, sigma: float = 20.0) -> np.ndarray:
    """uint8 HxWx3: smooth gradients, a disc and a box, plus gaussian noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([200 * xx + 30, 180 * yy + 40, 120 + 80 * np.sin(6 * xx + 3 * yy)], -1)
    img[(yy - 0.4) ** 2 + (xx - 0.5) ** 2 < 0.05] = [230, 40, 60]
    img[int(h * .6):int(h * .8), int(w * .1):int(w * .4)] = [20, 200, 90]
    img = img + rng.normal(0, sigma, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1)[None].float()


def batch(n=3, c=3, h=20, w=28, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, c, h, w, generator=g) * 255).to(dtype)


# ---------------------------------------------------------------- target_size
@pytest.mark.parametrize("kwargs, expected", [
    (dict(short_side=720), (720, 1280)),
    (dict(long_side=960), (540, 960)),
    (dict(width=640), (360, 640)),
    (dict(height=540), (540, 960)),
    (dict(width=500, height=300), (300, 500)),
    (dict(scale=0.5), (540, 960)),
    (dict(scale=0.1), (108, 192)),
    (dict(short_side=720, multiple_of=1), (720, 1280)),
    (dict(short_side=500), (500, 888)),          # 888.9 -> nearest multiple of 4
    (dict(short_side=500, multiple_of=1), (500, 889)),
    (dict(short_side=100, multiple_of=32), (96, 192)),
])
def test_target_size_modes(kwargs, expected):
    assert target_size(1080, 1920, **kwargs) == expected


def test_target_size_portrait_and_odd_sizes():
    assert target_size(1920, 1080, short_side=720) == (1280, 720)
    assert target_size(37, 53, scale=1.0) == (36, 52)    # odd sides rounded to 4
    assert target_size(38, 54, scale=1.0) == (40, 56)    # halves round up
    assert target_size(37, 53, scale=1.0, multiple_of=1) == (37, 53)
    assert target_size(3, 1000, short_side=1) == (4, 332)    # at least one multiple
    assert target_size(5, 7, scale=0.01, multiple_of=8) == (8, 8)


def test_target_size_no_upscale():
    assert target_size(480, 854, short_side=720, upscale=False) == (480, 856)
    assert target_size(480, 854, short_side=720, upscale=False, multiple_of=1) == (480, 854)
    assert target_size(1080, 1920, short_side=720, upscale=False) == (720, 1280)
    assert target_size(100, 200, scale=3.0, upscale=False) == (100, 200)
    # exact mode caps each side independently
    assert target_size(400, 600, width=800, height=300, upscale=False) == (300, 600)


@pytest.mark.parametrize("kwargs, match", [
    (dict(), "needs one of"),
    (dict(short_side=10, long_side=20), "exclusive"),
    (dict(scale=2.0, width=10), "exclusive"),
    (dict(short_side=0), "positive"),
    (dict(long_side=-5), "positive"),
    (dict(width=0, height=10), "positive"),
    (dict(scale=0.0), "positive"),
    (dict(scale=float("nan")), "positive"),
    (dict(short_side=10.5), "positive integer"),
    (dict(short_side=10, multiple_of=0), "multiple_of"),
])
def test_target_size_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        target_size(100, 200, **kwargs)


def test_target_size_bad_image_size():
    with pytest.raises(ValueError, match="height"):
        target_size(0, 10, scale=1.0)


# --------------------------------------------------------------------- resize
@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear", "area", "nearest"])
@pytest.mark.parametrize("dtype", FLOATS)
def test_resize_shape_dtype_range(interpolation, dtype):
    x = batch(dtype=dtype)
    before = x.clone()
    for size in [(10, 14), (33, 41)]:
        y = resize(x, size, interpolation=interpolation)
        assert y.shape == (3, 3, *size) and y.dtype == dtype and y.device == x.device
        assert y.float().min() >= 0 and y.float().max() <= 255
    assert torch.equal(x, before)


def test_resize_matches_fp32_in_low_precision():
    x = batch()
    ref = resize(x, (13, 17))
    for dtype in (torch.float16, torch.bfloat16):
        y = resize(x.to(dtype), (13, 17)).float()
        assert (y - ref).abs().max() < 2.0  # bf16 has 8 bits of mantissa


def test_resize_bicubic_clamps_overshoot():
    x = torch.zeros(1, 3, 16, 16)
    x[..., :, 8:] = 255.0  # a hard edge rings under a cubic kernel
    y = resize(x, (40, 40), interpolation="bicubic", antialias=False)
    assert y.min() >= 0 and y.max() <= 255


def test_resize_alpha_channel():
    x = batch(c=4)
    y = resize(x, (9, 11))
    assert y.shape == (3, 4, 9, 11)
    rgb = resize(x[:, :3], (9, 11))
    alpha = resize(x[:, 3:], (9, 11))
    torch.testing.assert_close(y, torch.cat([rgb, alpha], 1))


def test_resize_identity_is_a_copy():
    x = batch()
    y = resize(x, (20, 28))
    assert torch.equal(x, y) and y.data_ptr() != x.data_ptr()


def test_resize_empty_batch_and_batch_equals_single():
    assert resize(batch(n=0), (7, 9)).shape == (0, 3, 7, 9)
    x = batch(n=4)
    y = resize(x, (11, 15))
    for i in range(4):
        torch.testing.assert_close(y[i:i + 1], resize(x[i:i + 1], (11, 15)))
    torch.testing.assert_close(resize(x[0], (11, 15)), y[0])  # unbatched [C, H, W]


def test_resize_errors():
    with pytest.raises(ValueError, match="interpolation"):
        resize(batch(), (5, 5), interpolation="lanczos")
    with pytest.raises(ValueError, match="positive"):
        resize(batch(), (0, 5))
    with pytest.raises(TypeError, match="float"):
        resize(batch().to(torch.uint8), (5, 5))


# ------------------------------------------------------------------ pad / crop
@pytest.mark.parametrize("mode", ["reflect", "replicate", "constant"])
@pytest.mark.parametrize("hw", [(20, 28), (21, 30), (1, 1), (2, 3), (5, 17)])
@pytest.mark.parametrize("dtype", FLOATS)
def test_pad_crop_round_trip(mode, hw, dtype):
    x = batch(h=hw[0], w=hw[1], dtype=dtype)
    before = x.clone()
    padded, size = pad_to_multiple(x, 8, mode=mode)
    assert size == hw and padded.dtype == dtype
    assert padded.shape[-2] % 8 == 0 and padded.shape[-1] % 8 == 0
    assert padded.shape[-2] - hw[0] < 8 and padded.shape[-1] - hw[1] < 8
    assert torch.equal(padded[..., :hw[0], :hw[1]], x)
    assert torch.equal(crop_to(padded, size), x)
    assert torch.equal(x, before)


def test_pad_reflect_content_and_no_op_copy():
    x = torch.arange(6.0).reshape(1, 1, 1, 6).expand(1, 1, 3, 6)
    padded, _ = pad_to_multiple(x, 4)
    assert padded[0, 0, 0].tolist() == [0, 1, 2, 3, 4, 5, 4, 3]   # reflected
    assert padded[0, 0, 3].tolist() == padded[0, 0, 1].tolist()   # rows reflect too
    same, size = pad_to_multiple(batch(), 4)
    assert size == (20, 28) and torch.equal(same, batch())
    assert same.data_ptr() != batch().data_ptr()


def test_pad_to_a_least_side():
    x = batch(h=5, w=70)
    padded, size = pad_to_multiple(x, 16, min_side=64)
    assert padded.shape[-2:] == (64, 80) and size == (5, 70)  # 5 -> 64 (least), 70 -> 80 (multiple)
    assert torch.equal(crop_to(padded, size), x)
    assert pad_to_multiple(batch(h=64, w=64), 16, min_side=64)[0].shape[-2:] == (64, 64)


def test_pad_empty_batch_and_unbatched():
    padded, size = pad_to_multiple(batch(n=0, h=5, w=6), 4)
    assert padded.shape == (0, 3, 8, 8) and size == (5, 6)
    padded, size = pad_to_multiple(batch()[0, :, :5, :6], 4)
    assert padded.shape == (3, 8, 8)


def test_pad_crop_errors():
    with pytest.raises(ValueError, match="multiple"):
        pad_to_multiple(batch(), 0)
    with pytest.raises(ValueError, match="mode"):
        pad_to_multiple(batch(), 4, mode="circular")
    with pytest.raises(ValueError, match="crop"):
        crop_to(batch(), (21, 5))


# ------------------------------------------------------------------ tv_denoise
@pytest.mark.parametrize("hw", [(48, 64), (37, 53)])
@pytest.mark.parametrize("weight", [0.02, 0.05, 0.1, 0.3])
def test_tv_denoise_matches_skimage(hw, weight):
    imgs = [natural_ish(*hw, seed) for seed in (1, 2)]
    x = torch.cat([to_tensor(i) for i in imgs])
    y = tv_denoise(x, weight)
    for img, out in zip(imgs, y):
        ref = skimage_restoration.denoise_tv_chambolle(img, weight=weight, channel_axis=-1)
        diff = np.abs(out.permute(1, 2, 0).numpy() / 255.0 - ref)
        # Measured about 1.5e-8 mean and 1.7e-7 max (float32 vs skimage's float64).
        assert diff.mean() < 1e-6 and diff.max() < 1e-5


def test_tv_denoise_planes_stop_independently():
    # Clean, noisy and constant planes converge at very different iterations
    # (a constant plane has zero energy and runs to max_iter), so the batch
    # exercises the per-plane freeze and the retiring of finished planes.
    imgs = [natural_ish(24, 32, 3, sigma=2), natural_ish(24, 32, 4, sigma=60),
            np.full((24, 32, 3), 128, np.uint8)]
    x = torch.cat([to_tensor(i) for i in imgs])
    for check_every in (1, 7, 10, 1000):
        y = tv_denoise(x, 0.1, check_every=check_every)
        for img, out in zip(imgs, y):
            ref = skimage_restoration.denoise_tv_chambolle(img, weight=0.1, channel_axis=-1)
            assert np.abs(out.permute(1, 2, 0).numpy() / 255.0 - ref).max() < 1e-5
    ref = skimage_restoration.denoise_tv_chambolle(imgs[1], weight=0.1, max_num_iter=5,
                                                   channel_axis=-1)
    out = tv_denoise(x[1:2], 0.1, max_iter=5)[0].permute(1, 2, 0).numpy() / 255.0
    assert np.abs(out - ref).max() < 1e-5


def test_tv_denoise_batch_equals_single_and_deterministic():
    x = torch.cat([to_tensor(natural_ish(20, 28, s, sigma=10 * s)) for s in (1, 2, 3)])
    y = tv_denoise(x, 0.1)
    for i in range(3):
        torch.testing.assert_close(tv_denoise(x[i:i + 1], 0.1), y[i:i + 1], atol=1e-3, rtol=0)
    torch.testing.assert_close(tv_denoise(x[0], 0.1), y[0], atol=1e-3, rtol=0)
    assert torch.equal(tv_denoise(x, 0.1), y)


@pytest.mark.parametrize("dtype", FLOATS)
def test_tv_denoise_dtype_no_mutation_alpha(dtype):
    rgb = to_tensor(natural_ish(20, 28, 5))
    alpha = torch.linspace(0, 255, 20 * 28).reshape(1, 1, 20, 28)
    x = torch.cat([rgb, alpha], 1).to(dtype)
    before = x.clone()
    y = tv_denoise(x, 0.1)
    assert y.dtype == dtype and y.shape == x.shape
    assert torch.equal(x, before)
    assert torch.equal(y[:, 3], x[:, 3])  # alpha passes through untouched
    torch.testing.assert_close(y[:, :3], tv_denoise(x[:, :3], 0.1))
    ref = tv_denoise(rgb, 0.1)
    assert (y[:, :3].float() - ref).abs().max() < 2.0  # low precision in/out only
    assert not torch.equal(y[:, :3], x[:, :3])


def test_tv_denoise_trivial_cases():
    x = batch()
    y = tv_denoise(x, 0.0)
    assert torch.equal(x, y) and y.data_ptr() != x.data_ptr()
    assert tv_denoise(batch(n=0), 0.1).shape == (0, 3, 20, 28)
    with pytest.raises(ValueError, match="max_iter"):
        tv_denoise(x, 0.1, max_iter=0)
    with pytest.raises(TypeError, match="float"):
        tv_denoise(x.to(torch.uint8), 0.1)
