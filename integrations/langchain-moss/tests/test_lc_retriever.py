"""MossRetriever: fields and per-call arguments, opening by name, LCEL and agent-tool use."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from langchain_core.documents import Document
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import create_retriever_tool
from langchain_moss import MossRetriever, MossVectorStore
from lc_moss_helpers import CountingEmbeddings, brute_top_k

from moss import IndexNotFoundError, InvalidArgumentError

DOCS = [
    (
        f"d{i}",
        f"fact number {i} on {'cats' if i % 2 else 'dogs'}",
        {"animal": "cat" if i % 2 else "dog"},
    )
    for i in range(10)
]


@pytest.fixture
def pushed(embeddings: CountingEmbeddings, store_dir: Path) -> MossVectorStore:
    store = MossVectorStore(index_name="facts", embedding=embeddings, store=store_dir)
    store.add_texts([t for _, t, _ in DOCS], [m for _, _, m in DOCS], ids=[i for i, _, _ in DOCS])
    store.push()
    return store


def ids(docs: list[Document]) -> list[str]:
    return [doc.id or "" for doc in docs]


async def test_fields_and_per_call_arguments(
    pushed: MossVectorStore, embeddings: CountingEmbeddings, store_dir: Path
) -> None:
    params = {"index_name": "facts", "embedding": CountingEmbeddings(), "store": str(store_dir)}
    retriever = MossRetriever(**params, k=3, alpha=1.0)  # cosine ranking, as brute_top_k
    assert params == {
        "index_name": "facts",
        "embedding": params["embedding"],
        "store": str(store_dir),
    }
    top = brute_top_k(embeddings, DOCS, "cats", 10)
    assert ids(retriever.invoke("cats")) == [i for i, _ in top[:3]]
    assert ids(await retriever.ainvoke("cats", k=1)) == [top[0][0]]
    dogs = brute_top_k(embeddings, DOCS, "cats", 2, lambda m: m["animal"] == "dog")
    assert ids(retriever.invoke("cats", k=2, filter={"animal": "dog"})) == [i for i, _ in dogs]

    threshold = (top[1][1] + top[2][1]) / 2  # between the second and third best
    assert threshold > 0
    assert ids(retriever.invoke("cats", score_threshold=threshold)) == [i for i, _ in top[:2]]
    strict = MossRetriever(vectorstore=pushed, k=5, score_threshold=threshold, alpha=1.0)
    assert ids(await strict.ainvoke("cats")) == [i for i, _ in top[:2]]
    filtered = MossRetriever(
        vectorstore=pushed, filter={"field": "animal", "condition": {"$eq": "cat"}}
    )
    assert {d.metadata["animal"] for d in filtered.invoke("dogs")} == {"cat"}


def test_opening_by_name_needs_an_existing_index(pushed: MossVectorStore, store_dir: Path) -> None:
    with pytest.raises(IndexNotFoundError, match="'nope' does not exist"):
        MossRetriever(index_name="nope", store=store_dir)
    with pytest.raises(InvalidArgumentError, match="not both"):
        MossRetriever(vectorstore=pushed, index_name="facts")
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        MossRetriever(vectorstore=pushed, k=0)


def test_unknown_arguments_are_refused_everywhere(pushed: MossVectorStore) -> None:
    # Issue 16.4: these typos were silently ignored and the defaults used instead.
    with pytest.raises(
        InvalidArgumentError, match=r"unknown argument\(s\) \['score_treshold', 'top_k'\]"
    ):
        MossRetriever(vectorstore=pushed, top_k=1, score_treshold=0.9)
    retriever = MossRetriever(vectorstore=pushed)
    with pytest.raises(InvalidArgumentError, match=r"MossRetriever.invoke .*\['kk'\]"):
        retriever.invoke("cats", kk=2)


def test_opened_by_name_with_auto_refresh(pushed: MossVectorStore, store_dir: Path) -> None:
    retriever = MossRetriever(
        index_name="facts", embedding=CountingEmbeddings(), store=store_dir, auto_refresh=True
    )
    try:
        pushed.add_texts(["a newly pushed zebra fact"], ids=["zebra"])
        pushed.push()
        session = retriever.vectorstore.session
        for _ in range(500):  # the background refresh loads version 2
            if session.version == 2:
                break
            threading.Event().wait(0.01)
        assert session.version == 2
        assert ids(retriever.invoke("a newly pushed zebra fact", k=1)) == ["zebra"]
    finally:
        retriever.vectorstore.session.sync.close()


def test_a_live_store_is_shared_unpushed_writes_included(pushed: MossVectorStore) -> None:
    retriever = MossRetriever(vectorstore=pushed, k=1)
    pushed.add_texts(["a brand new zebra fact"], ids=["zebra"])
    assert ids(retriever.invoke("a brand new zebra fact")) == ["zebra"]


async def test_lcel_and_agent_tool(pushed: MossVectorStore) -> None:
    retriever = MossRetriever(vectorstore=pushed, k=2)

    def join(docs: list[Document]) -> str:
        return " | ".join(d.page_content for d in docs)

    chain = retriever | RunnableLambda(join)
    text = chain.invoke("fact number 3 on cats")
    assert "fact number 3 on cats" in text and text.count(" | ") == 1
    assert await chain.ainvoke("fact number 3 on cats") == text

    tool = create_retriever_tool(retriever, "facts", "Look up animal facts")
    assert tool.name == "facts"
    assert "fact number 3 on cats" in tool.invoke({"query": "fact number 3 on cats"})
    assert "fact number 3 on cats" in await tool.ainvoke({"query": "fact number 3 on cats"})
