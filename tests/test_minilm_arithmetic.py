"""moss-minilm's int8 graph: agreement with float32, the on-disk cache, the choice at load."""

from __future__ import annotations

import hashlib
import importlib.resources
import time
from pathlib import Path

import numpy as np
import pytest

from moss.embeddings import arithmetic, int8_graph, minilm
from moss.embeddings import onnx_wire as wire
from moss.errors import MossError

pytestmark = pytest.mark.model

TEXTS = [
    "",
    "refund",
    "How do I reset my password?",
    "The customer was charged twice for the same invoice and asked for a refund of the second "
    "charge, which the agent confirmed on the phone the next morning.",
    "Mitochondrial DNA copy number, frailty and mortality: a cohort of 1,204 older adults. " * 8,
    "ünïcödé текст 中文 emoji 🙂 and numbers 3.14159 2,718",
]


@pytest.fixture(scope="module")
def source() -> bytes:
    return importlib.resources.files(minilm.MODEL_PACKAGE).joinpath("model.onnx").read_bytes()


@pytest.fixture(scope="module")
def derived(source: bytes) -> bytes:
    return int8_graph.derive_int8_graph(source)


@pytest.fixture(scope="module")
def runtimes() -> dict[str, minilm._Runtime]:
    return {name: minilm.load_runtime(name) for name in ("float", "int8")}


def test_int8_vectors_agree_with_float_ones(runtimes: dict[str, minilm._Runtime]) -> None:
    assert runtimes["int8"].arithmetic == "int8" and runtimes["float"].arithmetic == "float"
    exact, approx = runtimes["float"].embed(TEXTS), runtimes["int8"].embed(TEXTS)
    assert approx.dtype == np.float32 and approx.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(approx, axis=1), 1.0, rtol=1e-5)
    cosine = np.sum(exact * approx, axis=1)
    assert cosine.min() >= 0.99, cosine
    # The int8 graph really ran: its rounding leaves a trace.
    assert not np.allclose(exact, approx, atol=1e-5)


def test_int8_vectors_do_not_depend_on_the_batch(runtimes: dict[str, minilm._Runtime]) -> None:
    # Activations are quantised per token, so neighbours and padding change nothing.
    batch = runtimes["int8"].embed(TEXTS)
    for i, text in enumerate(TEXTS):
        np.testing.assert_allclose(batch[i], runtimes["int8"].embed([text])[0], atol=1e-5)


def test_the_derived_graph_multiplies_int8_weights_and_is_deterministic(
    source: bytes, derived: bytes
) -> None:
    (graph,) = [value for number, _, value in wire.parse(derived) if number == 7]
    ops = [wire.strings(wire.parse(node), 4)[0] for n, _, node in wire.parse(graph) if n == 1]
    assert ops.count("MatMulIntegerToFloat") == 36
    # What remains in float32: attention's two products per layer, and the outlier channels'
    # products of the four weights that read a LayerNorm output (Q, K, V, feed-forward in).
    assert ops.count("MatMul") == 6 * 2 + 6 * 4
    assert int8_graph.derive_int8_graph(source) == derived


def test_the_wire_codec_writes_back_what_it_read(source: bytes) -> None:
    assert wire.serialize(wire.parse(source)) == source
    (graph,) = [value for number, _, value in wire.parse(source) if number == 7]
    assert wire.serialize(wire.parse(graph)) == graph


@pytest.mark.parametrize("damage", [b"\x0a\xff", b"\x0a\x05abc", b"\x0b", b"\xff" * 11])
def test_the_wire_codec_refuses_malformed_bytes(damage: bytes) -> None:
    with pytest.raises(ValueError, match="protobuf"):
        wire.parse(damage)


def test_the_wire_codec_writes_negative_attributes_and_tensors() -> None:
    node = wire.parse(wire.node("ReduceMax", ["x"], "y", axes=[-1], keepdims=1))
    assert wire.strings(node, 1) == ["x"] and wire.strings(node, 4) == ["ReduceMax"]
    attributes = {wire.strings(wire.parse(v), 1)[0]: wire.parse(v) for n, _, v in node if n == 5}
    assert (8, wire.VARINT, (1 << 64) - 1) in attributes["axes"]  # -1 as int64
    assert (3, wire.VARINT, 1) in attributes["keepdims"]
    array = np.arange(-3, 3, dtype=np.int64).reshape(2, 3)
    np.testing.assert_array_equal(wire.tensor_array(wire.parse(wire.tensor("t", array))), array)


def test_a_graph_without_int8_weights_is_refused(derived: bytes) -> None:
    with pytest.raises(ValueError, match="no int8-weight MatMul"):
        int8_graph.derive_int8_graph(derived)


def test_the_cache_is_written_once_and_reused(
    source: bytes, derived: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha = hashlib.sha256(source).hexdigest()
    assert int8_graph.cached_int8_graph(source, sha, tmp_path) == derived
    path = int8_graph.cache_path(sha, tmp_path)
    assert path.parent == tmp_path / "models" and path.is_file()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left

    def derive_again(model: bytes) -> bytes:
        raise AssertionError("derived again although the cache holds the graph")

    monkeypatch.setattr(int8_graph, "derive_int8_graph", derive_again)
    assert int8_graph.cached_int8_graph(source, sha, tmp_path) == derived


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "empty", "foreign file"])
def test_a_damaged_cache_file_is_rebuilt_not_trusted(
    source: bytes, derived: bytes, tmp_path: Path, damage: str
) -> None:
    sha = hashlib.sha256(source).hexdigest()
    int8_graph.cached_int8_graph(source, sha, tmp_path)
    path = int8_graph.cache_path(sha, tmp_path)
    data = bytearray(path.read_bytes())
    if damage == "flip a byte":
        data[len(data) // 2] ^= 0x01
    elif damage == "truncate":
        del data[len(data) // 2 :]
    elif damage == "empty":
        data.clear()
    else:
        data = bytearray(derived)  # a bare graph without the checked header
    path.write_bytes(bytes(data))
    assert int8_graph.cached_int8_graph(source, sha, tmp_path) == derived
    # The file was replaced by a good one, which the next load reads as it is.
    assert path.read_bytes().endswith(derived) and path.read_bytes() != bytes(data)


def test_the_cache_key_names_source_runtime_and_rewrite(tmp_path: Path) -> None:
    import onnxruntime

    name = int8_graph.cache_path("ab" * 32, tmp_path).name
    assert "abababababababab" in name
    assert f"ort{onnxruntime.__version__}" in name
    assert f"r{int8_graph.REWRITE_VERSION}" in name


def test_an_unwritable_cache_only_costs_time(source: bytes, derived: bytes, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    sha = hashlib.sha256(source).hexdigest()
    assert int8_graph.cached_int8_graph(source, sha, blocker) == derived


@pytest.mark.parametrize("value", ["int8", "float", " INT8 "])
def test_the_env_override_picks_the_graph_without_measuring(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def measure(embed: object) -> str:
        raise AssertionError("measured although the override names the arithmetic")

    monkeypatch.setattr(minilm, "pick_arithmetic", measure)
    monkeypatch.setenv(arithmetic.ARITHMETIC_ENV, value)
    assert minilm.load_runtime().arithmetic == value.strip().lower()


@pytest.mark.parametrize("value", ["fp32", "int4", "yes"])
def test_a_bad_override_is_refused_with_the_valid_values(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(arithmetic.ARITHMETIC_ENV, value)
    with pytest.raises(MossError, match=rf"MOSS_MINILM_ARITHMETIC='{value}' is not valid.*'int8'"):
        minilm.load_runtime()


def test_without_override_the_measurement_chooses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(arithmetic.ARITHMETIC_ENV, raising=False)
    seen: list[set[str]] = []

    def measure(embed: dict[str, arithmetic.Embed]) -> str:
        seen.append(set(embed))
        return "float"

    monkeypatch.setattr(minilm, "pick_arithmetic", measure)
    assert minilm.load_runtime().arithmetic == "float"
    assert seen == [{"int8", "float"}]


def test_the_measured_verdict_is_kept_and_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(arithmetic.ARITHMETIC_ENV, raising=False)
    monkeypatch.setattr(minilm, "pick_arithmetic", lambda embed: "float")
    assert minilm.load_runtime().arithmetic == "float"
    path = arithmetic.verdict_path(minilm.MODEL_SHA256)
    assert path.read_text() == "float\n"

    def measure(embed: object) -> str:
        raise AssertionError("measured again on the same CPU")

    monkeypatch.setattr(minilm, "pick_arithmetic", measure)
    assert minilm.load_runtime().arithmetic == "float"
    path.write_text("int8\n")
    assert minilm.load_runtime().arithmetic == "int8"


@pytest.mark.parametrize("content", ["", "fp16\n", "\xff\xfe"])
def test_an_unreadable_verdict_is_measured_again(
    content: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(arithmetic.ARITHMETIC_ENV, raising=False)
    path = arithmetic.verdict_path(minilm.MODEL_SHA256)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("latin-1"))
    monkeypatch.setattr(minilm, "pick_arithmetic", lambda embed: "int8")
    assert minilm.load_runtime().arithmetic == "int8"
    assert path.read_text() == "int8\n"


def test_a_bad_arithmetic_argument_is_refused() -> None:
    with pytest.raises(ValueError, match="arithmetic must be one of"):
        minilm.load_runtime("int4")


def test_a_missing_int8_graph_falls_back_to_float_unless_forced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unavailable(model: bytes, sha: str) -> bytes:
        raise ValueError("the model has no int8-weight MatMul to rewrite")

    monkeypatch.setattr(minilm, "cached_int8_graph", unavailable)
    monkeypatch.delenv(arithmetic.ARITHMETIC_ENV, raising=False)
    assert minilm.load_runtime().arithmetic == "float"
    monkeypatch.setenv(arithmetic.ARITHMETIC_ENV, "int8")
    with pytest.raises(MossError, match=r"cannot build the int8 graph.*no int8-weight MatMul"):
        minilm.load_runtime()


def test_pick_prefers_int8_only_when_it_agrees_and_is_faster(
    runtimes: dict[str, minilm._Runtime],
) -> None:
    exact = runtimes["float"].embed

    def slow(texts: list[str]) -> np.ndarray:
        time.sleep(0.05)
        return exact(texts)

    def shuffled(texts: list[str]) -> np.ndarray:  # fast, but wrong vectors (a broken kernel)
        return exact(texts)[::-1].copy()

    assert arithmetic.pick_arithmetic({"float": slow, "int8": exact}) == "int8"
    assert arithmetic.pick_arithmetic({"float": exact, "int8": slow}) == "float"
    assert arithmetic.pick_arithmetic({"float": slow, "int8": shuffled}) == "float"
