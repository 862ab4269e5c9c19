"""Sessions: one named index held in memory, read and written locally, pushed to a store.

:class:`SessionCore` holds a session's state and writes each operation once, as a flow
(:mod:`moss.flow`, with the store exchanges in :mod:`moss.refresh_policy`); :class:`Session`
awaits those flows and :class:`SyncSession` runs them blocking, each method a one-line driver
call. ``session.sync`` is the blocking face of the same core: both faces share every document,
version and lock. (Both faces live here so neither module imports the other.) The core itself
is :mod:`moss.session_core`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import numpy.typing as npt

from .embeddings import EmbeddingModel
from .embeddings.progress import Progress
from .flow import run_async, run_sync
from .index.keyword import KeywordIndex
from .session_core import SessionCore
from .types import AddResult, DocumentInfo, PushResult, QueryOptions, SearchResult

_F = TypeVar("_F", bound="_Face")


class _Face:
    """What both faces of a session show: its properties, read from the shared core."""

    def __init__(self, core: SessionCore) -> None:
        self._core = core

    def __repr__(self) -> str:
        c = self._core
        return (
            f"{type(self).__name__}(name={c.name!r}, model_id={self.model_id!r}, "
            f"version={c.version}, doc_count={self.doc_count})"
        )

    @property
    def name(self) -> str:
        """The index name this session was opened with."""
        return self._core.name

    @property
    def model_id(self) -> str:
        """The embedding model every participant of this index uses."""
        return self._core.model.model_id

    @property
    def model(self) -> EmbeddingModel:
        """The embedding model object."""
        return self._core.model

    @property
    def dimension(self) -> int | None:
        """Vector dimension (None for an empty ``custom`` session before its first vector)."""
        return self._core.dimension

    @property
    def precision(self) -> str:
        """``"float32"`` (exact search) or ``"int8"`` (int8 scan re-ranked in float32)."""
        return self._core.index.precision

    @property
    def index_kind(self) -> str:
        """``"flat"`` (exact scan) or ``"hnsw"`` (HNSW graph re-ranked exactly), as stored."""
        return self._core.index.index_kind

    @property
    def doc_count(self) -> int:
        """How many documents the session holds."""
        return len(self._core.index)

    @property
    def version(self) -> int:
        """The stored version this session was loaded from or last pushed (0: never pushed)."""
        return self._core.version

    @property
    def stale(self) -> bool:
        """True while the session holds a cached copy because the store was unreachable."""
        return self._core.stale

    @property
    def has_unpushed_changes(self) -> bool:
        """Whether documents were added or deleted since the last load or push."""
        return self._core.index.has_changes

    @property
    def _keywords(self) -> KeywordIndex | None:
        # The keyword index if built: tests check when it is (see tests/test_hybrid.py).
        return self._core.index.keywords

    def __enter__(self: _F) -> _F:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._core.close()


class Session(_Face):
    """An index opened by name: local in-memory reads and writes, ``push_index`` to share.

    Example::

        session = await client.session("conv-123")
        await session.add_docs([DocumentInfo(id="turn-1", text="Refund issued.")])
        results = await session.query("refund status", QueryOptions(top_k=3))
        await session.push_index()

    ``session.sync`` is the same session with blocking methods, for code without an event loop.
    """

    def __init__(self, core: SessionCore) -> None:
        super().__init__(core)
        self.sync = SyncSession(core)

    async def add_docs(
        self, docs: Iterable[DocumentInfo], *, progress: Progress = None
    ) -> AddResult:
        """Add documents, replacing those with the same ids; embeds texts that bring no vector.

        A text its id already holds is not embedded again (its stored vector is kept), and a
        text repeated in the batch is embedded once. ``progress``: None shows a bar when over
        1,000 texts are embedded and stderr is a terminal (or in a notebook), True/False force
        it, or a callable is called with ``(done, total)`` texts as embedding proceeds.
        """
        return await run_async(self._core.add(docs, progress))

    async def add_arrays(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        vectors: npt.ArrayLike,
        metadata: Sequence[dict[str, Any] | None] | None = None,
    ) -> AddResult:
        """Add documents given as columns with their vectors: the fast path for bulk loads.

        ``ids`` unique strings, ``texts`` strings, ``vectors`` an (n, dimension) matrix (unit
        rows are taken as they are, others normalised in a copy), ``metadata`` a list of dicts
        or None. Validated column by column, written in one step; existing ids are replaced.

        Example::

            await session.add_arrays(["a", "b"], ["first", "second"], np.eye(2, 384))
        """
        return await run_async(self._core.add_arrays(ids, texts, vectors, metadata))

    async def delete_docs(self, ids: Iterable[str]) -> int:
        """Delete documents by id; return how many existed. Unknown ids are ignored."""
        return await run_async(self._core.delete(ids))

    async def get_docs(
        self,
        ids: Iterable[str] | None = None,
        *,
        filter: dict[str, Any] | None = None,
        limit: int | None = None,
        include_embeddings: bool = False,
    ) -> list[DocumentInfo]:
        """Read documents by id (in the order given) and/or by filter; all of them if neither."""
        return self._core.get(ids, filter, limit, include_embeddings)

    async def query(self, text: str, options: QueryOptions | None = None) -> SearchResult:
        """Return the documents most similar to ``text`` (or to ``options.embedding``)."""
        return await run_async(self._core.query(text, options))

    async def query_many(
        self,
        texts: Sequence[str] | None,
        options: QueryOptions | None = None,
        *,
        embeddings: npt.ArrayLike | None = None,
    ) -> list[SearchResult]:
        """Run several queries at once: one :class:`SearchResult` per text, in order.

        The texts are embedded in one batch and scored with one matrix product; ``options``
        (filter, ``top_k``, ``alpha``...) apply to every query, and the keyword side of a
        hybrid query runs per text. ``embeddings`` (one vector per query) replaces embedding
        the texts; texts may then be None (vector-only queries). ``time_taken_ms`` is the
        whole batch's.

        Example::

            results = await session.query_many(["refund", "shipping delay"], QueryOptions(top_k=3))
        """
        return await run_async(self._core.query_many(texts, options, embeddings))

    async def push_index(
        self,
        expected_version: int | None = None,
        *,
        merge: bool = False,
        ttl: float | None = None,
        author: str | None = None,
        message: str | None = None,
    ) -> PushResult:
        """Store this session as the index's next version, creating or replacing it.

        A session opened at (or last pushed as) a stored version sends only what changed since
        (a delta); every 64 deltas or so it sends the whole index again (a compaction, invisible
        to readers). With ``expected_version=N`` the push succeeds only if the stored version
        is still N (0: only if the index does not exist) and raises ``ConflictError``
        otherwise. With ``merge=True`` this session's changes are appended after whatever the
        latest version is, atomically, so concurrent writers lose nothing (last writer wins
        per id) and never retry; the session then holds the stored version, other writers'
        changes included. With ``ttl=seconds`` the store deletes the index once that long
        passes without a push (for short-lived indexes, e.g. one per conversation); a push
        without ``ttl`` clears it. ``author`` and ``message`` are stored with the version
        (``client.versions``). Pushes of one session take turns.
        """
        flow = self._core.push(expected_version, merge, ttl, author=author, message=message)
        result = await run_async(flow)
        assert result is not None
        return result

    async def push_if_changed(
        self,
        *,
        merge: bool = True,
        expected_version: int | None = None,
        ttl: float | None = None,
        author: str | None = None,
        message: str | None = None,
    ) -> PushResult | None:
        """Push if there are unpushed changes (after waiting for a push in progress); else None.

        Many handlers may call this after each write: pushes of one session never overlap, and
        one that finds its changes already pushed by the one before sends nothing.
        """
        flow = self._core.push(
            expected_version, merge, ttl, only_if_changed=True, author=author, message=message
        )
        return await run_async(flow)

    async def refresh(self, *, discard_changes: bool = False) -> bool:
        """Catch up with the latest stored version if it is newer; return whether it was.

        Only the versions after the one held are downloaded, and applied in place. Unpushed
        local changes are replayed onto it (and stay unpushed) unless
        ``discard_changes=True``.
        """
        return await run_async(self._core.refresh(discard_changes))

    async def close(self) -> None:
        """Release the session's memory; later calls raise."""
        self._core.close()

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._core.close()


class SyncSession(_Face):
    """A session with blocking methods, for code without an event loop (same as :class:`Session`).

    Example::

        session = client.sync.session("conv-123")
        session.add_docs([DocumentInfo(id="turn-1", text="Refund issued.")])
        session.push_index()
    """

    @property
    def sync(self) -> SyncSession:
        """This session (so code written for ``session.sync.method()`` runs on both faces)."""
        return self

    @property
    def aio(self) -> Session:
        """The same session with awaitable methods (``await session.aio.query(...)``)."""
        return Session(self._core)

    def add_docs(self, docs: Iterable[DocumentInfo], *, progress: Progress = None) -> AddResult:
        """Blocking :meth:`Session.add_docs`."""
        return run_sync(self._core.add(docs, progress))

    def add_arrays(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        vectors: npt.ArrayLike,
        metadata: Sequence[dict[str, Any] | None] | None = None,
    ) -> AddResult:
        """Blocking :meth:`Session.add_arrays`."""
        return run_sync(self._core.add_arrays(ids, texts, vectors, metadata))

    def delete_docs(self, ids: Iterable[str]) -> int:
        """Blocking :meth:`Session.delete_docs`."""
        return run_sync(self._core.delete(ids))

    def get_docs(
        self,
        ids: Iterable[str] | None = None,
        *,
        filter: dict[str, Any] | None = None,
        limit: int | None = None,
        include_embeddings: bool = False,
    ) -> list[DocumentInfo]:
        """Blocking :meth:`Session.get_docs`."""
        return self._core.get(ids, filter, limit, include_embeddings)

    def query(self, text: str, options: QueryOptions | None = None) -> SearchResult:
        """Blocking :meth:`Session.query`."""
        return run_sync(self._core.query(text, options))

    def query_many(
        self,
        texts: Sequence[str] | None,
        options: QueryOptions | None = None,
        *,
        embeddings: npt.ArrayLike | None = None,
    ) -> list[SearchResult]:
        """Blocking :meth:`Session.query_many`."""
        return run_sync(self._core.query_many(texts, options, embeddings))

    def push_index(
        self,
        expected_version: int | None = None,
        *,
        merge: bool = False,
        ttl: float | None = None,
        author: str | None = None,
        message: str | None = None,
    ) -> PushResult:
        """Blocking :meth:`Session.push_index`."""
        flow = self._core.push(expected_version, merge, ttl, author=author, message=message)
        result = run_sync(flow)
        assert result is not None
        return result

    def push_if_changed(
        self,
        *,
        merge: bool = True,
        expected_version: int | None = None,
        ttl: float | None = None,
        author: str | None = None,
        message: str | None = None,
    ) -> PushResult | None:
        """Blocking :meth:`Session.push_if_changed`."""
        flow = self._core.push(
            expected_version, merge, ttl, only_if_changed=True, author=author, message=message
        )
        return run_sync(flow)

    def refresh(self, *, discard_changes: bool = False) -> bool:
        """Blocking :meth:`Session.refresh`."""
        return run_sync(self._core.refresh(discard_changes))

    def close(self) -> None:
        """Blocking :meth:`Session.close`."""
        self._core.close()
