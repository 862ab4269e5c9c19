"""Issue 17, session side: never embedding twice, progress, batch queries, columnar adds and an
event loop that keeps running while large indexes are searched."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from moss import (
    DocumentInfo,
    EmbedderModel,
    FileStore,
    InvalidArgumentError,
    MossClient,
    QueryOptions,
)
from moss.embeddings import MiniLMModel
from moss.embeddings.progress import AUTO_MIN_TEXTS

DIM = 32


class CountingMiniLM:
    """The real model, counting the texts it is asked to embed (LangChain-style methods)."""

    def __init__(self) -> None:
        self.model = MiniLMModel()
        self.calls: list[int] = []

    def embed_documents(self, texts: list[str]) -> npt.NDArray[np.float32]:
        self.calls.append(len(texts))
        return self.model.embed_documents(texts)

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        return self.model.embed_query(text)

    @property
    def embedded(self) -> int:
        return sum(self.calls)


@pytest.fixture
def client(tmp_path: Path) -> MossClient:
    return MossClient("proj", store=FileStore(tmp_path / "store"))


@pytest.fixture
def counting() -> CountingMiniLM:
    return CountingMiniLM()


def texts(count: int, prefix: str = "note") -> list[str]:
    return [f"{prefix} {i}: the refund for order {i % 17} was issued" for i in range(count)]


def docs(values: Sequence[str], **metadata: object) -> list[DocumentInfo]:
    return [
        DocumentInfo(id=f"d{i}", text=text, metadata=dict(metadata) or None)
        for i, text in enumerate(values)
    ]


def unit(rng: np.random.Generator, count: int, dim: int = DIM) -> npt.NDArray[np.float32]:
    matrix = rng.standard_normal((count, dim)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix


# -- never embed the same text twice ---------------------------------------------------------


@pytest.mark.parametrize("face", ["sync", "async"])
async def test_metadata_only_readd_embeds_nothing(
    client: MossClient, counting: CountingMiniLM, face: str
) -> None:
    model = EmbedderModel(counting, model_id="counting-minilm")
    session = await client.session("readd", model=model)
    corpus = texts(300)
    await session.add_docs(docs(corpus, round=1))
    assert counting.embedded == 300
    before = await session.get_docs(["d7"], include_embeddings=True)

    again = docs(corpus, round=2)
    if face == "sync":
        result = session.sync.add_docs(again)
    else:
        result = await session.add_docs(again)
    assert (result.added, result.updated) == (0, 300)
    assert counting.embedded == 300  # nothing embedded again
    after = await session.get_docs(["d7"], include_embeddings=True)
    assert after[0].metadata == {"round": 2}
    assert np.array_equal(np.asarray(before[0].embedding), np.asarray(after[0].embedding))


async def test_only_changed_and_distinct_texts_are_embedded(
    client: MossClient, counting: CountingMiniLM
) -> None:
    model = EmbedderModel(counting, model_id="counting-minilm")
    session = await client.session("changes", model=model)
    await session.add_docs(docs(texts(20)))
    counting.calls.clear()
    changed = texts(20)
    changed[3] = "a different text now"
    repeated = [DocumentInfo(id=f"new-{i}", text="same words twice") for i in (1, 2)]
    batch = [*docs(changed), *repeated]
    await session.add_docs(batch)
    # d3's new text and one copy of the repeated text; the 19 unchanged texts reuse vectors.
    assert counting.calls == [2]
    found = await session.get_docs(["new-1", "new-2", "d3"], include_embeddings=True)
    first, second, third = (np.asarray(d.embedding) for d in found)
    assert np.array_equal(first, second)
    expected = MiniLMModel().embed_documents(["a different text now"])[0]
    assert np.allclose(third, expected, atol=1e-6)
    hit = await session.query("a different text now", QueryOptions(top_k=1, alpha=1.0))
    assert hit.docs[0].id == "d3"


# -- progress ---------------------------------------------------------------------------------


async def test_progress_callback_counts_to_the_total(
    client: MossClient, counting: CountingMiniLM
) -> None:
    model = EmbedderModel(counting, model_id="counting-minilm")
    session = await client.session("progress", model=model)
    seen: list[tuple[int, int]] = []
    await session.add_docs(
        docs(texts(300)), progress=lambda done, total: seen.append((done, total))
    )
    assert seen[-1] == (300, 300)
    assert len(seen) >= 2 and all(total == 300 for _, total in seen)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert counting.embedded == 300
    # The chunked path gives the same vectors as one call (rows back in batch order).
    stored = await session.get_docs(["d0", "d299"], include_embeddings=True)
    expected = MiniLMModel().embed_documents([texts(300)[0], texts(300)[299]])
    assert np.allclose(np.asarray([d.embedding for d in stored]), expected, atol=1e-6)


def test_progress_bar_forced_and_automatic(
    client: MossClient, capsys: pytest.CaptureFixture[str]
) -> None:
    session = client.sync.session("bar")
    session.add_docs(docs(texts(40)), progress=True)
    assert "embedding" in capsys.readouterr().err
    # Automatic: captured (non-interactive) stderr shows nothing, nor does progress=False.
    session.add_docs(docs(texts(40, "other")))
    session.add_docs(docs(texts(40, "third")), progress=False)
    assert capsys.readouterr().err == ""
    assert AUTO_MIN_TEXTS == 1_000
    with pytest.raises(InvalidArgumentError, match="progress must be"):
        session.add_docs(docs(["x"]), progress="yes")  # type: ignore[arg-type]


# -- batch queries ----------------------------------------------------------------------------


def same_results(batch: list[object], single: list[object]) -> None:
    for got, want in zip(batch, single, strict=True):
        assert [(d.id, round(d.score, 5)) for d in got.docs] == [  # type: ignore[attr-defined]
            (d.id, round(d.score, 5))
            for d in want.docs  # type: ignore[attr-defined]
        ]


@pytest.mark.parametrize("alpha", [1.0, 0.4])
async def test_query_many_equals_one_query_at_a_time_vectors(
    client: MossClient, alpha: float
) -> None:
    rng = np.random.default_rng(3)
    session = await client.session("many", model_id="custom")
    words = ["refund", "shipping", "invoice", "delay", "coupon"]
    ids = [f"d{i}" for i in range(500)]
    bodies = [f"{words[i % 5]} case {i}" for i in range(500)]
    meta = [{"team": "a" if i % 3 else "b"} for i in range(500)]
    await session.add_arrays(ids, bodies, unit(rng, 500), meta)
    queries = unit(rng, 12)
    asked = [words[i % 5] for i in range(12)]
    for flt in (None, {"team": "b"}):
        options = QueryOptions(top_k=7, alpha=alpha, filter=flt)
        batch = await session.query_many(asked, options, embeddings=queries)
        single = [
            await session.query(text, QueryOptions(top_k=7, alpha=alpha, filter=flt, embedding=q))
            for text, q in zip(asked, queries, strict=True)
        ]
        same_results(batch, single)  # type: ignore[arg-type]
        assert [r.query for r in batch] == asked
        blocking = session.sync.query_many(asked, options, embeddings=queries)
        same_results(blocking, single)  # type: ignore[arg-type]
    vector_only = await session.query_many(
        None, QueryOptions(top_k=3, alpha=1.0), embeddings=queries
    )
    assert len(vector_only) == 12 and all(len(r.docs) == 3 for r in vector_only)


async def test_query_many_embeds_texts_in_one_batch(client: MossClient) -> None:
    session = await client.session("texts")
    await session.add_docs(docs(texts(60)))
    asked = ["refund for order 3", "note 12", "issued refunds"]
    batch = await session.query_many(asked, QueryOptions(top_k=4))
    single = [await session.query(text, QueryOptions(top_k=4)) for text in asked]
    same_results(batch, single)  # type: ignore[arg-type]
    assert await session.query_many([]) == []


async def test_query_many_refuses_bad_input(client: MossClient) -> None:
    session = await client.session("bad", model_id="custom")
    await session.add_arrays(["a"], ["x"], np.ones((1, DIM), np.float32))
    with pytest.raises(InvalidArgumentError, match="embeddings="):
        await session.query_many(["x"], QueryOptions(embedding=[1.0] * DIM))
    with pytest.raises(InvalidArgumentError, match="does not embed text"):
        await session.query_many(["x"])
    with pytest.raises(InvalidArgumentError, match="2 texts and 1 embeddings"):
        await session.query_many(["x", "y"], embeddings=np.ones((1, DIM)))
    with pytest.raises(InvalidArgumentError, match="shape"):
        await session.query_many(None, embeddings=np.ones((1, DIM + 1)))
    with pytest.raises(InvalidArgumentError, match="list of query strings"):
        await session.query_many("x", embeddings=np.ones((1, DIM)))
    text_session = await client.session("bad-text")
    with pytest.raises(InvalidArgumentError, match=r"texts\[1\] is empty"):
        await text_session.query_many(["fine", "  "])


# -- columnar adds ----------------------------------------------------------------------------


async def test_add_arrays_validates_columns(client: MossClient) -> None:
    session = await client.session("arrays", model_id="custom")
    ok = np.eye(2, DIM, dtype=np.float32)
    cases: list[tuple[tuple[object, ...], str]] = [
        ((["a", "a"], ["x", "y"], ok), "'a' appears more than once"),
        ((["a", 3], ["x", "y"], ok), r"ids\[1\] is int"),
        ((["a", ""], ["x", "y"], ok), "non-empty"),
        ((["a", "b"], ["x", None], ok), r"texts\[1\] is NoneType"),
        ((["a", "b"], ["x"], ok), "2 ids and 1 texts"),
        ((["a", "b"], ["x", "y"], ok[:1]), r"shape \(2, dimension\)"),
        ((["a", "b"], ["x", "y"], np.array([[np.nan] * DIM, [1.0] * DIM])), "NaN"),
        ((["a", "b"], ["x", "y"], np.zeros((2, DIM))), "all zeros"),
        ((["a", "b"], ["x", "y"], ok, [{"k": 1}]), "2 ids and 1 metadata"),
        ((["a", "b"], ["x", "y"], ok, [{"k": 1}, "no"]), "must be a dict"),
        (("ab", ["x", "y"], ok), "list of str"),
    ]
    for args, message in cases:
        with pytest.raises(InvalidArgumentError, match=message):
            await session.add_arrays(*args)  # type: ignore[arg-type]
    assert session.doc_count == 0


async def test_add_arrays_writes_and_round_trips(client: MossClient, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    session = await client.session("columns", model_id="custom")
    raw = rng.standard_normal((1000, DIM)).astype(np.float32) * 3  # not unit rows
    original = raw.copy()
    ids = [f"c{i}" for i in range(1000)]
    result = await session.add_arrays(ids, [f"t{i}" for i in range(1000)], raw)
    assert (result.added, result.updated) == (1000, 0)
    assert np.array_equal(raw, original)  # the caller's matrix is left alone
    replaced = session.sync.add_arrays(["c1", "new"], ["changed", "n"], raw[:2], [{"v": 2}, None])
    assert (replaced.added, replaced.updated) == (1, 1)
    await session.push_index()
    reopened = await MossClient("proj", store=FileStore(tmp_path / "store")).session("columns")
    got = await reopened.get_docs(["c1", "c999"], include_embeddings=True)
    assert [(d.text, d.metadata) for d in got] == [("changed", {"v": 2}), ("t999", None)]
    expected = original[[0, 999]] / np.linalg.norm(original[[0, 999]], axis=1, keepdims=True)
    assert np.allclose(np.asarray([d.embedding for d in got]), expected, atol=1e-6)
    hit = await reopened.query("", QueryOptions(top_k=1, embedding=original[5].tolist()))
    assert hit.docs[0].id == "c5"


# -- no event-loop stalls ---------------------------------------------------------------------


async def test_event_loop_keeps_ticking_during_queries_at_200k(client: MossClient) -> None:
    rng = np.random.default_rng(7)
    count, dim = 200_000, 384
    vectors = np.empty((count, dim), dtype=np.float32)
    for start in range(0, count, 50_000):
        vectors[start : start + 50_000] = unit(rng, 50_000, dim)
    session = await client.session("lag", model_id="custom")
    await session.add_arrays([f"d{i}" for i in range(count)], [""] * count, vectors)
    queries = unit(rng, 32, dim)
    await session.query("", QueryOptions(top_k=10, alpha=1.0, embedding=queries[0]))  # warm up

    async def worst_lag() -> float:
        """How late the loop's ticks came (95th percentile, beyond a 1 ms sleep) while 16
        queries and one batch of 32 ran."""
        lags: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            while not done.is_set():
                before = time.perf_counter()
                await asyncio.sleep(0.001)
                lags.append(time.perf_counter() - before - 0.001)

        async def queries_run() -> None:
            try:
                for q in queries[:16]:
                    await session.query("", QueryOptions(top_k=10, alpha=1.0, embedding=q))
                options = QueryOptions(top_k=10, alpha=1.0)
                await session.query_many(None, options, embeddings=queries)
            finally:
                done.set()

        await asyncio.gather(ticker(), queries_run())
        assert len(lags) > 10
        lags.sort()
        return lags[int(len(lags) * 0.95)]

    # A loaded shared machine deschedules the process now and then whatever it runs (the max
    # lag of an idle loop measured 6-36 ms on 2 cores at load 5), so the test takes the 95th
    # percentile tick, best of three runs. A scan on the loop stalls every tick taken while it
    # runs (each one tens of ms here): then nearly every tick is late, in every run.
    best = min([await worst_lag() for _ in range(3)])
    assert best < 0.010, f"event loop blocked for {best * 1000:.1f} ms (95th percentile)"
