"""MossVectorStore against brute-force references, in sync and async twins (run inside a loop)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.vectorstores.utils import maximal_marginal_relevance
from langchain_moss import MossEmbeddings, MossVectorStore, model_id_for
from lc_moss_helpers import CountingEmbeddings, Doc, brute_mmr, brute_top_k, unit

from moss import InvalidArgumentError, ModelMismatchError, MossClient

COLORS = ("red", "green", "blue")
CORPUS: list[Doc] = [
    (
        f"doc-{i:02d}",
        f"note {i} about {COLORS[i % 3]} things",
        {"color": COLORS[i % 3], "n": i, "tags": ["even" if i % 2 == 0 else "odd", f"t{i % 5}"]},
    )
    for i in range(40)
]
QUERIES = ("red things", "note 7", "something else entirely")


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def call(store: MossVectorStore, mode: str, name: str, *args: Any, **kwargs: Any) -> Any:
    """Call the sync method (inside this running loop) or await its async twin."""
    if mode == "sync":
        return getattr(store, name)(*args, **kwargs)
    return await getattr(store, "a" + name)(*args, **kwargs)


@pytest.fixture
def vs(embeddings: CountingEmbeddings, store_dir: Path) -> MossVectorStore:
    store = MossVectorStore(index_name="notes", embedding=embeddings, store=store_dir)
    store.add_texts(
        [text for _, text, _ in CORPUS],
        [meta for _, _, meta in CORPUS],
        ids=[doc_id for doc_id, _, _ in CORPUS],
    )
    return store


@pytest.mark.parametrize("query", QUERIES)
async def test_scores_are_the_true_cosine_top_k(
    vs: MossVectorStore, embeddings: CountingEmbeddings, mode: str, query: str
) -> None:
    pairs = await call(vs, mode, "similarity_search_with_score", query, k=5, alpha=1.0)
    expected = brute_top_k(embeddings, CORPUS, query, 5)
    assert [doc.id for doc, _ in pairs] == [doc_id for doc_id, _ in expected]
    assert [score for _, score in pairs] == pytest.approx([s for _, s in expected], abs=1e-5)
    docs = await call(vs, mode, "similarity_search", query, k=5, alpha=1.0)
    assert docs == [doc for doc, _ in pairs]


async def test_relevance_scores_are_cosine_clipped_to_zero(
    vs: MossVectorStore, embeddings: CountingEmbeddings, mode: str
) -> None:
    pairs = await call(
        vs, mode, "similarity_search_with_relevance_scores", "red things", k=40, alpha=1.0
    )
    expected = brute_top_k(embeddings, CORPUS, "red things", 40)
    assert [doc.id for doc, _ in pairs] == [doc_id for doc_id, _ in expected]
    assert [s for _, s in pairs] == pytest.approx([max(0.0, s) for _, s in expected], abs=1e-5)
    assert all(0.0 <= s <= 1.0 for _, s in pairs)
    assert any(s < 0 for _, s in expected)  # the clipping was exercised

    threshold = 0.3
    kept = await call(
        vs,
        mode,
        "similarity_search_with_relevance_scores",
        "red things",
        k=40,
        alpha=1.0,
        score_threshold=threshold,
    )
    assert [doc.id for doc, _ in kept] == [d for d, s in expected if s >= threshold]
    assert len(kept) < len(pairs)


FILTERS = [
    ({"color": "red"}, lambda m: m["color"] == "red"),
    (
        {"field": "color", "condition": {"$eq": "red"}},
        lambda m: m["color"] == "red",
    ),
    ({"color": "blue", "n": {"$gte": 20}}, lambda m: m["color"] == "blue" and m["n"] >= 20),
    (
        {
            "$and": [
                {"field": "color", "condition": {"$eq": "blue"}},
                {"field": "n", "condition": {"$gte": 20}},
            ]
        },
        lambda m: m["color"] == "blue" and m["n"] >= 20,
    ),
    ({"tags": {"$contains": "t3"}}, lambda m: "t3" in m["tags"]),
    (
        {"$or": [{"n": {"$lt": 3}}, {"field": "tags", "condition": {"$all": ["odd", "t4"]}}]},
        lambda m: m["n"] < 3 or {"odd", "t4"} <= set(m["tags"]),
    ),
]


@pytest.mark.parametrize(("flt", "keep"), FILTERS)
async def test_filters_in_both_forms_give_the_true_top_k_of_matches(
    vs: MossVectorStore, embeddings: CountingEmbeddings, mode: str, flt: Any, keep: Any
) -> None:
    expected = brute_top_k(embeddings, CORPUS, "note 7", 4, keep)
    assert len(expected) == 4  # more matches than k: ranking within the filter is tested
    pairs = await call(
        vs, mode, "similarity_search_with_score", "note 7", k=4, filter=flt, alpha=1.0
    )
    assert [doc.id for doc, _ in pairs] == [doc_id for doc_id, _ in expected]
    assert all(keep(doc.metadata) for doc, _ in pairs)


@pytest.mark.parametrize("lambda_mult", [0.0, 0.25, 0.5, 1.0])
async def test_mmr_matches_brute_force_and_langchain_reference(
    vs: MossVectorStore, embeddings: CountingEmbeddings, mode: str, lambda_mult: float
) -> None:
    query = "red things"
    fetch = brute_top_k(embeddings, CORPUS, query, 12)
    candidates = [unit(embeddings.vector(dict((d, t) for d, t, _ in CORPUS)[i])) for i, _ in fetch]
    q = unit(embeddings.vector(query))
    expected = [fetch[i][0] for i in brute_mmr(q, candidates, 4, lambda_mult)]
    reference = maximal_marginal_relevance(q, [c.tolist() for c in candidates], lambda_mult, 4)
    assert expected == [fetch[i][0] for i in reference]

    docs = await call(
        vs, mode, "max_marginal_relevance_search", query, k=4, fetch_k=12, lambda_mult=lambda_mult
    )
    assert [doc.id for doc in docs] == expected
    by_vector = await call(
        vs,
        mode,
        "max_marginal_relevance_search_by_vector",
        embeddings.vector(query),
        k=4,
        fetch_k=12,
        lambda_mult=lambda_mult,
    )
    assert [doc.id for doc in by_vector] == expected


async def test_mmr_with_filter_only_picks_matches(vs: MossVectorStore, mode: str) -> None:
    docs = await call(
        vs,
        mode,
        "max_marginal_relevance_search",
        "note",
        k=5,
        fetch_k=10,
        filter={"color": "green"},
    )
    assert len(docs) == 5
    assert {doc.metadata["color"] for doc in docs} == {"green"}
    assert len({doc.id for doc in docs}) == 5


async def test_search_by_vector_skips_embedding(
    vs: MossVectorStore, embeddings: CountingEmbeddings, mode: str
) -> None:
    before = (embeddings.query_calls, embeddings.async_query_calls)
    docs = await call(vs, mode, "similarity_search_by_vector", embeddings.vector("note 7"), k=3)
    assert [d.id for d in docs] == [i for i, _ in brute_top_k(embeddings, CORPUS, "note 7", 3)]
    assert (embeddings.query_calls, embeddings.async_query_calls) == before


async def test_async_paths_use_the_async_embedder(
    embeddings: CountingEmbeddings, store_dir: Path
) -> None:
    store = await MossVectorStore.aopen(index_name="a", embedding=embeddings, store=store_dir)
    await store.aadd_texts(["alpha", "beta"], ids=["a", "b"])
    assert [d.id for d in await store.asimilarity_search("alpha", k=1)] == ["a"]
    assert (embeddings.async_document_calls, embeddings.async_query_calls) == (1, 1)
    assert (embeddings.document_calls, embeddings.query_calls) == (0, 0)


async def test_upsert_ids_and_inputs_not_mutated(vs_empty: MossVectorStore, mode: str) -> None:
    originals = [
        Document(page_content="one", metadata={"k": [1, 2], "deep": {"x": 1}}),
        Document(id="given", page_content="two", metadata={}),
        Document(page_content="three"),
    ]
    snapshot = copy.deepcopy(originals)
    ids = await call(vs_empty, mode, "add_documents", originals)
    assert originals == snapshot
    assert ids[1] == "given" and len(set(ids)) == 3 and all(ids)
    # ids= wins over Document.id; adding again replaces, never duplicates
    again = await call(vs_empty, mode, "add_documents", originals, ids=["x", "y", "z"])
    assert again == ["x", "y", "z"]
    await call(vs_empty, mode, "add_documents", [Document(page_content="TWO")], ids=["y"])
    assert vs_empty.session.doc_count == 6
    assert [d.page_content for d in await call(vs_empty, mode, "get_by_ids", ["y"])] == ["TWO"]

    # The store keeps its own copy: neither the input nor a result shares its dicts.
    originals[0].metadata["k"].append(3)
    (got,) = await call(vs_empty, mode, "get_by_ids", ["x"])
    assert got.metadata == {"k": [1, 2], "deep": {"x": 1}}
    got.metadata["deep"]["x"] = 99
    assert (await call(vs_empty, mode, "get_by_ids", ["x"]))[0].metadata["deep"] == {"x": 1}


@pytest.fixture
def vs_empty(embeddings: CountingEmbeddings, store_dir: Path) -> MossVectorStore:
    return MossVectorStore(index_name="empty", embedding=embeddings, store=store_dir)


async def test_add_texts_checks_lengths(vs_empty: MossVectorStore, mode: str) -> None:
    with pytest.raises(InvalidArgumentError, match="2 texts but 1 ids"):
        await call(vs_empty, mode, "add_texts", ["a", "b"], ids=["1"])
    with pytest.raises(InvalidArgumentError, match="metadatas"):
        await call(vs_empty, mode, "add_texts", ["a", "b"], metadatas=[{}])
    with pytest.raises(InvalidArgumentError, match="unknown argument"):
        await call(vs_empty, mode, "add_texts", ["a"], batchsize=3)
    with pytest.raises(InvalidArgumentError, match=r"unknown argument.*filters"):
        await call(vs_empty, mode, "similarity_search", "a", filters={"a": 1})


async def test_get_and_delete(vs: MossVectorStore, mode: str) -> None:
    got = await call(vs, mode, "get_by_ids", ["doc-05", "missing", "doc-01"])
    assert [d.id for d in got] == ["doc-05", "doc-01"]
    assert await call(vs, mode, "get_by_ids", ["missing"]) == []
    assert await call(vs, mode, "delete", ["doc-05", "missing"]) is True
    assert await call(vs, mode, "get_by_ids", ["doc-05"]) == []
    await call(vs, mode, "delete", filter={"color": "red"})
    remaining = await call(vs, mode, "get_by_ids", [doc_id for doc_id, _, _ in CORPUS])
    assert len(remaining) == 40 - 1 - 14 and all(d.metadata["color"] != "red" for d in remaining)
    await call(vs, mode, "delete", ["doc-01", "doc-02"], filter={"color": "green"})
    assert [d.id for d in await call(vs, mode, "get_by_ids", ["doc-01", "doc-02"])] == ["doc-02"]
    await call(vs, mode, "delete")
    assert vs.session.doc_count == 0
    assert await call(vs, mode, "similarity_search", "anything", k=2) == []
    assert await call(vs, mode, "max_marginal_relevance_search", "anything", k=2) == []


METADATA = {
    "int": 7,
    "float": 1.5,
    "whole_float": 2.0,
    "bool": True,
    "none": None,
    "str": "x",
    "list": [1, "a", False, None, 2.5],
    "nested": {"k": [1.0, 2], "deeper": {"ok": True}},
}


async def test_metadata_and_vectors_round_trip_a_push_without_re_embedding(
    embeddings: CountingEmbeddings, store_dir: Path, mode: str
) -> None:
    writer = MossVectorStore(index_name="shared", embedding=embeddings, store=store_dir)
    await call(writer, mode, "add_texts", ["typed metadata"], [METADATA], ids=["m"])
    result = await call(writer, mode, "push")
    assert (result.index_name, result.version, result.doc_count) == ("shared", 1, 1)

    reader_embeddings = CountingEmbeddings()
    reader = MossVectorStore(index_name="shared", embedding=reader_embeddings, store=store_dir)
    (doc,) = reader.get_by_ids(["m"])
    assert doc.metadata == METADATA
    for key in ("int", "float", "whole_float", "bool"):
        assert type(doc.metadata[key]) is type(METADATA[key])
    assert type(doc.metadata["nested"]["k"][0]) is float
    hits = reader.similarity_search_by_vector(embeddings.vector("typed metadata"), k=1)
    assert hits[0].id == "m"
    assert reader_embeddings.document_calls == reader_embeddings.async_document_calls == 0


async def test_sync_methods_work_inside_a_running_event_loop(
    embeddings: CountingEmbeddings, store_dir: Path
) -> None:
    # This test body runs on the event loop: every call below must not need one of its own.
    client = MossClient(store=store_dir)
    store = MossVectorStore(index_name="loop", embedding=embeddings, client=client)
    store.add_texts(["in a loop"], ids=["l"])
    store.push()
    again = MossVectorStore(index_name="loop", embedding=embeddings, client=client)
    assert again.session.version == 1
    assert [d.id for d in again.similarity_search("in a loop", k=1)] == ["l"]
    assert [d.id for d in again.max_marginal_relevance_search("in a loop", k=1)] == ["l"]
    assert again.delete(["l"]) is True


def test_construction_from_a_session_and_model_checks(
    embeddings: CountingEmbeddings, store_dir: Path
) -> None:
    client = MossClient(store=store_dir)
    built = MossVectorStore(index_name="kb", embedding=embeddings, client=client)
    assert built.model_id == "lc_moss_helpers.CountingEmbeddings:fake-16:16d"
    assert built.model_id == model_id_for(embeddings)
    built.add_texts(["x"], ids=["x"])
    built.push()

    wrapped = MossVectorStore(built.session)
    assert wrapped.session is built.session and wrapped.embeddings is embeddings
    assert MossVectorStore(built.session, embedding=embeddings).embeddings is embeddings
    with pytest.raises(ModelMismatchError, match="CountingEmbeddings:fake-16:16d"):
        MossVectorStore(built.session, model_id="other-model")
    with pytest.raises(InvalidArgumentError, match="not both"):
        MossVectorStore(built.session, index_name="kb")
    with pytest.raises(InvalidArgumentError, match="index_name"):
        MossVectorStore()
    with pytest.raises(InvalidArgumentError, match="not both"):
        MossVectorStore(index_name="kb", client=client, store=store_dir)

    # The stored model id is checked on open, whatever embedder asks.
    with pytest.raises(ModelMismatchError, match="CountingEmbeddings:fake-16:16d"):
        MossVectorStore(index_name="kb", embedding=CountingEmbeddings(model="v2"), client=client)
    with pytest.raises(ModelMismatchError, match="moss-minilm"):
        MossVectorStore(index_name="kb", embedding=MossEmbeddings(), client=client)
    with pytest.raises(ModelMismatchError):
        MossVectorStore(index_name="kb", embedding=embeddings, model_id="renamed", client=client)
    named = MossVectorStore(index_name="kb", embedding=CountingEmbeddings(), client=client)
    assert [d.id for d in named.get_by_ids(["x"])] == ["x"]


def test_model_id_rule() -> None:
    class Named(CountingEmbeddings):
        pass

    here = "test_lc_vectorstore.test_model_id_rule.-locals-.Named"
    assert model_id_for(MossEmbeddings()) == "moss-minilm"
    assert model_id_for(CountingEmbeddings(model="text-embedding-3-small")) == (
        "lc_moss_helpers.CountingEmbeddings:text-embedding-3-small:16d"
    )
    assert model_id_for(Named(model="sentence-transformers/all MiniLM")) == (
        f"{here}:sentence-transformers-all-MiniLM:16d"
    )
    plain = CountingEmbeddings(model="")
    plain.model_name = "bge-small"  # type: ignore[attr-defined]
    assert model_id_for(plain) == "lc_moss_helpers.CountingEmbeddings:bge-small:16d"
    assert len(model_id_for(CountingEmbeddings(model="m" * 300))) == 128


def test_embedders_of_other_sizes_get_other_model_ids(store_dir: Path) -> None:
    # Issue 16.2: these used to share one id and failed only at the first add.
    small, large = DeterministicFakeEmbedding(size=8), DeterministicFakeEmbedding(size=16)
    assert model_id_for(small) != model_id_for(large)
    first = MossVectorStore(index_name="sized", embedding=small, store=store_dir)
    first.add_texts(["x"], ids=["x"])
    first.push()
    with pytest.raises(ModelMismatchError, match=":8d"):
        MossVectorStore(index_name="sized", embedding=large, store=store_dir)


@pytest.mark.parametrize(
    ("search_type", "search_kwargs", "method", "args"),
    [
        ("similarity", {"k": 3}, "similarity_search", {"k": 3}),
        ("mmr", {"k": 3, "fetch_k": 8}, "max_marginal_relevance_search", {"k": 3, "fetch_k": 8}),
        (
            "similarity_score_threshold",
            {"k": 10, "score_threshold": 0.2},
            "similarity_search_with_relevance_scores",
            {"k": 10, "score_threshold": 0.2},
        ),
    ],
)
async def test_as_retriever_all_search_types(
    vs: MossVectorStore,
    search_type: str,
    search_kwargs: dict[str, Any],
    method: str,
    args: dict[str, Any],
) -> None:
    retriever = vs.as_retriever(search_type=search_type, search_kwargs=search_kwargs)
    direct = getattr(vs, method)("red things", **args)
    expected = [d if isinstance(d, Document) else d[0] for d in direct]
    assert 0 < len(expected) <= search_kwargs["k"]
    assert retriever.invoke("red things") == expected
    assert await retriever.ainvoke("red things") == expected


async def test_from_texts_and_documents(embeddings: CountingEmbeddings, store_dir: Path) -> None:
    made = MossVectorStore.from_texts(
        ["a", "b"],
        embeddings,
        [{"i": 1}, {"i": 2}],
        ids=["1", "2"],
        store=store_dir,
        index_name="from-texts",
    )
    assert made.index_name == "from-texts"
    assert [d.metadata for d in made.get_by_ids(["1", "2"])] == [{"i": 1}, {"i": 2}]
    unnamed = MossVectorStore.from_documents([Document(id="d", page_content="c")], embeddings)
    assert unnamed.index_name.startswith("langchain-") and unnamed.get_by_ids(["d"])
    made_async = await MossVectorStore.afrom_documents(
        [Document(id="e", page_content="e", metadata={"z": None})],
        embeddings,
        store=store_dir,
        index_name="from-docs",
    )
    assert (await made_async.aget_by_ids(["e"]))[0].metadata == {"z": None}
    await made_async.aclose()
    made.close()
