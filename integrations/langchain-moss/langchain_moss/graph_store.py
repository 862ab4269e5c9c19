"""A LangGraph long-term memory store (``BaseStore``) kept in one shared moss index."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from langchain_core.embeddings import Embeddings
from langgraph.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    ensure_embeddings,
    validate_op_namespace,
)
from langgraph.store.base.embed import EmbeddingsLambda

from moss import DocumentInfo, InvalidArgumentError, MossClient, PushResult, QueryOptions, Session
from moss.flow import Flow, Io, run_async, run_sync
from moss.validation import MAX_TOP_K

from . import _graph_docs as docs
from ._open import OpenRequest, StoreArg, open_request
from .callbacks import MossPushHandler
from .embeddings import MossEmbeddings, model_id_for

_BUILT_IN_DIMS = 384


class MossStore(BaseStore):
    """LangGraph's long-term memory (``graph.compile(store=...)``) in a shared moss index.

    Every namespace and item of the store lives in the moss index ``index_name``: a process that
    opens the same name (on the same store) after a push sees the same memories. Items are
    searched by namespace prefix, value filter (equality and ``$eq $ne $gt $gte $lt $lte``, as
    LangGraph's ``InMemoryStore``) and, with a query, by similarity of the texts at the value's
    ``fields`` (each hit carries its cosine ``score``).

    ``index`` is LangGraph's ``{"dims", "embed", "fields"}``; ``embed`` may be LangChain
    ``Embeddings`` or a function of a list of texts; left out (or ``index=None``), the built-in
    model ``moss-minilm`` embeds the whole value (``fields=["$"]``). ``model_id`` names a custom
    embedder's model (derived by default); every process sharing the index must use the same.
    ``ttl`` is LangGraph's ``{"default_ttl", "refresh_on_read"}`` (minutes); expired items are
    invisible at once and deleted at the next push.

    Writes stay local until pushed: call :meth:`push` (``apush``), or pass
    :meth:`push_handler` as a callback so pushes happen at the same checkpoints as
    :class:`~langchain_moss.MossPushHandler` (the end of the run by default). Pushes merge, so
    concurrent writers lose nothing.

    Example::

        from langchain_moss import MossStore

        store = MossStore("agent-memory")
        graph = builder.compile(store=store)
        graph.invoke(inputs, config={"callbacks": [store.push_handler()]})
        store.search(("user-1", "memories"), query="favourite food", limit=3)
    """

    supports_ttl = True

    def __init__(
        self,
        index_name: str = "langgraph-store",
        *,
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
        model_id: str | None = None,
        client: MossClient | None = None,
        store: StoreArg | None = None,
        project_id: str | None = None,
        auto_refresh: bool = False,
        _session: Session | None = None,
        _request: OpenRequest | None = None,
    ) -> None:
        """Open (or start) the index ``index_name``; see the class docstring for the options.

        ``client``, or ``store`` and ``project_id``, say where the index lives (default:
        ``MOSS_STORE``, else the file store at ``MOSS_HOME``); ``auto_refresh`` is that of
        ``client.session``. Raises ``ModelMismatchError`` if the index was stored under
        another embedding model.
        """
        embedding, self._fields, self._dims = _index_options(index)
        self.index_config = index
        self.ttl_config = ttl
        if _session is None:
            _request = _open(
                index_name, embedding, model_id, client, store, project_id, auto_refresh
            )
            _session = run_sync(_request.flow())
        assert _request is not None
        self._session = _session
        self._client = _request.client if _request.owns_client else None
        dims = self._dims or _session.dimension or _BUILT_IN_DIMS
        # Item documents are never ranked; they still need a vector of the index's dimension.
        self._placeholder = [1.0] + [0.0] * (dims - 1)

    @classmethod
    async def aopen(
        cls,
        index_name: str = "langgraph-store",
        *,
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
        model_id: str | None = None,
        client: MossClient | None = None,
        store: StoreArg | None = None,
        project_id: str | None = None,
        auto_refresh: bool = False,
    ) -> MossStore:
        """Async twin of ``MossStore(...)``: opens the index on the running event loop."""
        embedding, _, _ = _index_options(index)
        request = _open(index_name, embedding, model_id, client, store, project_id, auto_refresh)
        session = await run_async(request.flow())
        return cls(index=index, ttl=ttl, _session=session, _request=request)

    def __repr__(self) -> str:
        return f"MossStore({self._session!r})"

    @property
    def session(self) -> Session:
        """The moss session holding the store (``session.sync`` is its blocking face)."""
        return self._session

    @property
    def index_name(self) -> str:
        """The moss index other processes open to share this store."""
        return self._session.name

    # -- BaseStore ------------------------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run ``ops`` in order: reads see the store as it was before the batch's writes."""
        return run_sync(self._batch(list(ops)))

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Async twin of :meth:`batch`."""
        return await run_async(self._batch(list(ops)))

    # -- pushing --------------------------------------------------------------------------------

    def push(self) -> PushResult | None:
        """Delete expired items, then push unpushed changes (merging); None if there were none."""
        return run_sync(self._push())

    async def apush(self) -> PushResult | None:
        """Async twin of :meth:`push`."""
        return await run_async(self._push())

    def push_handler(self, **rules: Any) -> MossPushHandler:
        """A :class:`~langchain_moss.MossPushHandler` pushing this store at checkpoints.

        ``rules`` are the handler's (``nodes=``, ``tags=``, ``every_n_chain_ends=``...); for
        async runs use ``AsyncMossPushHandler(store.session, ...)``. The handler does not
        delete expired items; :meth:`push` does.
        """
        return MossPushHandler(self._session, **rules)

    def close(self) -> None:
        """Close the client this store opened (not one that was passed in)."""
        if self._client is not None:
            self._client.sync.close()

    # -- the one implementation of each operation ----------------------------------------------

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Io[Any]:
        return Io(
            lambda: getattr(self._session.sync, method)(*args, **kwargs),
            lambda: getattr(self._session, method)(*args, **kwargs),
        )

    def _batch(self, ops: list[Op]) -> Flow[list[Result]]:
        now = time.time()
        results: list[Result] = [None] * len(ops)
        puts: dict[tuple[tuple[str, ...], str], PutOp] = {}
        for i, op in enumerate(ops):
            if not isinstance(op, (GetOp, SearchOp, ListNamespacesOp, PutOp)):
                raise InvalidArgumentError(f"unknown store operation {type(op).__name__}")
            validate_op_namespace(op)
            if isinstance(op, GetOp):
                results[i] = yield from self._get(op, now)
            elif isinstance(op, SearchOp):
                results[i] = yield from self._search(op, now)
            elif isinstance(op, ListNamespacesOp):
                results[i] = yield from self._list(op, now)
            else:
                puts.pop((tuple(op.namespace), op.key), None)  # the last put of a key wins
                puts[(tuple(op.namespace), op.key)] = op
        if puts:
            yield from self._put(list(puts.values()), now)
        return results

    def _get(self, op: GetOp, now: float) -> Flow[Item | None]:
        found = yield self._call("get_docs", [docs.item_id(op.namespace, op.key)])
        if not found or docs.expired(found[0].metadata, now):
            return None
        if op.refresh_ttl:
            yield from self._refresh(found, now)
        return docs.to_item(found[0].metadata)

    def _search(self, op: SearchOp, now: float) -> Flow[list[SearchItem]]:
        if op.limit <= 0 or op.offset < 0:
            return []
        prefix, flt = op.namespace_prefix, op.filter
        if op.query and self._fields:
            hits = yield from self._ranked(op, now)
            if len(hits) < op.limit:
                # As LangGraph's stores: items with nothing embedded fill up the page, unscored.
                unscored = {
                    **docs.search_filter(docs.ITEM, prefix, flt),
                    "vectors": {"$empty": True},
                }
                more = yield self._call(
                    "get_docs",
                    filter={**unscored, **docs.live_filter(now)},
                    limit=op.limit - len(hits),
                )
                hits += [(doc, None) for doc in more]
        else:
            listed = yield self._call(
                "get_docs",
                filter={**docs.search_filter(docs.ITEM, prefix, flt), **docs.live_filter(now)},
                limit=op.offset + op.limit,
            )
            hits = [(doc, None) for doc in listed[op.offset :]]
        if op.refresh_ttl:
            yield from self._refresh([doc for doc, _ in hits], now)
        return [docs.to_search_item(doc.metadata or {}, score) for doc, score in hits]

    def _ranked(self, op: SearchOp, now: float) -> Flow[list[tuple[DocumentInfo, float | None]]]:
        """The page of items ranked by their best-matching text (one query unless items
        have several texts or expired ones crowd the page)."""
        wanted = op.offset + op.limit
        flt = docs.search_filter(docs.VECTOR, op.namespace_prefix, op.filter)
        top_k = min(wanted, MAX_TOP_K)
        while True:
            options = QueryOptions(top_k=top_k, filter=flt, alpha=1.0)
            result = yield self._call("query", op.query, options)
            best: dict[str, float] = {}
            for hit in result.docs:
                best.setdefault((hit.metadata or {})["item"], hit.score)
            found = yield self._call("get_docs", list(best))
            live = [doc for doc in found if not docs.expired(doc.metadata, now)]
            if len(live) >= wanted or len(result.docs) < top_k or top_k >= MAX_TOP_K:
                break
            top_k = min(top_k * 2, MAX_TOP_K)
        return [(doc, best[doc.id]) for doc in live[op.offset : wanted]]

    def _list(self, op: ListNamespacesOp, now: float) -> Flow[list[tuple[str, ...]]]:
        narrow = docs.search_filter(docs.ITEM, docs.prefix_of(op.match_conditions), None)
        found = yield self._call("get_docs", filter={**narrow, **docs.live_filter(now)})
        namespaces = (tuple(doc.metadata["ns"]) for doc in found)
        return docs.list_namespaces(
            namespaces, op.match_conditions, op.max_depth, op.limit, op.offset
        )

    def _put(self, ops: list[PutOp], now: float) -> Flow[None]:
        ids = [docs.item_id(op.namespace, op.key) for op in ops]
        old = {doc.id: doc.metadata for doc in (yield self._call("get_docs", ids))}
        stale: list[str] = []
        fresh: list[DocumentInfo] = []
        for doc_id, op in zip(ids, ops, strict=True):
            before = old.get(doc_id)
            if op.value is None:
                if before is not None:
                    stale += [doc_id, *before["vectors"]]
                continue
            if not isinstance(op.value, dict):
                raise InvalidArgumentError(
                    f"a store value must be a dict, got {type(op.value).__name__}"
                )
            fields = None if op.index is None else list(op.index or ())
            texts = docs.texts_to_embed(op.value, fields, self._fields) if self._fields else []
            vectors = [
                docs.vector_document(op.namespace, op.key, op.value, path, text)
                for path, text in texts
            ]
            kept = {vector.id for vector in vectors}
            if before is not None:
                stale += [vid for vid in before["vectors"] if vid not in kept]
            alive = before is not None and not docs.expired(before, now)
            item = docs.item_document(
                op.namespace,
                op.key,
                op.value,
                created_at=before["created_at"] if alive and before else now,
                updated_at=now,
                ttl_minutes=op.ttl,
                vectors=sorted(kept),
                placeholder=self._placeholder,
            )
            fresh += [item, *vectors]
        if stale:
            yield self._call("delete_docs", stale)
        if fresh:
            yield self._call("add_docs", fresh)

    def _refresh(self, found: Sequence[DocumentInfo], now: float) -> Flow[None]:
        """Restart the TTL of the items read (those that have one)."""
        touched = [
            DocumentInfo(
                id=doc.id,
                text=doc.text,
                metadata=docs.with_expiry(doc.metadata or {}, now),
                embedding=self._placeholder,
            )
            for doc in found
            if (doc.metadata or {}).get("ttl") is not None
        ]
        if touched:
            yield self._call("add_docs", touched)

    def _push(self) -> Flow[PushResult | None]:
        gone = yield self._call(
            "get_docs", filter={"kind": docs.ITEM, "expires_at": {"$lte": time.time()}}
        )
        if gone:
            yield self._call(
                "delete_docs", [vid for doc in gone for vid in (doc.id, *doc.metadata["vectors"])]
            )
        result: PushResult | None = yield self._call("push_if_changed", merge=True)
        return result


def _index_options(index: IndexConfig | None) -> tuple[Embeddings | None, list[str], int | None]:
    """The embedder (None: the built-in model), the fields to embed and the dimension."""
    if index is None:
        return None, ["$"], None
    if not isinstance(index, dict):
        raise InvalidArgumentError(
            'index must be a dict like {"dims": 384, "embed": ..., "fields": ["text"]}, or None'
        )
    dims = index.get("dims")
    if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or dims < 1):
        raise InvalidArgumentError(f"index dims must be a positive integer, got {dims!r}")
    fields = list(index.get("fields") or ["$"])
    embed = index.get("embed")
    if embed is None or isinstance(embed, MossEmbeddings):
        if dims not in (None, _BUILT_IN_DIMS):
            raise InvalidArgumentError(
                f"the built-in model moss-minilm has {_BUILT_IN_DIMS} dimensions, but dims={dims}: "
                "give your own embed= for another dimension"
            )
        return None, fields, _BUILT_IN_DIMS
    return ensure_embeddings(embed), fields, dims


def _open(
    index_name: str,
    embedding: Embeddings | None,
    model_id: str | None,
    client: MossClient | None,
    store: StoreArg | None,
    project_id: str | None,
    auto_refresh: bool,
) -> OpenRequest:
    if embedding is not None and model_id is None:
        model_id = _derived_model_id(embedding)
    return open_request(
        index_name=index_name,
        embedding=embedding,
        model_id=model_id,
        client=client,
        store=store,
        project_id=project_id,
        version=None,
        auto_refresh=auto_refresh,
    )


def _derived_model_id(embedding: Embeddings) -> str:
    """A model id for the embedder; for a plain function, its module and qualified name."""
    if isinstance(embedding, EmbeddingsLambda):
        func = getattr(embedding, "func", None) or getattr(embedding, "afunc", None)
        return f"{getattr(func, '__module__', '')}.{getattr(func, '__qualname__', 'embed')}"
    return model_id_for(embedding)
