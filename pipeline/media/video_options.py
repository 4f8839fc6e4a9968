"""Video encode options (also the job file's options type) and container choice.

``VideoEncodeOptions`` holds only plain fields so the job-file loader can fill
it; ``__post_init__`` checks every value against this FFmpeg build and raises
``ValueError`` with the accepted values.

Rate control: ``crf`` (constant quality) unless ``bitrate`` is set.  Leaving
both unset means crf 18 for encoders that have a ``crf`` option (x264, x265,
SVT-AV1, VP9, AOM) and the encoder's own default otherwise (ffv1 is lossless;
mpeg4 then needs a bitrate to look good).  Setting both is an error.
"""
from __future__ import annotations

import functools
import io
import re
from dataclasses import dataclass
from typing import Literal

import av

CONTAINER_FORMATS: dict[str, str] = {
    ".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi",
}
_CONTAINER_SUFFIX = {"mp4": ".mp4", "mkv": ".mkv", "mov": ".mov", "webm": ".webm", "avi": ".avi"}
_COMMON_CODECS = ("libx264", "libx265", "libsvtav1", "libaom-av1", "libvpx-vp9", "mpeg4", "ffv1", "prores_ks")
_X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                 "veryslow", "placebo")
# SVT-AV1 presets are 0 (slowest) .. 13; x264 names map onto comparable speeds.
_SVTAV1_PRESETS = {"ultrafast": 12, "superfast": 11, "veryfast": 10, "faster": 9, "fast": 8,
                   "medium": 7, "slow": 5, "slower": 4, "veryslow": 2, "placebo": 0}
DEFAULT_CRF = 18


# x264's AVX-512 code reads memory it never wrote: with it, one clip encoded twice in one process
# gave different bytes whenever other allocations had moved the heap between the runs (64x48 frames:
# 20 of 20 runs differed; widths of 64, 224, 240, 320 px did, 128, 256, 640 did not; never with
# mbtree or B-frames off, or with the asm capped at AVX2).  Capped at AVX2 the bytes are the same
# every run, and x264 runs the code it runs on a machine without AVX-512, at the same speed
# (1280x720, medium: 2.15-2.36 s against 1.92-2.34 s for 60 frames).  (x264's SIMD is not bit-exact
# with its C code everywhere - mbtree's reciprocals are approximate - so other instruction sets, SSE2
# only or ARM, can give other bytes than this; each machine gives the same bytes every run.)
# Cache64 is the cache-line flag x264's own detection adds on these CPUs.
X264_DETERMINISTIC_ASM = "asm=AVX2,Cache64"


@functools.lru_cache(maxsize=None)
def _has_avx512() -> bool:
    """Whether this CPU has the AVX-512 subsets x264 uses (Linux's /proc/cpuinfo; elsewhere False,
    and x264 picks its own code as before)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return {"avx512f", "avx512bw", "avx512vl"} <= set(line.split())
    except OSError:
        pass
    return False


class VideoOptionsError(ValueError):
    """A video encode option is invalid."""


@functools.lru_cache(maxsize=None)
def _private_options(codec: str) -> frozenset[str]:
    return frozenset(o.name for o in av.CodecContext.create(codec, "w").supported_options.private)


@functools.lru_cache(maxsize=None)
def muxer_accepts(container_format: str, codec: str) -> bool:
    """Whether FFmpeg's muxer ``container_format`` can store ``codec`` (encoder or codec name)."""
    with av.open(io.BytesIO(), "w", format=container_format) as probe:
        return codec in probe.supported_codecs


def parse_bitrate(text: str) -> int:
    """'8M' -> 8_000_000, '2500k' -> 2_500_000, '800000' -> 800_000 (bits per second)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)\s*", text)
    if not m:
        raise VideoOptionsError(f"bitrate {text!r} is not a number with an optional k/M/G suffix, e.g. '8M' or '2500k'")
    scale = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000}[m.group(2).lower()]
    value = int(round(float(m.group(1)) * scale))
    if value <= 0:
        raise VideoOptionsError(f"bitrate {text!r} must be positive")
    return value


@dataclass(frozen=True)
class VideoEncodeOptions:
    """How video outputs are encoded (see the module docstring for rate control)."""

    codec: str = "libx264"
    crf: int | None = None  # None: 18 unless bitrate is set
    bitrate: str | None = None  # "8M", "2500k"
    preset: str | None = "medium"  # x264/x265 names (SVT-AV1: a number 0..13 or the same names)
    pix_fmt: str = "yuv420p"
    container: Literal["same", "mp4", "mkv", "mov", "webm", "avi"] = "same"
    segment_seconds: float = 4.0
    threads: int = 2

    def __post_init__(self) -> None:
        try:
            codec = av.Codec(self.codec, "w")
        except Exception:  # noqa: BLE001 - PyAV raises UnknownCodecError or ValueError
            codec = None
        if codec is None or codec.type != "video":
            common = ", ".join(c for c in _COMMON_CODECS if c in av.codecs_available)
            raise VideoOptionsError(f"codec {self.codec!r} is not a video encoder in this FFmpeg build; "
                                    f"common ones: {common}")
        if self.crf is not None and self.bitrate is not None:
            raise VideoOptionsError("set crf or bitrate, not both (crf is constant quality, bitrate a target rate)")
        if self.crf is not None:
            if isinstance(self.crf, bool) or not isinstance(self.crf, int) or not 0 <= self.crf <= 63:
                raise VideoOptionsError(f"crf must be an integer 0..63 (x264/x265: 0..51; lower is better), "
                                        f"not {self.crf!r}")
            if self.codec in ("libx264", "libx265") and self.crf > 51:
                raise VideoOptionsError(f"crf {self.crf} is out of range for {self.codec} (0..51)")
            if "crf" not in _private_options(self.codec):
                raise VideoOptionsError(f"codec {self.codec!r} has no crf; set bitrate instead, e.g. '8M'")
        if self.bitrate is not None:
            if not isinstance(self.bitrate, str):
                raise VideoOptionsError(f"bitrate must be a string such as '8M' or '2500k', not {self.bitrate!r}")
            parse_bitrate(self.bitrate)
        if self.preset is not None:
            if self.codec in ("libx264", "libx265") and self.preset not in _X26X_PRESETS:
                raise VideoOptionsError(f"preset {self.preset!r} is not one of {', '.join(_X26X_PRESETS)}")
            if self.codec == "libsvtav1" and self.preset not in _SVTAV1_PRESETS and not (
                    self.preset.isdigit() and 0 <= int(self.preset) <= 13):
                raise VideoOptionsError(f"preset {self.preset!r} for libsvtav1 must be 0..13 or one of "
                                        f"{', '.join(_SVTAV1_PRESETS)}")
        formats = [f.name for f in (codec.video_formats or ())]
        if formats and self.pix_fmt not in formats:
            raise VideoOptionsError(f"pix_fmt {self.pix_fmt!r} is not supported by {self.codec}; "
                                    f"it takes: {', '.join(formats)}")
        if self.container not in ("same", *_CONTAINER_SUFFIX):
            raise VideoOptionsError(f"container {self.container!r} is not one of same, {', '.join(_CONTAINER_SUFFIX)}")
        if self.container != "same":
            fmt = CONTAINER_FORMATS[_CONTAINER_SUFFIX[self.container]]
            if not muxer_accepts(fmt, self.codec):
                raise VideoOptionsError(f"container {self.container!r} cannot hold {self.codec}; "
                                        "use container 'mkv' (holds anything) or another codec")
        if isinstance(self.segment_seconds, bool) or not isinstance(self.segment_seconds, (int, float)) \
                or not self.segment_seconds > 0:
            raise VideoOptionsError(f"segment_seconds must be a number > 0, not {self.segment_seconds!r}")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            raise VideoOptionsError(f"threads must be an integer >= 1, not {self.threads!r}")

    @property
    def effective_crf(self) -> int | None:
        """The crf the encoder gets: None when a bitrate is set or the codec has no crf option."""
        if self.bitrate is not None or "crf" not in _private_options(self.codec):
            return None
        return DEFAULT_CRF if self.crf is None else self.crf

    def codec_options(self) -> dict[str, str]:
        """Private encoder options (crf, preset) as FFmpeg strings."""
        options: dict[str, str] = {}
        crf = self.effective_crf
        if crf is not None:
            options["crf"] = str(crf)
        if self.preset is not None and "preset" in _private_options(self.codec):
            if self.codec == "libsvtav1":
                options["preset"] = str(_SVTAV1_PRESETS.get(self.preset, self.preset))
            elif self.codec in ("libx264", "libx265"):
                options["preset"] = self.preset
        if self.codec == "libx265":
            options["x265-params"] = "log-level=error"
        if self.codec == "libx264" and _has_avx512():
            options["x264-params"] = X264_DETERMINISTIC_ASM
        return options


def output_suffix(opts: VideoEncodeOptions, source_suffix: str) -> str:
    """The output file's suffix: the named container's, or with "same" the source's when it
    can hold the codec (else ".mkv", which holds anything)."""
    if opts.container != "same":
        return _CONTAINER_SUFFIX[opts.container]
    suffix = source_suffix.lower()
    if suffix in CONTAINER_FORMATS and muxer_accepts(CONTAINER_FORMATS[suffix], opts.codec):
        return suffix
    return ".mkv"
