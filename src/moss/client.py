"""MossClient: open sessions by index name, list and delete indexes, in one project of a store."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

from .embeddings import EmbeddingModel
from .errors import IndexNotFoundError, InvalidArgumentError, ModelMismatchError
from .flow import Flow, Offload, run_async, run_sync
from .history import diff_flow
from .hydrator import Hydrator
from .index.engine import PRECISIONS
from .index.fusion import merge_rankings, rank, to_results
from .index.hnsw import hnsw_params
from .index.local import LocalIndex
from .loading import ChainStats, model_for_new_index, requested_model
from .querying import embed_query
from .refresh_policy import logger
from .session import Session, SyncSession
from .session_core import SessionCore
from .stores import open_store
from .stores.base import Store
from .stores.cache import SnapshotCache
from .types import IndexDiff, IndexInfo, QueryOptions, SearchResult
from .validation import validate_name

DEFAULT_PROJECT = "default"


class MossClient:
    """Entry point: sessions by name in one project of a store.

    The store is a store object or a URL (``file:///path``, ``http(s)://host:port``,
    ``postgresql://...``); when not given, ``MOSS_STORE``, else a file store at ``MOSS_HOME``,
    else ``~/.moss``. The project id and key default to ``MOSS_PROJECT_ID`` /
    ``MOSS_PROJECT_KEY``, else project ``default`` with no key.

    Example::

        client = MossClient()
        session = await client.session("conv-123")
        same = client.sync.session("conv-123")  # blocking twin, no event loop needed
    """

    def __init__(
        self,
        project_id: str | None = None,
        project_key: str | None = None,
        *,
        store: Store | str | os.PathLike[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.project_id = validate_name(
            project_id or os.environ.get("MOSS_PROJECT_ID") or DEFAULT_PROJECT, what="project id"
        )
        key = project_key or os.environ.get("MOSS_PROJECT_KEY") or None
        self._owns_store = not isinstance(store, Store)
        self.store = open_store(store, project_key=key)
        cache = SnapshotCache(None if cache_dir is None else Path(cache_dir))
        self._hydrator = Hydrator(self.store, self.project_id, cache)
        # The session each name was last opened as, for query_multi_index; weak, so the client
        # never keeps a session alive that its owner dropped.
        self._opened: weakref.WeakValueDictionary[str, SessionCore] = weakref.WeakValueDictionary()
        self.sync = SyncClient(self)

    def __repr__(self) -> str:
        return f"MossClient(project_id={self.project_id!r}, store={self.store.location!r})"

    async def session(
        self,
        index_name: str,
        model_id: str | None = None,
        *,
        model: EmbeddingModel | None = None,
        version: int | None = None,
        auto_refresh: bool = False,
        precision: str | None = None,
        must_exist: bool = False,
        index: str | None = None,
        hnsw: Mapping[str, Any] | None = None,
    ) -> Session:
        """Open the index named ``index_name``: its latest (or the given) version, or a new empty session.

        Stored embeddings are loaded as they are, with no re-embedding. ``model_id`` (or a
        ``model`` object for your own embedder) must match the stored index's, else
        ``ModelMismatchError``; left out, the stored model is used (``moss-minilm`` for new
        indexes). ``precision="int8"`` searches int8 codes re-ranked in float32 (a quarter of
        the bytes scanned per query; the codes are pushed with the index); left out, the stored
        index's precision is kept (float32 for a new index). ``auto_refresh=True`` keeps the
        session fresh in the background as other processes push (local unpushed changes are
        replayed onto each new version). ``must_exist=True`` raises ``IndexNotFoundError``
        instead of starting an empty session when the index does not exist.

        ``index="hnsw"`` searches an HNSW graph (FAISS) that proposes candidates re-ranked by
        exact cosine: milliseconds instead of tens at a million documents, at recall@10 about
        0.95-0.98. ``hnsw`` sets its knobs (``m`` 32, ``ef_construction`` 80, ``ef_search`` None: 64
        up to 1M documents, growing beyond; ``storage`` ``"sq8"``, ``rebuild_fraction`` 0.25); the kind, knobs and graph are pushed
        with the index, so every process that opens it searches the same way. Left out, the
        stored index's kind is kept (``"flat"``, the exact scan, for a new index).
        """
        flow = self._open(index_name, model_id, model, version, precision, must_exist, index, hnsw)
        session = Session(await run_async(flow))
        if auto_refresh:
            core = session._core
            core.refresher = asyncio.get_running_loop().create_task(run_async(core.follow()))
        return session

    def _open(
        self,
        index_name: str,
        model_id: str | None,
        model: EmbeddingModel | None,
        version: int | None,
        precision: str | None,
        must_exist: bool,
        index: str | None = None,
        hnsw: Mapping[str, Any] | None = None,
    ) -> Flow[SessionCore]:
        name = validate_name(index_name)
        model = requested_model(model_id, model)
        if precision is not None and precision not in PRECISIONS:
            raise InvalidArgumentError(
                f"precision must be one of {', '.join(map(repr, PRECISIONS))}, got {precision!r}"
            )
        if hnsw is not None and index != "hnsw":
            raise InvalidArgumentError(
                f"hnsw parameters apply to index='hnsw' only (got index={index!r}): "
                "pass index='hnsw', hnsw={...}"
            )
        params = None if index is None else hnsw_params(index, hnsw)
        loaded = yield from self._hydrator.load_flow(name, model_id, model, version)
        where = f"project {self.project_id!r} of store {self.store.location}"
        if loaded is None:
            if must_exist:
                raise IndexNotFoundError(
                    f"index {name!r} does not exist in {where}: push it first, or check the "
                    "name, the project and the store (MOSS_STORE, MOSS_PROJECT_ID)"
                )
            bound, engine, keywords = model_for_new_index(model_id, model), None, None
            number, stale, chain = 0, False, ChainStats()
        else:
            if precision is not None:
                loaded.engine.set_precision(precision)
            if index is not None:
                # Switching a stored flat index to hnsw builds its graph: minutes at 1M rows,
                # so in a worker thread under an event loop.
                yield Offload(partial(loaded.engine.set_index, index, params))
            bound, engine, keywords = loaded.model, loaded.engine, loaded.keywords
            number, stale, chain = loaded.version, loaded.stale, loaded.chain
        logger.info("opened index %r of %s at version %d", name, where, number)
        core = SessionCore(
            name=name,
            hydrator=self._hydrator,
            model=bound,
            index=LocalIndex(engine, keywords, precision=precision, index=index, hnsw=params),
            version=number,
            stale=stale,
            chain=chain,
        )
        self._opened[name] = core
        return core

    async def query_multi_index(
        self, names: Sequence[str], text: str, options: QueryOptions | None = None
    ) -> SearchResult:
        """Query several open sessions as one index: the global top k, each result naming its index.

        ``names`` are indexes this client has open (the session last opened under each name,
        not closed): open them first with :meth:`session`, which also picks their version
        and auto-refresh. They must share one embedding model, so the query is embedded once.
        Vector rankings merge by cosine; keyword rankings merge by BM25 score (each index
        scores with its own statistics) before the blend. ``result.index_name`` is the names
        joined by commas; each document's ``index_name`` says where it came from.

        Example::

            await client.session("tickets"), await client.session("faq")
            found = await client.query_multi_index(["tickets", "faq"], "refund ORD-1234")
            [(doc.index_name, doc.id) for doc in found.docs]
        """
        return await run_async(self._query_multi(names, text, options))

    def _query_multi(
        self, names: Sequence[str], text: str, options: QueryOptions | None
    ) -> Flow[SearchResult]:
        started = time.perf_counter()
        sessions, options = self._multi_check(names, text, options)
        vector = sessions[0].query_vector(options)
        if vector is None and any(len(s.index) for s in sessions):
            vector = yield from embed_query(sessions[0].model, text)
        for session in sessions:
            yield from session.prepare_keywords(options)
        # Each index gives the candidates it would give alone: each side's global top (depth) is
        # within the union of the per-index tops, since the merge orders by the same scores.
        parts = [s.candidates(text, options, vector) for s in sessions]
        docs = to_results(rank(merge_rankings(parts), float(options.alpha), options.top_k))
        return SearchResult(
            docs=docs,
            query=text,
            index_name=",".join(s.name for s in sessions),
            time_taken_ms=(time.perf_counter() - started) * 1000,
        )

    def _multi_check(
        self, names: Sequence[str], text: str, options: QueryOptions | None
    ) -> tuple[list[SessionCore], QueryOptions]:
        if isinstance(names, str) or not names:
            raise InvalidArgumentError(
                "names must be a non-empty list of index names, e.g. ['tickets', 'faq']"
            )
        sessions = []
        for name in dict.fromkeys(names):
            session = self._opened.get(validate_name(name))
            if session is None or session.closed:
                raise InvalidArgumentError(
                    f"index {name!r} is not open in this client: open it first with "
                    f"client.session({name!r}) (or client.sync.session)"
                )
            sessions.append(session)
        models = {(s.model.model_id, s.model.artifact_id) for s in sessions}
        if len(models) > 1:
            raise ModelMismatchError(
                f"query_multi_index needs indexes of one embedding model, got "
                f"{sorted(m for m, _ in models)}: query each model's indexes separately"
            )
        return sessions, sessions[0].check_query(text, options)

    async def list_indexes(self) -> list[IndexInfo]:
        """Describe every index of the project (latest version each), sorted by name."""
        return await self.store.alist(self.project_id)

    async def versions(self, index_name: str) -> list[IndexInfo]:
        """Every kept version of an index that can be opened, oldest first: its kind (``"full"``,
        ``"delta"``, or ``"compaction"``: a full snapshot equal to the version before it),
        ``author``, ``message``, ``created_at``, documents and size (empty if it does not exist)."""
        return await self.store.aversions(self.project_id, validate_name(index_name))

    async def diff(self, index_name: str, a: int, b: int) -> IndexDiff:
        """The document ids added, changed and deleted from version ``a`` to version ``b``.

        ``a`` may be 0 (before the first version). Both versions must still be kept (see
        :meth:`versions`). Example: what changed since this agent last looked::

            changes = await client.diff("conv-123", seen, session.version)
        """
        return await run_async(diff_flow(self._hydrator, validate_name(index_name), a, b))

    async def delete_index(self, index_name: str) -> bool:
        """Delete every version of an index; return whether it existed."""
        return await self.store.adelete(self.project_id, validate_name(index_name))

    async def close(self) -> None:
        """Release the store if this client opened it."""
        if self._owns_store:
            await self.store.aclose()

    async def __aenter__(self) -> MossClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __enter__(self) -> MossClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.sync.close()


class SyncClient:
    """The blocking view of a :class:`MossClient`: same methods, no event loop."""

    def __init__(self, client: MossClient) -> None:
        self._client = client

    def session(
        self,
        index_name: str,
        model_id: str | None = None,
        *,
        model: EmbeddingModel | None = None,
        version: int | None = None,
        auto_refresh: bool = False,
        precision: str | None = None,
        must_exist: bool = False,
        index: str | None = None,
        hnsw: Mapping[str, Any] | None = None,
    ) -> SyncSession:
        """Blocking :meth:`MossClient.session`: a session whose methods block (auto-refresh on a thread)."""
        flow = self._client._open(
            index_name, model_id, model, version, precision, must_exist, index, hnsw
        )
        session = SyncSession(run_sync(flow))
        if auto_refresh:
            core = session._core
            thread = threading.Thread(
                target=lambda: run_sync(core.follow()),
                name=f"moss-refresh-{core.name}",
                daemon=True,
            )
            core.refresher = thread
            thread.start()
        return session

    def query_multi_index(
        self, names: Sequence[str], text: str, options: QueryOptions | None = None
    ) -> SearchResult:
        """Blocking :meth:`MossClient.query_multi_index` (sessions opened either way)."""
        return run_sync(self._client._query_multi(names, text, options))

    def list_indexes(self) -> list[IndexInfo]:
        """Blocking twin of :meth:`MossClient.list_indexes`."""
        return self._client.store.list(self._client.project_id)

    def versions(self, index_name: str) -> list[IndexInfo]:
        """Blocking twin of :meth:`MossClient.versions`."""
        return self._client.store.versions(self._client.project_id, validate_name(index_name))

    def diff(self, index_name: str, a: int, b: int) -> IndexDiff:
        """Blocking twin of :meth:`MossClient.diff`."""
        return run_sync(diff_flow(self._client._hydrator, validate_name(index_name), a, b))

    def delete_index(self, index_name: str) -> bool:
        """Blocking twin of :meth:`MossClient.delete_index`."""
        return self._client.store.delete(self._client.project_id, validate_name(index_name))

    def close(self) -> None:
        """Blocking twin of :meth:`MossClient.close`."""
        if self._client._owns_store:
            self._client.store.close()
