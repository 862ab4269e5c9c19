"""End to end with the real moss-minilm model: indexes, query engines, and a second process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.llms import MockLLM
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters
from llama_index.vector_stores.moss import MossEmbedding, MossPushHandler, MossVectorStore

from moss import InvalidArgumentError, MossClient
from moss.embeddings import resolve_model

pytestmark = pytest.mark.model

WORKER = Path(__file__).with_name("li_worker.py")

CORPUS = [
    Document(
        id_="refunds",
        text="Refunds are issued to the original card within 3-5 business days.",
        metadata={"team": "billing", "year": 2024},
    ),
    Document(
        id_="shipping",
        text="Orders ship from our warehouse and reach Canada in about a week.",
        metadata={"team": "logistics", "year": 2023},
    ),
    Document(
        id_="passwords",
        text="You can reset a forgotten password from the sign-in page.",
        metadata={"team": "accounts", "year": 2024},
    ),
    Document(
        id_="invoices",
        text="Invoices can be downloaded as PDF from the billing settings.",
        metadata={"team": "billing", "year": 2022},
    ),
]


def test_query_engine_and_retriever_return_the_right_nodes_whole(client: MossClient) -> None:
    store = MossVectorStore("kb", client=client, embed_model=MossEmbedding())
    context = StorageContext.from_defaults(vector_store=store)
    index = VectorStoreIndex.from_documents(
        CORPUS,
        storage_context=context,
        embed_model=MossEmbedding(),
        transformations=[SentenceSplitter(chunk_size=256, chunk_overlap=0)],
    )
    engine = index.as_query_engine(llm=MockLLM(), similarity_top_k=1)
    response = engine.query("When will I get my money back?")
    [source] = response.source_nodes
    assert source.node.ref_doc_id == "refunds"
    assert isinstance(source.node, TextNode)
    assert source.node.text == CORPUS[0].text
    assert source.node.metadata == {"team": "billing", "year": 2024}
    assert source.node.source_node is not None and source.node.source_node.node_id == "refunds"
    assert 0 < (source.score or 0) <= 1

    retriever = index.as_retriever(similarity_top_k=2)
    hits = retriever.retrieve("how do I change my password")
    assert hits[0].node.ref_doc_id == "passwords"
    assert (
        hits[0].score is not None and hits[1].score is not None and hits[0].score >= hits[1].score
    )

    billing_only = MetadataFilters(filters=[MetadataFilter(key="team", value="billing")])
    filtered = index.as_retriever(similarity_top_k=4, filters=billing_only).retrieve(
        "password reset"
    )
    assert sorted(hit.node.ref_doc_id or "" for hit in filtered) == ["invoices", "refunds"]

    index.delete_ref_doc("refunds")
    assert "refunds" not in {node.ref_doc_id for node in store.get_nodes()}
    assert (
        engine.query("When will I get my money back?").source_nodes[0].node.ref_doc_id != "refunds"
    )


def test_a_second_process_answers_the_same_query_without_re_embedding(store_dir: Path) -> None:
    # The README's flow: ingest with a pipeline into a shared session, push, read elsewhere.
    store = MossVectorStore("support-kb", store=store_dir, embed_model=MossEmbedding())
    pipeline = IngestionPipeline(
        transformations=[SentenceSplitter(chunk_size=256, chunk_overlap=0), MossEmbedding()],
        vector_store=store,
    )
    with MossPushHandler(store):
        pipeline.run(documents=CORPUS)
    assert store.session.version == 1

    query = "Where can I get a PDF of my invoice?"
    index = VectorStoreIndex.from_vector_store(store, embed_model=MossEmbedding())
    here = index.as_retriever(similarity_top_k=3).retrieve(query)

    completed = subprocess.run(
        [sys.executable, str(WORKER), str(store_dir), "support-kb", query, "3"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    there = json.loads(completed.stdout)
    assert there["model_id"] == "moss-minilm" and there["version"] == 1
    assert there["embedded_documents"] == 0
    assert there["nodes"] == [hit.node.to_json() for hit in here]
    assert there["scores"] == pytest.approx([hit.score for hit in here], abs=1e-6)
    assert json.loads(there["nodes"][0])["id_"] == here[0].node.node_id
    assert here[0].node.ref_doc_id == "invoices"


async def test_moss_embedding_is_the_built_in_model_under_its_shared_id() -> None:
    embedding = MossEmbedding()
    model = resolve_model("moss-minilm")
    assert embedding.model_name == "moss-minilm" and embedding.moss_model is model
    texts = ["Refunds take 3-5 business days.", "Reset your password."]
    batch = embedding.get_text_embedding_batch(texts)
    assert np.allclose(batch, model.embed_documents(texts), atol=1e-6)
    assert np.allclose(await embedding.aget_text_embedding_batch(texts), batch, atol=1e-6)
    query = embedding.get_query_embedding("refund status")
    assert len(query) == 384 and np.linalg.norm(query) == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(await embedding.aget_query_embedding("refund status"), query, atol=1e-6)
    with pytest.raises(InvalidArgumentError, match="does not embed text"):
        MossEmbedding("custom")
