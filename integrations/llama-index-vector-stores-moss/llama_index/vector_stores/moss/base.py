"""MossVectorStore: a named, shareable Moss session as a LlamaIndex vector store."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, TypedDict

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
from typing_extensions import Unpack

from moss import (
    EmbedderModel,
    EmbeddingModel,
    InvalidArgumentError,
    MossClient,
    PushResult,
    Session,
    Store,
    SyncSession,
)
from moss.flow import Flow, Io, run_async, run_sync

from ._convert import nodes_to_docs
from ._embed import missing_embeddings
from ._filters import to_moss_filter
from ._open import OpenOptions, OpenRequest, async_session, check_session_only
from ._query import answer, plan_query, to_nodes
from .embeddings import MossEmbedding

__all__ = ["MossVectorStore"]


class PushOptions(TypedDict, total=False):
    """The keyword arguments of :meth:`MossVectorStore.push` and ``apush``."""

    force: bool
    merge: bool
    expected_version: int | None
    ttl: float | None


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
    nodes. Query modes: ``DEFAULT`` and ``HYBRID`` (moss's weighted Reciprocal Rank Fusion of
    vector and BM25 keyword search; ``alpha`` 1.0 is vector only, unset moss's default 0.4, the
    best on SciFact; DEFAULT without ``query_str`` is vector only), ``TEXT_SEARCH`` (keywords
    only) and ``MMR`` (``mmr_threshold``, default 0.5). Similarities follow the order: fused
    scores where keywords take part, else cosine similarities::

        index.as_retriever(vector_store_query_mode="hybrid", alpha=0.4).retrieve("ORD-1234")

    Async twins: ``async_add``, ``adelete``, ``adelete_nodes``, ``aget_nodes``, ``aclear``,
    ``aquery``, ``apush``; ``await MossVectorStore.aopen(...)`` opens without blocking.
    ``version=`` and ``auto_refresh=`` open as ``client.session`` does. ``persist()`` merges
    with other agents' pushes; ``push(merge=, expected_version=, ttl=)`` chooses.

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
    # The session as the caller passed it (a blocking SyncSession stays one); else _session.
    _given: Session | SyncSession = PrivateAttr()

    def __init__(
        self,
        index_name: str | None = None,
        *,
        session: Session | SyncSession | None = None,
        client: MossClient | None = None,
        store: Store | str | os.PathLike[str] | None = None,
        model_id: str | None = None,
        embed_model: BaseEmbedding | None = None,
        version: int | None = None,
        auto_refresh: bool = False,
        must_exist: bool = False,
        **kwargs: Any,
    ) -> None:
        owned: MossClient | None = None
        given: Session | SyncSession | None = None
        if session is None:
            if index_name is None:
                raise InvalidArgumentError("pass index_name (to open a session) or session=")
            request = OpenRequest.make(
                client, store, model_id, embed_model, version, auto_refresh, must_exist
            )
            owned = request.owned
            session = request.open(index_name)
        else:
            given, session = session, async_session(session)
            check_session_only(
                session,
                index_name,
                client,
                store,
                model_id,
                embed_model,
                version,
                auto_refresh,
                must_exist,
            )
        # mypy sees BaseComponent's signature, not this model's fields.
        super().__init__(  # type: ignore[call-arg]
            index_name=session.name, model_id=session.model_id, **kwargs
        )
        self._session = session
        self._given = given or session
        self._client = owned

    @classmethod
    async def aopen(cls, index_name: str, **options: Unpack[OpenOptions]) -> MossVectorStore:
        """Open the session without blocking the event loop; the constructor's other arguments
        (``client``, ``store``, ``model_id``, ``embed_model``, ``version``, ``auto_refresh``,
        ``must_exist``: raise ``IndexNotFoundError`` rather than start an empty index)."""
        request = OpenRequest.make(
            options.get("client"),
            options.get("store"),
            options.get("model_id"),
            options.get("embed_model"),
            options.get("version"),
            options.get("auto_refresh", False),
            options.get("must_exist", False),
        )
        session = await request.aopen(index_name)
        vector_store = cls(session=session)
        vector_store._client = request.owned
        return vector_store

    @classmethod
    def class_name(cls) -> str:
        return "MossVectorStore"

    @property
    def client(self) -> Session | SyncSession:
        """The Moss session this store reads and writes (same as :attr:`session`)."""
        return self._given

    @property
    def session(self) -> Session | SyncSession:
        """The Moss session this store reads and writes: the one passed as ``session=``, else
        the async ``Session`` opened (``store.session.sync`` blocks, on either)."""
        return self._given

    @property
    def embed_model(self) -> BaseEmbedding:
        """A LlamaIndex embedding that embeds as this index's model does (for queries)."""
        model = self._session.model
        if isinstance(model, EmbedderModel) and isinstance(model.embedder, BaseEmbedding):
            return model.embedder
        return MossEmbedding(model)

    # -- writes ---------------------------------------------------------------------------------

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Add nodes (an upsert by node id); nodes without an embedding are embedded by the model.

        A node whose id already holds the same embed-mode text keeps its stored vector, and a
        text repeated in the batch is embedded once. ``progress=`` as ``Session.add_docs`` takes.
        """
        flow = missing_embeddings(
            self._session.sync, self._model, nodes, add_kwargs.get("progress")
        )
        missing, vectors = run_sync(flow)
        self._session.sync.add_docs(nodes_to_docs(nodes, missing, vectors))
        return [node.node_id for node in nodes]

    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        """Async twin of :meth:`add`."""
        flow = missing_embeddings(self._session.sync, self._model, nodes, kwargs.get("progress"))
        missing, vectors = await run_async(flow)
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
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        *,
        include_embeddings: bool = False,
    ) -> list[BaseNode]:
        """Nodes by id (in the order given) and/or by filter; all nodes with neither.

        With ``include_embeddings=True`` each node carries its stored embedding, so the nodes
        can be added to another store without re-embedding.
        """
        docs = self._session.sync.get_docs(node_ids, filter=to_moss_filter(filters))
        return to_nodes(self._session, docs, include_embeddings)

    async def aget_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        *,
        include_embeddings: bool = False,
    ) -> list[BaseNode]:
        """Async twin of :meth:`get_nodes` (reads are local, so it does not wait)."""
        return self.get_nodes(node_ids, filters, include_embeddings=include_embeddings)

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The nodes most similar to the query embedding (or to ``query_str``), filters first."""
        return run_sync(self._query(query, kwargs))

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Async twin of :meth:`query`."""
        return await run_async(self._query(query, kwargs))

    def _query(
        self, query: VectorStoreQuery, kwargs: dict[str, Any]
    ) -> Flow[VectorStoreQueryResult]:
        plan = plan_query(query, kwargs, self._session.dimension)
        if self._session.doc_count == 0:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        vector = plan.vector
        if vector is None:
            text = plan.text
            vector = yield Io(
                lambda: self._model.embed_query(text), lambda: self._model.aembed_query(text)
            )
        return answer(self._session, plan, vector)

    # -- sharing --------------------------------------------------------------------------------

    def persist(
        self,
        persist_path: str | None = None,
        fs: fsspec.AbstractFileSystem | None = None,
        *,
        merge: bool = True,
    ) -> None:
        """Push the session (what ``StorageContext.persist()`` calls); the path is not used.

        It merges by default: another process's pushes since this session's version are kept
        and this session's changes replayed onto them, so agents sharing an index never drop
        each other's nodes. ``merge=False`` replaces the index with this session's content.
        """
        self.push(merge=merge)

    def push(
        self,
        *,
        force: bool = False,
        merge: bool = False,
        expected_version: int | None = None,
        ttl: float | None = None,
    ) -> PushResult | None:
        """Push the session if it changed since its last load or push (or ever, with ``force``).

        ``merge=True`` replays this session's changes onto a newer stored version instead of
        replacing it; ``expected_version=N`` pushes only if the stored version is still N (else
        ``moss.ConflictError``); ``ttl`` as in ``Session.push_index``.
        """
        if not (force or self._needs_push()):
            return None
        return self._session.sync.push_index(expected_version, merge=merge, ttl=ttl)

    async def apush(self, **options: Unpack[PushOptions]) -> PushResult | None:
        """Async twin of :meth:`push`, with the same keyword arguments."""
        if not (options.get("force", False) or self._needs_push()):
            return None
        return await self._session.push_index(
            options.get("expected_version"),
            merge=options.get("merge", False),
            ttl=options.get("ttl"),
        )

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
        docs = self._session.sync.get_docs(node_ids, filter=to_moss_filter(filters))
        return [doc.id for doc in docs]
