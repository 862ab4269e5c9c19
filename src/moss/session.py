"""Sessions: one named index held in memory, read and written locally, pushed to a store.

:class:`SessionCore` holds a session's state and writes each operation once, as a flow
(:mod:`moss.flow`, with the store exchanges in :mod:`moss.refresh_policy`); :class:`Session`
awaits those flows and :class:`SyncSession` runs them blocking, each method a one-line driver
call. ``session.sync`` is the blocking face of the same core: both faces share every document,
version and lock. (Both faces live here so neither module imports the other.)
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from functools import partial
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from .documents import assemble_vectors, check_query_options, prepare_docs
from .embeddings import EmbeddingModel, normalize_rows
from .errors import InvalidArgumentError
from .flow import Flow, Io, Offload, run_async, run_sync
from .index.fusion import Candidates, candidate_depth, rank, to_results
from .index.keyword import KeywordIndex
from .refresh_policy import SessionState
from .types import AddResult, DocumentInfo, PushResult, QueryOptions, SearchResult
from .validation import validate_doc_id, validate_vector

_F = TypeVar("_F", bound="_Face")

# Above this many documents, engine work moves to a worker thread under an event loop (a
# flow's Offload step), so the loop keeps serving other tasks.
_OFFLOAD_THRESHOLD = 5_000

Vector = npt.NDArray[np.float32]


class SessionCore(SessionState):
    """A session's state with its local reads and writes (queries, adds, deletes)."""

    # -- local reads and writes ----------------------------------------------------------------

    def add(self, docs: Iterable[DocumentInfo]) -> Flow[AddResult]:
        self.check_open()
        prepared = prepare_docs(docs, self.model, self.dimension)
        if not prepared.ids:
            return AddResult(added=0, updated=0)
        embedded = None
        if prepared.missing_rows:
            texts, model = prepared.texts_to_embed, self.model
            embedded = yield Io(
                lambda: model.embed_documents(texts), lambda: model.aembed_documents(texts)
            )
        # A new custom session learns its dimension from its first vectors.
        dimension = self.dimension or prepared.given_vectors.shape[1]  # type: ignore[union-attr]
        vectors = assemble_vectors(prepared, embedded, dimension)
        upsert = partial(
            self.index.upsert, prepared.ids, prepared.texts, prepared.metadata, vectors
        )
        added, updated = (
            (yield Offload(upsert)) if len(prepared.ids) > _OFFLOAD_THRESHOLD else upsert()
        )
        return AddResult(added=added, updated=updated)

    def delete(self, ids: Iterable[str]) -> int:
        self.check_open()
        if isinstance(ids, str):
            raise InvalidArgumentError("pass a list of document ids, not a single string")
        return self.index.delete([validate_doc_id(doc_id) for doc_id in ids])

    def get(
        self,
        ids: Iterable[str] | None,
        filter: dict[str, Any] | None,
        limit: int | None,
        include_embeddings: bool,
    ) -> list[DocumentInfo]:
        self.check_open()
        if isinstance(ids, str):
            raise InvalidArgumentError("pass a list of document ids, not a single string")
        checked = None if ids is None else [validate_doc_id(doc_id) for doc_id in ids]
        stored, engine = self.index.get(checked, filter, limit)
        vectors: list[Any] = [None] * len(stored)
        if include_embeddings and stored and engine is not None:
            vectors = list(engine.vectors_for([doc.id for doc in stored]))
        return [
            DocumentInfo(id=doc.id, text=doc.text, metadata=doc.metadata, embedding=vector)
            for doc, vector in zip(stored, vectors, strict=False)
        ]

    def check_query(self, text: str, options: QueryOptions | None) -> QueryOptions:
        self.check_open()
        return check_query_options(text, options)

    def query_vector(self, options: QueryOptions) -> Vector | None:
        """The query vector the caller brought (normalised), or None if text must be embedded."""
        if options.embedding is None:
            return None
        vector = validate_vector(options.embedding, self.dimension, "query embedding")
        normalized: Vector = normalize_rows(vector[np.newaxis, :], copy=False)[0]
        return normalized

    def prepare_keywords(self, options: QueryOptions) -> Flow[None]:
        """Build the keyword index before a first keyword query (in a worker thread if large)."""
        index = self.index
        if options.alpha < 1.0 and index.keywords_pending() and len(index) > _OFFLOAD_THRESHOLD:
            yield Offload(index.build_keywords)

    def query(self, text: str, options: QueryOptions | None) -> Flow[SearchResult]:
        started = time.perf_counter()
        options = self.check_query(text, options)
        vector = self.query_vector(options)
        if vector is None and len(self.index):
            vector = yield from embed_query(self.model, text)
        yield from self.prepare_keywords(options)
        candidates = self.candidates(text, options, vector)
        docs = to_results(rank(candidates, float(options.alpha), options.top_k))
        elapsed = (time.perf_counter() - started) * 1000
        return SearchResult(docs=docs, query=text, index_name=self.name, time_taken_ms=elapsed)

    def candidates(self, text: str, options: QueryOptions, vector: Vector | None) -> Candidates:
        """Each side's ranked candidates for this query (vector side only at alpha 1)."""
        alpha, top_k = float(options.alpha), options.top_k
        return self.index.gather(
            self.name,
            vector,
            text,
            alpha=alpha,
            depth=top_k if alpha >= 1.0 else candidate_depth(top_k),
            filter=options.filter,
            min_score=options.min_score,
        )


def embed_query(model: EmbeddingModel, text: str) -> Flow[Vector]:
    """Embed one query text (blocking or awaited)."""
    vector: Vector = yield Io(lambda: model.embed_query(text), lambda: model.aembed_query(text))
    return vector


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

    async def add_docs(self, docs: Iterable[DocumentInfo]) -> AddResult:
        """Add documents, replacing those with the same ids; embeds texts that bring no vector."""
        return await run_async(self._core.add(docs))

    async def delete_docs(self, ids: Iterable[str]) -> int:
        """Delete documents by id; return how many existed. Unknown ids are ignored."""
        return self._core.delete(ids)

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

    def add_docs(self, docs: Iterable[DocumentInfo]) -> AddResult:
        """Blocking :meth:`Session.add_docs`."""
        return run_sync(self._core.add(docs))

    def delete_docs(self, ids: Iterable[str]) -> int:
        """Blocking :meth:`Session.delete_docs`."""
        return self._core.delete(ids)

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
