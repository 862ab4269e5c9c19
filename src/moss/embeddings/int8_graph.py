"""The int8-arithmetic graph of ``moss-minilm``, derived from the shipped model file.

The shipped ``model.onnx`` keeps its 36 weight matrices as int8 with one float scale per output
column, but multiplies in float32: each weight is ``Cast`` to float and scaled, so onnxruntime
folds it back to a float matrix at load. The derived graph multiplies the int8 weights as they
are: each weight ``MatMul`` becomes onnxruntime's ``MatMulIntegerToFloat`` (uint8 x int8 on
the CPU's int8 dot-product instructions, int32 sums scaled per column to float in the same
kernel) on activations quantised per row, then a multiplication by the row scales.

Per row (token) and symmetric: a row's scale is ``max |x| / 127`` of that row alone, so a
text's vector never depends on the other texts of its batch or on padding, and the error is
far smaller than with one scale per batch (onnxruntime's ``DynamicQuantizeLinear``).
``MatMulIntegerToFloat`` is a ``com.microsoft`` operator, in every CPU build of onnxruntime;
where a build lacks it, the graph fails to load and moss runs the float32 one. Measured on 2
cores (4 x 256 tokens): 246 ms a run, against 310 ms with the standard ``MatMulInteger`` +
``Cast`` + two ``Mul`` (three more passes over every product) and 450 ms in float32.

The rewrite works on the protobuf wire format (moss.embeddings.onnx_wire), not through the
``onnx`` package, whose import alone costs seconds. It is deterministic: the same model bytes
give the same graph bytes. It runs once per model file and onnxruntime version: the result is
cached on disk, written atomically and checked against its sha256 whenever it is read.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..atomic_files import write_file_atomic
from ..cache_dir import default_cache_dir
from . import onnx_wire as wire

#: Bumped whenever the rewrite changes, so caches of an older rewrite are never read.
REWRITE_VERSION = 3
#: The operator domain of onnxruntime's own operators (MatMulIntegerToFloat).
MICROSOFT = "com.microsoft"
#: Channels of the residual stream that carry outliers (up to 30 where the others stay under 3,
#: measured on LayerNorm outputs of all-MiniLM-L6-v2): one of them would set a row's int8 scale
#: and leave the rest a few levels, so the products over them stay in float32 (LLM.int8's
#: decomposition, with the channels fixed: the model is pinned by its sha256).
OUTLIER_CHANNELS = (63, 99, 223)
_MAGIC = b"moss-int8-graph\n"
_DIGEST_HEX = 64


def cache_path(source_sha256: str, cache_dir: Path | None = None, suffix: str = ".onnx") -> Path:
    """Where the int8 graph of the model file with ``source_sha256`` is cached; another
    ``suffix`` names another file kept about that graph."""
    import onnxruntime

    root = (cache_dir or default_cache_dir()) / "models"
    name = f"minilm-int8-{source_sha256[:16]}-ort{onnxruntime.__version__}-r{REWRITE_VERSION}"
    return root / f"{name}{suffix}"


def cached_int8_graph(model: bytes, source_sha256: str, cache_dir: Path | None = None) -> bytes:
    """The int8 graph of ``model`` (whose sha256 is ``source_sha256``): from the cache when the
    cached file is intact, else derived now and cached (a damaged file is replaced, not trusted).
    """
    path = cache_path(source_sha256, cache_dir)
    cached = _read_verified(path)
    if cached is not None:
        return cached
    graph = derive_int8_graph(model)
    # A cache that cannot be written (read-only home, full disk) only costs the next load time.
    with contextlib.suppress(OSError):
        header = _MAGIC + hashlib.sha256(graph).hexdigest().encode() + b"\n"
        write_file_atomic(path, header + graph, durable=False)  # verified when read
    return graph


def _read_verified(path: Path) -> bytes | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    start = len(_MAGIC) + _DIGEST_HEX + 1
    if not data.startswith(_MAGIC) or data[start - 1 : start] != b"\n":
        return None
    graph = data[start:]
    digest = data[len(_MAGIC) : start - 1].decode("ascii", "replace")
    return graph if hashlib.sha256(graph).hexdigest() == digest else None


def derive_int8_graph(model: bytes, outliers: tuple[int, ...] = OUTLIER_CHANNELS) -> bytes:
    """Rewrite every ``MatMul(x, Mul(Cast(W_int8), scale))`` of ``model`` into int8 arithmetic;
    the ``outliers`` channels of LayerNorm outputs stay in float32.

    Raises ValueError when the graph has no such product (not the model this was written for).
    """
    top = wire.parse(model)
    graph_at = [i for i, (number, kind, _) in enumerate(top) if number == 7 and kind == wire.LENGTH]
    if len(graph_at) != 1:
        raise ValueError("not an ONNX model: no graph")
    graph = wire.parse(top[graph_at[0]][2])
    nodes = [_Node(value) for number, _, value in graph if number == 1]
    tensors = {}
    for number, _, value in graph:
        if number == 5:
            fields = wire.parse(value)
            tensors[wire.strings(fields, 8)[0]] = fields
    producer = {output: node for node in nodes for output in node.outputs}
    uses: dict[str, int] = {}
    for node in nodes:
        for name in node.inputs:
            uses[name] = uses.get(name, 0) + 1

    def int8_weight(node: _Node) -> tuple[str, str, _Node, _Node] | None:
        """(int8 weight, column scale, Mul, Cast) when ``node`` multiplies by a scaled weight."""
        mul = producer.get(node.inputs[1])
        if mul is None or mul.op_type != "Mul" or uses[mul.outputs[0]] != 1:
            return None
        cast = producer.get(mul.inputs[0])
        if cast is None or cast.op_type != "Cast" or uses[cast.outputs[0]] != 1:
            return None
        weight, scale = cast.inputs[0], mul.inputs[1]
        if weight not in tensors or scale not in tensors:
            return None
        return weight, scale, mul, cast

    make = wire.node
    constants: dict[str, npt.NDArray[Any]] = {
        "moss_q_127": np.array(127.0, np.float32),
        "moss_q_one": np.array(1.0, np.float32),
        "moss_q_128": np.array(128.0, np.float32),
        "moss_q_tiny": np.array(1e-12, np.float32),  # an all-zero row gets a scale, not 0/0
        "moss_q_zero_point": np.array(128, np.uint8),
        "moss_q_outliers": np.array(outliers, np.int64),
    }
    out_nodes: list[tuple[str, bytes]] = []  # (first output, NodeProto bytes)
    dropped: set[str] = set()  # outputs of the Cast and Mul that made float weights
    quantised: dict[str, tuple[str, str, str | None]] = {}

    def emit(*made: bytes) -> None:
        out_nodes.extend(("", data) for data in made)

    for node in nodes:
        found = int8_weight(node) if node.op_type == "MatMul" else None
        if found is None:
            out_nodes.append((node.outputs[0] if node.outputs else "", node.data))
            continue
        weight, column_scale, mul, cast = found
        dropped.update((mul.outputs[0], cast.outputs[0]))
        columns = wire.tensor_array(tensors[column_scale]).reshape(-1)  # (1, N) -> (N,)
        constants[f"{column_scale}/moss_q"] = columns.astype(np.float32)
        x, out = node.inputs[0], node.outputs[0]
        if x not in quantised:  # Q, K and V share one quantised input
            p = f"{x}/moss_q"
            split = bool(outliers) and producer[x].op_type == "LayerNormalization"
            inliers = x
            if split:  # the outlier channels go to float32, the int8 part sees zeros there
                mask = np.ones(wire.tensor_array(tensors[weight]).shape[0], np.float32)
                mask[list(outliers)] = 0.0
                constants[f"{p}/mask"] = mask
                emit(
                    make("Mul", [x, f"{p}/mask"], f"{p}/inliers"),
                    make("Gather", [x, "moss_q_outliers"], f"{p}/outliers", axis=-1),
                )
                inliers = f"{p}/inliers"
            # Row scale s = max|x| / 127; x_u8 = round(x / s) + 128 lies in [1, 255] and the
            # zero point 128 takes it back: x ~ s * (x_u8 - 128).
            emit(
                make("Abs", [inliers], f"{p}/abs"),
                make("ReduceMax", [f"{p}/abs"], f"{p}/max", axes=[-1], keepdims=1),
                make("Max", [f"{p}/max", "moss_q_tiny"], f"{p}/maxp"),
                make("Div", [f"{p}/maxp", "moss_q_127"], f"{p}/s"),
                make("Div", [inliers, f"{p}/s"], f"{p}/div"),
                make("Round", [f"{p}/div"], f"{p}/round"),
                make("Add", [f"{p}/round", "moss_q_128"], f"{p}/add"),
                make("Cast", [f"{p}/add"], f"{p}/u8", to=wire.UINT8),
            )
            quantised[x] = (f"{p}/u8", f"{p}/s", f"{p}/outliers" if split else None)
        x_u8, row_scale, x_outliers = quantised[x]
        p = f"{node.name or out}/moss_q"
        int8_out = out if x_outliers is None else f"{p}/int8"
        emit(
            # int32 sums times the column scales, in the GEMM's own epilogue; then the rows'.
            make(
                "MatMulIntegerToFloat",
                [x_u8, weight, "moss_q_one", f"{column_scale}/moss_q", "moss_q_zero_point"],
                f"{p}/cols",
                domain=MICROSOFT,
            ),
            make("Mul", [f"{p}/cols", row_scale], int8_out),
        )
        if x_outliers is not None:
            rows = wire.tensor_array(tensors[weight])[list(outliers)].astype(np.float32)
            scale = wire.tensor_array(tensors[column_scale])
            constants[f"{p}/outlier_rows"] = (rows * scale).astype(np.float32)
            emit(
                make("MatMul", [x_outliers, f"{p}/outlier_rows"], f"{p}/float"),
                make("Add", [int8_out, f"{p}/float"], out),
            )
    if not quantised:
        raise ValueError("the model has no int8-weight MatMul to rewrite")
    # The nodes go where the first one was, in their new order; every other field stays.
    new_graph: list[wire.Field] = []
    for field in graph:
        if field[0] != 1:
            new_graph.append(field)
        elif not any(f[0] == 1 for f in new_graph):
            new_graph += [
                (1, wire.LENGTH, data) for first, data in out_nodes if first not in dropped
            ]
    new_graph += [(5, wire.LENGTH, wire.tensor(k, v)) for k, v in constants.items()]
    top[graph_at[0]] = (7, wire.LENGTH, wire.serialize(new_graph))
    if not any(n == 8 and wire.strings(wire.parse(v), 1) == [MICROSOFT] for n, _, v in top):
        top.append((8, wire.LENGTH, wire.opset(MICROSOFT, 1)))
    return wire.serialize(top)


class _Node:
    """The parts of a NodeProto the rewrite reads, beside its bytes."""

    def __init__(self, data: bytes) -> None:
        fields = wire.parse(data)
        self.data = data
        self.inputs = wire.strings(fields, 1)
        self.outputs = wire.strings(fields, 2)
        names, ops = wire.strings(fields, 3), wire.strings(fields, 4)
        self.name = names[0] if names else ""
        self.op_type = ops[0] if ops else ""
