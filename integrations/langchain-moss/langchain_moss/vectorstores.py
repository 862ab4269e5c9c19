"""MossVectorStore: a named, shareable Moss session as a LangChain ``VectorStore``."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from moss import InvalidArgumentError, MossClient, PushResult, QueryOptions, SearchResult, Session

from ._open import OpenRequest, StoreArg, check_session_model, open_request
from ._records import (
    FloatArray,
    check_mmr,
    hits_to_pairs,
    min_score_for,
    mmr_documents,
    push_args,
    reject_extra,
    relevance,
    relevant_pairs,
    split_documents,
    to_document,
    to_records,
    unit_vector,
)
from .embeddings import embeddings_for

#: A metadata filter: the plain form ``{"genre": "faq", "year": {"$gte": 2020}}`` or moss's
#: ``{"field": "genre", "condition": {"$eq": "faq"}}``, combined with ``$and``/``$or``/``$not``.
Filter = dict[str, Any]

_SEARCH_ARGS = "query, k, filter and alpha"
VST = TypeVar("VST", bound="MossVectorStore")
_MMR_ARGS = "k, fetch_k, lambda_mult and filter"
#: ``alpha`` of LangChain searches unless given: similarity search means vector similarity here
#: (LangChain's contract), so results stay ordered by the cosine ``score_threshold`` filters on.
VECTOR_ONLY = 1.0


class MossVectorStore(VectorStore):
    """A Moss session as a LangChain vector store: local reads and writes, ``push()`` to share.

    Every read and write is local to this process; ``push()`` stores the session as the
    index's next version, and any process that opens the index by name gets it, with its
    stored embeddings (no re-embedding). Scores are cosine similarities (higher is better).

    Setup::

        pip install langchain-moss-sessions

    Instantiate (no event loop needed, also inside Jupyter or LangGraph)::

        from langchain_moss import MossEmbeddings, MossVectorStore

        store = MossVectorStore(index_name="support-kb", embedding=MossEmbeddings())
        # or from an open session:  MossVectorStore(session)
        # any LangChain Embeddings works; it is stored under a model id derived from its
        # class and model name (see model_id_for), or the model_id= you give

    Add, get and delete (adding an existing id replaces it)::

        from langchain_core.documents import Document

        store.add_documents([
            Document(id="r1", page_content="Refunds take 5 days.", metadata={"topic": "refund"}),
            Document(id="s1", page_content="Free shipping over $50.", metadata={"topic": "ship"}),
        ])
        store.get_by_ids(["r1"])
        store.delete(["s1"])

    Search, with a filter and scores::

        store.similarity_search("how long do refunds take", k=1, filter={"topic": "refund"})
        store.similarity_search_with_score("refund", k=2)  # (doc, cosine similarity)
        store.similarity_search("order ORD-1234", k=2, alpha=0.4)  # blend in keyword search
        store.max_marginal_relevance_search("refund", k=2, fetch_k=10)

    Share, and resume elsewhere::

        store.push()
        later = MossVectorStore(index_name="support-kb", embedding=MossEmbeddings())

    Async (really async: embedding does not block the loop)::

        await store.aadd_documents([...])
        await store.asimilarity_search("refund", k=1)
        await store.apush()

    As a retriever::

        retriever = store.as_retriever(search_type="mmr", search_kwargs={"k": 2})
        hybrid = store.as_retriever(search_kwargs={"k": 4, "alpha": 0.4})
        retriever.invoke("refund")
    """

    def __init__(
        self,
        session: Session | None = None,
        *,
        index_name: str | None = None,
        embedding: Embeddings | None = None,
        model_id: str | None = None,
        client: MossClient | None = None,
        store: StoreArg | None = None,
        project_id: str | None = None,
        version: int | None = None,
    ) -> None:
        """Wrap an open ``session``, or open the index ``index_name`` (a new one if absent).

        ``embedding`` embeds texts; its model id is ``model_id`` or derived by
        :func:`~langchain_moss.model_id_for`. Left out, the index's stored model is used
        (``moss-minilm`` for a new index). ``client``, or ``store`` and ``project_id``, say
        where the index lives (default: ``MOSS_STORE``, else the file store at ``MOSS_HOME``).
        Raises ``ModelMismatchError`` if the index was stored under another model id.
        """
        self._client: MossClient | None = None
        if session is None:
            request = open_request(
                index_name=index_name,
                embedding=embedding,
                model_id=model_id,
                client=client,
                store=store,
                project_id=project_id,
                version=version,
            )
            session = request.open()
            self._client = request.client if request.owns_client else None
        else:
            if any(arg is not None for arg in (index_name, client, store, project_id, version)):
                raise InvalidArgumentError(
                    "pass either an open session, or index_name= (with client=, store=, "
                    "project_id=, version=) to open one, not both"
                )
            check_session_model(session, embedding, model_id)
        self._session = session
        self._embedding = embedding if embedding is not None else embeddings_for(session.model)

    @classmethod
    async def aopen(
        cls: type[VST],
        *,
        index_name: str,
        embedding: Embeddings | None = None,
        model_id: str | None = None,
        client: MossClient | None = None,
        store: StoreArg | None = None,
        project_id: str | None = None,
        version: int | None = None,
    ) -> VST:
        """Async twin of ``MossVectorStore(index_name=..., ...)``: loads on the event loop."""
        request = open_request(
            index_name=index_name,
            embedding=embedding,
            model_id=model_id,
            client=client,
            store=store,
            project_id=project_id,
            version=version,
        )
        return cls._opened(request, await request.aopen(), embedding)

    @classmethod
    def _opened(
        cls: type[VST], request: OpenRequest, session: Session, embedding: Embeddings | None
    ) -> VST:
        made = cls(session, embedding=embedding)
        made._client = request.client if request.owns_client else None
        return made

    def __repr__(self) -> str:
        return f"MossVectorStore({self._session!r})"

    # -- properties ----------------------------------------------------------------------------

    @property
    def session(self) -> Session:
        """The moss session this store reads and writes."""
        return self._session

    @property
    def index_name(self) -> str:
        """The name other processes open this index by."""
        return self._session.name

    @property
    def model_id(self) -> str:
        """The embedding model id every participant of this index uses."""
        return self._session.model_id

    @property
    def embeddings(self) -> Embeddings | None:
        """The LangChain embeddings of this index (None for a ``custom``-vector session)."""
        return self._embedding

    # -- writes --------------------------------------------------------------------------------

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and add texts, replacing documents with the same ids; return the ids.

        Texts without an id get a new uuid4. The metadata is copied and keeps its JSON types.
        """
        reject_extra(kwargs, "add_texts", "texts, metadatas and ids")
        records = to_records(texts, metadatas, ids)
        self._session.sync.add_docs(records)
        return [record.id for record in records]

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Async twin of :meth:`add_texts`."""
        reject_extra(kwargs, "aadd_texts", "texts, metadatas and ids")
        records = to_records(texts, metadatas, ids)
        await self._session.add_docs(records)
        return [record.id for record in records]

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Add documents (upsert); ids come from ``ids=`` or each ``Document.id``, else uuid4.

        The documents are not modified.
        """
        texts, metadatas, ids = split_documents(documents, kwargs.pop("ids", None))
        reject_extra(kwargs, "add_documents", "documents and ids")
        records = to_records(texts, metadatas, ids)
        self._session.sync.add_docs(records)
        return [record.id for record in records]

    async def aadd_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Async twin of :meth:`add_documents`."""
        texts, metadatas, ids = split_documents(documents, kwargs.pop("ids", None))
        reject_extra(kwargs, "aadd_documents", "documents and ids")
        records = to_records(texts, metadatas, ids)
        await self._session.add_docs(records)
        return [record.id for record in records]

    def delete(
        self, ids: list[str] | None = None, *, filter: Filter | None = None, **kwargs: Any
    ) -> bool:
        """Delete documents by id, or those matching ``filter``; with neither, all of them.

        Unknown ids are ignored. Returns True.
        """
        reject_extra(kwargs, "delete", "ids and filter")
        if ids is None or filter is not None:
            ids = [doc.id for doc in self._session.sync.get_docs(ids, filter=filter)]
        self._session.sync.delete_docs(ids)
        return True

    async def adelete(
        self, ids: list[str] | None = None, *, filter: Filter | None = None, **kwargs: Any
    ) -> bool:
        """Async twin of :meth:`delete`."""
        reject_extra(kwargs, "adelete", "ids and filter")
        if ids is None or filter is not None:
            ids = [doc.id for doc in await self._session.get_docs(ids, filter=filter)]
        await self._session.delete_docs(ids)
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents with these ids, in the order given; unknown ids are skipped."""
        return [to_document(d.id, d.text, d.metadata) for d in self._session.sync.get_docs(ids)]

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Async twin of :meth:`get_by_ids`."""
        return [to_document(d.id, d.text, d.metadata) for d in await self._session.get_docs(ids)]

    # -- sharing -------------------------------------------------------------------------------

    def push(self, *, expected_version: int | None = None, merge: bool = False) -> PushResult:
        """Store the session as the index's next version, so other processes can open it.

        ``expected_version=N`` pushes only if the stored version is still N (else
        ``ConflictError``). ``merge=True`` replays this session's changes onto a newer version.
        """
        return self._session.sync.push_index(**push_args(expected_version, merge))

    async def apush(
        self, *, expected_version: int | None = None, merge: bool = False
    ) -> PushResult:
        """Async twin of :meth:`push`."""
        return await self._session.push_index(**push_args(expected_version, merge))

    def close(self) -> None:
        """Release the client this store opened (not the session, which others may share)."""
        if self._client is not None:
            self._client.sync.close()

    async def aclose(self) -> None:
        """Async twin of :meth:`close`."""
        if self._client is not None:
            await self._client.close()

    # -- search: every variant funnels into _query / _aquery -----------------------------------

    def _query(
        self,
        query: str,
        k: int,
        filter: Filter | None,
        vector: Any = None,
        min_score: float | None = None,
        alpha: float = VECTOR_ONLY,
    ) -> SearchResult:
        return self._session.sync.query(query, _options(k, filter, vector, min_score, alpha))

    async def _aquery(
        self,
        query: str,
        k: int,
        filter: Filter | None,
        vector: Any = None,
        min_score: float | None = None,
        alpha: float = VECTOR_ONLY,
    ) -> SearchResult:
        return await self._session.query(query, _options(k, filter, vector, min_score, alpha))

    def similarity_search(
        self,
        query: str,
        k: int = 4,
        filter: Filter | None = None,
        *,
        alpha: float = VECTOR_ONLY,
        **kwargs: Any,
    ) -> list[Document]:
        """The ``k`` documents most similar to ``query`` (among those matching ``filter``).

        ``alpha`` blends in keyword (BM25) ranking: 1.0 (the default) vector only, 0.0 keyword
        only, 0.4 the blend that ranks best on SciFact. Scores stay cosine similarities.
        """
        reject_extra(kwargs, "similarity_search", _SEARCH_ARGS)
        return [doc for doc, _ in hits_to_pairs(self._query(query, k, filter, alpha=alpha).docs)]

    async def asimilarity_search(
        self,
        query: str,
        k: int = 4,
        filter: Filter | None = None,
        *,
        alpha: float = VECTOR_ONLY,
        **kwargs: Any,
    ) -> list[Document]:
        """Async twin of :meth:`similarity_search`."""
        reject_extra(kwargs, "asimilarity_search", _SEARCH_ARGS)
        return [
            doc
            for doc, _ in hits_to_pairs((await self._aquery(query, k, filter, alpha=alpha)).docs)
        ]

    def similarity_search_with_score(
        self,
        query: str,
        k: int = 4,
        filter: Filter | None = None,
        *,
        alpha: float = VECTOR_ONLY,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Like :meth:`similarity_search`, with each document's cosine similarity (in [-1, 1])."""
        reject_extra(kwargs, "similarity_search_with_score", _SEARCH_ARGS)
        return hits_to_pairs(self._query(query, k, filter, alpha=alpha).docs)

    async def asimilarity_search_with_score(
        self,
        query: str,
        k: int = 4,
        filter: Filter | None = None,
        *,
        alpha: float = VECTOR_ONLY,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Async twin of :meth:`similarity_search_with_score`."""
        reject_extra(kwargs, "asimilarity_search_with_score", _SEARCH_ARGS)
        return hits_to_pairs((await self._aquery(query, k, filter, alpha=alpha)).docs)

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[Document]:
        """The ``k`` documents most similar to a query vector (no embedding call)."""
        reject_extra(kwargs, "similarity_search_by_vector", "embedding, k and filter")
        return [doc for doc, _ in hits_to_pairs(self._query("", k, filter, embedding).docs)]

    async def asimilarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[Document]:
        """Async twin of :meth:`similarity_search_by_vector`."""
        reject_extra(kwargs, "asimilarity_search_by_vector", "embedding, k and filter")
        result = await self._aquery("", k, filter, embedding)
        return [doc for doc, _ in hits_to_pairs(result.docs)]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        return relevance

    def similarity_search_with_relevance_scores(
        self,
        query: str,
        k: int = 4,
        *,
        filter: Filter | None = None,
        score_threshold: float | None = None,
        alpha: float = VECTOR_ONLY,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Documents with relevance in [0, 1]: the cosine similarity, 0 where it is negative.

        ``score_threshold`` drops documents whose relevance is lower; it is applied in the
        index, so up to ``k`` documents above it are returned.
        """
        reject_extra(
            kwargs, "similarity_search_with_relevance_scores", _SEARCH_ARGS + ", score_threshold"
        )
        result = self._query(
            query, k, filter, min_score=min_score_for(score_threshold), alpha=alpha
        )
        return relevant_pairs(result, score_threshold)

    async def asimilarity_search_with_relevance_scores(
        self,
        query: str,
        k: int = 4,
        *,
        filter: Filter | None = None,
        score_threshold: float | None = None,
        alpha: float = VECTOR_ONLY,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Async twin of :meth:`similarity_search_with_relevance_scores`."""
        reject_extra(
            kwargs, "asimilarity_search_with_relevance_scores", _SEARCH_ARGS + ", score_threshold"
        )
        result = await self._aquery(
            query, k, filter, min_score=min_score_for(score_threshold), alpha=alpha
        )
        return relevant_pairs(result, score_threshold)

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Filter | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """``k`` documents chosen for relevance and diversity from the ``fetch_k`` most similar.

        ``lambda_mult`` 1 ranks by similarity alone, 0 by diversity alone.
        """
        reject_extra(kwargs, "max_marginal_relevance_search", _MMR_ARGS)
        if self._session.doc_count == 0:
            return []
        vector = self._session.model.embed_query(query)
        return self._mmr(vector, k, fetch_k, lambda_mult, filter)

    async def amax_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Filter | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Async twin of :meth:`max_marginal_relevance_search`."""
        reject_extra(kwargs, "amax_marginal_relevance_search", _MMR_ARGS)
        if self._session.doc_count == 0:
            return []
        vector = await self._session.model.aembed_query(query)
        return await self._ammr(vector, k, fetch_k, lambda_mult, filter)

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Filter | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """:meth:`max_marginal_relevance_search` for a query vector."""
        reject_extra(kwargs, "max_marginal_relevance_search_by_vector", _MMR_ARGS)
        return self._mmr(unit_vector(embedding), k, fetch_k, lambda_mult, filter)

    async def amax_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Filter | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Async twin of :meth:`max_marginal_relevance_search_by_vector`."""
        reject_extra(kwargs, "amax_marginal_relevance_search_by_vector", _MMR_ARGS)
        return await self._ammr(unit_vector(embedding), k, fetch_k, lambda_mult, filter)

    def _mmr(
        self, vector: FloatArray, k: int, fetch_k: int, lambda_mult: float, filter: Filter | None
    ) -> list[Document]:
        fetch = check_mmr(k, fetch_k, lambda_mult)
        hits = self._query("", fetch, filter, vector).docs
        stored = self._session.sync.get_docs([hit.id for hit in hits], include_embeddings=True)
        return mmr_documents(vector, hits, stored, k, lambda_mult)

    async def _ammr(
        self, vector: FloatArray, k: int, fetch_k: int, lambda_mult: float, filter: Filter | None
    ) -> list[Document]:
        fetch = check_mmr(k, fetch_k, lambda_mult)
        hits = (await self._aquery("", fetch, filter, vector)).docs
        stored = await self._session.get_docs([hit.id for hit in hits], include_embeddings=True)
        return mmr_documents(vector, hits, stored, k, lambda_mult)

    # -- construction from texts ---------------------------------------------------------------

    @classmethod
    def from_texts(
        cls: type[VST],
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        index_name: str | None = None,
        **kwargs: Any,
    ) -> VST:
        """Open ``index_name`` (default: a new ``langchain-<uuid>`` name) and add ``texts``.

        Other keyword arguments are those of the constructor (``model_id``, ``client``,
        ``store``, ``project_id``). The texts are not pushed: call :meth:`push` to share them.
        """
        made = cls(index_name=index_name or _new_index_name(), embedding=embedding, **kwargs)
        made.add_texts(texts, metadatas, ids=ids)
        return made

    @classmethod
    async def afrom_texts(
        cls: type[VST],
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        index_name: str | None = None,
        **kwargs: Any,
    ) -> VST:
        """Async twin of :meth:`from_texts`."""
        made = await cls.aopen(
            index_name=index_name or _new_index_name(), embedding=embedding, **kwargs
        )
        await made.aadd_texts(texts, metadatas, ids=ids)
        return made


def _options(
    k: int, filter: Filter | None, vector: Any, min_score: float | None, alpha: float
) -> QueryOptions:
    return QueryOptions(top_k=k, embedding=vector, filter=filter, min_score=min_score, alpha=alpha)


def _new_index_name() -> str:
    return f"langchain-{uuid.uuid4().hex}"
