"""A session's state and its exchanges with the store: push (merging, coalescing), refresh, follow.

:class:`SessionState` writes each exchange once, as a flow (:mod:`moss.flow`): the session's
async face awaits it, its blocking face runs it in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

from .embeddings import EmbeddingModel
from .errors import (
    ConflictError,
    IndexNotFoundError,
    InvalidArgumentError,
    MossError,
    ServiceUnavailableError,
)
from .flow import Flow, Io, Offload, Sleep
from .hydrator import Fetched, Hydrator, loaded_from
from .index.local import LocalIndex
from .loading import ChainStats, Loaded, delta_changes
from .snapshot.codec import DeltaData, encode_delta, encode_snapshot
from .snapshot.keywords import encode_keywords
from .stores.base import Chunks, check_ttl
from .types import IndexInfo, PushResult

#: A push is followed by a compaction (a full snapshot of the state it just stored) once the
#: chain since the last full snapshot holds this many deltas, or once their bytes pass this
#: fraction of the full snapshot's: an ordinary version, so crash-safe, and one that readers
#: holding the version before it skip (docs/snapshot-format.md).
COMPACT_CHAIN_LENGTH = 64
COMPACT_CHAIN_RATIO = 0.25
#: Below this size of the full snapshot, a compaction is sent instead of the delta.
COMPACT_IN_PLACE_BYTES = 1 << 20
#: How long one watch request waits before asking again (also bounds how late close() is seen).
WATCH_TIMEOUT = 10.0
#: Rounds of a merge push into an index deleted and created again meanwhile (each round is
#: another writer's delete or create: in practice one or two).
_MERGE_ROUNDS = 20

logger = logging.getLogger("moss")


@dataclass(frozen=True)
class Acquire:
    """A flow step: take a thread lock (blocking, or polling so the event loop keeps running).

    Polling rather than a worker thread: a cancelled task then never leaves the lock taken.
    """

    lock: threading.Lock

    def run(self) -> None:
        self.lock.acquire()

    async def arun(self) -> None:
        while not self.lock.acquire(blocking=False):
            await asyncio.sleep(0.002)


class SessionState:
    """What a session is: its name, version, model, store (through the hydrator) and local index."""

    def __init__(
        self,
        *,
        name: str,
        hydrator: Hydrator,
        model: EmbeddingModel,
        index: LocalIndex,
        version: int,
        stale: bool = False,
        chain: ChainStats | None = None,
    ) -> None:
        self.name = name
        self.hydrator = hydrator
        self.model = model
        self.index = index
        self.version = version
        self.stale = stale
        # The chain behind ``version`` as last seen (decides when a push compacts).
        self.chain = chain or ChainStats()
        self.closed = False
        # One push or refresh at a time: a second push waits, then sees what the first left.
        self.turn = threading.Lock()
        self.refresher: asyncio.Task[None] | threading.Thread | None = None

    @property
    def dimension(self) -> int | None:
        engine = self.index.engine
        return engine.dimension if engine is not None else self.model.dimension

    def check_open(self) -> None:
        if self.closed:
            raise MossError(f"session {self.name!r} is closed: open it again with client.session()")

    # -- pushing ---------------------------------------------------------------------------------

    def push(
        self,
        expected_version: int | None,
        merge: bool,
        ttl: float | None,
        *,
        only_if_changed: bool = False,
        author: str | None = None,
        message: str | None = None,
    ) -> Flow[PushResult | None]:
        """Push a delta of the change log when there is a base, followed by a compaction when
        the chain behind it is long; else (or when a small index's chain is long) a full
        snapshot. With ``only_if_changed``, None if nothing changed."""
        ttl = check_ttl(ttl)
        self.check_open()
        if merge and expected_version is not None:
            raise InvalidArgumentError(
                "push_index(merge=True) sets its own expected version: leave expected_version out"
            )
        yield Acquire(self.turn)
        try:
            if only_if_changed and not self.index.has_changes:
                return None
            self.check_open()
            send = partial(self.send, ttl=ttl, author=author, message=message)
            base = self.version
            due = self.compact_due()
            # A small index compacts by sending itself whole instead of the delta (readers
            # download it whole: it is small); a large one appends a compaction after it.
            small = due and self.chain.base_bytes < COMPACT_IN_PLACE_BYTES
            if base >= 1 and self.index.has_changes and not small:
                if merge:
                    yield from self.append(send)
                elif expected_version in (None, base):
                    try:
                        yield from send(delta=True, expected=base)
                    except ConflictError:
                        if expected_version is not None:
                            raise
                        yield from send(delta=False, expected=None)  # a plain push replaces
                else:
                    yield from send(delta=False, expected=expected_version)
                # Confirmed by the chain as the store counts it now: another writer may have
                # compacted since this session last looked (or the push replaced the index).
                if due and self.chain.length and self.compact_due():
                    yield from self.compact(send)
            elif merge:
                try:  # the first push, or nothing changed: only if nobody pushed meanwhile
                    yield from send(delta=False, expected=base)
                except ConflictError:
                    yield from self.append(send)
            else:
                yield from send(delta=False, expected=expected_version)
            return PushResult(index_name=self.name, version=self.version, doc_count=len(self.index))
        finally:
            self.turn.release()

    def compact_due(self) -> bool:
        """Whether the chain behind this session's version is long enough to compact."""
        chain = self.chain
        return (
            chain.length >= COMPACT_CHAIN_LENGTH
            or chain.bytes > COMPACT_CHAIN_RATIO * chain.base_bytes
        )

    def compact(self, send: Callable[..., Flow[IndexInfo]]) -> Flow[None]:
        """Store the state just pushed again as a full snapshot (kind ``compaction``) on top of
        it: readers holding that version skip it, cold opens start from it. Losing the race to
        another push skips it (the next push tries again)."""
        with contextlib.suppress(ConflictError):
            yield from send(delta=False, expected=self.version, kind="compaction")

    def send(
        self,
        *,
        delta: bool,
        expected: int | None,
        append: bool = False,
        kind: str = "full",
        ttl: float | None,
        author: str | None,
        message: str | None,
    ) -> Flow[IndexInfo]:
        """Encode and put one version; on success the session is at that version."""
        self.check_open()
        base = self.version
        encode = self.encode_delta if delta else partial(self.encode, kind=kind)
        chunks, mutations = yield Offload(partial(encode, author, message))
        store, project, name = self.hydrator.store, self.hydrator.project, self.name
        info: IndexInfo = yield Io(
            lambda: store.put(
                project, name, chunks, expected_version=expected, ttl=ttl, append=append
            ),
            lambda: store.aput(
                project, name, chunks, expected_version=expected, ttl=ttl, append=append
            ),
        )
        self.index.pushed(mutations)
        if append and info.version > base + 1:
            # Others appended meanwhile: apply what they wrote, then our own delta again
            # (last writer wins), so this session holds exactly the stored version.
            fetched = yield from self.hydrator.fetch(
                name, None, self.model, after=base, version=info.version
            )
            if fetched is not None:
                yield from self.catch_up(fetched)
        self.version = info.version
        self.chain = ChainStats(info.chain_length, info.chain_bytes, info.base_bytes)
        return info

    def append(self, send: Callable[..., Flow[IndexInfo]]) -> Flow[None]:
        """A merge push: append the change log after whatever the latest version is."""
        for _ in range(_MERGE_ROUNDS):
            try:
                yield from send(delta=True, expected=None, append=True)
                return
            except IndexNotFoundError:
                pass
            # The index was deleted (or expired) under us: push it as new, only if still
            # absent; if another writer created it meanwhile, an append needs no base.
            self.version = 0
            try:
                yield from send(delta=False, expected=0)
                return
            except ConflictError:
                continue
        raise ConflictError(
            f"index {self.name!r} was deleted and created again {_MERGE_ROUNDS} times during "
            "one merge push: push again"
        )

    def encode(
        self, author: str | None = None, message: str | None = None, *, kind: str = "full"
    ) -> tuple[Iterator[bytes | memoryview], int]:
        """The full snapshot of the local index as chunks, and the write count it reflects."""
        dimension = self.require_dimension()
        export = self.index.export(dimension, encode_keywords)
        parts = export.parts
        _, chunks = encode_snapshot(
            index_name=self.name,
            model_id=self.model.model_id,
            model_artifact=self.model.artifact_id,
            vectors=parts.vectors,
            ids=parts.ids,
            texts=parts.texts,
            metadata=parts.metadata,
            keywords=export.keywords,
            int8=parts.int8,
            index=parts.index,
            hnsw=parts.hnsw,
            graph=parts.graph,
            author=author,
            message=message,
            kind=kind,
        )
        return chunks, export.mutations

    def encode_delta(self, author: str | None, message: str | None) -> tuple[Chunks, int]:
        """The change log since the base version as a delta, and the write count it reflects."""
        dimension = self.require_dimension()
        changes, mutations = self.index.pending()
        _, chunks = encode_delta(
            index_name=self.name,
            model_id=self.model.model_id,
            model_artifact=self.model.artifact_id,
            dimension=dimension,
            ids=changes.ids,
            texts=changes.texts,
            metadata=changes.metadata,
            vectors=changes.vectors if changes.vectors is not None else [],
            deleted=changes.deletes,
            author=author,
            message=message,
            # The count after the change, so listings report the index's size (for an append,
            # exact only if nobody appended meanwhile: docs/snapshot-format.md).
            total_count=len(self.index),
        )
        return chunks, mutations

    def require_dimension(self) -> int:
        dimension = self.dimension
        if dimension is None:
            raise InvalidArgumentError(
                f"session {self.name!r} uses model {self.model.model_id!r} and has no "
                "documents yet, so its dimension is unknown: add a document before pushing"
            )
        return dimension

    # -- refreshing ------------------------------------------------------------------------------

    def refresh(self, discard_changes: bool) -> Flow[bool]:
        self.check_open()
        yield Acquire(self.turn)
        try:
            return (yield from self.reload(discard_changes=discard_changes))
        finally:
            self.turn.release()

    def reload(self, *, discard_changes: bool) -> Flow[bool]:
        """Catch up with the stored latest version (the caller holds the turn); return whether
        there was a newer one. Deltas apply in place; a full snapshot replaces the engine."""
        # Dropping local changes needs the stored state of their ids: fetch the whole chain.
        keep = self.version and not (discard_changes and self.index.has_changes)
        held = self.version if keep else None
        try:
            fetched = yield from self.hydrator.fetch(self.name, None, self.model, after=held)
        except IndexNotFoundError:
            fetched = None
        except ServiceUnavailableError:
            if self.hydrator.cache is None:
                raise
            return False  # a remote store is down: keep what we hold (as a stale open does)
        self.stale = False  # the store answered
        if fetched is None or fetched.version <= self.version:
            return False
        yield from self.catch_up(fetched, discard_changes=discard_changes)
        return True

    def catch_up(self, fetched: Fetched, *, discard_changes: bool = False) -> Flow[None]:
        """Apply a fetched chain: its deltas in place, or its full snapshot as a new engine."""
        if fetched.start is None:
            if fetched.deltas:  # (none: only compactions lay between, the state is the same)
                batch = delta_changes(d for _, d in fetched.deltas if isinstance(d, DeltaData))
                # In a worker thread under an event loop: the loop keeps serving other tasks.
                yield Offload(partial(self.index.apply_versions, [batch]))
            self.chain = self.chain.then(fetched.frames)
        else:
            loaded: Loaded = yield Offload(partial(loaded_from, fetched))
            self.index.adopt(loaded.engine, loaded.keywords, discard_changes=discard_changes)
            self.chain = loaded.chain
        self.version = fetched.version

    def follow(self) -> Flow[None]:
        """Refresh whenever the store reports a newer version, until the session closes."""
        store, project, name = self.hydrator.store, self.hydrator.project, self.name
        delay = 0.1
        while not self.closed:
            try:
                after = self.version
                latest = yield Io(
                    partial(store.watch, project, name, after=after, timeout=WATCH_TIMEOUT),
                    partial(store.awatch, project, name, after=after, timeout=WATCH_TIMEOUT),
                )
                if latest is not None and latest > self.version and not self.closed:
                    yield from self.refresh(discard_changes=False)
                delay = 0.1
            except ServiceUnavailableError:
                yield Sleep(delay)
                delay = min(delay * 2, 5.0)
            except Exception as exc:  # a background loop must not die of one bad round
                if self.closed:
                    return  # the client may already be closed under us
                logger.warning("auto-refresh of index %r failed: %s", name, exc)
                yield Sleep(1.0)

    def close(self) -> None:
        self.closed = True
        self.index.close()
        refresher = self.refresher
        if isinstance(refresher, asyncio.Task) and not refresher.done():
            refresher.get_loop().call_soon_threadsafe(refresher.cancel)
