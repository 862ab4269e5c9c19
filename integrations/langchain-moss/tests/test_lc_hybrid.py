"""``alpha`` passes through LangChain searches and retrievers: keyword search finds exact codes."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_moss import MossRetriever, MossVectorStore
from lc_moss_helpers import CountingEmbeddings, unit

from moss import InvalidArgumentError

DOCS = [
    Document(id=f"t{i}", page_content=f"ticket {i} about a delayed parcel", metadata={"n": i})
    for i in range(20)
] + [Document(id="hit", page_content="refund for order ORD-7731 approved", metadata={"n": 99})]
CODE = "ORD-7731"


@pytest.fixture
def store(embeddings: CountingEmbeddings) -> MossVectorStore:
    made = MossVectorStore(index_name="tickets", embedding=embeddings)
    made.add_documents(DOCS)
    return made


def cosine(embeddings: CountingEmbeddings, query: str, text: str) -> float:
    return float(unit(embeddings.vector(query)) @ unit(embeddings.vector(text)))


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def call(store: MossVectorStore, mode: str, name: str, *args: Any, **kwargs: Any) -> Any:
    if mode == "sync":
        return getattr(store, name)(*args, **kwargs)
    return await getattr(store, "a" + name)(*args, **kwargs)


async def test_keyword_search_finds_the_exact_code_with_cosine_scores(
    store: MossVectorStore, embeddings: CountingEmbeddings, mode: str
) -> None:
    # The fake embeddings are random per text, so vector search does not put the code first.
    by_vector = await call(store, mode, "similarity_search", CODE, k=1)
    assert [doc.id for doc in by_vector] != ["hit"]
    pairs = await call(store, mode, "similarity_search_with_score", CODE, k=1, alpha=0.0)
    assert [doc.id for doc, _ in pairs] == ["hit"]
    assert pairs[0][1] == pytest.approx(cosine(embeddings, CODE, DOCS[-1].page_content), abs=1e-6)
    blended = await call(store, mode, "similarity_search", CODE, k=3, alpha=0.4)
    assert "hit" in [doc.id for doc in blended]


async def test_default_stays_vector_similarity(store: MossVectorStore, mode: str) -> None:
    pairs = await call(store, mode, "similarity_search_with_score", CODE, k=21)
    scores = [score for _, score in pairs]
    assert scores == sorted(scores, reverse=True)


async def test_relevance_threshold_keeps_its_cosine_meaning_when_blended(
    store: MossVectorStore, embeddings: CountingEmbeddings, mode: str
) -> None:
    pairs = await call(
        store, mode, "similarity_search_with_relevance_scores", CODE, k=21, alpha=0.0,
        score_threshold=0.2,
    )  # fmt: skip
    assert all(score >= 0.2 for _, score in pairs)
    for doc, score in pairs:
        assert score == pytest.approx(
            max(0.0, cosine(embeddings, CODE, doc.page_content)), abs=1e-6
        )


def test_retriever_passes_alpha_from_search_kwargs_fields_and_calls(store: MossVectorStore) -> None:
    assert [
        d.id for d in store.as_retriever(search_kwargs={"k": 1, "alpha": 0.0}).invoke(CODE)
    ] == ["hit"]
    assert [d.id for d in MossRetriever(vectorstore=store, k=1, alpha=0.0).invoke(CODE)] == ["hit"]
    assert [d.id for d in MossRetriever(vectorstore=store, k=1).invoke(CODE, alpha=0.0)] == ["hit"]


def test_bad_alpha_is_refused(store: MossVectorStore) -> None:
    with pytest.raises(InvalidArgumentError, match="alpha"):
        store.similarity_search(CODE, alpha=1.5)
