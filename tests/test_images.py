"""pipeline.media.images: real files made on the fly, real decode paths."""
from __future__ import annotations

import hashlib
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from pipeline.errors import MediaError
from pipeline.media.images import (FORMATS, IMAGE_EXTENSIONS, output_suffix, read_image,
                                   resolve_format, write_image)

# 16-bit values and what round(v * 255 / 65535) makes of them; Pillow's
# truncation (v >> 8) would give 1000 -> 3, 60000 -> 234, 385 -> 1, 386 -> 1.
V16 = np.array([0, 128, 129, 257, 385, 386, 1000, 32767, 32768, 60000, 65535], np.uint16)
V8 = np.array([0, 0, 1, 1, 1, 2, 4, 127, 128, 233, 255], np.uint8)


def _png16(arr: np.ndarray, color_type: int, exif: bytes | None = None) -> bytes:
    """A 16-bit PNG by hand: 0 gray, 2 RGB, 4 gray+alpha, 6 RGBA."""
    h, w = arr.shape[:2]
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0))
    extra = chunk(b"eXIf", exif) if exif else b""
    return b"\x89PNG\r\n\x1a\n" + ihdr + extra + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def _save(im: Image.Image, path: Path, **kw) -> Path:
    im.save(path, **kw)
    return path


def _pattern(h: int = 16, w: int = 24, alpha: bool = False) -> np.ndarray:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (h, w, 4 if alpha else 3), dtype=np.uint8)
    if alpha:
        a[0, 0, 3], a[0, 1, 3] = 0, 255
    return a


def _smooth(h: int = 32, w: int = 48) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + y) * 255 // (w + h - 2)],
                    axis=2).astype(np.uint8)


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


# --- constants and names ---------------------------------------------------------

def test_constants():
    assert IMAGE_EXTENSIONS == {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
    assert FORMATS == ("png", "jpg", "webp", "bmp", "tiff", "same")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize("fmt, src, suffix", [
    ("png", ".jpg", ".png"), ("jpg", ".png", ".jpg"), ("webp", ".png", ".webp"),
    ("bmp", ".png", ".bmp"), ("tiff", ".png", ".tiff"), ("same", ".JPEG", ".jpeg"),
    ("same", ".tif", ".tif"), ("same", ".webp", ".webp"), ("same", ".gif", ".png"),
    ("same", "", ".png"), ("jpeg", ".png", ".jpg"),
])
def test_output_suffix(fmt, src, suffix):
    assert output_suffix(fmt, src) == suffix


def test_resolve_format():
    assert resolve_format("same", ".JPEG") == "jpg"
    assert resolve_format("same", ".gif") == "png"
    assert resolve_format("tif", ".png") == "tiff"
    with pytest.raises(ValueError, match="gif"):
        resolve_format("gif", ".png")


# --- writing and round trips -------------------------------------------------------

@pytest.mark.parametrize("fmt", ["png", "bmp", "tiff"])
@pytest.mark.parametrize("alpha", [False, True])
def test_lossless_round_trip(tmp_path, fmt, alpha):
    a = _pattern(alpha=alpha)
    p = tmp_path / "out.tmp"  # suffix says nothing: the format is explicit
    write_image(a, p, fmt)
    b = read_image(p)
    assert b.dtype == np.uint8 and b.flags.c_contiguous
    if alpha and fmt == "bmp":
        assert b.shape == a.shape[:2] + (3,)
    else:
        np.testing.assert_array_equal(b, a)


def test_webp_lossless_keeps_alpha_and_colour_under_it(tmp_path):
    a = _pattern(alpha=True)
    write_image(a, tmp_path / "x.webp", "webp", lossless=True)
    np.testing.assert_array_equal(read_image(tmp_path / "x.webp"), a)


@pytest.mark.parametrize("fmt", ["jpg", "webp"])
def test_lossy_round_trip_is_close(tmp_path, fmt):
    a = _smooth()
    write_image(a, tmp_path / "x", fmt)
    b = read_image(tmp_path / "x")
    assert b.shape == a.shape
    assert np.abs(b.astype(int) - a).mean() < 2.0


def test_lossy_webp_keeps_alpha(tmp_path):
    a = np.dstack([_smooth(), np.tile(np.arange(48, dtype=np.uint8) * 5, (32, 1))])
    write_image(a, tmp_path / "x.webp", "webp", quality=90)
    b = read_image(tmp_path / "x.webp")
    assert b.shape == a.shape and np.abs(b[..., 3].astype(int) - a[..., 3]).max() <= 2


def test_quality_changes_jpeg(tmp_path):
    a = _pattern(64, 64)
    write_image(a, tmp_path / "lo.jpg", "jpg", quality=10)
    write_image(a, tmp_path / "hi.jpg", "jpg")
    assert (tmp_path / "lo.jpg").stat().st_size < (tmp_path / "hi.jpg").stat().st_size


@pytest.mark.parametrize("fmt", ["jpg", "bmp"])
def test_alpha_composited_over_white_in_formats_without_alpha(tmp_path, fmt):
    a = np.zeros((16, 48, 4), np.uint8)
    a[..., :3] = (200, 40, 0)
    a[:, :16, 3] = 255    # opaque: colour unchanged
    a[:, 16:32, 3] = 0    # transparent: white
    a[:, 32:, 3] = 128    # half: (rgb*128 + 255*127) / 255
    write_image(a, tmp_path / "x", fmt)
    b = read_image(tmp_path / "x").astype(int)
    assert b.shape == (16, 48, 3)
    tol = 0 if fmt == "bmp" else 6
    inner = slice(4, 12)  # away from block edges, where JPEG chroma bleeds
    assert np.abs(b[:, inner] - (200, 40, 0)).max() <= tol
    assert np.abs(b[:, 16:32][:, inner] - 255).max() <= tol
    assert np.abs(b[:, 32:][:, inner] - (227, 147, 127)).max() <= tol


@pytest.mark.parametrize("fmt", ["png", "jpg", "webp", "bmp", "tiff"])
def test_deterministic_bytes(tmp_path, fmt):
    a = _pattern(alpha=True)
    write_image(a, tmp_path / "a", fmt)
    write_image(a.copy(), tmp_path / "b", fmt)
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_write_does_not_mutate_input(tmp_path):
    a = _pattern(alpha=True)
    before = a.copy()
    write_image(a, tmp_path / "x", "jpg")
    np.testing.assert_array_equal(a, before)


@pytest.mark.parametrize("array, fmt, kw, reason", [
    (np.zeros((4, 4, 3), np.float32), "png", {}, "expected a uint8"),
    (np.zeros((4, 4), np.uint8), "png", {}, "expected a uint8"),
    (np.zeros((4, 4, 2), np.uint8), "png", {}, "expected a uint8"),
    (np.zeros((0, 4, 3), np.uint8), "png", {}, "expected a uint8"),
    (np.zeros((4, 4, 3), np.uint8), "gif", {}, "cannot write image format 'gif'"),
    (np.zeros((4, 4, 3), np.uint8), "jpg", {"quality": 0}, "quality must be"),
    (np.zeros((4, 4, 3), np.uint8), "webp", {"quality": 101}, "quality must be"),
])
def test_write_errors(tmp_path, array, fmt, kw, reason):
    p = tmp_path / "out.png"
    with pytest.raises(MediaError, match=reason) as info:
        write_image(array, p, fmt, **kw)
    assert info.value.stage == "encode" and str(p) in str(info.value)
    assert not p.exists()


def test_write_into_a_directory_path(tmp_path):
    with pytest.raises(MediaError, match="cannot write") as info:
        write_image(_pattern(), tmp_path, "png")
    assert info.value.stage == "encode"


# --- reading: orientation, modes, bit depth ----------------------------------------

def _quadrants() -> np.ndarray:
    """40 wide, 20 tall; red top-left quadrant, blue elsewhere."""
    a = np.zeros((20, 40, 3), np.uint8)
    a[...] = (0, 0, 255)
    a[:10, :20] = (255, 0, 0)
    return a


def _is_red(px) -> bool:
    return px[0] > 200 and px[2] < 60


@pytest.mark.parametrize("orientation, red_corner", [(6, (0, -1)), (8, (-1, 0))])
def test_jpeg_exif_orientation(tmp_path, orientation, red_corner):
    p = _save(Image.fromarray(_quadrants()), tmp_path / "o.jpg", exif=_exif(orientation), quality=95)
    b = read_image(p)
    assert b.shape == (40, 20, 3)  # turned upright: now 20 wide, 40 tall
    y, x = red_corner  # 6 turns clockwise: top-left -> top-right; 8: -> bottom-left
    assert _is_red(b[y, x]) and not _is_red(b[0 if y else -1, -1 if x == 0 else 0])
    assert sum(_is_red(b[yy, xx]) for yy in (0, -1) for xx in (0, -1)) == 1


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_same_on_16bit_path(tmp_path, orientation):
    """The OpenCV (16-bit) path orients exactly as exif_transpose does."""
    a8 = _pattern(6, 10)
    exif = _exif(orientation)
    p8 = _save(Image.fromarray(a8), tmp_path / "a8.png", exif=exif)
    p16 = tmp_path / "a16.png"
    p16.write_bytes(_png16(a8.astype(np.uint16) * 257, 2, exif.tobytes()))
    expected = np.asarray(ImageOps.exif_transpose(Image.open(p8)))
    if orientation in (5, 6, 7, 8):
        assert expected.shape[:2] == (10, 6)
    np.testing.assert_array_equal(read_image(p8), expected)
    np.testing.assert_array_equal(read_image(p16), expected)


def test_grayscale_replicated(tmp_path):
    g = np.arange(24, dtype=np.uint8).reshape(4, 6) * 10
    b = read_image(_save(Image.fromarray(g), tmp_path / "g.png"))
    assert b.shape == (4, 6, 3)
    for c in range(3):
        np.testing.assert_array_equal(b[..., c], g)


def test_bilevel_replicated(tmp_path):
    im = Image.new("1", (4, 2), 0)
    im.putpixel((1, 0), 1)
    b = read_image(_save(im, tmp_path / "b.png"))
    assert b.shape == (2, 4, 3) and b[0, 1].tolist() == [255] * 3 and b[0, 0].tolist() == [0] * 3


def _palette_image() -> Image.Image:
    im = Image.new("P", (4, 2), 0)
    im.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    im.putpixel((3, 1), 1)
    return im


def test_palette_without_transparency_is_rgb(tmp_path):
    b = read_image(_save(_palette_image(), tmp_path / "p.png"))
    assert b.shape == (2, 4, 3)
    assert b[0, 0].tolist() == [10, 20, 30] and b[1, 3].tolist() == [200, 100, 50]


def test_palette_with_transparency_is_rgba(tmp_path):
    b = read_image(_save(_palette_image(), tmp_path / "p.png", transparency=0))
    assert b.shape == (2, 4, 4)
    assert b[0, 0, 3] == 0 and b[1, 3].tolist() == [200, 100, 50, 255]


def test_transparent_colour_in_rgb_png_gives_rgba(tmp_path):
    a = np.full((2, 3, 3), 9, np.uint8)
    a[0, 0] = (1, 2, 3)
    b = read_image(_save(Image.fromarray(a), tmp_path / "t.png", transparency=(1, 2, 3)))
    assert b.shape == (2, 3, 4) and b[0, 0, 3] == 0 and b[1, 1].tolist() == [9, 9, 9, 255]


def test_la_is_rgba(tmp_path):
    la = np.stack([np.full((3, 4), 77, np.uint8), np.full((3, 4), 130, np.uint8)], axis=2)
    im = Image.merge("LA", [Image.fromarray(la[..., 0]), Image.fromarray(la[..., 1])])
    b = read_image(_save(im, tmp_path / "la.png"))
    assert b.shape == (3, 4, 4) and b[0, 0].tolist() == [77, 77, 77, 130]


def test_opaque_alpha_is_kept(tmp_path):
    a = _pattern(alpha=True)
    a[..., 3] = 255
    assert read_image(_save(Image.fromarray(a), tmp_path / "o.png")).shape[2] == 4


def test_16bit_gray_png(tmp_path):
    p = _save(Image.fromarray(V16.reshape(1, -1)), tmp_path / "g16.png")
    assert Image.open(p).mode == "I;16"
    b = read_image(p)
    assert b.shape == (1, V16.size, 3)
    np.testing.assert_array_equal(b[0, :, 0], V8)
    np.testing.assert_array_equal(b[..., 0], b[..., 2])


def test_16bit_rgb_png(tmp_path):
    rgb = np.stack([V16, V16[::-1], np.roll(V16, 3)], axis=1)[None]  # 1 x N x 3
    p = tmp_path / "rgb16.png"
    p.write_bytes(_png16(rgb, 2))
    b = read_image(p)
    assert b.shape == rgb.shape and b.dtype == np.uint8
    np.testing.assert_array_equal(b[0], np.stack([V8, V8[::-1], np.roll(V8, 3)], axis=1))


def test_16bit_rgba_and_gray_alpha_png(tmp_path):
    rgba = np.stack([V16, V16, V16[::-1], V16[::-1]], axis=1)[None]
    (tmp_path / "a.png").write_bytes(_png16(rgba, 6))
    b = read_image(tmp_path / "a.png")
    np.testing.assert_array_equal(b[0], np.stack([V8, V8, V8[::-1], V8[::-1]], axis=1))
    ga = np.stack([V16, V16[::-1]], axis=1)[None]
    (tmp_path / "ga.png").write_bytes(_png16(ga, 4))
    b = read_image(tmp_path / "ga.png")
    np.testing.assert_array_equal(b[0], np.stack([V8, V8, V8, V8[::-1]], axis=1))


def test_16bit_tiff_gray_and_rgb(tmp_path):
    p = _save(Image.fromarray(V16.reshape(1, -1)), tmp_path / "g16.tif")
    np.testing.assert_array_equal(read_image(p)[0, :, 1], V8)
    rgb = np.stack([V16, V16[::-1], V16], axis=1)[None]
    assert cv2.imwrite(str(tmp_path / "rgb16.tif"), rgb[..., ::-1])
    b = read_image(tmp_path / "rgb16.tif")
    np.testing.assert_array_equal(b[0], np.stack([V8, V8[::-1], V8], axis=1))


def test_float_and_int32_gray(tmp_path):
    f = np.array([[-0.5, 0.0, 0.5, 1.0, 2.0]], np.float32)
    b = read_image(_save(Image.fromarray(f), tmp_path / "f.tif"))
    assert b[0, :, 0].tolist() == [0, 0, 128, 255, 255]
    i = np.array([[-5, 129, 65535, 100000]], np.int32)
    b = read_image(_save(Image.fromarray(i), tmp_path / "i.tif"))
    assert b[0, :, 0].tolist() == [0, 1, 255, 255]


@pytest.mark.parametrize("suffix", [".jpg", ".tif"])
def test_cmyk_becomes_rgb(tmp_path, suffix):
    im = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # red
    b = read_image(_save(im, tmp_path / f"c{suffix}"))
    assert b.shape == (8, 8, 3)
    assert np.abs(b.astype(int) - (255, 0, 0)).max() <= 8


def test_animated_gif_gives_first_frame(tmp_path):
    frames = [Image.new("RGB", (4, 4), c) for c in ((255, 0, 0), (0, 255, 0))]
    p = tmp_path / "a.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=50)
    b = read_image(p)
    assert b.shape == (4, 4, 3) and b[0, 0].tolist() == [255, 0, 0]


def test_content_decides_not_suffix(tmp_path):
    a = _pattern()
    write_image(a, tmp_path / "really_a_png.jpg", "png")
    np.testing.assert_array_equal(read_image(tmp_path / "really_a_png.jpg"), a)


# --- reading: errors ------------------------------------------------------------

def _valid_png(tmp_path: Path) -> bytes:
    write_image(_pattern(64, 64), tmp_path / "v.png", "png")
    return (tmp_path / "v.png").read_bytes()


def _valid_jpg(tmp_path: Path) -> bytes:
    write_image(_pattern(64, 64), tmp_path / "v.jpg", "jpg")
    return (tmp_path / "v.jpg").read_bytes()


@pytest.mark.parametrize("name, make, reason", [
    ("empty.png", lambda t: b"", "empty file (0 bytes)"),
    ("notes.jpg", lambda t: b"hello, this is not a picture\n", "not a JPEG image: file starts with text"),
    ("doc.png", lambda t: b"%PDF-1.4\n%\xe2\xe3", "not a PNG image: file is a PDF document"),
    ("noise.tiff", lambda t: bytes(range(200, 256)) * 4, "not a TIFF image: unrecognised data"),
    ("half.png", lambda t: _valid_png(t)[: len(_valid_png(t)) // 2], "corrupt or truncated PNG data"),
    ("half.jpg", lambda t: _valid_jpg(t)[: len(_valid_jpg(t)) // 2], "corrupt or truncated JPEG data"),
])
def test_read_errors_name_file_and_reason(tmp_path, name, make, reason):
    p = tmp_path / name
    p.write_bytes(make(tmp_path))
    digest = hashlib.sha256(p.read_bytes()).hexdigest()
    with pytest.raises(MediaError) as info:
        read_image(p)
    err = info.value
    assert err.stage == "decode" and err.path == p
    assert str(p) in str(err) and reason in str(err)
    assert hashlib.sha256(p.read_bytes()).hexdigest() == digest  # source untouched


@pytest.mark.parametrize("fmt, keep", [("png", 8), ("png", 20), ("png", 40), ("jpg", 4)])
def test_truncated_header_is_reported_as_damaged_not_unrecognised(tmp_path, fmt, keep):
    # Cut inside the header chunks, Pillow cannot identify the file at all.
    name = {"png": "PNG", "jpg": "JPEG"}[fmt]
    p = tmp_path / f"cut.{fmt}"
    p.write_bytes((_valid_png if fmt == "png" else _valid_jpg)(tmp_path)[:keep])
    with pytest.raises(MediaError) as info:
        read_image(p)
    err = info.value
    # Pillow fails on some cuts before identifying the file and on others after.
    assert err.reason.startswith(f"corrupt or truncated {name} ") and "unrecognised" not in err.reason
    assert "re-copy the file" in err.hint and str(p) in str(err)


def test_directory(tmp_path):
    with pytest.raises(MediaError, match="is a directory") as info:
        read_image(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(MediaError, match="file not found"):
        read_image(tmp_path / "nope.png")


def test_permission_denied(tmp_path, monkeypatch):
    p = tmp_path / "locked.png"
    p.write_bytes(_valid_png(tmp_path))
    if os.geteuid() != 0:  # root reads anything: fake the OS answer there
        p.chmod(0)
    else:
        def deny(self):
            raise PermissionError(13, "Permission denied", str(self))
        monkeypatch.setattr(Path, "read_bytes", deny)
    try:
        with pytest.raises(MediaError, match="permission denied") as info:
            read_image(p)
        assert str(p) in str(info.value) and info.value.hint
    finally:
        p.chmod(0o644)


def test_decompression_bomb(tmp_path, monkeypatch):
    p = tmp_path / "big.png"
    p.write_bytes(_valid_png(tmp_path))  # 64x64 = 4096 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # error above 2x the limit
    with pytest.raises(MediaError, match="too large to decode safely") as info:
        read_image(p)
    assert "MAX_IMAGE_PIXELS" in info.value.hint


def test_reading_leaves_source_bytes_unchanged(tmp_path):
    paths = [_save(Image.fromarray(_quadrants()), tmp_path / "o.jpg", exif=_exif(6))]
    (tmp_path / "rgb16.png").write_bytes(_png16(_pattern().astype(np.uint16) * 200, 2))
    paths.append(tmp_path / "rgb16.png")
    for p in paths:
        before = p.read_bytes()
        mtime = p.stat().st_mtime_ns
        read_image(p)
        assert p.read_bytes() == before and p.stat().st_mtime_ns == mtime
