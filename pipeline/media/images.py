"""Still images in and out, as uint8 numpy arrays (no torch here).

Reading rules (``read_image``):

* The result is uint8, C-contiguous, HxWx3 (RGB) or HxWx4 (RGBA, alpha last).
  It has 4 channels exactly when the file has alpha or transparency data; a
  fully opaque alpha is kept, so the shape follows the file, not its pixels.
* The content decides the format, not the suffix (a PNG named .jpg is read as
  a PNG).  Formats read: JPEG (and MPO), PNG, WebP, BMP, TIFF, GIF.  Animated
  GIF and WebP give their first frame.
* EXIF orientation is applied (``PIL.ImageOps.exif_transpose``): pixels come
  out the way a photo viewer shows them.
* Grayscale (modes 1, L, I;16, I, F) becomes RGB by replicating the gray value.
* 16-bit samples become 8-bit by rounding v*255/65535 (= round(v/257), which
  never ties).  Pillow keeps only the high byte of 16-bit RGB, RGBA and
  gray+alpha PNG/TIFF, so those are decoded again with OpenCV to apply the same
  rule; 16-bit gray arrives intact from Pillow.  Mode I (32-bit integer) is
  clipped to 0..65535 first; mode F (float) is read as 0..1: round(v*255)
  after clipping.
* Palette (P) becomes RGBA if it has transparency, else RGB; likewise L and RGB
  with a transparent colour (PNG tRNS).  LA, PA, La and RGBa become RGBA.
* CMYK, YCbCr, LAB, HSV and RGBX become RGB through Pillow's ``convert``.
  ICC colour profiles are neither applied nor written: pixels pass as stored.
* Failures raise ``MediaError(path, reason, stage="decode", hint=...)``: a
  missing file, a directory, permission denied, an empty file, data that is
  not a supported image (the reason says what it looks like), corrupt or
  truncated data, and images over Pillow's decompression-bomb limit
  (``PIL.Image.MAX_IMAGE_PIXELS``, left at its default).  Every image is
  decoded in full here, so a bad file fails at decode, not later in the run;
  ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` must stay False for this to hold.
* The source file is only ever read.
* ``decode_image`` and ``encode_image`` apply the same rules to bytes in memory (the
  members of a tar shard), ``header_of`` is ``image_header``'s.

Writing rules (``write_image``):

* The format is explicit (png, jpg, webp, bmp, tiff) and independent of the
  path's suffix, because the engine writes a temporary name first.
* png, webp and tiff keep alpha.  jpg and bmp have none: alpha is composited
  over white (what a viewer shows behind transparent areas) rather than
  dropped, which would expose whatever colour lies under transparent pixels.
  libwebp itself stores a fully opaque alpha as no alpha, so such a WebP reads
  back as RGB.
* jpg: quality 95 unless given.  webp: quality 95 unless given, or
  ``lossless=True`` (with libwebp's ``exact`` so colours under transparent
  pixels survive).  tiff: deflate-compressed.  png, bmp, tiff ignore quality.
* No metadata is written (no EXIF, ICC or timestamps): same array, same bytes;
  except the EXIF orientation tag when asked (``orientation``: the array is then
  as the file stores it, and a viewer turns it upright).
  The file is encoded in memory first, so a failed encode leaves no file.
  Errors raise ``MediaError(path, reason, stage="encode")``.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pipeline.errors import MediaError, file_error

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
FORMATS = ("png", "jpg", "webp", "bmp", "tiff", "same")

# The only Pillow plugins allowed to parse untrusted files: the formats we
# claim, and nothing like EPS, whose loader runs Ghostscript.  (Multi-picture
# JPEGs need no entry: the JPEG plugin itself hands them to MPO.)
_PIL_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")
_SUFFIX_KIND = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WebP",
                ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF", ".gif": "GIF"}
# encode format -> (Pillow format name, output suffix)
_WRITERS = {"png": ("PNG", ".png"), "jpg": ("JPEG", ".jpg"), "webp": ("WEBP", ".webp"),
            "bmp": ("BMP", ".bmp"), "tiff": ("TIFF", ".tiff")}
_ALIASES = {"jpeg": "jpg", "tif": "tiff"}
_SUFFIX_FORMAT = {".jpg": "jpg", ".jpeg": "jpg", ".png": "png", ".webp": "webp",
                  ".bmp": "bmp", ".tif": "tiff", ".tiff": "tiff"}
_NUMERIC_GRAY = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}
_ALPHA_MODES = {"RGBA", "LA", "PA", "La", "RGBa"}
_FIX_HINT = "re-export or re-copy the file (partial copies are the usual cause), or remove it from the sources"


def read_image(path: str | Path) -> np.ndarray:
    """Decode ``path`` to uint8 HxWx3 RGB or HxWx4 RGBA by the module's rules."""
    path = Path(path)
    return _decode(_read_bytes(path), path)[0]


def decode_image(data: bytes, path: str | Path) -> tuple[np.ndarray, ImageHeader]:
    """``read_image`` for a file already in memory (a member of a tar shard), and its header
    (the upright size, which is the array's, and the EXIF orientation); ``path`` names it in
    errors, and its suffix is the kind it claims to be."""
    path = Path(path)
    if not data:
        raise MediaError(path, "empty file (0 bytes)", stage="decode",
                         hint="the copy or download probably failed; fetch it again")
    image, orientation = _decode(data, path)
    return image, ImageHeader(image.shape[1], image.shape[0], orientation)


def _decode(data: bytes, path: Path) -> tuple[np.ndarray, int]:
    """The array, and the EXIF orientation it was turned upright by."""
    kind = _SUFFIX_KIND.get(path.suffix.lower())
    try:
        im = Image.open(io.BytesIO(data), formats=_PIL_FORMATS)
    except Image.DecompressionBombError as exc:
        raise _bomb(path, exc) from None
    except UnidentifiedImageError:
        # Pillow says "unidentified" also when a real signature is followed by
        # too little data to parse a header: that is a damaged image, not a misnamed file.
        signed = _signature(data)
        if signed:
            raise MediaError(path, f"corrupt or truncated {signed} file: its signature is valid but "
                                   f"the image data is cut short or broken ({len(data)} bytes)",
                             stage="decode", hint=_FIX_HINT) from None
        what = f"a {kind} image" if kind else "an image we can read (JPEG, PNG, WebP, BMP, TIFF, GIF)"
        raise MediaError(path, f"not {what}: {_looks_like(data)}", stage="decode",
                         hint="the file may be misnamed or not an image; fix or remove it") from None
    except Exception as exc:  # a recognised header that then fails to parse
        raise MediaError(path, f"corrupt or truncated {kind or 'image'} header ({exc})", stage="decode",
                         hint=_FIX_HINT) from None
    try:
        im.load()  # decode everything now, so truncation fails here
    except Image.DecompressionBombError as exc:
        raise _bomb(path, exc) from None
    except Exception as exc:
        raise MediaError(path, f"corrupt or truncated {im.format} data ({exc})", stage="decode",
                         hint=_FIX_HINT) from None

    orientation = _orientation(im)
    if _has_16bit_color(im, data):
        return _orient(_read_16bit_color(path, data, im.size), orientation), orientation
    if orientation != 1:
        im = ImageOps.exif_transpose(im)
    return _to_array(im), orientation


def write_image(array: np.ndarray, path: str | Path, format: str,
                quality: int | None = None, *, lossless: bool = False, orientation: int = 1) -> None:
    """Encode HxWx3/HxWx4 uint8 ``array`` as ``format`` into ``path`` (rules above); an
    ``orientation`` other than 1 is written as the EXIF orientation tag (``array`` as stored)."""
    path = Path(path)
    buffer = encode_image(array, format, quality, lossless=lossless, orientation=orientation,
                          path=path)
    try:
        f = open(path, "wb")
    except OSError as exc:
        raise MediaError(path, f"cannot write: {exc.strerror or exc}", stage="encode") from None
    try:
        with f:
            f.write(buffer)
    except OSError as exc:
        path.unlink(missing_ok=True)  # ours, and half-written
        raise MediaError(path, f"cannot write: {exc.strerror or exc}", stage="encode") from None


def encode_image(array: np.ndarray, format: str, quality: int | None = None, *,
                 lossless: bool = False, orientation: int = 1, path: str | Path = "") -> bytes:
    """``write_image``'s bytes, in memory (a member of a tar shard); ``path`` names the
    output in errors."""
    path = Path(path)
    fmt = _ALIASES.get(str(format).lower(), str(format).lower())
    if fmt not in _WRITERS:
        raise MediaError(path, f"cannot write image format {format!r}", stage="encode",
                         hint=f"use one of {', '.join(_WRITERS)}")
    a = np.asarray(array)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] not in (3, 4) or 0 in a.shape[:2]:
        raise MediaError(path, f"expected a uint8 HxWx3 or HxWx4 array, got {a.dtype} {a.shape}",
                         stage="encode")
    if a.shape[2] == 4 and fmt in ("jpg", "bmp"):
        a = _over_white(a)
    pil_format, _ = _WRITERS[fmt]
    options: dict = {}
    if fmt in ("jpg", "webp"):
        q = 95 if quality is None else quality
        if isinstance(q, bool) or not isinstance(q, (int, np.integer)) or not 1 <= q <= 100:
            raise MediaError(path, f"quality must be an integer 1..100, got {quality!r}", stage="encode")
        options["quality"] = int(q)
    if fmt == "webp":
        options.update(lossless=bool(lossless), exact=bool(lossless))
    elif fmt == "tiff":
        options["compression"] = "tiff_adobe_deflate"
    if orientation != 1:
        if fmt == "bmp":
            raise MediaError(path, "BMP has no EXIF: the orientation tag of the source cannot be "
                                   "written", stage="encode",
                             hint="write png, jpg, webp or tiff, or use orientation: apply")
        exif = Image.Exif()
        exif[0x0112] = int(orientation)
        options["exif"] = exif
    buffer = io.BytesIO()
    try:
        Image.fromarray(np.ascontiguousarray(a)).save(buffer, format=pil_format, **options)
    except Exception as exc:
        raise MediaError(path, f"could not encode as {fmt} ({exc})", stage="encode") from None
    return buffer.getvalue()


def resolve_format(format: str, source_suffix: str) -> str:
    """The concrete writer format for ``encode.image.format``: "same" follows the
    source's suffix, and a source we read but cannot write (e.g. .gif) gives png."""
    fmt = _ALIASES.get(format.lower(), format.lower())
    if fmt == "same":
        return _SUFFIX_FORMAT.get(_norm_suffix(source_suffix), "png")
    if fmt not in _WRITERS:
        raise ValueError(f"unknown image format {format!r}; valid: {', '.join(FORMATS)}")
    return fmt


def output_suffix(format: str, source_suffix: str) -> str:
    """The output file's suffix: ".png", ".jpg"...  With "same", the source's own
    suffix, lowercased (".JPEG" -> ".jpeg"); a suffix we cannot write gives ".png"."""
    fmt = resolve_format(format, source_suffix)
    suffix = _norm_suffix(source_suffix)
    if format.lower() == "same" and _SUFFIX_FORMAT.get(suffix) == fmt:
        return suffix
    return _WRITERS[fmt][1]


# --- helpers -----------------------------------------------------------------

def _read_bytes(path: Path) -> bytes:
    def fail(reason: str, hint: str = "", cause: OSError | None = None) -> MediaError:
        return file_error(MediaError, cause)(path, reason, stage="decode", hint=hint)
    # Check for a directory first: Windows reports it as permission denied.
    if path.is_dir():
        raise fail("is a directory, not an image file")
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise fail("file not found", "check the path; it may have been moved or deleted", exc) from None
    except PermissionError as exc:
        raise fail("permission denied", "make the file readable by this user", exc) from None
    except OSError as exc:
        raise fail(f"cannot read: {exc.strerror or exc}") from None
    if not data:
        raise fail("empty file (0 bytes)", "the copy or download probably failed; fetch it again")
    return data


# Magic numbers of the formats we read (as Pillow's plugins accept them).
_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"),
               (b"GIF89a", "GIF"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"BM", "BMP"))


def _signature(data: bytes) -> str | None:
    """The format whose magic number ``data`` starts with, or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    for magic, name in _SIGNATURES:
        # "BM" is only two bytes: a text file may start with it too.
        if data.startswith(magic) and not (name == "BMP" and _is_text(data[:64])):
            return name
    return None


def _is_text(head: bytes) -> bool:
    text = head.decode("utf-8", errors="ignore")
    return bool(text) and all(c.isprintable() or c in "\r\n\t" for c in text)


def _looks_like(data: bytes) -> str:
    """A cheap guess at what a non-image file is, for the error message."""
    head = data[:64]
    for magic, what in ((b"%PDF", "a PDF document"), (b"PK\x03\x04", "a ZIP archive"),
                        (b"\x1f\x8b", "gzip data"), (b"\x1aE\xdf\xa3", "a Matroska/WebM video")):
        if head.startswith(magic):
            return f"file is {what}"
    if head[4:8] == b"ftyp":
        return f"file is ISO media (brand {head[8:12].decode('latin-1')!r}: MP4/MOV video, HEIC or AVIF)"
    if _is_text(head):
        return f"file starts with text ({head.decode('utf-8', errors='ignore')[:24]!r})"
    return f"unrecognised data (first bytes {head[:8].hex(' ')})"


class ImageTooLarge(MediaError):
    """An image whose header declares more pixels than Pillow decodes safely: refused unread."""


def _bomb(path: Path, exc: Exception) -> MediaError:
    return ImageTooLarge(path, f"image too large to decode safely ({exc})", stage="decode",
                      hint="if the file is genuine, downscale it first or raise PIL.Image.MAX_IMAGE_PIXELS")


def _orientation(im: Image.Image) -> int:
    try:
        value = int(im.getexif().get(0x0112, 1))
    except Exception as exc:  # broken EXIF should not cost the image
        warnings.warn(f"ignoring unreadable EXIF: {exc}", stacklevel=3)
        return 1
    return value if 1 <= value <= 8 else 1


def _has_16bit_color(im: Image.Image, data: bytes) -> bool:
    """True where Pillow would have truncated 16-bit colour samples to 8 bits."""
    if im.mode not in ("RGB", "RGBA", "LA"):
        return False  # 16-bit gray arrives as I;16, intact
    if im.format == "PNG":
        return data[24] == 16  # IHDR bit depth: the IHDR chunk always comes first
    if im.format == "TIFF":
        bits = im.tag_v2.get(258, 8)
        return 16 in (bits if isinstance(bits, tuple) else (bits,))
    return False


def _read_16bit_color(path: Path, data: bytes, size: tuple[int, int]) -> np.ndarray:
    # IMREAD_UNCHANGED keeps 16 bits and alpha, gives gray+alpha as 4 channels,
    # and ignores EXIF orientation, which the caller applies.
    a = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if a is None or a.dtype != np.uint16 or a.ndim != 3 or a.shape[1::-1] != size:
        raise MediaError(path, "OpenCV could not decode the 16-bit samples", stage="decode",
                         hint="re-export the image as 8-bit")
    return _from_16bit(a[..., [2, 1, 0, 3][: a.shape[2]]])  # BGR(A) -> RGB(A)


def _from_16bit(a: np.ndarray) -> np.ndarray:
    # round(v * 255 / 65535) == round(v / 257) == (v + 128) // 257, exactly.
    return ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)


_ORIENT = {2: lambda x: x[:, ::-1], 3: lambda x: x[::-1, ::-1], 4: lambda x: x[::-1],
           5: lambda x: x.swapaxes(0, 1), 6: lambda x: np.rot90(x, -1),
           7: lambda x: x.swapaxes(0, 1)[::-1, ::-1], 8: lambda x: np.rot90(x, 1)}


def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """EXIF orientation on an array, matching ImageOps.exif_transpose."""
    return np.ascontiguousarray(_ORIENT.get(orientation, lambda x: x)(a))


def unorient(a: np.ndarray, orientation: int) -> np.ndarray:
    """The inverse of applying EXIF ``orientation``: upright pixels back as the file stores
    them (6 and 8 undo each other; the others undo themselves)."""
    return _orient(a, {6: 8, 8: 6}.get(orientation, orientation))


def _to_array(im: Image.Image) -> np.ndarray:
    if im.mode in _NUMERIC_GRAY:
        v = np.asarray(im)
        if im.mode == "F":
            gray = np.rint(np.clip(np.nan_to_num(v), 0.0, 1.0) * 255).astype(np.uint8)
        else:
            gray = _from_16bit(np.clip(v, 0, 65535))
        return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2))
    rgba = im.mode in _ALPHA_MODES or im.has_transparency_data
    target = "RGBA" if rgba else "RGB"
    if im.mode != target:
        im = im.convert(target)  # also replicates 1/L gray and converts CMYK, YCbCr, LAB...
    return np.ascontiguousarray(np.array(im))


def _over_white(a: np.ndarray) -> np.ndarray:
    # rgb*alpha + 255*(1-alpha), rounded, in integers so it is exact and repeatable.
    rgb, alpha = a[..., :3].astype(np.uint32), a[..., 3:].astype(np.uint32)
    return ((rgb * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)


def _norm_suffix(suffix: str) -> str:
    suffix = suffix.lower()
    return suffix if not suffix or suffix.startswith(".") else "." + suffix


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header says: the size ``read_image`` returns it at (upright) and its
    EXIF orientation (1: none; 5 to 8 swap the sides)."""

    width: int
    height: int
    orientation: int = 1


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of the array ``read_image`` would return (see ``image_header``)."""
    header = image_header(path)
    return header.width, header.height


def image_header(path: str | Path) -> ImageHeader:
    """The upright size and the EXIF orientation, from the header alone (no pixel is decoded).
    Used to judge an image's memory before decoding it, and to write an output at its source's
    size and orientation.  Raises ``MediaError`` like ``read_image`` for a file that cannot
    be opened or is over Pillow's limit."""
    return _header(Path(path), Path(path))


def header_of(data: bytes, path: str | Path) -> ImageHeader:
    """``image_header`` of a file already in memory; ``path`` names it in errors."""
    return _header(io.BytesIO(data), Path(path))


def _header(source: Path | io.BytesIO, path: Path) -> ImageHeader:
    try:
        with Image.open(source, formats=_PIL_FORMATS) as im:
            width, height = im.size
            try:  # quietly: read_image warns about broken EXIF when it decodes
                orientation = int(im.getexif().get(0x0112, 1))
            except Exception:
                orientation = 1
    except Image.DecompressionBombError as exc:
        raise _bomb(path, exc) from None
    except Exception as exc:
        raise MediaError(path, f"cannot read the image header ({type(exc).__name__}: {exc})",
                         stage="decode", hint=_FIX_HINT) from None
    orientation = orientation if 1 <= orientation <= 8 else 1
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return ImageHeader(width, height, orientation)
