"""``alpha`` passes through LangChain searches and retrievers; the default is the core's; scores."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_moss import MossRetriever, MossVectorStore
from lc_moss_helpers import CountingEmbeddings, unit

from moss import InvalidArgumentError, QueryOptions

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
    by_vector = await call(store, mode, "similarity_search", CODE, k=1, alpha=1.0)
    assert [doc.id for doc in by_vector] != ["hit"]
    pairs = await call(store, mode, "similarity_search_with_score", CODE, k=1, alpha=0.0)
    assert [doc.id for doc, _ in pairs] == ["hit"]
    assert pairs[0][1] == pytest.approx(cosine(embeddings, CODE, DOCS[-1].page_content), abs=1e-6)
    blended = await call(store, mode, "similarity_search", CODE, k=3, alpha=0.4)
    assert "hit" in [doc.id for doc in blended]


async def test_default_alpha_is_the_cores(store: MossVectorStore, mode: str) -> None:
    # Issue 16.6: the adapter defaulted to alpha 1.0, so the same query ranked differently.
    core = store.session.sync.query(CODE, QueryOptions(top_k=5))
    expected = [hit.id for hit in core.docs]
    assert QueryOptions().alpha == 0.4 and expected[0] == "hit"
    docs = await call(store, mode, "similarity_search", CODE, k=5)
    assert [doc.id for doc in docs] == expected
    assert [d.id for d in store.as_retriever(search_kwargs={"k": 5}).invoke(CODE)] == expected
    assert [d.id for d in MossRetriever(vectorstore=store, k=5).invoke(CODE)] == expected


async def test_relevance_follows_the_order_and_cosine_stays_available(
    store: MossVectorStore, embeddings: CountingEmbeddings, mode: str
) -> None:
    core = {hit.id: hit for hit in store.session.sync.query(CODE, QueryOptions(top_k=21)).docs}
    pairs = await call(store, mode, "similarity_search_with_relevance_scores", CODE, k=21)
    scores = [score for _, score in pairs]
    assert scores == sorted(scores, reverse=True) and scores[0] <= 1.0
    for doc, score in pairs:  # the fused value over its maximum, 1 / (60 + 1)
        assert score == pytest.approx((core[str(doc.id)].fused_score or 0.0) * 61, abs=1e-6)
    cosines = await call(store, mode, "similarity_search_with_score", CODE, k=21)
    assert [doc.id for doc, _ in cosines] == [doc.id for doc, _ in pairs]
    for doc, cosine_score in cosines:
        assert cosine_score == pytest.approx(cosine(embeddings, CODE, doc.page_content), abs=1e-6)
    assert [score for _, score in cosines] != sorted((s for _, s in cosines), reverse=True)

    threshold = (scores[1] + scores[2]) / 2
    kept = await call(
        store, mode, "similarity_search_with_relevance_scores", CODE, k=21,
        score_threshold=threshold,
    )  # fmt: skip
    assert kept == pairs[:2]


def test_retriever_passes_alpha_from_search_kwargs_fields_and_calls(store: MossVectorStore) -> None:
    assert [
        d.id for d in store.as_retriever(search_kwargs={"k": 1, "alpha": 0.0}).invoke(CODE)
    ] == ["hit"]
    assert [d.id for d in MossRetriever(vectorstore=store, k=1, alpha=0.0).invoke(CODE)] == ["hit"]
    assert [d.id for d in MossRetriever(vectorstore=store, k=1).invoke(CODE, alpha=0.0)] == ["hit"]


def test_bad_alpha_is_refused(store: MossVectorStore) -> None:
    with pytest.raises(InvalidArgumentError, match="alpha"):
        store.similarity_search(CODE, alpha=1.5)
