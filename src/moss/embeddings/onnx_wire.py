"""The few ONNX protobuf messages moss rewrites, read and written at the wire level.

moss derives its int8 graph from the shipped model without the ``onnx`` package: importing it
costs seconds (its ``ml_dtypes`` dependency alone took 3.4 s here), more than the whole rewrite.
A message is kept as its list of fields, each ``(number, wire type, value)`` with the value as
it was on the wire, so fields moss does not touch are written back byte for byte.

Field numbers are those of onnx.proto3 (ModelProto.graph = 7, .opset_import = 8;
OperatorSetIdProto.domain = 1, .version = 2; GraphProto.node = 1, .initializer = 5;
NodeProto.input = 1, .output = 2, .name = 3, .op_type = 4, .attribute = 5, .domain = 7;
TensorProto.dims = 1, .data_type = 2, .name = 8, .raw_data = 9; AttributeProto.name = 1,
.i = 3, .ints = 8, .type = 20).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

Field = tuple[int, int, Any]  # number, wire type, value: int (varint) or bytes

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
#: TensorProto.DataType codes moss reads or writes.
FLOAT, UINT8, INT8, INT64 = 1, 2, 3, 7
_DTYPES = {FLOAT: np.float32, UINT8: np.uint8, INT8: np.int8, INT64: np.int64}
#: AttributeProto.AttributeType codes.
ATTRIBUTE_INT, ATTRIBUTE_INTS = 2, 7


def parse(data: bytes) -> list[Field]:
    """The fields of one message, in order. Raises ValueError on malformed input."""
    fields: list[Field] = []
    view, pos = memoryview(data), 0
    while pos < len(view):
        key, pos = _varint(view, pos)
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            value, pos = _varint(view, pos)
            fields.append((number, wire, value))
            continue
        if wire == LENGTH:
            size, pos = _varint(view, pos)
        elif wire in (FIXED64, FIXED32):
            size = 8 if wire == FIXED64 else 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos + size > len(view):
            raise ValueError("truncated protobuf message")
        fields.append((number, wire, bytes(view[pos : pos + size])))
        pos += size
    return fields


def serialize(fields: list[Field]) -> bytes:
    """The bytes of a message made of ``fields`` (the inverse of :func:`parse`)."""
    out = bytearray()
    for number, wire, value in fields:
        out += encode_varint(number << 3 | wire)
        if wire == VARINT:
            out += encode_varint(value)
        elif wire == LENGTH:
            out += encode_varint(len(value)) + value
        else:
            out += value
    return bytes(out)


def strings(fields: list[Field], number: int) -> list[str]:
    """The values of the string field ``number`` (repeated or not), in order."""
    return [value.decode("utf-8") for n, wire, value in fields if n == number and wire == LENGTH]


def node(
    op_type: str, inputs: list[str], output: str, domain: str = "", **attributes: int | list[int]
) -> bytes:
    """A NodeProto named after its one output; attributes are ints or lists of ints."""
    fields: list[Field] = [(1, LENGTH, name.encode()) for name in inputs]
    fields += [(2, LENGTH, output.encode()), (3, LENGTH, output.encode())]
    fields.append((4, LENGTH, op_type.encode()))
    if domain:
        fields.append((7, LENGTH, domain.encode()))
    for key, value in sorted(attributes.items()):  # sorted: the same bytes every time
        attribute: list[Field] = [(1, LENGTH, key.encode())]
        if isinstance(value, list):
            attribute += [(8, VARINT, _int64(v)) for v in value] + [(20, VARINT, ATTRIBUTE_INTS)]
        else:
            attribute += [(3, VARINT, _int64(value)), (20, VARINT, ATTRIBUTE_INT)]
        fields.append((5, LENGTH, serialize(attribute)))
    return serialize(fields)


def opset(domain: str, version: int) -> bytes:
    """An OperatorSetIdProto (a ModelProto.opset_import entry)."""
    return serialize([(1, LENGTH, domain.encode()), (2, VARINT, version)])


def tensor(name: str, array: npt.NDArray[Any]) -> bytes:
    """A TensorProto holding ``array`` (float32, uint8, int8 or int64) as raw little-endian data."""
    codes = {np.dtype(dtype): code for code, dtype in _DTYPES.items()}
    fields: list[Field] = [(1, VARINT, _int64(d)) for d in array.shape]
    fields += [(2, VARINT, codes[array.dtype]), (8, LENGTH, name.encode())]
    fields.append(
        (9, LENGTH, np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes())
    )
    return serialize(fields)


def tensor_array(fields: list[Field]) -> npt.NDArray[Any]:
    """The array of a TensorProto stored as raw data. Raises ValueError for other layouts."""
    dims = [v for n, wire, v in fields if n == 1 and wire == VARINT]
    for n, wire, value in fields:
        if n == 1 and wire == LENGTH:  # packed dims
            dims += _packed_varints(value)
    codes = [v for n, wire, v in fields if n == 2 and wire == VARINT]
    raw = [v for n, wire, v in fields if n == 9 and wire == LENGTH]
    if len(codes) != 1 or codes[0] not in _DTYPES or len(raw) != 1:
        raise ValueError("a weight tensor is not stored as raw data of a known type")
    dtype = np.dtype(_DTYPES[codes[0]]).newbyteorder("<")
    return np.frombuffer(raw[0], dtype=dtype).astype(dtype.newbyteorder("=")).reshape(dims)


def _packed_varints(data: bytes) -> list[int]:
    values, pos, view = [], 0, memoryview(data)
    while pos < len(view):
        value, pos = _varint(view, pos)
        values.append(value - (1 << 64) if value >= 1 << 63 else value)
    return values


def _int64(value: int) -> int:
    """A signed int64 as protobuf writes it (negative numbers as 64-bit two's complement)."""
    return value + (1 << 64) if value < 0 else value


def _varint(view: memoryview, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(view) or shift > 63:
            raise ValueError("truncated or overlong protobuf varint")
        byte = view[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7


def encode_varint(value: int) -> bytes:
    """``value`` (>= 0) as a protobuf base-128 varint."""
    out = bytearray()
    while True:
        out.append(value & 0x7F | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)
