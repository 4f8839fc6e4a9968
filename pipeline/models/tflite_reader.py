"""The parts of a TensorFlow Lite file a weights reader needs, from its FlatBuffers layout:
each tensor's name, shape, type, quantization and constant data, and each operator's code,
inputs and outputs.  Nothing is executed and nothing beyond numpy is imported
(``tests/test_magenta.py`` checks it against the ``tflite`` package's own reader).

FlatBuffers: the file starts with the root table's offset, then "TFL3".  A table starts
with a signed offset back to its vtable (uint16 vtable size, table size, then one uint16
per field: where the field sits in the table, 0 when absent); a field that is a table,
vector or string holds a uint32 offset from where it sits; a vector is a uint32 length
then its elements.  Field numbers of TFLite's schema (schema.fbs): Model: operator_codes
1, subgraphs 2, buffers 4; SubGraph: tensors 0, operators 3; Tensor: shape 0, type 1,
buffer 2, name 3, quantization 4; QuantizationParameters: scale 2, zero_point 3,
quantized_dimension 6; Buffer: data 0; Operator: opcode_index 0, inputs 1, outputs 2;
OperatorCode: deprecated_builtin_code 0, builtin_code 3.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IDENTIFIER = b"TFL3"
# TensorType -> numpy
_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 7: np.int16,
           9: np.int8, 10: np.float64}
# BuiltinOperator codes this reader names
BUILTINS = {3: "CONV_2D", 4: "DEPTHWISE_CONV_2D", 6: "DEQUANTIZE", 9: "FULLY_CONNECTED"}


class TfliteFormatError(ValueError):
    """The bytes are not a TFLite model this reader understands."""


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    data: np.ndarray | None  # the constant's values, None for activations
    scale: np.ndarray | None = None  # per tensor (1 value) or per channel
    zero_point: np.ndarray | None = None
    quantized_dimension: int = 0


@dataclass
class Operator:
    op: str  # "CONV_2D", ..., or "BUILTIN_<code>"
    inputs: list[int] = field(default_factory=list)  # tensor indices, -1 for none
    outputs: list[int] = field(default_factory=list)


@dataclass
class Graph:
    tensors: list[Tensor]
    operators: list[Operator]


class _Buf:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def u8(self, pos: int) -> int:
        return self.data[pos]

    def u16(self, pos: int) -> int:
        return struct.unpack_from("<H", self.data, pos)[0]

    def u32(self, pos: int) -> int:
        return struct.unpack_from("<I", self.data, pos)[0]

    def i32(self, pos: int) -> int:
        return struct.unpack_from("<i", self.data, pos)[0]

    def field(self, table: int, number: int) -> int | None:
        """The position of field ``number`` in the table at ``table``, None when absent."""
        vtable = table - self.i32(table)
        if number * 2 + 4 >= self.u16(vtable):
            return None
        offset = self.u16(vtable + 4 + number * 2)
        return table + offset if offset else None

    def ref(self, pos: int) -> int:
        return pos + self.u32(pos)

    def table(self, table: int, number: int) -> int | None:
        pos = self.field(table, number)
        return None if pos is None else self.ref(pos)

    def vector(self, table: int, number: int) -> tuple[int, int]:
        """(position of the first element, length); (0, 0) when absent."""
        pos = self.field(table, number)
        if pos is None:
            return 0, 0
        start = self.ref(pos)
        return start + 4, self.u32(start)

    def tables(self, table: int, number: int) -> list[int]:
        start, n = self.vector(table, number)
        return [self.ref(start + 4 * i) for i in range(n)]

    def array(self, table: int, number: int, dtype: str) -> np.ndarray:
        start, n = self.vector(table, number)
        return np.frombuffer(self.data, dtype, n, start) if n else np.zeros(0, dtype)

    def string(self, table: int, number: int) -> str:
        start, n = self.vector(table, number)
        return self.data[start:start + n].decode("utf-8", "replace")

    def scalar(self, table: int, number: int, fmt: str, default: int = 0) -> int:
        pos = self.field(table, number)
        return default if pos is None else struct.unpack_from(fmt, self.data, pos)[0]


def read_graph(path: str | Path) -> Graph:
    """The first subgraph of a TFLite file (the model's)."""
    data = Path(path).read_bytes()
    if len(data) < 8 or data[4:8] != IDENTIFIER:
        raise TfliteFormatError("no TFL3 identifier: not a TensorFlow Lite model")
    buf = _Buf(data)
    try:
        model = buf.ref(0)
        buffers = [buf.array(b, 0, "u1") for b in buf.tables(model, 4)]
        codes = []
        for code in buf.tables(model, 1):  # the newer int field, else the deprecated byte
            codes.append(max(buf.scalar(code, 3, "<i"), buf.scalar(code, 0, "<b")))
        subgraphs = buf.tables(model, 2)
        if not subgraphs:
            raise TfliteFormatError("no subgraph")
        graph = subgraphs[0]
        tensors = [_tensor(buf, t, buffers) for t in buf.tables(graph, 0)]
        operators = []
        for op in buf.tables(graph, 3):
            code = codes[buf.scalar(op, 0, "<I")]
            operators.append(Operator(BUILTINS.get(code, f"BUILTIN_{code}"),
                                      buf.array(op, 1, "<i4").tolist(),
                                      buf.array(op, 2, "<i4").tolist()))
    except (struct.error, IndexError) as exc:
        raise TfliteFormatError(f"a truncated or damaged file ({exc})") from None
    return Graph(tensors, operators)


def _tensor(buf: _Buf, t: int, buffers: list[np.ndarray]) -> Tensor:
    shape = tuple(int(v) for v in buf.array(t, 0, "<i4"))
    kind = buf.scalar(t, 1, "<b")
    if kind not in _DTYPES:
        raise TfliteFormatError(f"tensor type {kind} is not supported")
    dtype = np.dtype(_DTYPES[kind])
    raw = buffers[buf.scalar(t, 2, "<I")] if buf.scalar(t, 2, "<I") < len(buffers) else None
    data = None
    if raw is not None and raw.size:
        data = np.frombuffer(raw.tobytes(), dtype.newbyteorder("<")).astype(dtype)
        if data.size != int(np.prod(shape)):
            raise TfliteFormatError(f"tensor {buf.string(t, 3)!r}: {data.size} values for {shape}")
        data = data.reshape(shape)
    tensor = Tensor(buf.string(t, 3), shape, dtype, data)
    q = buf.table(t, 4)
    if q is not None:
        scale = buf.array(q, 2, "<f4")
        if scale.size:
            tensor.scale = scale.astype(np.float64)
            tensor.zero_point = buf.array(q, 3, "<i8").astype(np.float64)
            tensor.quantized_dimension = buf.scalar(q, 6, "<i")
    return tensor
