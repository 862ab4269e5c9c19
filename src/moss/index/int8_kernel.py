"""The int8 scan's integer product, ``uint8 (m, d) x int8 (d, n) -> int32 (m, n)``, run by
onnxruntime's ``MatMulInteger`` (VNNI/AVX2 integer dot products; see :mod:`moss.index.quantize`
for the layout it needs and the measurements behind it)."""

from __future__ import annotations

import threading

import numpy as np
import numpy.typing as npt

from ..errors import MossError

__all__ = ["matmul_integer_model", "scanner"]

Codes = npt.NDArray[np.int8]
Scores = npt.NDArray[np.int32]


def scanner() -> _Scanner:
    """The process's one onnxruntime session for the product (started at first use)."""
    global _loaded
    scanner = _loaded
    if scanner is None:
        with _lock:  # one session per process, also when many threads ask at once
            if _loaded is None:
                _loaded = _Scanner()
            scanner = _loaded
    return scanner


class _Scanner:
    """One onnxruntime session computing ``uint8 (m, d) x int8 (d, n) -> int32 (m, n)``."""

    def __init__(self) -> None:
        try:
            import onnxruntime as ort

            options = ort.SessionOptions()
            # One thread: a query is memory-bound, and the engine may serve several threads.
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self._session = ort.InferenceSession(
                matmul_integer_model(), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own error types
            raise MossError(f"cannot start the int8 scan (onnxruntime): {exc}") from exc

    def __call__(self, queries: npt.NDArray[np.uint8], block: Codes) -> Scores:
        try:
            result: Scores = self._session.run(None, {"q": queries, "codes": block})[0]
        except Exception as exc:
            raise MossError(f"the int8 scan failed in onnxruntime: {exc}") from exc
        return result


_lock = threading.Lock()
_loaded: _Scanner | None = None


def matmul_integer_model() -> bytes:
    """The ONNX model ``s = MatMulInteger(q, codes)``, encoded by hand.

    Encoding the few protobuf messages directly avoids depending on the ``onnx`` package for
    one three-tensor graph. Field numbers are those of onnx.proto (ModelProto, GraphProto,
    NodeProto, ValueInfoProto, TypeProto, TensorShapeProto).
    """
    uint8, int8, int32 = 2, 3, 6  # TensorProto.DataType
    node = _message(1, b"q") + _message(1, b"codes") + _message(2, b"s")
    node += _message(3, b"scan") + _message(4, b"MatMulInteger")
    graph = _message(1, node) + _message(2, b"moss_int8_scan")
    graph += _message(11, _tensor_info("q", uint8, ("queries", "dimension")))
    graph += _message(11, _tensor_info("codes", int8, ("dimension", "documents")))
    graph += _message(12, _tensor_info("s", int32, ("queries", "documents")))
    opset = _message(1, b"") + _varint_field(2, 13)
    return _varint_field(1, 8) + _message(2, b"moss") + _message(7, graph) + _message(8, opset)


def _tensor_info(name: str, elem_type: int, dims: tuple[str, ...]) -> bytes:
    shape = b"".join(_message(1, _message(2, dim.encode())) for dim in dims)
    tensor = _varint_field(1, elem_type) + _message(2, shape)
    return _message(1, name.encode()) + _message(2, _message(1, tensor))


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _varint_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _message(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2): strings, bytes and nested messages."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload
