"""MossVectorStore construction: by client, store URL or session, model ids, and aopen."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import Field
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery
from llama_index.vector_stores.moss import MossEmbedding, MossVectorStore, default_model_id
from test_li_vector_store import DIM, custom_store, node, vec

from moss import (
    DocumentInfo,
    IndexNotFoundError,
    InvalidArgumentError,
    ModelMismatchError,
    MossClient,
)


class RecordingEmbedding(BaseEmbedding):
    """A deterministic stand-in embedder that records every text it embeds."""

    texts: list[str] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "RecordingEmbedding"

    def _vector(self, text: str) -> list[float]:
        self.texts.append(text)
        digest = hashlib.sha256(text.encode()).digest()
        return [b / 255 + 0.01 for b in digest[:DIM]]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._vector(text)


# --- construction and models ---------------------------------------------------------------


def test_open_from_client_store_url_or_session(client: MossClient, store_dir: Path) -> None:
    store = custom_store(client)
    store.add([node("a", seed=1)])
    store.push()
    by_url = MossVectorStore("kb", store=f"file://{store_dir}")
    assert [n.node_id for n in by_url.get_nodes()] == ["a"]
    assert by_url.model_id == "custom" and by_url.index_name == "kb"
    by_url.close()
    session = client.sync.session("kb")
    from_session = MossVectorStore(session=session)
    assert from_session.session is session and from_session.client is session
    session.add_docs([DocumentInfo(id="b", text="b", embedding=vec(2))])  # one shared state
    assert {n.node_id for n in from_session.get_nodes()} == {"a", "b"}
    assert from_session.to_dict() == {
        "stores_text": True,
        "is_embedding_query": True,
        "index_name": "kb",
        "model_id": "custom",
        "class_name": "MossVectorStore",
    }


def test_conflicting_arguments_raise(client: MossClient, store_dir: Path) -> None:
    session = client.sync.session("kb", "custom")
    with pytest.raises(InvalidArgumentError, match="differs"):
        MossVectorStore("other", session=session)
    with pytest.raises(InvalidArgumentError, match="either session"):
        MossVectorStore(session=session, client=client)
    with pytest.raises(InvalidArgumentError, match="not both"):
        MossVectorStore("kb", client=client, store=store_dir)
    with pytest.raises(InvalidArgumentError, match="index_name"):
        MossVectorStore()
    with pytest.raises(InvalidArgumentError, match="MossEmbedding serves"):
        MossVectorStore("kb", client=client, embed_model=MossEmbedding(), model_id="other")


def test_opening_an_index_stored_under_another_model_raises(client: MossClient) -> None:
    store = custom_store(client)
    store.add([node("a", seed=1)])
    store.push()
    with pytest.raises(ModelMismatchError, match="custom"):
        MossVectorStore("kb", client=client, embed_model=MockEmbedding(embed_dim=DIM))
    with pytest.raises(ModelMismatchError):
        MossVectorStore("kb", client=client, model_id="moss-minilm")


def test_default_model_ids() -> None:
    mock = "llama_index.core.embeddings.mock_embed_model.MockEmbedding"
    assert default_model_id(MossEmbedding()) == "moss-minilm"
    assert default_model_id(MockEmbedding(embed_dim=4)) == f"{mock}:4d"
    named = MockEmbedding(embed_dim=4, model_name="BAAI/bge small")
    assert default_model_id(named) == f"{mock}:BAAI-bge-small:4d"


class OtherHomeMade(RecordingEmbedding):
    """A second home-made class: class_name() would not tell it from its base."""


def test_home_made_classes_and_sizes_get_their_own_model_ids() -> None:
    # Before: class_name() is "base_component" for a BaseEmbedding subclass that does not
    # override it, and the dimension was left out, so all of these shared one id.
    ids = {
        default_model_id(RecordingEmbedding()),
        default_model_id(OtherHomeMade()),
        default_model_id(MockEmbedding(embed_dim=8)),
        default_model_id(MockEmbedding(embed_dim=16)),
    }
    assert len(ids) == 4
    assert default_model_id(OtherHomeMade()) == "test_li_open.OtherHomeMade"


def test_another_embedder_under_its_model_id_round_trips(client: MossClient) -> None:
    embedder = RecordingEmbedding()
    store = MossVectorStore("kb", client=client, embed_model=embedder)
    assert store.model_id == "test_li_open.RecordingEmbedding"
    made = TextNode(id_="a", text="hello", metadata={"team": "x"})
    store.add([made])
    # Nodes without an embedding are embedded as LlamaIndex embeds them: text with metadata.
    assert embedder.texts == [made.get_content(metadata_mode="embed")]  # type: ignore[arg-type]
    store.push()
    again = MossVectorStore("kb", client=client, embed_model=embedder)
    assert again.embed_model is embedder
    result = again.query(VectorStoreQuery(query_str="hello", similarity_top_k=1))
    assert result.ids == ["a"]
    # A wrapped embedder cannot be rebuilt from its id: the advice is LlamaIndex's, not moss's.
    with pytest.raises(InvalidArgumentError, match="RecordingEmbedding") as raised:
        MossVectorStore("kb", client=client)
    assert "embed_model=" in str(raised.value) and "EmbedderModel" not in str(raised.value)


async def test_aopen_opens_without_blocking(client: MossClient) -> None:
    store = await MossVectorStore.aopen("kb", client=client, model_id="custom")
    await store.async_add([node("a", seed=1)])
    assert (await store.apush()) is not None
    await store.aclose()
    reopened = await MossVectorStore.aopen("kb", client=client)
    assert reopened.model_id == "custom" and reopened.session.doc_count == 1


async def test_must_exist_refuses_a_missing_index_in_both_opens(tmp_path: Path) -> None:
    store = (tmp_path / "s").as_uri()
    with pytest.raises(IndexNotFoundError, match="'pydoc' does not exist"):
        MossVectorStore("pydoc", store=store, model_id="custom", must_exist=True)
    with pytest.raises(IndexNotFoundError, match="'pydoc' does not exist"):
        await MossVectorStore.aopen("pydoc", store=store, model_id="custom", must_exist=True)
    with MossClient(store=store) as client:
        assert client.sync.list_indexes() == []  # nothing was created by the refused opens
    with pytest.raises(InvalidArgumentError, match="must_exist"):
        MossVectorStore(session=MossClient(store=store).sync.session("x"), must_exist=True)
