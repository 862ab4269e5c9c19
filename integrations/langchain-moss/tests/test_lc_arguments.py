"""Arguments: what each search type accepts (as LangChain's own stores), typos refused; opening."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from langchain_moss import MossVectorStore, model_id_for
from lc_moss_helpers import CountingEmbeddings

from moss import EmbedderModel, IndexNotFoundError, InvalidArgumentError, MossClient

TEXTS = [f"note {i} about {'cats' if i % 2 else 'dogs'}" for i in range(12)]


@pytest.fixture
def vs(embeddings: CountingEmbeddings, store_dir: Path) -> MossVectorStore:
    store = MossVectorStore(index_name="notes", embedding=embeddings, store=store_dir)
    store.add_texts(
        TEXTS, [{"odd": i % 2 == 1} for i in range(12)], ids=[str(i) for i in range(12)]
    )
    return store


@pytest.mark.parametrize(
    ("search_type", "search_kwargs"),
    [
        # Issue 16.4: fetch_k with similarity search raised at invoke (InMemory and FAISS take it).
        ("similarity", {"k": 5, "fetch_k": 20}),
        ("similarity", {"k": 5, "fetch_k": 20, "filter": {"odd": True}, "alpha": 0.5}),
        ("similarity_score_threshold", {"k": 5, "score_threshold": 0.0, "fetch_k": 20}),
        ("mmr", {"k": 3, "fetch_k": 8, "lambda_mult": 0.3, "filter": {"odd": False}}),
    ],
)
async def test_retriever_accepts_what_langchain_stores_accept(
    vs: MossVectorStore, search_type: str, search_kwargs: dict[str, Any]
) -> None:
    retriever = vs.as_retriever(search_type=search_type, search_kwargs=search_kwargs)
    docs = retriever.invoke("cats")
    assert 0 < len(docs) <= search_kwargs["k"]
    assert await retriever.ainvoke("cats") == docs


@pytest.mark.parametrize(
    ("search_type", "search_kwargs", "bad"),
    [
        ("similarity", {"kk": 5}, "kk"),
        ("similarity", {"k": 5, "lambda_mult": 0.5}, "lambda_mult"),
        ("similarity_score_threshold", {"score_threshold": 0.1, "score_treshold": 0.9}, "score_"),
        ("mmr", {"k": 3, "score_threshold": 0.5}, "score_threshold"),
        ("mmr", {"k": 3, "alpha": 0.5}, "alpha"),
    ],
)
async def test_everything_else_is_refused_by_name(
    vs: MossVectorStore, search_type: str, search_kwargs: dict[str, Any], bad: str
) -> None:
    retriever = vs.as_retriever(search_type=search_type, search_kwargs=search_kwargs)
    with pytest.raises(InvalidArgumentError, match=rf"unknown argument\(s\) \['{bad}.*it accepts"):
        retriever.invoke("cats")
    with pytest.raises(InvalidArgumentError, match=bad):
        await retriever.ainvoke("cats")


@pytest.mark.parametrize(
    ("method", "kwargs"),
    [
        ("similarity_search", {"top_k": 2}),
        ("similarity_search_with_score", {"filters": {}}),
        ("similarity_search_with_relevance_scores", {"treshold": 0.1}),
        ("max_marginal_relevance_search", {"fetchk": 2}),
        ("add_texts", {"metadata": [{}]}),
        ("delete", {"id": ["1"]}),
    ],
)
def test_store_methods_refuse_typos(
    vs: MossVectorStore, method: str, kwargs: dict[str, Any]
) -> None:
    args = [] if method == "delete" else [["cats"] if method == "add_texts" else "cats"]
    with pytest.raises(InvalidArgumentError, match=f"MossVectorStore.{method} got unknown"):
        getattr(vs, method)(*args, **kwargs)


@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_bad_values_are_refused(vs: MossVectorStore, value: Any) -> None:
    with pytest.raises(InvalidArgumentError):
        vs.similarity_search("cats", k=value)
    with pytest.raises(InvalidArgumentError):
        vs.max_marginal_relevance_search("cats", fetch_k=value, lambda_mult=2.0)


async def test_must_exist_version_and_auto_refresh(
    vs: MossVectorStore, embeddings: CountingEmbeddings, store_dir: Path
) -> None:
    # Issue 16.5/16.7: opening an existing index by a wrong name silently started an empty one.
    with pytest.raises(IndexNotFoundError, match="'note' does not exist"):
        MossVectorStore(index_name="note", embedding=embeddings, store=store_dir, must_exist=True)
    with pytest.raises(IndexNotFoundError):
        await MossVectorStore.aopen(index_name="note", store=store_dir, must_exist=True)
    vs.push()
    vs.add_texts(["the second version"], ids=["v2"])
    vs.push()

    first = MossVectorStore(index_name="notes", embedding=embeddings, store=store_dir, version=1)
    assert first.session.version == 1 and first.get_by_ids(["v2"]) == []
    follower = await MossVectorStore.aopen(
        index_name="notes", embedding=embeddings, store=store_dir, auto_refresh=True
    )
    blocking = MossVectorStore(
        index_name="notes", embedding=embeddings, store=store_dir, auto_refresh=True
    )
    vs.add_texts(["the third version"], ids=["v3"])
    vs.push()
    for _ in range(500):
        if follower.session.version == blocking.session.version == 3:
            break
        await asyncio.sleep(0.01)
    assert [d.id for d in await follower.aget_by_ids(["v3"])] == ["v3"]
    assert [d.id for d in blocking.get_by_ids(["v3"])] == ["v3"]
    await follower.session.close()
    blocking.session.sync.close()
    with pytest.raises(InvalidArgumentError, match="not both"):
        MossVectorStore(vs.session, auto_refresh=True)


async def test_a_blocking_session_is_wrapped_with_both_faces(
    embeddings: CountingEmbeddings, store_dir: Path
) -> None:
    # client.sync.session returns a SyncSession: the store still offers its async methods.
    client = MossClient(store=store_dir)
    model = EmbedderModel(embeddings, model_id=model_id_for(embeddings))
    store = MossVectorStore(client.sync.session("blocking", model=model), embedding=embeddings)
    store.add_texts(["sync write"], ids=["s"])
    await store.aadd_texts(["async write"], ids=["a"])
    assert sorted(d.id or "" for d in await store.aget_by_ids(["s", "a"])) == ["a", "s"]
