"""SyncSession: the blocking view of a Session, doing its I/O natively (no event loop)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .errors import ConflictError, ServiceUnavailableError
from .refresh_policy import MERGE_ATTEMPTS, WATCH_TIMEOUT, gave_up, logger, merge_backoff
from .stores.base import check_ttl
from .types import AddResult, DocumentInfo, PushResult, QueryOptions, SearchResult

if TYPE_CHECKING:
    from .session import Session


class SyncSession:
    """The blocking view of a :class:`Session`: same methods, same state, no event loop."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add_docs(self, docs: Iterable[DocumentInfo]) -> AddResult:
        """Blocking twin of :meth:`Session.add_docs`."""
        s = self._session
        prepared = s._prepare_add(docs)
        embedded = None
        if prepared.missing_rows:
            embedded = s._model.embed_documents(prepared.texts_to_embed)
        return s._apply_add(prepared, embedded)

    def delete_docs(self, ids: Iterable[str]) -> int:
        """Blocking twin of :meth:`Session.delete_docs`."""
        return self._session._delete(ids)

    def get_docs(
        self,
        ids: Iterable[str] | None = None,
        *,
        filter: dict[str, Any] | None = None,
        limit: int | None = None,
        include_embeddings: bool = False,
    ) -> list[DocumentInfo]:
        """Blocking twin of :meth:`Session.get_docs`."""
        return self._session._get(ids, filter, limit, include_embeddings)

    def query(self, text: str, options: QueryOptions | None = None) -> SearchResult:
        """Blocking twin of :meth:`Session.query`."""
        s = self._session
        started = time.perf_counter()
        options = s._check_query(text, options)
        vector = s._query_vector(options)
        if vector is None and s._needs_query_embedding(options):
            vector = s._model.embed_query(text)
        return s._search(text, options, vector, started)

    def push_index(
        self, expected_version: int | None = None, *, merge: bool = False, ttl: float | None = None
    ) -> PushResult:
        """Blocking twin of :meth:`Session.push_index`."""
        ttl = check_ttl(ttl)
        s = self._session
        for attempt in range(MERGE_ATTEMPTS):
            expected = s._merge_expected(expected_version, merge)
            chunks, mutations = s._encode()
            try:
                info = s._store.put(s._project, s._name, chunks, expected_version=expected, ttl=ttl)
            except ConflictError:
                if not merge:
                    raise
                time.sleep(merge_backoff(attempt))
                self._rebase()
                continue
            return s._pushed(info.version, info.doc_count, mutations)
        raise gave_up(s._name)

    def _rebase(self) -> None:
        s = self._session
        loaded = s._hydrator.load(s._name, None, s._model, newer_than=s._version)
        if loaded is None and s._store.head(s._project, s._name) is None:
            s._lost_index()
        s._adopt(loaded, discard_changes=False)

    def refresh(self, *, discard_changes: bool = False) -> bool:
        """Blocking twin of :meth:`Session.refresh`."""
        s = self._session
        s._check_open()
        loaded = s._hydrator.load(s._name, None, s._model, newer_than=s._version)
        return s._adopt(loaded, discard_changes)

    def _start_auto_refresh(self) -> None:
        """Keep the session fresh from a daemon thread (no event loop needed)."""
        thread = threading.Thread(
            target=self._auto_refresh, name=f"moss-refresh-{self._session.name}", daemon=True
        )
        self._session._refresher = thread
        thread.start()

    def _auto_refresh(self) -> None:
        s = self._session
        delay = 0.1
        while not s._closed:
            try:
                latest = s._store.watch(
                    s._project, s._name, after=s._version, timeout=WATCH_TIMEOUT
                )
                if latest is not None and latest > s._version and not s._closed:
                    self.refresh()
                delay = 0.1
            except ServiceUnavailableError:
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
            except Exception as exc:  # a background thread must not die of one bad round
                if s._closed:
                    return  # the client may already be closed under us
                logger.warning("auto-refresh of index %r failed: %s", s._name, exc)
                time.sleep(1.0)

    def close(self) -> None:
        """Blocking twin of :meth:`Session.close`."""
        self._session._close()
