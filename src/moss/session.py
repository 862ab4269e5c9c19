"""Session: one named index held in memory, read and written locally, pushed to a store."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

from .documents import PreparedDocs, assemble_vectors, prepare_docs
from .embeddings import EmbeddingModel, normalize_rows
from .errors import ConflictError, InvalidArgumentError, MossError, ServiceUnavailableError
from .index.engine import Engine, StoredDoc
from .index.fusion import Candidates, candidate_depth, gather, rank, to_results
from .index.keyword import KeywordIndex
from .loading import Hydrator, Loaded
from .refresh_policy import MERGE_ATTEMPTS, WATCH_TIMEOUT, gave_up, logger, merge_backoff
from .snapshot.codec import encode_snapshot
from .snapshot.keywords import encode_keywords
from .stores.base import check_ttl
from .sync_session import SyncSession
from .types import AddResult, DocumentInfo, PushResult, QueryOptions, SearchResult
from .validation import validate_alpha, validate_doc_id, validate_top_k, validate_vector

# Above this many documents, engine work in async methods moves to a worker thread so the
# event loop keeps serving other tasks.
_OFFLOAD_THRESHOLD = 5_000

_UPSERT = "upsert"
_DELETE = "delete"


class Session:
    """An index opened by name: local in-memory reads and writes, ``push_index`` to share.

    Example::

        session = await client.session("conv-123")
        await session.add_docs([DocumentInfo(id="turn-1", text="Refund issued.")])
        results = await session.query("refund status", QueryOptions(top_k=3))
        await session.push_index()

    ``session.sync`` offers the same methods, blocking, for code without an event loop.
    """

    def __init__(
        self,
        *,
        name: str,
        hydrator: Hydrator,
        model: EmbeddingModel,
        engine: Engine | None,
        version: int,
        stale: bool = False,
        keywords: KeywordIndex | None = None,
        precision: str | None = None,
    ) -> None:
        self._name = name
        # The precision asked for at open (None: the stored index's, float32 for a new one).
        self._precision = precision
        self._hydrator = hydrator
        self._project = hydrator.project
        self._store = hydrator.store
        self._model = model
        self._engine = engine
        # The BM25 index of the engine's documents, built at the first query with alpha < 1
        # (vector-only sessions never pay for it), then kept current by every write.
        self._keywords = keywords  # built at the first keyword query unless a snapshot carried it
        self._version = version
        self._stale = stale
        self._refresher: asyncio.Task[None] | threading.Thread | None = None
        self._lock = threading.Lock()
        # Local changes since the loaded version: id -> "upsert" | "delete". Values are read
        # back from the engine when replayed, so the log costs only the ids.
        self._changes: dict[str, str] = {}
        self._mutations = 0
        self._closed = False
        self.sync = SyncSession(self)

    def __repr__(self) -> str:
        return (
            f"Session(name={self._name!r}, model_id={self.model_id!r}, version={self._version}, "
            f"doc_count={self.doc_count})"
        )

    # -- properties --------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The index name this session was opened with."""
        return self._name

    @property
    def model_id(self) -> str:
        """The embedding model every participant of this index uses."""
        return self._model.model_id

    @property
    def model(self) -> EmbeddingModel:
        """The embedding model object."""
        return self._model

    @property
    def dimension(self) -> int | None:
        """Vector dimension (None for an empty ``custom`` session before its first vector)."""
        return self._engine.dimension if self._engine is not None else self._model.dimension

    @property
    def precision(self) -> str:
        """``"float32"`` (exact search) or ``"int8"`` (int8 scan re-ranked in float32)."""
        if self._engine is not None:
            return self._engine.precision
        return self._precision or "float32"

    @property
    def doc_count(self) -> int:
        """How many documents the session holds."""
        return len(self._engine) if self._engine is not None else 0

    @property
    def version(self) -> int:
        """The stored version this session was loaded from or last pushed (0: never pushed)."""
        return self._version

    @property
    def stale(self) -> bool:
        """True while the session holds a cached copy because the store was unreachable."""
        return self._stale

    @property
    def has_unpushed_changes(self) -> bool:
        """Whether documents were added or deleted since the last load or push."""
        return bool(self._changes)

    # -- local reads and writes: shared logic ------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise MossError(
                f"session {self._name!r} is closed: open it again with client.session()"
            )

    def _prepare_add(self, docs: Iterable[DocumentInfo]) -> PreparedDocs:
        self._check_open()
        return prepare_docs(docs, self._model, self.dimension)

    def _apply_add(
        self, prepared: PreparedDocs, embedded: npt.NDArray[np.float32] | None
    ) -> AddResult:
        if not prepared.ids:
            return AddResult(added=0, updated=0)
        dimension = self.dimension
        if dimension is None:  # a custom session learns its dimension from its first vectors
            assert prepared.given_vectors is not None
            dimension = prepared.given_vectors.shape[1]
        vectors = assemble_vectors(prepared, embedded, dimension)
        with self._lock:
            if self._engine is None:
                self._engine = Engine(dimension, precision=self._precision or "float32")
            added, updated = self._engine.upsert(
                prepared.ids, prepared.texts, prepared.metadata, vectors
            )
            if self._keywords is not None:
                self._keywords.upsert(prepared.ids, prepared.texts, prepared.metadata)
            self._changes.update(dict.fromkeys(prepared.ids, _UPSERT))
            self._mutations += 1
        return AddResult(added=added, updated=updated)

    def _delete(self, ids: Iterable[str]) -> int:
        self._check_open()
        if isinstance(ids, str):
            raise InvalidArgumentError("pass a list of document ids, not a single string")
        checked = [validate_doc_id(doc_id) for doc_id in ids]
        with self._lock:
            if self._engine is None:
                return 0
            deleted = self._engine.delete(checked)
            if deleted and self._keywords is not None:
                self._keywords.delete(checked)
            if deleted:
                self._changes.update(dict.fromkeys(checked, _DELETE))
                self._mutations += 1
        return deleted

    def _get(
        self,
        ids: Iterable[str] | None,
        filter: dict[str, Any] | None,
        limit: int | None,
        include_embeddings: bool,
    ) -> list[DocumentInfo]:
        self._check_open()
        if isinstance(ids, str):
            raise InvalidArgumentError("pass a list of document ids, not a single string")
        checked = None if ids is None else [validate_doc_id(doc_id) for doc_id in ids]
        engine = self._engine
        if engine is None:
            return []
        stored = engine.get(checked, filter=filter, limit=limit)
        vectors: list[Any] = [None] * len(stored)
        if include_embeddings and stored:
            vectors = list(engine.vectors_for([doc.id for doc in stored]))
        return [
            DocumentInfo(id=doc.id, text=doc.text, metadata=doc.metadata, embedding=vector)
            for doc, vector in zip(stored, vectors, strict=False)
        ]

    def _check_query(self, text: str, options: QueryOptions | None) -> QueryOptions:
        self._check_open()
        options = options if options is not None else QueryOptions()
        if not isinstance(options, QueryOptions):
            raise InvalidArgumentError(
                f"options must be QueryOptions, got {type(options).__name__}"
            )
        if not isinstance(text, str):
            raise InvalidArgumentError(f"query text must be a str, got {type(text).__name__}")
        validate_top_k(options.top_k)
        validate_alpha(options.alpha)
        if options.min_score is not None and not isinstance(options.min_score, (int, float)):
            raise InvalidArgumentError(f"min_score must be a number, got {options.min_score!r}")
        return options

    def _query_vector(self, options: QueryOptions) -> npt.NDArray[np.float32] | None:
        """The query vector the caller brought (normalised), or None if text must be embedded."""
        if options.embedding is None:
            return None
        vector = validate_vector(options.embedding, self.dimension, "query embedding")
        normalized: npt.NDArray[np.float32] = normalize_rows(vector[np.newaxis, :], copy=False)[0]
        return normalized

    def _search(
        self,
        text: str,
        options: QueryOptions,
        vector: npt.NDArray[np.float32] | None,
        started: float,
    ) -> SearchResult:
        candidates = self._candidates(text, options, vector, options.top_k)
        docs = to_results(rank(candidates, float(options.alpha), options.top_k))
        return SearchResult(
            docs=docs,
            query=text,
            index_name=self._name,
            time_taken_ms=(time.perf_counter() - started) * 1000,
        )

    def _candidates(
        self,
        text: str,
        options: QueryOptions,
        vector: npt.NDArray[np.float32] | None,
        top_k: int,
    ) -> Candidates:
        """Each side's ranked candidates for a query of ``top_k`` (vector side only at alpha 1)."""
        alpha = float(options.alpha)
        engine, keywords = self._indexes(keyword=alpha < 1.0)
        if engine is None or vector is None:
            return Candidates([], [])
        return gather(
            self._name,
            engine,
            keywords,
            self._lock,
            vector,
            text,
            alpha=alpha,
            depth=top_k if alpha >= 1.0 else candidate_depth(top_k),
            filter=options.filter,
            min_score=options.min_score,
        )

    def _indexes(self, *, keyword: bool) -> tuple[Engine | None, KeywordIndex | None]:
        """The engine and, if asked, its keyword index (built now if this is the first time)."""
        with self._lock:
            engine = self._engine
            if keyword and engine is not None and self._keywords is None:
                self._keywords = _build_keywords(engine)
            return engine, self._keywords if keyword else None

    def _keywords_pending(self, options: QueryOptions) -> bool:
        """Whether this query builds the keyword index first (slow enough for a worker thread)."""
        return (
            options.alpha < 1.0 and self._keywords is None and self.doc_count > _OFFLOAD_THRESHOLD
        )

    def _needs_query_embedding(self, options: QueryOptions) -> bool:
        return options.embedding is None and self.doc_count > 0

    # -- pushing and reloading: shared logic ---------------------------------------------------

    def _encode(self) -> tuple[Iterator[bytes | memoryview], int]:
        self._check_open()
        with self._lock:
            engine = self._engine
            if engine is None:
                if self._model.dimension is None:
                    raise InvalidArgumentError(
                        f"session {self._name!r} uses model {self._model.model_id!r} and has no "
                        "documents yet, so its dimension is unknown: add a document before pushing"
                    )
                engine = self._engine = Engine(
                    self._model.dimension, precision=self._precision or "float32"
                )
            parts = engine.export_all()
            vectors, ids, texts, metadata = parts.vectors, parts.ids, parts.texts, parts.metadata
            # A session that used keyword search carries its index, so readers skip the rebuild.
            keywords = encode_keywords(self._keywords, ids) if self._keywords is not None else None
            mutations = self._mutations
        _, chunks = encode_snapshot(
            index_name=self._name,
            model_id=self._model.model_id,
            model_artifact=self._model.artifact_id,
            vectors=vectors,
            ids=ids,
            texts=texts,
            metadata=metadata,
            keywords=keywords,
            int8=parts.int8,
        )
        return chunks, mutations

    def _pushed(self, version: int, doc_count: int, mutations: int) -> PushResult:
        with self._lock:
            self._version = version
            if self._mutations == mutations:  # nothing changed while the push streamed
                self._changes.clear()
        return PushResult(index_name=self._name, version=version, doc_count=doc_count)

    def _merge_expected(self, expected_version: int | None, merge: bool) -> int | None:
        self._check_open()
        if merge and expected_version is not None:
            raise InvalidArgumentError(
                "push_index(merge=True) sets its own expected version: leave expected_version out"
            )
        return self._version if merge else expected_version

    def _adopt(self, loaded: Loaded | None, discard_changes: bool) -> bool:
        """Swap in a newer loaded version, replaying unpushed local changes onto it.

        Replayed changes stay unpushed. The same id changed here and there: the local change
        wins (last writer wins, the writer being whoever pushes last).
        """
        if loaded is None:
            self._stale = False  # the store answered: our version is current
            return False
        if loaded.stale or loaded.version <= self._version:
            return False
        engine = loaded.engine
        if self._precision is not None:
            engine.set_precision(self._precision)
        # A session that uses keyword search gets the new version's index built here, outside
        # the lock (nobody else sees this engine yet), rather than at its next query.
        keywords = loaded.keywords
        if keywords is None and self._keywords is not None:
            keywords = _build_keywords(engine)
        with self._lock:
            local = self._engine
            if discard_changes:
                self._changes.clear()
            elif self._changes and local is not None:
                upserts = [i for i, op in self._changes.items() if op == _UPSERT]
                deletes = [i for i, op in self._changes.items() if op == _DELETE]
                if upserts:
                    docs = local.get(upserts)
                    ids, texts, metadata = _columns(docs)
                    engine.upsert(ids, texts, metadata, local.vectors_for(upserts))
                    if keywords is not None:
                        keywords.upsert(ids, texts, metadata)
                if deletes:
                    engine.delete(deletes)
                    if keywords is not None:
                        keywords.delete(deletes)
            # Queries in flight keep the engine they started with; new ones see this one.
            self._engine = engine
            self._keywords = keywords
            self._version = loaded.version
            self._stale = False
            self._mutations += 1
        return True

    def _lost_index(self) -> None:
        """The index was deleted under a merge push: push everything as a new index."""
        with self._lock:
            self._version = 0

    # -- async API -----------------------------------------------------------------------------

    async def add_docs(self, docs: Iterable[DocumentInfo]) -> AddResult:
        """Add documents, replacing those with the same ids; embeds texts that bring no vector."""
        prepared = self._prepare_add(docs)
        embedded = None
        if prepared.missing_rows:
            embedded = await self._model.aembed_documents(prepared.texts_to_embed)
        if len(prepared.ids) > _OFFLOAD_THRESHOLD:
            return await asyncio.to_thread(self._apply_add, prepared, embedded)
        return self._apply_add(prepared, embedded)

    async def delete_docs(self, ids: Iterable[str]) -> int:
        """Delete documents by id; return how many existed. Unknown ids are ignored."""
        return self._delete(ids)

    async def get_docs(
        self,
        ids: Iterable[str] | None = None,
        *,
        filter: dict[str, Any] | None = None,
        limit: int | None = None,
        include_embeddings: bool = False,
    ) -> list[DocumentInfo]:
        """Read documents by id (in the order given) and/or by filter; all of them if neither."""
        return self._get(ids, filter, limit, include_embeddings)

    async def query(self, text: str, options: QueryOptions | None = None) -> SearchResult:
        """Return the documents most similar to ``text`` (or to ``options.embedding``)."""
        started = time.perf_counter()
        options = self._check_query(text, options)
        vector = self._query_vector(options)
        if vector is None and self._needs_query_embedding(options):
            vector = await self._model.aembed_query(text)
        if self._keywords_pending(options):
            await asyncio.to_thread(self._indexes, keyword=True)
        return self._search(text, options, vector, started)

    async def push_index(
        self, expected_version: int | None = None, *, merge: bool = False, ttl: float | None = None
    ) -> PushResult:
        """Store this session as the index's next version, creating or replacing it.

        With ``expected_version=N`` the push succeeds only if the stored version is still N
        (0: only if the index does not exist) and raises ``ConflictError`` otherwise. With
        ``merge=True``, a push that finds a newer version replays this session's unpushed
        changes onto it and pushes again, so concurrent writers lose nothing. With
        ``ttl=seconds`` the store deletes the index once that long passes without a push (for
        short-lived indexes, e.g. one per conversation); a push without ``ttl`` clears it.
        """
        ttl = check_ttl(ttl)
        for attempt in range(MERGE_ATTEMPTS):
            expected = self._merge_expected(expected_version, merge)
            chunks, mutations = await asyncio.to_thread(self._encode)
            try:
                info = await self._store.aput(
                    self._project, self._name, chunks, expected_version=expected, ttl=ttl
                )
            except ConflictError:
                if not merge:
                    raise
                await asyncio.sleep(merge_backoff(attempt))
                await self._arebase()
                continue
            return self._pushed(info.version, info.doc_count, mutations)
        raise gave_up(self._name)

    async def _arebase(self) -> None:
        loaded = await self._hydrator.aload(self._name, None, self._model, newer_than=self._version)
        if loaded is None and await self._store.ahead(self._project, self._name) is None:
            self._lost_index()
        self._adopt(loaded, discard_changes=False)

    async def refresh(self, *, discard_changes: bool = False) -> bool:
        """Load the latest stored version if it is newer; return whether it was.

        Unpushed local changes are replayed onto it (and stay unpushed) unless
        ``discard_changes=True``.
        """
        self._check_open()
        loaded = await self._hydrator.aload(self._name, None, self._model, newer_than=self._version)
        return self._adopt(loaded, discard_changes)

    def _start_auto_refresh(self) -> None:
        """Keep this session fresh from a task on the running event loop."""
        self._refresher = asyncio.get_running_loop().create_task(self._auto_refresh())

    async def _auto_refresh(self) -> None:
        delay = 0.1
        while not self._closed:
            try:
                latest = await self._store.awatch(
                    self._project, self._name, after=self._version, timeout=WATCH_TIMEOUT
                )
                if latest is not None and latest > self._version:
                    await self.refresh()
                delay = 0.1
            except ServiceUnavailableError:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            except Exception as exc:  # a background task must not die of one bad round
                if self._closed:
                    return
                logger.warning("auto-refresh of index %r failed: %s", self._name, exc)
                await asyncio.sleep(1.0)

    async def close(self) -> None:
        """Release the session's memory; later calls raise."""
        self._close()

    def _close(self) -> None:
        with self._lock:
            self._closed = True
            self._engine = None
            self._keywords = None
        refresher = self._refresher
        if isinstance(refresher, asyncio.Task) and not refresher.done():
            refresher.get_loop().call_soon_threadsafe(refresher.cancel)

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close()

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close()


def _build_keywords(engine: Engine) -> KeywordIndex:
    return KeywordIndex.build(*_columns(engine.get()))


def _columns(
    docs: list[StoredDoc],
) -> tuple[list[str], list[str], list[dict[str, Any] | None]]:
    return [d.id for d in docs], [d.text for d in docs], [d.metadata for d in docs]
