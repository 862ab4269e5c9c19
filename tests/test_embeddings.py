"""Tests for moss.embeddings: built-in model, custom vectors, wrapped embedders, registry."""

from __future__ import annotations

import asyncio
import importlib.resources
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from moss.embeddings import (
    DEFAULT_MODEL_ID,
    CustomModel,
    EmbedderModel,
    EmbeddingModel,
    MiniLMModel,
    minilm,
    normalize_rows,
    resolve_model,
)
from moss.errors import InvalidArgumentError, MossError

REFUND_QUERY = "status of the refund"
REFUND_DOC = "Agent confirmed a refund in 3-5 business days."
CHARGE_DOC = "Customer reported a duplicate $49.99 charge."

T = TypeVar("T")


# --- fakes: third-party embedders are the edge of moss, so fakes stand in for them ---------------


def _fake_vector(text: str) -> list[float]:
    """A deterministic 4-d vector that differs between texts."""
    return [1.0 + len(text), float(text.count("a")), float(text.count("e")), 0.5]


class LangChainLike:
    """Sync-only LangChain-style embedder."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls: list[str] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls.append("embed_documents")
        time.sleep(self.delay)  # a blocking network call, as a real embedder makes
        return [_fake_vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        self.calls.append("embed_query")
        time.sleep(self.delay)
        return _fake_vector(text)


class AsyncLangChainLike(LangChainLike):
    """LangChain-style embedder with native async methods."""

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls.append("aembed_documents")
        await asyncio.sleep(self.delay)
        return [_fake_vector(t) for t in texts]

    async def aembed_query(self, text: str) -> list[float]:
        self.calls.append("aembed_query")
        await asyncio.sleep(self.delay)
        return _fake_vector(text)


class LlamaIndexLike:
    """LlamaIndex-style embedder, sync and async."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls: list[str] = []

    def get_text_embedding_batch(self, texts: list[str]) -> list[list[float]]:
        self.calls.append("get_text_embedding_batch")
        return [_fake_vector(t) for t in texts]

    def get_query_embedding(self, query: str) -> list[float]:
        self.calls.append("get_query_embedding")
        return _fake_vector(query)

    async def aget_text_embedding_batch(self, texts: list[str]) -> list[list[float]]:
        self.calls.append("aget_text_embedding_batch")
        await asyncio.sleep(self.delay)
        return [_fake_vector(t) for t in texts]

    async def aget_query_embedding(self, query: str) -> list[float]:
        self.calls.append("aget_query_embedding")
        await asyncio.sleep(self.delay)
        return _fake_vector(query)


class FixedOutput:
    """An embedder that returns whatever it is told to, to test output checks."""

    def __init__(self, output: object) -> None:
        self.output = output

    def embed_documents(self, texts: list[str]) -> object:
        return self.output

    def embed_query(self, text: str) -> object:
        return self.output


async def _ticks_while(work: Awaitable[T]) -> tuple[T, int]:
    """Run ``work`` while another coroutine counts event-loop turns; return both."""
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.002)

    task = asyncio.create_task(ticker())
    try:
        result = await work
    finally:
        done.set()
        await task
    return result, ticks


def _unit(expected: list[float]) -> np.ndarray:
    array = np.asarray(expected, dtype=np.float32)
    unit: np.ndarray = array / np.linalg.norm(array)
    return unit


# --- normalize_rows ------------------------------------------------------------------------------


def test_normalize_rows_returns_unit_float32_rows_and_leaves_input_alone() -> None:
    matrix = np.array([[3.0, 4.0], [0.0, -2.0]], dtype=np.float64)
    out = normalize_rows(matrix)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, -1.0]], rtol=1e-6)
    assert matrix[0, 0] == 3.0


def test_normalize_rows_handles_tiny_and_huge_vectors() -> None:
    out = normalize_rows([[1e-30, 1e-30], [1e30, -1e30]])
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), [1.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(out[1], [2**-0.5, -(2**-0.5)], rtol=1e-6)


@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 6), st.integers(1, 12)),
        elements=st.floats(allow_nan=False, allow_infinity=False, width=32),
    )
)
def test_normalize_rows_keeps_the_direction_of_any_nonzero_row(matrix: np.ndarray) -> None:
    nonzero = matrix[np.abs(matrix).max(axis=1) > 0].astype(np.float64)
    out = normalize_rows(nonzero).astype(np.float64)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    scaled = nonzero / np.abs(nonzero).max(axis=1, keepdims=True)
    cosine = (scaled * out).sum(axis=1) / np.linalg.norm(scaled, axis=1)
    np.testing.assert_allclose(cosine, 1.0, rtol=1e-5)


def test_normalize_rows_keeps_empty_batches() -> None:
    assert normalize_rows(np.empty((0, 8))).shape == (0, 8)


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        ([[1.0, 2.0], [0.0, 0.0]], "vector 1 is all zeros"),
        ([[1.0, float("nan")]], "vector 0 contains NaN"),
        ([[float("inf"), 1.0]], "vector 0 contains NaN"),
        ([1.0, 2.0], "2-d"),
        ([["a", "b"]], "must be numbers"),
        (np.empty((2, 0)), "all zeros"),
    ],
)
def test_normalize_rows_refuses_bad_rows(matrix: object, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        normalize_rows(matrix)  # type: ignore[arg-type]


# --- custom --------------------------------------------------------------------------------------


async def test_custom_model_refuses_to_embed_and_says_how_to_pass_vectors() -> None:
    model = CustomModel()
    assert model.requires_vectors and model.model_id == "custom" and model.artifact_id == ""
    assert model.dimension is None
    with pytest.raises(InvalidArgumentError, match=r"DocumentInfo\(embedding=\.\.\.\)"):
        model.embed_documents(["hello"])
    with pytest.raises(InvalidArgumentError, match=r"QueryOptions\(embedding=\.\.\.\)"):
        model.embed_query("hello")
    with pytest.raises(InvalidArgumentError, match="custom model"):
        await model.aembed_documents(["hello"])
    with pytest.raises(InvalidArgumentError, match="custom model"):
        await model.aembed_query("hello")


def test_custom_model_learns_its_dimension_once() -> None:
    model = CustomModel()
    assert model.bind_dimension(3) == 3
    assert model.dimension == 3
    model.bind_dimension(3)
    with pytest.raises(InvalidArgumentError, match="produces 3-dimensional vectors, got 4"):
        model.bind_dimension(4)
    fixed = CustomModel(dimension=8)
    assert fixed.dimension == 8
    with pytest.raises(InvalidArgumentError, match="got 3"):
        fixed.bind_dimension(3)


@pytest.mark.parametrize("dimension", [0, -1, True, 2.0])
def test_custom_model_refuses_bad_dimensions(dimension: object) -> None:
    with pytest.raises(InvalidArgumentError, match="positive integer"):
        CustomModel(dimension=dimension)  # type: ignore[arg-type]


def test_concurrent_dimension_binding_has_one_winner() -> None:
    model = CustomModel()
    errors: list[Exception] = []
    barrier = threading.Barrier(8)

    def bind(dimension: int) -> None:
        barrier.wait()
        try:
            model.bind_dimension(dimension)
        except InvalidArgumentError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=bind, args=(3 + i % 2,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert model.dimension in (3, 4)
    assert len(errors) == 4


# --- wrapper -------------------------------------------------------------------------------------


@pytest.mark.parametrize("embedder_type", [LangChainLike, AsyncLangChainLike, LlamaIndexLike])
def test_wrapper_embeds_with_sync_methods(embedder_type: type[LangChainLike]) -> None:
    model = EmbedderModel(embedder_type(), model_id="fake-4d")
    assert model.model_id == "fake-4d" and model.artifact_id == "" and not model.requires_vectors
    assert model.dimension is None
    vectors = model.embed_documents(["alpha", "beta", ""])
    assert vectors.dtype == np.float32 and vectors.shape == (3, 4)
    np.testing.assert_allclose(vectors[1], _unit(_fake_vector("beta")), rtol=1e-6)
    assert model.dimension == 4
    query = model.embed_query("alpha")
    assert query.shape == (4,)
    np.testing.assert_allclose(query, vectors[0], rtol=1e-6)


@pytest.mark.parametrize(
    ("embedder_type", "native"),
    [
        (AsyncLangChainLike, ["aembed_documents", "aembed_query"]),
        (LlamaIndexLike, ["aget_text_embedding_batch", "aget_query_embedding"]),
    ],
)
async def test_wrapper_awaits_native_async_methods(
    embedder_type: type[LangChainLike], native: list[str]
) -> None:
    embedder = embedder_type(delay=0.1)
    model = EmbedderModel(embedder, model_id="fake-4d")
    vectors, ticks = await _ticks_while(model.aembed_documents(["alpha", "beta"]))
    assert ticks >= 10
    query = await model.aembed_query("alpha")
    assert embedder.calls == native
    np.testing.assert_allclose(query, vectors[0], rtol=1e-6)


async def test_wrapper_runs_sync_only_embedders_in_a_thread() -> None:
    embedder = LangChainLike(delay=0.1)
    model = EmbedderModel(embedder, model_id="fake-4d")
    vectors, ticks = await _ticks_while(model.aembed_documents(["alpha", "beta"]))
    assert ticks >= 10  # the event loop kept turning while the embedder slept
    query, ticks = await _ticks_while(model.aembed_query("alpha"))
    assert ticks >= 10
    assert embedder.calls == ["embed_documents", "embed_query"]
    np.testing.assert_allclose(query, vectors[0], rtol=1e-6)


async def test_wrapper_accepts_async_methods_that_return_values() -> None:
    class OddAsync(LangChainLike):
        def aembed_query(self, text: str) -> list[float]:
            return _fake_vector(text)

    model = EmbedderModel(OddAsync(), model_id="odd")
    np.testing.assert_allclose(await model.aembed_query("x"), _unit(_fake_vector("x")), rtol=1e-6)


async def test_wrapper_returns_empty_matrix_without_calling_the_embedder() -> None:
    embedder = LangChainLike()
    model = EmbedderModel(embedder, model_id="fake-4d", dimension=4)
    assert model.embed_documents([]).shape == (0, 4)
    assert (await model.aembed_documents([])).shape == (0, 4)
    assert embedder.calls == []


def test_wrapper_refuses_a_dimension_change() -> None:
    model = EmbedderModel(FixedOutput([[1.0, 2.0, 3.0]]), model_id="three")
    model.embed_documents(["a"])
    assert model.dimension == 3
    model.embedder.output = [[1.0, 2.0]]  # type: ignore[attr-defined]
    with pytest.raises(InvalidArgumentError, match="produces 3-dimensional vectors, got 2"):
        model.embed_documents(["a"])
    declared = EmbedderModel(LangChainLike(), model_id="declared", dimension=8)
    with pytest.raises(InvalidArgumentError, match="produces 8-dimensional vectors, got 4"):
        declared.embed_query("a")


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ([[1.0, 2.0]], r"shape \(1, 2\) for 2 texts"),
        ([[0.0, 0.0], [1.0, 1.0]], "all zeros"),
        ([[1.0, float("nan")], [1.0, 1.0]], "NaN"),
        ([["x", "y"], [1.0, 1.0]], "not a list of float vectors"),
        ([[], []], "one non-empty vector per text"),
        (None, "shape"),
    ],
)
def test_wrapper_refuses_bad_document_vectors(output: object, message: str) -> None:
    model = EmbedderModel(FixedOutput(output), model_id="bad")
    with pytest.raises(InvalidArgumentError, match=message):
        model.embed_documents(["a", "b"])


@pytest.mark.parametrize("output", [[[1.0, 2.0]], [], 3.0])
def test_wrapper_refuses_bad_query_vectors(output: object) -> None:
    model = EmbedderModel(FixedOutput(output), model_id="bad")
    with pytest.raises(InvalidArgumentError, match="query vector of shape"):
        model.embed_query("a")


@pytest.mark.parametrize("model_id", ["moss-minilm", "custom"])
def test_wrapper_refuses_reserved_model_ids(model_id: str) -> None:
    with pytest.raises(InvalidArgumentError, match="reserved"):
        EmbedderModel(LangChainLike(), model_id=model_id)


@pytest.mark.parametrize("model_id", ["", "has space", "-lead", "x" * 129, 42])
def test_wrapper_refuses_invalid_model_ids(model_id: object) -> None:
    with pytest.raises(InvalidArgumentError, match="invalid model id"):
        EmbedderModel(LangChainLike(), model_id=model_id)  # type: ignore[arg-type]


def test_wrapper_refuses_objects_that_are_not_embedders() -> None:
    with pytest.raises(InvalidArgumentError, match=r"embed_documents.*get_text_embedding_batch"):
        EmbedderModel(object(), model_id="nothing")


@pytest.mark.parametrize("texts", ["one string", ["ok", 3]])
def test_wrapper_refuses_texts_that_are_not_a_list_of_str(texts: object) -> None:
    model = EmbedderModel(LangChainLike(), model_id="fake-4d")
    with pytest.raises(InvalidArgumentError, match="str"):
        model.embed_documents(texts)  # type: ignore[arg-type]


# --- registry ------------------------------------------------------------------------------------


def test_resolve_model_serves_the_builtins() -> None:
    assert DEFAULT_MODEL_ID == "moss-minilm"
    default = resolve_model()
    assert isinstance(default, MiniLMModel)
    assert resolve_model("moss-minilm") is default
    first, second = resolve_model("custom"), resolve_model("custom")
    assert isinstance(first, CustomModel) and first is not second
    wrapped = EmbedderModel(LangChainLike(), model_id="mine")
    assert resolve_model(wrapped) is wrapped
    assert isinstance(wrapped, EmbeddingModel)


def test_resolve_model_refuses_unknown_ids_with_a_way_out() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        resolve_model("openai-3-small")
    message = str(info.value)
    assert "'moss-minilm'" in message and "'custom'" in message
    assert "model=EmbedderModel(obj, model_id=...)" in message


def test_builtin_model_identity_is_known_without_loading() -> None:
    model = MiniLMModel()
    assert model.model_id == "moss-minilm"
    assert model.dimension == 384 and not model.requires_vectors
    assert model.artifact_id == (
        "sha256:8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
    )


# --- the built-in model files --------------------------------------------------------------------


def test_read_verified_accepts_the_shipped_tokenizer() -> None:
    tokenizer = importlib.resources.files("moss.embeddings").joinpath("data/tokenizer.json")
    assert minilm.read_verified(tokenizer, minilm.TOKENIZER_SHA256, "tokenizer").startswith(b"{")


def test_read_verified_refuses_a_replaced_file(tmp_path: Path) -> None:
    tampered = tmp_path / "model.onnx"
    tampered.write_bytes(b"not the model")
    with pytest.raises(MossError, match="reinstall") as info:
        minilm.read_verified(tampered, minilm.MODEL_SHA256, "moss-minilm model file")
    assert minilm.MODEL_SHA256 in str(info.value)
    with pytest.raises(MossError, match="cannot read"):
        minilm.read_verified(tmp_path / "missing.onnx", minilm.MODEL_SHA256, "model file")


def test_batches_cover_every_text_once_within_the_caps() -> None:
    lengths = [3, 300, 7, 7, 120, 2, 256, 50, *([4] * 300)]
    ids = [[1] * n for n in lengths]
    batches = minilm._batches(ids)
    assert sorted(i for batch in batches for i in batch) == list(range(len(ids)))
    for batch in batches:
        width = max(lengths[i] for i in batch)
        assert len(batch) <= minilm.BATCH_TEXTS
        assert len(batch) == 1 or len(batch) * width <= minilm.BATCH_TOKENS
    assert minilm._batches([]) == []


# --- the real model ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model() -> MiniLMModel:
    loaded = MiniLMModel()
    loaded.load()
    return loaded


@pytest.mark.model
def test_minilm_ranks_the_refund_answer_first(model: MiniLMModel) -> None:
    docs = model.embed_documents([CHARGE_DOC, REFUND_DOC])
    query = model.embed_query(REFUND_QUERY)
    charge, refund = docs @ query
    assert refund > charge
    assert refund > 0.5


@pytest.mark.model
def test_minilm_scores_similar_sentences_high_and_unrelated_low(model: MiniLMModel) -> None:
    vectors = model.embed_documents(
        [
            "How do I reset my password?",
            "I forgot my login password and need to change it.",
            "The Roman Empire fell in 476 AD.",
        ]
    )
    assert vectors[0] @ vectors[1] > 0.5
    assert vectors[0] @ vectors[2] < 0.3


@pytest.mark.model
def test_minilm_vectors_are_unit_float32(model: MiniLMModel) -> None:
    vectors = model.embed_documents(["short", "a somewhat longer sentence about billing", ""])
    assert vectors.dtype == np.float32 and vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    query = model.embed_query("")
    assert query.shape == (384,) and np.isfinite(query).all()
    np.testing.assert_allclose(query, vectors[2], atol=1e-5)
    assert model.embed_documents([]).shape == (0, 384)


@pytest.mark.model
def test_minilm_batches_match_single_texts_in_order(model: MiniLMModel) -> None:
    # 40 texts of mixed lengths: more than one batch, reordered by length inside.
    texts = [f"ticket {i}: " + "the customer asked about an invoice " * (i % 7) for i in range(40)]
    batch = model.embed_documents(texts)
    for i, text in enumerate(texts):
        np.testing.assert_allclose(batch[i], model.embed_query(text), atol=1e-5)


@pytest.mark.model
def test_minilm_truncates_long_texts_to_256_tokens(model: MiniLMModel) -> None:
    words = [f"word{i % 50}" for i in range(3000)]
    long_text = " ".join(words)
    # Both texts share far more than 256 leading tokens, so the model sees the same input.
    vectors = model.embed_documents([long_text, " ".join(words[:400])])
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-5)
    assert abs(float(np.linalg.norm(vectors[0])) - 1.0) < 1e-5


@pytest.mark.model
async def test_minilm_async_does_not_block_the_event_loop(model: MiniLMModel) -> None:
    texts = [f"sentence number {i} about refunds and charges" for i in range(96)]
    vectors, ticks = await _ticks_while(model.aembed_documents(texts))
    assert ticks >= 3
    np.testing.assert_allclose(vectors, model.embed_documents(texts), atol=1e-6)
    query = await model.aembed_query(REFUND_QUERY)
    np.testing.assert_allclose(query, model.embed_query(REFUND_QUERY), atol=1e-6)


@pytest.mark.model
def test_minilm_is_safe_to_call_from_many_threads(model: MiniLMModel) -> None:
    texts = [REFUND_DOC, CHARGE_DOC, REFUND_QUERY]
    expected = model.embed_documents(texts)
    results: list[np.ndarray] = []
    run: Callable[[], None] = lambda: results.append(model.embed_documents(texts))  # noqa: E731
    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    for result in results:
        np.testing.assert_allclose(result, expected, atol=1e-6)
