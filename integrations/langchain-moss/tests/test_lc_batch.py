"""MossRetriever.batch / abatch: one batched query (session.query_many) with the results and
callbacks of one invoke per input."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_moss import MossRetriever, MossVectorStore
from lc_moss_helpers import CountingEmbeddings

DOCS = [(f"d{i}", f"fact {i} on {'cats' if i % 2 else 'dogs'}", {"n": i % 3}) for i in range(40)]
QUERIES = ["cats", "dogs", "fact 7", "cats", "fact 12 on dogs"]


class Runs(BaseCallbackHandler):
    def __init__(self) -> None:
        self.ended: list[int] = []

    def on_retriever_end(self, documents: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.ended.append(len(documents))


@pytest.fixture
def store(embeddings: CountingEmbeddings, store_dir: Path) -> MossVectorStore:
    store = MossVectorStore(index_name="batch", embedding=embeddings, store=store_dir)
    store.add_texts([t for _, t, _ in DOCS], [m for _, _, m in DOCS], ids=[i for i, _, _ in DOCS])
    return store


def ids(batches: list[list[Document]]) -> list[list[str]]:
    return [[doc.id or "" for doc in docs] for docs in batches]


@pytest.mark.parametrize("alpha", [None, 1.0])
async def test_batch_equals_invoke_and_queries_once(
    store: MossVectorStore, embeddings: CountingEmbeddings, alpha: float | None
) -> None:
    retriever = MossRetriever(vectorstore=store, k=3, alpha=alpha, filter={"n": {"$ne": 1}})
    expected = [retriever.invoke(q) for q in QUERIES]
    calls = embeddings.query_calls
    runs = Runs()
    got = retriever.batch(QUERIES, {"callbacks": [runs]})
    assert ids(got) == ids(expected)
    # Each distinct text embedded once, by the one batched query; none by the invocations.
    assert embeddings.query_calls - calls == len(set(QUERIES))
    assert runs.ended == [len(docs) for docs in expected]
    assert ids(await retriever.abatch(QUERIES, k=2)) == ids(
        [retriever.invoke(q, k=2) for q in QUERIES]
    )


def test_batch_falls_back_for_what_invoke_must_report(store: MossVectorStore) -> None:
    retriever = MossRetriever(vectorstore=store, k=2)
    got = retriever.batch(["cats", ""], return_exceptions=True)
    assert len(got[0]) == 2 and isinstance(got[1], Exception)
    with pytest.raises(Exception, match="bogus"):
        retriever.batch(["cats", "dogs"], bogus=1)


def test_readding_unchanged_texts_embeds_nothing(
    store: MossVectorStore, embeddings: CountingEmbeddings
) -> None:
    embedded = embeddings.documents_embedded
    texts = [t for _, t, _ in DOCS]
    store.add_texts(texts, [{"n": 9}] * len(texts), ids=[i for i, _, _ in DOCS])
    assert embeddings.documents_embedded == embedded  # metadata-only: the session reuses vectors
    assert store.get_by_ids(["d3"])[0].metadata == {"n": 9}
