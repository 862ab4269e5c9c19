"""HYBRID and TEXT_SEARCH query modes: moss's keyword search and blend, with cosine similarities."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores import FilterOperator, MetadataFilter, MetadataFilters
from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode
from llama_index.vector_stores.moss import MossVectorStore

from moss import InvalidArgumentError, MossClient, QueryOptions

DIM = 8
CODE = "ORD-7731"
HYBRID, TEXT = VectorStoreQueryMode.HYBRID, VectorStoreQueryMode.TEXT_SEARCH


def vec(seed: int) -> list[float]:
    return np.random.default_rng(seed).normal(size=DIM).tolist()  # type: ignore[no-any-return]


def unit(values: list[float]) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    unit_array: np.ndarray = array / np.linalg.norm(array)
    return unit_array


@pytest.fixture
def store(client: MossClient) -> MossVectorStore:
    made = MossVectorStore("tickets", client=client, model_id="custom")
    nodes = [
        TextNode(
            id_=f"t{i}", text=f"ticket {i} about a late parcel", embedding=vec(i), metadata={"n": i}
        )
        for i in range(20)
    ]
    nodes.append(
        TextNode(id_="hit", text=f"refund for {CODE}", embedding=vec(99), metadata={"n": 99})
    )
    made.add(nodes)
    return made


@pytest.fixture(params=["sync", "async"])
def run(request: pytest.FixtureRequest) -> Any:
    async def query(store: MossVectorStore, q: VectorStoreQuery) -> Any:
        if request.param == "sync":
            return store.query(q)
        return await store.aquery(q)

    return query


async def test_text_search_finds_the_code_that_vector_search_misses(
    store: MossVectorStore, run: Any
) -> None:
    query_vector = vec(5)  # closest to t5, unrelated to the code's document
    dense = await run(
        store, VectorStoreQuery(query_embedding=query_vector, query_str=CODE, alpha=1.0)
    )
    assert dense.ids != ["hit"]
    assert dense.similarities == pytest.approx([float(unit(query_vector) @ unit(vec(5)))])
    found = await run(
        store, VectorStoreQuery(query_embedding=query_vector, query_str=CODE, mode=TEXT)
    )
    assert found.ids == ["hit"]
    # Keyword ranking: the similarity is the fused score of the order, 1 / (60 + rank 1).
    assert found.similarities == pytest.approx([1 / 61])


async def test_hybrid_blends_and_alpha_one_is_vector_search(
    store: MossVectorStore, run: Any
) -> None:
    q = vec(5)
    blended = await run(
        store,
        VectorStoreQuery(
            query_embedding=q, query_str=CODE, mode=HYBRID, alpha=0.5, similarity_top_k=2
        ),
    )
    assert set(blended.ids) == {"t5", "hit"}  # each side's best
    dense = await run(
        store, VectorStoreQuery(query_embedding=q, query_str=CODE, similarity_top_k=3, alpha=1.0)
    )
    as_vector = await run(
        store,
        VectorStoreQuery(
            query_embedding=q, query_str=CODE, mode=HYBRID, alpha=1.0, similarity_top_k=3
        ),
    )
    assert as_vector.ids == dense.ids and as_vector.similarities == dense.similarities
    top = await run(
        store,
        VectorStoreQuery(
            query_embedding=q, query_str=CODE, mode=HYBRID, hybrid_top_k=1, similarity_top_k=5
        ),
    )
    assert len(top.ids) == 1


async def test_default_mode_uses_the_core_default_alpha_and_fused_scores(
    store: MossVectorStore, run: Any
) -> None:
    # Before: DEFAULT was vector only (alpha 1.0) while moss's own default blends (0.4).
    q = vec(5)
    got = await run(store, VectorStoreQuery(query_embedding=q, query_str=CODE, similarity_top_k=3))
    core = store.session.sync.query(CODE, QueryOptions(top_k=3, embedding=q)).docs
    assert got.ids == [hit.id for hit in core] and "hit" in got.ids
    assert got.similarities == pytest.approx([hit.fused_score for hit in core])
    assert got.similarities == sorted(got.similarities, reverse=True)  # they follow the order
    # Without query text there is nothing to match keywords on: vector order, cosine scores.
    dense = await run(store, VectorStoreQuery(query_embedding=q, similarity_top_k=1))
    assert dense.ids == ["t5"] and dense.similarities == pytest.approx([1.0])
    # ... but an alpha that asks for keywords there is refused, not silently ignored.
    with pytest.raises(InvalidArgumentError, match="query_str"):
        await run(store, VectorStoreQuery(query_embedding=q, alpha=0.5))
    with pytest.raises(InvalidArgumentError, match="node_ids"):
        await run(
            store, VectorStoreQuery(query_embedding=q, query_str=CODE, alpha=0.5, node_ids=["t1"])
        )
    restricted = await run(
        store,
        VectorStoreQuery(
            query_embedding=q, query_str=CODE, node_ids=["t1", "t5"], similarity_top_k=2
        ),
    )
    assert restricted.ids == ["t5", "t1"]  # node_ids: by vector, as documented


async def test_keyword_modes_apply_filters_before_ranking(store: MossVectorStore, run: Any) -> None:
    filters = MetadataFilters(
        filters=[MetadataFilter(key="n", value=50, operator=FilterOperator.GT)]
    )
    found = await run(
        store,
        VectorStoreQuery(
            query_embedding=vec(5), query_str="ticket parcel", mode=TEXT, filters=filters
        ),
    )
    assert found.ids == []  # only "hit" passes the filter, and it shares no term
    with pytest.raises(InvalidArgumentError, match="node_ids"):
        await run(
            store,
            VectorStoreQuery(query_embedding=vec(5), query_str=CODE, mode=TEXT, node_ids=["t1"]),
        )
