"""MossVectorStore: a named, shareable Moss session as a LlamaIndex vector store."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import fsspec
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryResult,
)

from moss import (
    EmbedderModel,
    EmbeddingModel,
    InvalidArgumentError,
    MossClient,
    PushResult,
    Session,
    Store,
)

from ._convert import doc_to_node, nodes_to_docs, texts_to_embed
from ._filters import select
from ._query import answer, matching, plan_query
from .embeddings import MossEmbedding, moss_model_for

__all__ = ["MossVectorStore"]


class MossVectorStore(BasePydanticVectorStore):
    """A Moss session as a LlamaIndex vector store: local reads and writes, ``persist`` to share.

    Nodes are stored whole (text, metadata, relationships) under their node ids, with the
    embeddings LlamaIndex computed; queries, filters and deletes are in-memory operations, and
    ``persist()`` (which ``StorageContext.persist()`` calls) pushes the session so that any other
    process opening the same index name sees it, without re-embedding.

    Setup and ingest::

        from llama_index.core import Document, StorageContext, VectorStoreIndex
        from llama_index.vector_stores.moss import MossEmbedding, MossVectorStore

        store = MossVectorStore("support-kb")             # MOSS_STORE / MOSS_HOME / ~/.moss
        context = StorageContext.from_defaults(vector_store=store)
        index = VectorStoreIndex.from_documents(
            [Document(text="Refunds take 3-5 business days.", metadata={"team": "billing"})],
            storage_context=context, embed_model=MossEmbedding(),
        )
        context.persist()                                 # pushes the session

    Another process resumes from the pushed index::

        store = MossVectorStore("support-kb")
        index = VectorStoreIndex.from_vector_store(store, embed_model=store.embed_model)
        nodes = index.as_retriever(similarity_top_k=3).retrieve("how long do refunds take")

    Filters (``MetadataFilters`` with AND / OR / NOT, nested, every operator of
    llama-index-core 0.14) apply before ranking: a query returns the true top k of the matching
    nodes. Query modes: ``DEFAULT`` (vector), ``MMR`` (``mmr_threshold``, default 0.5),
    ``TEXT_SEARCH`` (BM25 keyword search) and ``HYBRID`` (a weighted Reciprocal Rank Fusion of
    both; ``alpha`` 1.0 is vector only, 0.0 keyword only, unset moss's default 0.4, the best on
    SciFact). Similarities are cosine similarities in every mode, also where they do not decide
    the order::

        index.as_retriever(vector_store_query_mode="hybrid", alpha=0.4).retrieve("ORD-1234")
    Async twins: ``async_add``, ``adelete``, ``adelete_nodes``, ``aget_nodes``, ``aclear``,
    ``aquery``, ``apush``; ``await MossVectorStore.aopen(...)`` opens without blocking.

    The embedding model: ``embed_model=MossEmbedding()`` (or neither ``embed_model`` nor
    ``model_id``, for a new index) uses the built-in ``moss-minilm``; any other LlamaIndex
    embedding works under ``model_id`` (default: see ``default_model_id``). Opening an index
    stored under another model id raises ``ModelMismatchError``.
    """

    stores_text: bool = True
    is_embedding_query: bool = True
    index_name: str
    model_id: str

    _session: Session = PrivateAttr()
    _client: MossClient | None = PrivateAttr(default=None)

    def __init__(
        self,
        index_name: str | None = None,
        *,
        session: Session | None = None,
        client: MossClient | None = None,
        store: Store | str | os.PathLike[str] | None = None,
        model_id: str | None = None,
        embed_model: BaseEmbedding | None = None,
        **kwargs: Any,
    ) -> None:
        owned: MossClient | None = None
        if session is None:
            if index_name is None:
                raise InvalidArgumentError("pass index_name (to open a session) or session=")
            if client is not None and store is not None:
                raise InvalidArgumentError("pass client= or store=, not both")
            model = None if embed_model is None else moss_model_for(embed_model, model_id)
            if client is None:
                client = owned = MossClient(store=store)
            try:
                session = client.sync.session(index_name, None if model else model_id, model=model)
            except BaseException:
                if owned is not None:
                    owned.sync.close()
                raise
        else:
            _check_session_only(session, index_name, client, store, model_id, embed_model)
        # mypy sees BaseComponent's signature, not this model's fields.
        super().__init__(  # type: ignore[call-arg]
            index_name=session.name, model_id=session.model_id, **kwargs
        )
        self._session = session
        self._client = owned

    @classmethod
    async def aopen(
        cls,
        index_name: str,
        *,
        client: MossClient | None = None,
        store: Store | str | os.PathLike[str] | None = None,
        model_id: str | None = None,
        embed_model: BaseEmbedding | None = None,
    ) -> MossVectorStore:
        """Open the session without blocking the event loop; same arguments as the constructor."""
        if client is not None and store is not None:
            raise InvalidArgumentError("pass client= or store=, not both")
        model = None if embed_model is None else moss_model_for(embed_model, model_id)
        owned = None
        if client is None:
            client = owned = MossClient(store=store)
        try:
            session = await client.session(index_name, None if model else model_id, model=model)
        except BaseException:
            if owned is not None:
                await owned.close()
            raise
        vector_store = cls(session=session)
        vector_store._client = owned
        return vector_store

    @classmethod
    def class_name(cls) -> str:
        return "MossVectorStore"

    @property
    def client(self) -> Session:
        """The Moss session this store reads and writes."""
        return self._session

    @property
    def session(self) -> Session:
        """The Moss session this store reads and writes."""
        return self._session

    @property
    def embed_model(self) -> BaseEmbedding:
        """A LlamaIndex embedding that embeds as this index's model does (for queries)."""
        model = self._session.model
        if isinstance(model, EmbedderModel) and isinstance(model.embedder, BaseEmbedding):
            return model.embedder
        return MossEmbedding(model)

    # -- writes ---------------------------------------------------------------------------------

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Add nodes (an upsert by node id); nodes without an embedding are embedded by the model."""
        missing, texts = texts_to_embed(nodes)
        vectors = self._model.embed_documents(texts) if texts else None
        self._session.sync.add_docs(nodes_to_docs(nodes, missing, vectors))
        return [node.node_id for node in nodes]

    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        """Async twin of :meth:`add`."""
        missing, texts = texts_to_embed(nodes)
        vectors = await self._model.aembed_documents(texts) if texts else None
        await self._session.add_docs(nodes_to_docs(nodes, missing, vectors))
        return [node.node_id for node in nodes]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of the source document ``ref_doc_id``."""
        self._session.sync.delete_docs(self._ids_of_document(ref_doc_id))

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Async twin of :meth:`delete`."""
        await self._session.delete_docs(self._ids_of_document(ref_doc_id))

    def delete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        """Delete the nodes with these ids that match ``filters`` (give one or both)."""
        self._session.sync.delete_docs(self._ids_to_delete(node_ids, filters))

    async def adelete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        """Async twin of :meth:`delete_nodes`."""
        await self._session.delete_docs(self._ids_to_delete(node_ids, filters))

    def clear(self) -> None:
        """Delete every node of the session (locally; push to share the empty index)."""
        self._session.sync.delete_docs([doc.id for doc in self._session.sync.get_docs()])

    async def aclear(self) -> None:
        """Async twin of :meth:`clear`."""
        await self._session.delete_docs([doc.id for doc in await self._session.get_docs()])

    # -- reads ----------------------------------------------------------------------------------

    def get_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        """Nodes by id (in the order given) and/or by filter; all nodes with neither."""
        docs = matching(self._session, select(filters), node_ids)
        return [doc_to_node(doc.id, doc.text, doc.metadata) for doc in docs]

    async def aget_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        """Async twin of :meth:`get_nodes` (reads are local, so it does not wait)."""
        return self.get_nodes(node_ids, filters)

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The nodes most similar to the query embedding (or to ``query_str``), filters first."""
        plan = plan_query(query, kwargs, self._session.dimension)
        if self._session.doc_count == 0:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        vector = plan.vector
        if vector is None:
            vector = self._model.embed_query(plan.text)
        return answer(self._session, plan, vector)

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Async twin of :meth:`query`."""
        plan = plan_query(query, kwargs, self._session.dimension)
        if self._session.doc_count == 0:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        vector = plan.vector
        if vector is None:
            vector = await self._model.aembed_query(plan.text)
        return answer(self._session, plan, vector)

    # -- sharing --------------------------------------------------------------------------------

    def persist(
        self, persist_path: str | None = None, fs: fsspec.AbstractFileSystem | None = None
    ) -> None:
        """Push the session (what ``StorageContext.persist()`` calls); the path is not used."""
        self.push()

    def push(self, *, force: bool = False) -> PushResult | None:
        """Push the session if it changed since its last load or push (or ever, with ``force``)."""
        if not (force or self._needs_push()):
            return None
        return self._session.sync.push_index()

    async def apush(self, *, force: bool = False) -> PushResult | None:
        """Async twin of :meth:`push`."""
        if not (force or self._needs_push()):
            return None
        return await self._session.push_index()

    def close(self) -> None:
        """Close the session, and the client if this store opened it."""
        self._session.sync.close()
        if self._client is not None:
            self._client.sync.close()

    async def aclose(self) -> None:
        """Async twin of :meth:`close`."""
        await self._session.close()
        if self._client is not None:
            await self._client.close()

    # -- shared by the sync and async paths -----------------------------------------------------

    @property
    def _model(self) -> EmbeddingModel:
        return self._session.model

    def _needs_push(self) -> bool:
        # A session never pushed is pushed even when empty, so that the name exists for readers.
        return self._session.has_unpushed_changes or self._session.version == 0

    def _ids_of_document(self, ref_doc_id: str) -> list[str]:
        flt = {"field": "ref_doc_id", "condition": {"$eq": ref_doc_id}}
        return [doc.id for doc in self._session.sync.get_docs(filter=flt)]

    def _ids_to_delete(
        self, node_ids: list[str] | None, filters: MetadataFilters | None
    ) -> list[str]:
        if node_ids is None and filters is None:
            raise InvalidArgumentError(
                "delete_nodes needs node_ids and/or filters; to delete every node, call clear()"
            )
        return [doc.id for doc in matching(self._session, select(filters), node_ids)]


def _check_session_only(
    session: Session,
    index_name: str | None,
    client: MossClient | None,
    store: object,
    model_id: str | None,
    embed_model: BaseEmbedding | None,
) -> None:
    if not isinstance(session, Session):
        raise InvalidArgumentError(f"session must be a moss Session, got {type(session).__name__}")
    if client is not None or store is not None or embed_model is not None:
        raise InvalidArgumentError(
            "pass either session= or (index_name, client or store, model_id or embed_model): "
            "an open session already has its store and model"
        )
    if index_name is not None and index_name != session.name:
        raise InvalidArgumentError(
            f"index_name {index_name!r} differs from the session's {session.name!r}"
        )
    if model_id is not None and model_id != session.model_id:
        raise InvalidArgumentError(
            f"model_id {model_id!r} differs from the session's {session.model_id!r}"
        )
