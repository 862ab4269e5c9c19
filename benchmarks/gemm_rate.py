"""The machine's matrix rate through onnxruntime: a one-node ONNX graph built in memory.

``onnx`` is not a dependency, so the ModelProto is written as protobuf bytes by hand (four
message fields). Used by ``bench_ingest.py`` to put moss's embedding rate beside the machine's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from moss.embeddings.onnx_wire import encode_varint as _varint

DIM = 384


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (onnx is not a dependency; the graph is a few fields)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def matmul_model(op: str, types: tuple[int, int, int], a_rows: int, b: npt.NDArray[Any]) -> bytes:
    """ONNX ModelProto bytes of ``Y = op(A, B)``, B a constant as a model's weights are (so
    onnxruntime pre-packs it); element types are onnx's TensorProto codes."""
    inner, cols = b.shape
    dims = {"A": (a_rows, inner), "B": (inner, cols), "Y": (a_rows, cols)}

    def value(name: str, elem: int) -> bytes:
        tensor_shape = b"".join(_field(1, _varint(1 << 3) + _varint(d)) for d in dims[name])
        tensor = _varint(1 << 3) + _varint(elem) + _field(2, tensor_shape)
        return _field(1, name.encode()) + _field(2, _field(1, tensor))

    node = _field(1, b"A") + _field(1, b"B") + _field(2, b"Y") + _field(4, op.encode())
    graph = _field(1, node) + _field(2, b"gemm") + _field(11, value("A", types[0]))
    weights = b"".join(_varint(1 << 3) + _varint(d) for d in b.shape) + _varint(2 << 3)
    weights += _varint(types[1]) + _field(8, b"B") + _field(9, b.tobytes())
    graph += _field(5, weights) + _field(12, value("Y", types[2]))
    return (
        _varint(1 << 3) + _varint(8) + _field(8, _varint(2 << 3) + _varint(13)) + _field(7, graph)
    )


def gemm_gops(op: str, rows: int) -> float:
    """Best-of-10 GOPS of onnxruntime (all cores) on a (rows x 384) @ (384 x 1536) product."""
    import onnxruntime as ort

    uint8, int8, int32, float32 = 2, 3, 6, 1
    types = (uint8, int8, int32) if op == "MatMulInteger" else (float32, float32, float32)
    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    rng = np.random.default_rng(0)
    if op == "MatMulInteger":
        a: npt.NDArray[Any] = rng.integers(0, 256, (rows, DIM), dtype=np.uint8)
        b: npt.NDArray[Any] = rng.integers(-128, 128, (DIM, 1536), dtype=np.int8)
        expected: npt.NDArray[Any] = a.astype(np.int32) @ b.astype(np.int32)
    else:
        a, b = (
            rng.standard_normal((rows, DIM), np.float32),
            rng.standard_normal((DIM, 1536), np.float32),
        )
        expected = a @ b
    model = matmul_model(op, types, rows, b)
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    got = session.run(None, {"A": a})[0]
    assert np.allclose(got, expected, rtol=1e-3, atol=1e-2), f"{op} gave a wrong product"
    best = min(_seconds(lambda: session.run(None, {"A": a})) for _ in range(10))
    return 2 * rows * DIM * 1536 / best / 1e9


def _seconds(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
