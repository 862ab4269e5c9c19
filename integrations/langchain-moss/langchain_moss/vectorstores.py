"""MossVectorStore: a named, shareable Moss session as a LangChain ``VectorStore``.

Each sync method and its async twin run the same flow of :class:`SessionStore`, blocking or
awaited; this module holds only the LangChain surface and its argument handling.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from moss import PushResult
from moss.flow import run_async, run_sync

from ._records import (
    split_documents,
    unit_vector,
)
from ._search import (
    VECTOR_ONLY,
    Filter,
    cosine_pairs,
    documents,
    mmr,
    relevance,
    relevance_pairs,
    similarity,
)
from ._session_store import SessionStore

__all__ = ["Filter", "MossVectorStore"]

VST = TypeVar("VST", bound="MossVectorStore")


class MossVectorStore(SessionStore, VectorStore):
    """A Moss session as a LangChain vector store: local reads and writes, ``push()`` to share.

    Every read and write is local to this process; ``push()`` stores the session as the
    index's next version, and any process that opens the index by name gets it, with its
    stored embeddings (no re-embedding).

    Setup::

        pip install langchain-moss-sessions

    Instantiate (no event loop needed, also inside Jupyter or LangGraph)::

        from langchain_moss import MossEmbeddings, MossVectorStore

        store = MossVectorStore(index_name="support-kb", embedding=MossEmbeddings())
        # or from an open session:  MossVectorStore(session)
        # any LangChain Embeddings works; it is stored under a model id derived from its
        # class, model name and dimension (see model_id_for), or the model_id= you give

    Add, get and delete (adding an existing id replaces it)::

        from langchain_core.documents import Document

        store.add_documents([
            Document(id="r1", page_content="Refunds take 5 days.", metadata={"topic": "refund"}),
            Document(id="s1", page_content="Free shipping over $50.", metadata={"topic": "ship"}),
        ])
        store.get_by_ids(["r1"])
        store.delete(["s1"])

    Search, with a filter and scores. Searches blend vector and keyword (BM25) ranking with
    moss's default ``alpha`` (0.4, the best blend on SciFact); ``alpha=1.0`` is vector only::

        store.similarity_search("how long do refunds take", k=1, filter={"topic": "refund"})
        store.similarity_search_with_score("refund", k=2)  # (doc, cosine similarity)
        store.similarity_search_with_relevance_scores("refund", k=2)  # (doc, ranking score)
        store.similarity_search("refund", k=2, alpha=1.0)  # vector similarity only
        store.max_marginal_relevance_search("refund", k=2, fetch_k=10)

    ``similarity_search_with_score`` gives the cosine similarity, whatever the ranking;
    ``similarity_search_with_relevance_scores`` gives the score the results are ordered by,
    in [0, 1]: the fused value over its maximum (or the cosine, 0 where negative, at
    ``alpha=1.0``); its ``score_threshold`` cuts on that score.

    Share, and resume elsewhere::

        store.push()
        later = MossVectorStore(index_name="support-kb", embedding=MossEmbeddings())

    Async (really async: embedding does not block the loop)::

        await store.aadd_documents([...])
        await store.asimilarity_search("refund", k=1)
        await store.apush()

    As a retriever::

        retriever = store.as_retriever(search_type="mmr", search_kwargs={"k": 2})
        vector_only = store.as_retriever(search_kwargs={"k": 4, "alpha": 1.0})
        retriever.invoke("refund")
    """

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
        ``batch_size=N`` embeds and adds N texts at a time.
        """
        return run_sync(self._add("add_texts", texts, metadatas, ids, kwargs))

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Async twin of :meth:`add_texts`."""
        return await run_async(self._add("aadd_texts", texts, metadatas, ids, kwargs))

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Add documents (upsert); ids come from ``ids=`` or each ``Document.id``, else uuid4.

        The documents are not modified. ``batch_size=N`` (as ``langchain_core.indexing.index``
        passes) embeds and adds N documents at a time.
        """
        texts, metadatas, ids = split_documents(documents, kwargs.pop("ids", None))
        return run_sync(self._add("add_documents", texts, metadatas, ids, kwargs))

    async def aadd_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Async twin of :meth:`add_documents`."""
        texts, metadatas, ids = split_documents(documents, kwargs.pop("ids", None))
        return await run_async(self._add("aadd_documents", texts, metadatas, ids, kwargs))

    def delete(
        self, ids: list[str] | None = None, *, filter: Filter | None = None, **kwargs: Any
    ) -> bool:
        """Delete documents by id, or those matching ``filter``; with neither, all of them.

        Unknown ids are ignored. Returns True.
        """
        return run_sync(self._delete(ids, filter, kwargs, "delete"))

    async def adelete(
        self, ids: list[str] | None = None, *, filter: Filter | None = None, **kwargs: Any
    ) -> bool:
        """Async twin of :meth:`delete`."""
        return await run_async(self._delete(ids, filter, kwargs, "adelete"))

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents with these ids, in the order given; unknown ids are skipped."""
        return run_sync(self._get(ids))

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Async twin of :meth:`get_by_ids`."""
        return await run_async(self._get(ids))

    # -- sharing -------------------------------------------------------------------------------

    def push(self, *, expected_version: int | None = None, merge: bool = False) -> PushResult:
        """Store the session as the index's next version, so other processes can open it.

        ``expected_version=N`` pushes only if the stored version is still N (else
        ``ConflictError``). ``merge=True`` replays this session's changes onto a newer version.
        """
        return run_sync(self._push(expected_version, merge))

    async def apush(
        self, *, expected_version: int | None = None, merge: bool = False
    ) -> PushResult:
        """Async twin of :meth:`push`."""
        return await run_async(self._push(expected_version, merge))

    def close(self) -> None:
        """Release the client this store opened (not the session, which others may share)."""
        run_sync(self._close())

    async def aclose(self) -> None:
        """Async twin of :meth:`close`."""
        await run_async(self._close())

    # -- search: similarity variants run _search, MMR variants _mmr ------------------------------

    def similarity_search(
        self, query: str, k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[Document]:
        """The ``k`` best documents for ``query`` (among those matching ``filter``).

        Also takes ``alpha`` (1.0 vector only, 0.0 keyword only, default moss's 0.4 blend),
        ``score_threshold`` (on the relevance score) and ``fetch_k`` (accepted, as FAISS does;
        moss filters inside the index, so it changes nothing).
        """
        search = similarity("similarity_search", k, filter, kwargs)
        return run_sync(self._search(query, None, search, documents))

    async def asimilarity_search(
        self, query: str, k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[Document]:
        """Async twin of :meth:`similarity_search`."""
        search = similarity("asimilarity_search", k, filter, kwargs)
        return await run_async(self._search(query, None, search, documents))

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Like :meth:`similarity_search`, with each document's cosine similarity (in [-1, 1]).

        When keyword ranking is blended in, results are ordered by the fused value, so these
        cosines need not fall down the list: :meth:`similarity_search_with_relevance_scores`
        gives the score they are ordered by.
        """
        search = similarity("similarity_search_with_score", k, filter, kwargs)
        return run_sync(self._search(query, None, search, cosine_pairs))

    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Async twin of :meth:`similarity_search_with_score`."""
        search = similarity("asimilarity_search_with_score", k, filter, kwargs)
        return await run_async(self._search(query, None, search, cosine_pairs))

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[Document]:
        """The ``k`` documents most similar to a query vector (vector ranking: there is no text)."""
        search = similarity("similarity_search_by_vector", k, filter, _by_vector(kwargs))
        return run_sync(self._search("", unit_vector(embedding), search, documents))

    async def asimilarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[Document]:
        """Async twin of :meth:`similarity_search_by_vector`."""
        search = similarity("asimilarity_search_by_vector", k, filter, _by_vector(kwargs))
        return await run_async(self._search("", unit_vector(embedding), search, documents))

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        return relevance

    def similarity_search_with_relevance_scores(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Documents with the score they are ordered by, in [0, 1], best first.

        Blended or keyword ranking (``alpha`` < 1, the default): the fused value over its
        maximum (1 = first on both rankings). Vector ranking (``alpha=1.0``): the cosine
        similarity, 0 where negative, and ``score_threshold`` is applied in the index, so up to
        ``k`` documents above it are returned. ``score_threshold`` drops lower scores.
        """
        search = similarity("similarity_search_with_relevance_scores", k, None, kwargs)
        return run_sync(self._search(query, None, search, relevance_pairs))

    async def asimilarity_search_with_relevance_scores(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Async twin of :meth:`similarity_search_with_relevance_scores`."""
        search = similarity("asimilarity_search_with_relevance_scores", k, None, kwargs)
        return await run_async(self._search(query, None, search, relevance_pairs))

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

        ``lambda_mult`` 1 ranks by similarity alone, 0 by diversity alone; candidates come from
        vector ranking, and ties go to the better-ranked (:func:`moss.index.mmr.mmr_select`).
        """
        search = mmr("max_marginal_relevance_search", k, fetch_k, lambda_mult, filter, kwargs)
        return run_sync(self._mmr(query, None, search))

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
        search = mmr("amax_marginal_relevance_search", k, fetch_k, lambda_mult, filter, kwargs)
        return await run_async(self._mmr(query, None, search))

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
        method = "max_marginal_relevance_search_by_vector"
        search = mmr(method, k, fetch_k, lambda_mult, filter, kwargs)
        return run_sync(self._mmr(None, embedding, search))

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
        method = "amax_marginal_relevance_search_by_vector"
        search = mmr(method, k, fetch_k, lambda_mult, filter, kwargs)
        return await run_async(self._mmr(None, embedding, search))

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
        ``store``, ``project_id``...). The texts are not pushed: call :meth:`push` to share them.
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


def _by_vector(kwargs: dict[str, Any]) -> dict[str, Any]:
    # A query vector has no text to rank by keyword: vector ranking, unless asked otherwise.
    return {"alpha": VECTOR_ONLY, **kwargs}


def _new_index_name() -> str:
    return f"langchain-{uuid.uuid4().hex}"
