"""The session behind a MossVectorStore: opening it, and each operation written once as a flow.

Each flow (:mod:`moss.flow`) is a generator of session calls: the store's sync method runs it
blocking through ``session.sync``, its async twin awaits the same flow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from moss import InvalidArgumentError, MossClient, PushResult, SearchResult, Session, SyncSession
from moss.flow import Flow, Io, run_async, run_sync

from ._open import OpenRequest, StoreArg, async_face, check_session_model, open_request
from ._records import (
    FloatArray,
    mmr_documents,
    push_args,
    to_document,
    to_records,
    unit_vector,
)
from ._search import Filter, Search, reject_extra
from .embeddings import embeddings_for

S = TypeVar("S", bound="SessionStore")
T = TypeVar("T")


class SessionStore:
    """A session (and the client opened for it, if any) with one flow per store operation."""

    def __init__(
        self,
        session: Session | SyncSession | None = None,
        *,
        index_name: str | None = None,
        embedding: Embeddings | None = None,
        model_id: str | None = None,
        client: MossClient | None = None,
        store: StoreArg | None = None,
        project_id: str | None = None,
        version: int | None = None,
        auto_refresh: bool = False,
        must_exist: bool = False,
    ) -> None:
        """Wrap an open ``session``, or open the index ``index_name`` (a new one if absent).

        ``embedding`` embeds texts; its model id is ``model_id`` or derived by
        :func:`~langchain_moss.model_id_for`. Left out, the index's stored model is used
        (``moss-minilm`` for a new index). ``client``, or ``store`` and ``project_id``, say
        where the index lives (default: ``MOSS_STORE``, else the file store at ``MOSS_HOME``).
        ``version``, ``auto_refresh`` and ``must_exist`` are those of ``client.session``:
        ``must_exist=True`` raises ``IndexNotFoundError`` rather than start an empty index.
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
                auto_refresh=auto_refresh,
                must_exist=must_exist,
            )
            session = run_sync(request.flow())
            self._client = request.client if request.owns_client else None
        else:
            opening = (index_name, client, store, project_id, version)
            if any(arg is not None for arg in opening) or auto_refresh or must_exist:
                raise InvalidArgumentError(
                    "pass either an open session, or index_name= (with client=, store=, "
                    "project_id=, version=, auto_refresh=, must_exist=) to open one, not both"
                )
            session = async_face(session)
            check_session_model(session, embedding, model_id)
        self._session = session
        self._embedding = embedding if embedding is not None else embeddings_for(session.model)

    @classmethod
    async def aopen(
        cls: type[S],
        *,
        index_name: str,
        embedding: Embeddings | None = None,
        model_id: str | None = None,
        client: MossClient | None = None,
        store: StoreArg | None = None,
        project_id: str | None = None,
        version: int | None = None,
        auto_refresh: bool = False,
        must_exist: bool = False,
    ) -> S:
        """Async twin of ``MossVectorStore(index_name=..., ...)``: opens on the event loop."""
        request = open_request(
            index_name=index_name,
            embedding=embedding,
            model_id=model_id,
            client=client,
            store=store,
            project_id=project_id,
            version=version,
            auto_refresh=auto_refresh,
            must_exist=must_exist,
        )
        return cls._opened(request, await run_async(request.flow()), embedding)

    @classmethod
    def _opened(
        cls: type[S], request: OpenRequest, session: Session, embedding: Embeddings | None
    ) -> S:
        made = cls(session, embedding=embedding)
        made._client = request.client if request.owns_client else None
        return made

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._session!r})"

    # -- properties ----------------------------------------------------------------------------

    @property
    def session(self) -> Session:
        """The moss session this store reads and writes (``session.sync`` is its blocking face)."""
        return self._session

    @property
    def index_name(self) -> str:
        """The name other processes open this index by."""
        return self._session.name

    @property
    def model_id(self) -> str:
        """The embedding model id every participant of this index uses."""
        return self._session.model_id

    # -- the one implementation of each operation ----------------------------------------------

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Io[Any]:
        """A session call as a flow step: ``session.sync.<method>`` blocking, else awaited."""
        return Io(
            lambda: getattr(self._session.sync, method)(*args, **kwargs),
            lambda: getattr(self._session, method)(*args, **kwargs),
        )

    def _add(
        self,
        method: str,
        texts: Iterable[str],
        metadatas: Sequence[dict[str, Any] | None] | None,
        ids: Sequence[str | None] | None,
        kwargs: dict[str, Any],
    ) -> Flow[list[str]]:
        batch_size = kwargs.pop("batch_size", None)
        reject_extra(
            kwargs, f"MossVectorStore.{method}", ("texts", "metadatas", "ids", "batch_size")
        )
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise InvalidArgumentError(f"batch_size must be a positive integer, got {batch_size!r}")
        records = to_records(texts, metadatas, ids)
        # batch_size bounds how many texts are embedded per call, as in LangChain's stores.
        step = batch_size or max(len(records), 1)
        for start in range(0, len(records), step):
            yield self._call("add_docs", records[start : start + step])
        return [record.id for record in records]

    def _delete(
        self, ids: list[str] | None, filter: Filter | None, kwargs: dict[str, Any], method: str
    ) -> Flow[bool]:
        reject_extra(kwargs, f"MossVectorStore.{method}", ("ids", "filter"))
        if ids is None or filter is not None:
            ids = [doc.id for doc in (yield self._call("get_docs", ids, filter=filter))]
        yield self._call("delete_docs", ids)
        return True

    def _get(self, ids: Sequence[str]) -> Flow[list[Document]]:
        docs = yield self._call("get_docs", ids)
        return [to_document(doc.id, doc.text, doc.metadata) for doc in docs]

    def _search(
        self,
        text: str,
        vector: FloatArray | None,
        search: Search,
        convert: Callable[[SearchResult, float | None], T],
    ) -> Flow[T]:
        result = yield self._call("query", text, search.options(vector))
        return convert(result, search.score_threshold)

    def _search_many(
        self,
        texts: list[str],
        search: Search,
        convert: Callable[[SearchResult, float | None], T],
    ) -> Flow[list[T]]:
        """:meth:`_search` for several texts: embedded in one batch, scored in one product."""
        results = yield self._call("query_many", texts, search.options())
        return [convert(result, search.score_threshold) for result in results]

    def _mmr(
        self, text: str | None, embedding: list[float] | None, search: Search
    ) -> Flow[list[Document]]:
        if embedding is not None:
            vector = unit_vector(embedding)
        elif self._session.doc_count == 0:
            return []  # nothing to pick from: no need to embed the query
        else:
            model = self._session.model
            query = text or ""
            vector = yield Io(lambda: model.embed_query(query), lambda: model.aembed_query(query))
        fetch = max(search.k, search.fetch_k)
        hits = (yield self._call("query", "", search.options(vector, top_k=fetch))).docs
        stored = yield self._call("get_docs", [hit.id for hit in hits], include_embeddings=True)
        return mmr_documents(vector, hits, stored, search.k, search.lambda_mult)

    def _close(self) -> Flow[None]:
        client = self._client
        if client is not None:
            yield Io(client.sync.close, client.close)

    def _push(self, expected_version: int | None, merge: bool) -> Flow[PushResult]:
        result: PushResult = yield self._call("push_index", **push_args(expected_version, merge))
        return result
