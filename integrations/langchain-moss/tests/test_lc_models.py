"""MossEmbeddings: the real built-in model, relevance, and one index shared with plain moss."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from langchain_moss import MossEmbeddings, MossRetriever, MossVectorStore

from moss import DocumentInfo, MossClient, QueryOptions

pytestmark = pytest.mark.model

TEXTS = {
    "refund": "The refund was sent back to the customer's credit card.",
    "shipping": "The parcel left the warehouse and ships by truck tomorrow.",
    "password": "To reset a forgotten password, use the link on the sign-in page.",
    "weather": "Heavy rain and strong winds are expected along the coast.",
}


async def test_moss_embeddings_rank_by_meaning(store_dir: Path) -> None:
    store = MossVectorStore(index_name="kb", embedding=MossEmbeddings(), store=store_dir)
    await store.aadd_texts(list(TEXTS.values()), ids=list(TEXTS))
    questions = {
        "refund": "when do I get my money back",
        "shipping": "where is my package",
        "password": "I can't log in to my account",
        "weather": "will it storm at the beach",
    }
    for expected, question in questions.items():
        assert [d.id for d in store.similarity_search(question, k=1)] == [expected]
        assert [d.id for d in await store.asimilarity_search(question, k=1)] == [expected]
    relevance = store.similarity_search_with_relevance_scores("money back for my order", k=4)
    assert relevance[0][0].id == "refund" and relevance[0][1] > relevance[-1][1] >= 0.0


async def test_moss_embeddings_are_the_built_in_model() -> None:
    embeddings = MossEmbeddings()
    assert embeddings.model_id == embeddings.model.model_id == "moss-minilm"
    vectors = np.asarray(embeddings.embed_documents(["a refund", "a parcel"]))
    assert vectors.shape == (2, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(
        await embeddings.aembed_documents(["a refund", "a parcel"]), vectors, atol=1e-6
    )
    query = embeddings.embed_query("a refund")
    assert np.allclose(query, vectors[0], atol=1e-6)
    assert np.allclose(await embeddings.aembed_query("a refund"), query, atol=1e-6)


def test_one_index_shared_with_plain_moss_under_moss_minilm(store_dir: Path) -> None:
    client = MossClient(store=store_dir)
    langchain_side = MossVectorStore(index_name="shared", embedding=MossEmbeddings(), client=client)
    assert langchain_side.model_id == "moss-minilm"
    langchain_side.add_texts([TEXTS["refund"]], ids=["refund"])
    langchain_side.push()

    # A plain moss agent (or the LlamaIndex adapter) opens it with the default model...
    session = client.sync.session("shared")
    assert session.model_id == "moss-minilm"
    session.sync.add_docs([DocumentInfo(id="shipping", text=TEXTS["shipping"])])
    hits = session.sync.query("where is my package", QueryOptions(top_k=1)).docs
    assert [h.id for h in hits] == ["shipping"]
    session.sync.push_index()

    # ...and LangChain reopens it without naming any embedding.
    reopened = MossVectorStore(index_name="shared", client=client)
    assert isinstance(reopened.embeddings, MossEmbeddings)
    assert [d.id for d in reopened.similarity_search("money back", k=1)] == ["refund"]
    retriever = MossRetriever(index_name="shared", store=store_dir, k=2)
    assert {d.id for d in retriever.invoke("parcel")} == {"refund", "shipping"}
