"""MossClient: open sessions by index name, list and delete indexes, in one project of a store."""

from __future__ import annotations

import asyncio
import os
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import numpy as np
import numpy.typing as npt

from .embeddings import EmbeddingModel
from .errors import InvalidArgumentError, ModelMismatchError
from .index.engine import PRECISIONS
from .index.fusion import merge_rankings, rank, to_results
from .loading import Hydrator, Loaded, model_for_new_index, requested_model
from .session import Session
from .stores import open_store
from .stores.base import Store
from .stores.cache import SnapshotCache
from .types import IndexInfo, QueryOptions, SearchResult
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
        self._opened: weakref.WeakValueDictionary[str, Session] = weakref.WeakValueDictionary()
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
    ) -> Session:
        """Open the index named ``index_name``: its latest (or the given) version, or a new empty session.

        Stored embeddings are loaded as they are, with no re-embedding. ``model_id`` (or a
        ``model`` object for your own embedder) must match the stored index's, else
        ``ModelMismatchError``; left out, the stored model is used (``moss-minilm`` for new
        indexes). ``precision="int8"`` searches int8 codes re-ranked in float32 (a quarter of
        the bytes scanned per query; the codes are pushed with the index); left out, the stored
        index's precision is kept (float32 for a new index). ``auto_refresh=True`` keeps the
        session fresh in the background as other processes push (local unpushed changes are
        replayed onto each new version).
        """
        name = validate_name(index_name)
        model = requested_model(model_id, model)
        loaded = await self._hydrator.aload(name, model_id, model, version)
        session = self._session(name, model_id, model, loaded, precision)
        if auto_refresh:
            session._start_auto_refresh()
        return session

    def _session(
        self,
        name: str,
        model_id: str | None,
        model: EmbeddingModel | None,
        loaded: Loaded | None,
        precision: str | None = None,
    ) -> Session:
        if precision is not None and precision not in PRECISIONS:
            raise InvalidArgumentError(
                f"precision must be one of {', '.join(map(repr, PRECISIONS))}, got {precision!r}"
            )
        if loaded is not None and precision is not None:
            loaded.engine.set_precision(precision)
        if loaded is None:
            session = Session(
                name=name,
                hydrator=self._hydrator,
                model=model_for_new_index(model_id, model),
                engine=None,
                version=0,
                precision=precision,
            )
        else:
            session = Session(
                name=name,
                hydrator=self._hydrator,
                model=loaded.model,
                engine=loaded.engine,
                version=loaded.version,
                stale=loaded.stale,
                keywords=loaded.keywords,
                precision=precision,
            )
        self._opened[name] = session
        return session

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
        started = time.perf_counter()
        sessions, options = self._multi_check(names, text, options)
        lead = sessions[0]
        vector = lead._query_vector(options)
        if vector is None and any(s.doc_count for s in sessions):
            vector = await lead.model.aembed_query(text)
        for session in sessions:
            if session._keywords_pending(options):
                await asyncio.to_thread(session._indexes, keyword=True)
        return _multi_search(sessions, text, options, vector, started)

    def _multi_check(
        self, names: Sequence[str], text: str, options: QueryOptions | None
    ) -> tuple[list[Session], QueryOptions]:
        if isinstance(names, str) or not names:
            raise InvalidArgumentError(
                "names must be a non-empty list of index names, e.g. ['tickets', 'faq']"
            )
        sessions = []
        for name in dict.fromkeys(names):
            session = self._opened.get(validate_name(name))
            if session is None or session._closed:
                raise InvalidArgumentError(
                    f"index {name!r} is not open in this client: open it first with "
                    f"client.session({name!r}) (or client.sync.session)"
                )
            sessions.append(session)
        models = {(s.model_id, s.model.artifact_id) for s in sessions}
        if len(models) > 1:
            raise ModelMismatchError(
                f"query_multi_index needs indexes of one embedding model, got "
                f"{sorted(m for m, _ in models)}: query each model's indexes separately"
            )
        return sessions, sessions[0]._check_query(text, options)

    async def list_indexes(self) -> list[IndexInfo]:
        """Describe every index of the project (latest version each), sorted by name."""
        return await self.store.alist(self.project_id)

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
    ) -> Session:
        """Blocking twin of :meth:`MossClient.session` (auto-refresh runs on a daemon thread)."""
        c = self._client
        name = validate_name(index_name)
        model = requested_model(model_id, model)
        loaded = c._hydrator.load(name, model_id, model, version)
        session = c._session(name, model_id, model, loaded, precision)
        if auto_refresh:
            session.sync._start_auto_refresh()
        return session

    def query_multi_index(
        self, names: Sequence[str], text: str, options: QueryOptions | None = None
    ) -> SearchResult:
        """Blocking twin of :meth:`MossClient.query_multi_index`."""
        started = time.perf_counter()
        sessions, options = self._client._multi_check(names, text, options)
        lead = sessions[0]
        vector = lead._query_vector(options)
        if vector is None and any(s.doc_count for s in sessions):
            vector = lead.model.embed_query(text)
        return _multi_search(sessions, text, options, vector, started)

    def list_indexes(self) -> list[IndexInfo]:
        """Blocking twin of :meth:`MossClient.list_indexes`."""
        return self._client.store.list(self._client.project_id)

    def delete_index(self, index_name: str) -> bool:
        """Blocking twin of :meth:`MossClient.delete_index`."""
        return self._client.store.delete(self._client.project_id, validate_name(index_name))

    def close(self) -> None:
        """Blocking twin of :meth:`MossClient.close`."""
        if self._client._owns_store:
            self._client.store.close()


def _multi_search(
    sessions: list[Session],
    text: str,
    options: QueryOptions,
    vector: npt.NDArray[np.float32] | None,
    started: float,
) -> SearchResult:
    """Each session's candidates, merged per side, blended: the global top k."""
    # Each index gives the candidates it would give alone: each side's global top (depth) is
    # within the union of the per-index tops, since the merge orders by the same scores.
    parts = [s._candidates(text, options, vector, options.top_k) for s in sessions]
    docs = to_results(rank(merge_rankings(parts), float(options.alpha), options.top_k))
    return SearchResult(
        docs=docs,
        query=text,
        index_name=",".join(s.name for s in sessions),
        time_taken_ms=(time.perf_counter() - started) * 1000,
    )
