"""A session's state and its exchanges with the store: push (merging, coalescing), refresh, follow.

:class:`SessionState` writes each exchange once, as a flow (:mod:`moss.flow`): the session's
async face awaits it, its blocking face runs it in place.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

from .embeddings import EmbeddingModel
from .errors import ConflictError, InvalidArgumentError, MossError, ServiceUnavailableError
from .flow import Flow, Io, Offload, Sleep
from .index.local import LocalIndex
from .loading import Hydrator, Loaded
from .snapshot.codec import encode_snapshot
from .snapshot.keywords import encode_keywords
from .stores.base import check_ttl
from .types import PushResult

#: A merge push keeps retrying on conflict for this many seconds, replaying local changes onto
#: each newer version, before it gives up with ConflictError.
MERGE_DEADLINE = 30.0
#: The first retry waits up to this long; each further one up to twice as long (capped below).
MERGE_FIRST_WAIT = 0.005
MERGE_MAX_WAIT = 0.5
#: How long one watch request waits before asking again (also bounds how late close() is seen).
WATCH_TIMEOUT = 10.0

logger = logging.getLogger("moss")


def merge_backoff(attempt: int) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): jittered exponential back-off.

    "Full jitter": uniform up to an exponentially growing cap, so racing writers spread out
    instead of colliding again in lockstep.
    """
    return random.uniform(0, min(MERGE_MAX_WAIT, MERGE_FIRST_WAIT * 2**attempt))


def gave_up(name: str, attempts: int) -> ConflictError:
    """The error of a merge push that met a newer version on every attempt until its deadline."""
    return ConflictError(
        f"index {name!r} kept changing: {attempts} merge attempts over {MERGE_DEADLINE:g} s "
        "all met a newer version; push again later"
    )


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
    ) -> None:
        self.name = name
        self.hydrator = hydrator
        self.model = model
        self.index = index
        self.version = version
        self.stale = stale
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

    # -- pushing and refreshing ----------------------------------------------------------------

    def push(
        self,
        expected_version: int | None,
        merge: bool,
        ttl: float | None,
        *,
        only_if_changed: bool = False,
    ) -> Flow[PushResult | None]:
        """Push (merging on conflict if asked); with ``only_if_changed``, None if nothing changed."""
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
            store, project, name = self.hydrator.store, self.hydrator.project, self.name
            deadline = time.monotonic() + MERGE_DEADLINE
            attempt = 0
            while True:
                self.check_open()
                expected = self.version if merge else expected_version
                chunks, mutations = yield Offload(self.encode)
                put = partial(store.put, project, name, chunks, expected_version=expected, ttl=ttl)
                aput = partial(
                    store.aput, project, name, chunks, expected_version=expected, ttl=ttl
                )
                try:
                    info = yield Io(put, aput)
                except ConflictError:
                    if not merge:
                        raise
                    attempt += 1
                    if time.monotonic() >= deadline:
                        raise gave_up(name, attempt) from None
                    yield Sleep(merge_backoff(attempt - 1))
                    yield from self.reload(discard_changes=False, rebase=True)
                    continue
                self.index.pushed(mutations)
                self.version = info.version
                return PushResult(index_name=name, version=info.version, doc_count=info.doc_count)
        finally:
            self.turn.release()

    def encode(self) -> tuple[Iterator[bytes | memoryview], int]:
        """The snapshot of the local index as chunks, and the write count it reflects."""
        dimension = self.dimension
        if dimension is None:
            raise InvalidArgumentError(
                f"session {self.name!r} uses model {self.model.model_id!r} and has no "
                "documents yet, so its dimension is unknown: add a document before pushing"
            )
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
        )
        return chunks, export.mutations

    def refresh(self, discard_changes: bool) -> Flow[bool]:
        self.check_open()
        yield Acquire(self.turn)
        try:
            return (yield from self.reload(discard_changes=discard_changes))
        finally:
            self.turn.release()

    def reload(self, *, discard_changes: bool, rebase: bool = False) -> Flow[bool]:
        """Adopt the stored version if newer (the caller holds the turn); return whether it was."""
        store, project, name = self.hydrator.store, self.hydrator.project, self.name
        loaded = yield from self.hydrator.load_flow(name, None, self.model, newer_than=self.version)
        if loaded is None and rebase:
            head = yield Io(partial(store.head, project, name), partial(store.ahead, project, name))
            if head is None:  # the index was deleted under a merge push: push it as new
                self.version = 0
        return self.adopt(loaded, discard_changes)

    def adopt(self, loaded: Loaded | None, discard_changes: bool) -> bool:
        """Swap in a newer loaded version, replaying unpushed local changes onto it."""
        if loaded is None:
            self.stale = False  # the store answered: our version is current
            return False
        if loaded.stale or loaded.version <= self.version:
            return False
        self.index.adopt(loaded.engine, loaded.keywords, discard_changes=discard_changes)
        self.version = loaded.version
        self.stale = False
        return True

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
