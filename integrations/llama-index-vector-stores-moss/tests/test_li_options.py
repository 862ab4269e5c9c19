"""Embeddings returned on request, large similarity_top_k, and opening by version or with auto-refresh."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores import SimpleVectorStore
from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode
from llama_index.vector_stores.moss import MossVectorStore

from moss import DocumentInfo, InvalidArgumentError, MossClient
from moss.validation import MAX_TOP_K

DIM = 4


def _nodes(count: int) -> list[TextNode]:
    vectors = np.random.default_rng(7).normal(size=(count, DIM))
    return [
        TextNode(id_=f"n{i:05d}", text=f"text {i}", embedding=vector.tolist())
        for i, vector in enumerate(vectors)
    ]


def _unit(vector: list[float] | None) -> np.ndarray:
    assert vector is not None
    array = np.asarray(vector, dtype=np.float64)
    unit: np.ndarray = array / np.linalg.norm(array)
    return unit


async def test_nodes_carry_their_embeddings_when_asked(client: MossClient) -> None:
    # Before: get_nodes() and query results always had embedding=None.
    store = MossVectorStore("kb", client=client, model_id="custom")
    nodes = _nodes(5)
    store.add(nodes)
    assert all(node.embedding is None for node in store.get_nodes())
    got = store.get_nodes(include_embeddings=True)
    assert [node.node_id for node in got] == [node.node_id for node in nodes]
    for before, after in zip(nodes, got, strict=True):
        np.testing.assert_allclose(_unit(after.embedding), _unit(before.embedding), atol=1e-6)
    got_async = await store.aget_nodes(["n00002"], include_embeddings=True)
    assert got_async[0].embedding == got[2].embedding
    query = VectorStoreQuery(query_embedding=nodes[3].embedding, similarity_top_k=2)
    for mode in (VectorStoreQueryMode.DEFAULT, VectorStoreQueryMode.MMR):
        query.mode = mode
        result = store.query(query, include_embeddings=True)
        assert result.nodes is not None and result.nodes[0].node_id == "n00003"
        assert result.nodes[0].embedding == got[3].embedding
        assert store.query(query).nodes[0].embedding is None  # type: ignore[index]
    # The nodes move to another store without re-embedding.
    other = SimpleVectorStore()
    other.add(got)
    moved = other.query(VectorStoreQuery(query_embedding=nodes[3].embedding, similarity_top_k=1))
    assert moved.ids == ["n00003"]


def test_similarity_top_k_beyond_the_node_count_returns_every_node(client: MossClient) -> None:
    # Before: anything over 10,000 raised, where SimpleVectorStore has no cap.
    store = MossVectorStore("kb", client=client, model_id="custom")
    store.add(_nodes(3))
    query = VectorStoreQuery(query_embedding=[1.0] * DIM, similarity_top_k=1_000_000)
    assert len(store.query(query).ids or []) == 3


def test_similarity_top_k_over_the_limit_says_so(client: MossClient) -> None:
    session = client.sync.session("big", "custom")
    vectors = np.random.default_rng(1).normal(size=(MAX_TOP_K + 1, 2))
    session.add_docs(
        [DocumentInfo(id=f"d{i}", text="t", embedding=v) for i, v in enumerate(vectors)]
    )
    store = MossVectorStore(session=session)
    query = VectorStoreQuery(query_embedding=[1.0, 0.0], similarity_top_k=MAX_TOP_K + 1)
    with pytest.raises(InvalidArgumentError, match=f"at most {MAX_TOP_K}.*get_nodes"):
        store.query(query)
    assert (
        len(
            store.query(
                VectorStoreQuery(query_embedding=[1.0, 0.0], similarity_top_k=MAX_TOP_K)
            ).ids
            or []
        )
        == MAX_TOP_K
    )


async def test_open_a_version_or_with_auto_refresh(store_dir: Path) -> None:
    # Before: neither constructor took version= or auto_refresh=, unlike client.session.
    writer = MossVectorStore("kb", store=f"file://{store_dir}", model_id="custom")
    writer.add(_nodes(1))
    writer.push()
    writer.add(_nodes(2))
    writer.push()
    old = MossVectorStore("kb", store=f"file://{store_dir}", version=1)
    assert old.session.version == 1 and len(old.get_nodes()) == 1
    old_async = await MossVectorStore.aopen("kb", store=f"file://{store_dir}", version=1)
    assert old_async.session.version == 1
    follower = MossVectorStore("kb", store=f"file://{store_dir}", auto_refresh=True)
    try:
        writer.add(_nodes(3))
        writer.push()
        deadline = time.monotonic() + 10
        while follower.session.version < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert follower.session.version == 3 and len(follower.get_nodes()) == 3
    finally:
        for store in (follower, old, writer):
            store.close()
        await old_async.aclose()
    with pytest.raises(InvalidArgumentError, match="version=, auto_refresh= and must_exist="):
        MossVectorStore(session=writer.session, version=1)
