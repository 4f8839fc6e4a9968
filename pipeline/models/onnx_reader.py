"""The few parts of an ONNX file a weights reader needs, read from its protobuf wire format:
the graph's nodes (op type, inputs, outputs, integer attributes) and its initializers as
numpy arrays.  Nothing is executed, and nothing beyond numpy is imported: the ``onnx``
package takes 0.8 s to import, more than the rest of a one-picture run's start-up
(``tests/test_magenta.py`` checks this reader against it, tensor for tensor).

Wire format (protobuf): each field is a varint key ``number << 3 | type``; type 0 a varint,
1 eight bytes, 2 a length-prefixed run (strings, sub-messages, packed numbers), 5 four bytes.
ModelProto.graph = 7; GraphProto.node = 1, .initializer = 5; NodeProto.input = 1,
.output = 2, .op_type = 4, .attribute = 5; AttributeProto.name = 1, .i = 3;
TensorProto.dims = 1, .data_type = 2, .float_data = 4, .int32_data = 5, .int64_data = 7,
.name = 8, .raw_data = 9, .double_data = 10.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

# TensorProto.DataType -> numpy
_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32,
           7: np.int64, 9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64}


class OnnxFormatError(ValueError):
    """The bytes are not an ONNX model this reader understands."""


@dataclass
class Node:
    op_type: str = ""
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    ints: dict[str, int] = field(default_factory=dict)  # the integer attributes (``axis``)


@dataclass
class Graph:
    nodes: list[Node]
    initializers: dict[str, np.ndarray]


def read_graph(path: str | Path) -> Graph:
    data = memoryview(Path(path).read_bytes())
    graph = next((v for n, v in _fields(data) if n == 7), None)
    if graph is None or not isinstance(graph, memoryview):
        raise OnnxFormatError("no graph in the file")
    nodes, inits = [], {}
    for number, value in _fields(graph):
        if number == 1:
            nodes.append(_node(_bytes(value)))
        elif number == 5:
            name, array = _tensor(_bytes(value))
            inits[name] = array
    return Graph(nodes, inits)


def _fields(buf: memoryview) -> Iterator[tuple[int, int | memoryview]]:
    """(field number, value): an int for varints and fixed-size fields, bytes for the rest."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        number, kind = key >> 3, key & 7
        if kind == 0:
            value, i = _varint(buf, i)
        elif kind == 2:
            size, i = _varint(buf, i)
            if i + size > n:
                raise OnnxFormatError("a field runs past the end of its message")
            value, i = buf[i:i + size], i + size
        elif kind == 1:
            value, i = int.from_bytes(buf[i:i + 8], "little"), i + 8
        elif kind == 5:
            value, i = int.from_bytes(buf[i:i + 4], "little"), i + 4
        else:
            raise OnnxFormatError(f"unsupported wire type {kind}")
        yield number, value


def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise OnnxFormatError("a truncated number")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _bytes(value: int | memoryview) -> memoryview:
    if not isinstance(value, memoryview):
        raise OnnxFormatError("a message field holds a number")
    return value


def _node(buf: memoryview) -> Node:
    node = Node()
    for number, value in _fields(buf):
        if number == 1:
            node.inputs.append(bytes(_bytes(value)).decode())
        elif number == 2:
            node.outputs.append(bytes(_bytes(value)).decode())
        elif number == 4:
            node.op_type = bytes(_bytes(value)).decode()
        elif number == 5:
            name, i = "", None
            for n, v in _fields(_bytes(value)):
                if n == 1:
                    name = bytes(_bytes(v)).decode()
                elif n == 3:
                    i = _signed(v)
            if i is not None:
                node.ints[name] = i
    return node


def _tensor(buf: memoryview) -> tuple[str, np.ndarray]:
    dims, dtype, name, raw = [], 1, "", None
    numbers: dict[int, list] = {4: [], 5: [], 7: [], 10: []}
    for number, value in _fields(buf):
        if number == 1:
            dims += [_signed(v) for v in _packed_varints(value)] if isinstance(value, memoryview) \
                else [_signed(value)]
        elif number == 2:
            dtype = value
        elif number == 8:
            name = bytes(_bytes(value)).decode()
        elif number == 9:
            raw = bytes(_bytes(value))
        elif number in (4, 10):  # packed float32 / float64
            width = 4 if number == 4 else 8
            kind = "<f4" if number == 4 else "<f8"
            numbers[number].append(np.frombuffer(bytes(value), kind) if isinstance(value, memoryview)
                                   else np.frombuffer(value.to_bytes(width, "little"), kind))
        elif number in (5, 7):  # packed varints
            numbers[number] += [_signed(v) for v in _packed_varints(value)] \
                if isinstance(value, memoryview) else [_signed(value)]
    if dtype not in _DTYPES:
        raise OnnxFormatError(f"tensor {name!r}: unsupported data type {dtype}")
    np_type = np.dtype(_DTYPES[dtype])
    if raw is not None:
        array = np.frombuffer(raw, np_type.newbyteorder("<")).astype(np_type)
    elif numbers[4] or numbers[10]:
        array = np.concatenate(numbers[4] or numbers[10]).astype(np_type)
    elif dtype == 10:  # float16 kept as its bit patterns in int32_data
        array = np.array(numbers[5], np.uint16).view(np.float16)
    else:
        array = np.array(numbers[5] or numbers[7], dtype=np.int64).astype(np_type)
    size = int(np.prod(dims)) if dims else 1
    if array.size != size:
        raise OnnxFormatError(f"tensor {name!r}: {array.size} values for shape {dims}")
    return name, array.reshape(dims)


def _packed_varints(buf: memoryview) -> Iterator[int]:
    i = 0
    while i < len(buf):
        v, i = _varint(buf, i)
        yield v
