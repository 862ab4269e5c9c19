"""MossVectorStore: construction, writes, reads, queries, MMR and persist, sync and async alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from llama_index.core import StorageContext
from llama_index.core.schema import (
    BaseNode,
    IndexNode,
    NodeRelationship,
    RelatedNodeInfo,
    TextNode,
)
from llama_index.core.vector_stores import SimpleVectorStore
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)
from llama_index.vector_stores.moss import MossVectorStore

from moss import DocumentInfo, InvalidArgumentError, MossClient

DIM = 8
ASYNC_NAMES = {
    "add": "async_add",
    "delete": "adelete",
    "delete_nodes": "adelete_nodes",
    "get_nodes": "aget_nodes",
    "clear": "aclear",
    "query": "aquery",
    "push": "apush",
}


@pytest.fixture(params=["sync", "async"])
def call(request: pytest.FixtureRequest) -> Any:
    """Call a store method through its sync name or its async twin: one test covers both."""

    async def invoke(store: MossVectorStore, name: str, *args: Any, **kwargs: Any) -> Any:
        if request.param == "sync":
            return getattr(store, name)(*args, **kwargs)
        return await getattr(store, ASYNC_NAMES[name])(*args, **kwargs)

    return invoke


def vec(seed: int) -> list[float]:
    return np.random.default_rng(seed).normal(size=DIM).tolist()  # type: ignore[no-any-return]


def node(node_id: str, *, doc: str | None = None, seed: int = 0, **metadata: Any) -> TextNode:
    made = TextNode(id_=node_id, text=f"text of {node_id}", metadata=metadata, embedding=vec(seed))
    if doc is not None:
        made.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=doc)
    return made


def custom_store(client: MossClient, name: str = "kb") -> MossVectorStore:
    return MossVectorStore(name, client=client, model_id="custom")


def emb(made: BaseNode) -> np.ndarray:
    assert made.embedding is not None
    return np.asarray(made.embedding)


def without_embedding(made: BaseNode) -> BaseNode:
    copy = made.model_copy(deep=True)
    copy.embedding = None
    return copy


# --- writes and reads ---------------------------------------------------------------------


async def test_nodes_come_back_whole(client: MossClient, call: Any) -> None:
    first = TextNode(
        id_="n1",
        text="Refunds take 3-5 business days.",
        metadata={
            "team": "billing",
            "count": 3,
            "ratio": 0.5,
            "ok": True,
            "tags": ["a", "b"],
            "nested": {"x": [1, 2]},
        },
        excluded_embed_metadata_keys=["tags"],
        excluded_llm_metadata_keys=["ratio"],
        relationships={
            NodeRelationship.SOURCE: RelatedNodeInfo(node_id="doc-1", metadata={"k": 1}),
            NodeRelationship.NEXT: RelatedNodeInfo(node_id="n2"),
        },
        start_char_idx=0,
        end_char_idx=31,
        embedding=vec(1),
    )
    second = IndexNode(id_="n2", text="see the other index", index_id="other", embedding=vec(2))
    store = custom_store(client)
    assert await call(store, "add", [first, second]) == ["n1", "n2"]
    got = await call(store, "get_nodes", ["n2", "n1", "unknown"])
    assert got == [without_embedding(second), without_embedding(first)]
    assert isinstance(got[0], IndexNode) and got[1].ref_doc_id == "doc-1"
    result = await call(
        store, "query", VectorStoreQuery(query_embedding=vec(1), similarity_top_k=2)
    )
    assert result.ids[0] == "n1" and result.similarities[0] == pytest.approx(1.0)
    assert result.nodes[0] == without_embedding(first)


async def test_add_is_an_upsert_by_node_id(client: MossClient, call: Any) -> None:
    store = custom_store(client)
    await call(store, "add", [node("a", seed=1, v=1)])
    await call(store, "add", [node("a", seed=2, v=2)])
    [got] = await call(store, "get_nodes")
    assert got.metadata == {"v": 2} and store.session.doc_count == 1


async def test_delete_removes_every_node_of_the_source_document(
    client: MossClient, call: Any
) -> None:
    store = custom_store(client)
    nodes = [
        node("a1", doc="A"),
        node("a2", doc="A"),
        node("a3", doc="A"),
        node("b1", doc="B"),
        node("loose"),
    ]
    await call(store, "add", nodes)
    await call(store, "delete", "A")
    assert sorted(n.node_id for n in await call(store, "get_nodes")) == ["b1", "loose"]
    await call(store, "delete", "missing-document")  # not an error
    assert store.session.doc_count == 2


async def test_get_and_delete_nodes_by_ids_and_filters(client: MossClient, call: Any) -> None:
    store = custom_store(client)
    await call(store, "add", [node(f"n{i}", team="a" if i % 2 else "b", i=i) for i in range(6)])
    team_a = MetadataFilters(filters=[MetadataFilter(key="team", value="a")])
    by_filter = await call(store, "get_nodes", None, team_a)
    assert [n.node_id for n in by_filter] == ["n1", "n3", "n5"]
    by_both = await call(store, "get_nodes", ["n5", "n0", "n1"], team_a)
    assert [n.node_id for n in by_both] == ["n5", "n1"]
    await call(store, "delete_nodes", ["n1", "n2"], team_a)  # only n1 is both
    assert sorted(n.node_id for n in await call(store, "get_nodes")) == [
        "n0",
        "n2",
        "n3",
        "n4",
        "n5",
    ]
    await call(store, "delete_nodes", ["n0"])
    await call(store, "delete_nodes", None, team_a)
    assert sorted(n.node_id for n in await call(store, "get_nodes")) == ["n2", "n4"]
    with pytest.raises(InvalidArgumentError, match="clear"):
        await call(store, "delete_nodes")
    await call(store, "clear")
    assert await call(store, "get_nodes") == [] and store.session.doc_count == 0


async def test_documents_written_without_llama_index_become_text_nodes(
    client: MossClient, call: Any
) -> None:
    store = custom_store(client)
    store.session.sync.add_docs(
        [DocumentInfo(id="raw", text="plain moss", metadata={"k": 1}, embedding=vec(3))]
    )
    [got] = await call(store, "get_nodes")
    assert got == TextNode(id_="raw", text="plain moss", metadata={"k": 1})


# --- queries ------------------------------------------------------------------------------


def _corpus() -> list[TextNode]:
    return [node(f"n{i:02d}", doc=f"d{i % 3}", seed=i, i=i, team="ab"[i % 2]) for i in range(30)]


async def test_queries_restrict_by_doc_ids_node_ids_and_filters(
    client: MossClient, call: Any
) -> None:
    nodes = _corpus()
    store = custom_store(client)
    await call(store, "add", nodes)
    query_vector = np.asarray(vec(99))

    def best(allowed: list[TextNode], k: int) -> list[str]:
        unit = query_vector / np.linalg.norm(query_vector)
        scored = sorted(
            allowed, key=lambda n: -float(np.dot(emb(n), unit) / np.linalg.norm(emb(n)))
        )
        return [n.node_id for n in scored[:k]]

    team_a = MetadataFilters(filters=[MetadataFilter(key="team", value="a")])
    some_ids = [n.node_id for n in nodes[::4]]
    cases: list[tuple[dict[str, Any], list[TextNode]]] = [
        ({}, nodes),
        ({"doc_ids": ["d1"]}, [n for n in nodes if n.ref_doc_id == "d1"]),
        ({"node_ids": some_ids}, nodes[::4]),
        (
            {"node_ids": some_ids, "filters": team_a},
            [n for n in nodes[::4] if n.metadata["team"] == "a"],
        ),
        (
            {"doc_ids": ["d0", "d2"], "filters": team_a},
            [n for n in nodes if n.ref_doc_id in ("d0", "d2") and n.metadata["team"] == "a"],
        ),
        ({"node_ids": []}, nodes),  # VectorIndexRetriever's "no restriction" for text stores
    ]
    for restriction, allowed in cases:
        query = VectorStoreQuery(
            query_embedding=query_vector.tolist(), similarity_top_k=4, **restriction
        )
        result = await call(store, "query", query)
        assert result.ids == best(allowed, 4), restriction
        assert [n.node_id for n in result.nodes] == result.ids
        assert result.similarities == sorted(result.similarities, reverse=True)


async def test_other_modes_and_bad_queries_raise_a_clear_error(
    client: MossClient, call: Any
) -> None:
    store = custom_store(client)
    await call(store, "add", [node("a")])
    for mode in (VectorStoreQueryMode.HYBRID, VectorStoreQueryMode.TEXT_SEARCH):
        with pytest.raises(InvalidArgumentError, match="needs query_str"):
            await call(store, "query", VectorStoreQuery(query_embedding=vec(1), mode=mode))
    with pytest.raises(InvalidArgumentError, match="not supported"):
        await call(
            store, "query", VectorStoreQuery(query_embedding=vec(1), mode=VectorStoreQueryMode.SVM)
        )
    with pytest.raises(InvalidArgumentError, match="neither"):
        await call(store, "query", VectorStoreQuery())
    with pytest.raises(InvalidArgumentError, match="dimensional"):
        await call(store, "query", VectorStoreQuery(query_embedding=[1.0, 2.0]))


async def test_an_empty_store_answers_with_nothing(client: MossClient, call: Any) -> None:
    result = await call(custom_store(client), "query", VectorStoreQuery(query_embedding=vec(1)))
    assert (result.nodes, result.similarities, result.ids) == ([], [], [])


def reference_mmr(nodes: list[TextNode], query: np.ndarray, k: int, lam: float) -> list[str]:
    """Textbook MMR: relevance against the most similar node already picked; ties by id."""
    units = {n.node_id: emb(n) / np.linalg.norm(emb(n)) for n in nodes}
    q = query / np.linalg.norm(query)
    remaining, picked = sorted(units), []  # type: ignore[var-annotated]
    while remaining and len(picked) < k:

        def value(i: str) -> float:
            relevance = float(units[i] @ q)
            if not picked:
                return relevance
            return lam * relevance - (1 - lam) * max(float(units[i] @ units[p]) for p in picked)

        chosen = max(remaining, key=value)
        picked.append(chosen)
        remaining.remove(chosen)
    return picked


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("lam", [0.0, 0.3, 0.5, 1.0])
async def test_mmr_matches_a_brute_force_reference(
    client: MossClient, call: Any, seed: int, lam: float
) -> None:
    nodes = _corpus()
    store = custom_store(client, f"mmr-{seed}")
    await call(store, "add", nodes)
    query_vector = np.asarray(vec(100 + seed))
    query = VectorStoreQuery(
        query_embedding=query_vector.tolist(),
        similarity_top_k=6,
        mode=VectorStoreQueryMode.MMR,
        mmr_threshold=lam,
    )
    result = await call(store, "query", query)
    assert result.ids == reference_mmr(nodes, query_vector, 6, lam)
    # Similarities stay cosine similarities, whatever decided the order.
    unit = query_vector / np.linalg.norm(query_vector)
    by_id = {n.node_id: n for n in nodes}
    cosine = [
        float(np.dot(emb(by_id[i]), unit) / np.linalg.norm(emb(by_id[i]))) for i in result.ids
    ]
    assert result.similarities == pytest.approx(cosine, abs=1e-5)


@pytest.mark.parametrize("lam", [0.2, 0.5, 0.9])
def test_mmr_agrees_with_simple_vector_store_on_its_first_two_picks(
    client: MossClient, lam: float
) -> None:
    # SimpleVectorStore discounts only the most recent pick, so past two picks it differs from
    # textbook MMR; with a filter, the candidates are the matching nodes in both.
    nodes = _corpus()
    store = custom_store(client)
    store.add(nodes)
    simple = SimpleVectorStore()
    simple.add(nodes)
    flt = MetadataFilters(
        filters=[
            MetadataFilter(key="i", value=20, operator=FilterOperator.LT),
            MetadataFilter(key="team", value="b"),
        ],
        condition=FilterCondition.AND,
    )
    for seed in range(5):
        query = VectorStoreQuery(
            query_embedding=vec(200 + seed),
            similarity_top_k=2,
            mode=VectorStoreQueryMode.MMR,
            filters=flt,
        )
        assert (
            store.query(query, mmr_threshold=lam).ids == simple.query(query, mmr_threshold=lam).ids
        )


def test_mmr_threshold_is_checked(client: MossClient) -> None:
    store = custom_store(client)
    store.add([node("a")])
    query = VectorStoreQuery(
        query_embedding=vec(1), mode=VectorStoreQueryMode.MMR, mmr_threshold=1.5
    )
    with pytest.raises(InvalidArgumentError, match="mmr_threshold"):
        store.query(query)


# --- sharing ------------------------------------------------------------------------------


async def test_push_only_when_changed(client: MossClient, call: Any) -> None:
    store = custom_store(client)
    await call(store, "add", [node("a", seed=1)])
    first = await call(store, "push")
    assert first is not None and first.version == 1
    assert await call(store, "push") is None
    assert (await call(store, "push", force=True)).version == 2
    await call(store, "delete_nodes", ["a"])
    assert (await call(store, "push")).doc_count == 0


def test_storage_context_persist_pushes(client: MossClient, tmp_path: Path) -> None:
    store = custom_store(client)
    store.add([node("a", seed=1, team="x")])
    context = StorageContext.from_defaults(vector_store=store)
    context.persist(persist_dir=str(tmp_path / "storage"))
    assert store.session.version == 1 and not store.session.has_unpushed_changes
    reader = MossVectorStore("kb", client=client)
    assert [n.metadata for n in reader.get_nodes()] == [{"team": "x"}]
