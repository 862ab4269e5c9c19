"""Fetch versions of one project's indexes as chains (a full snapshot and the deltas after it,
or only the deltas after a version held), through a disk cache for remote stores. The files of
a local file store (and of the cache) are mapped, not read: processes that open the same
version share its vectors in the page cache.

The decision logic lives once, as flows (:mod:`moss.flow`), driven blocking or awaited.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial

from .embeddings import EmbeddingModel
from .errors import IndexNotFoundError, ServiceUnavailableError, SnapshotError
from .flow import Flow, Io, Offload
from .index.engine import Engine
from .index.keyword import KeywordIndex
from .loading import (
    ChainStats,
    Decoded,
    Frame,
    Loaded,
    ModelCheck,
    assemble,
    full_pieces,
)
from .snapshot.chain import ChainReader
from .snapshot.codec import DeltaData, SnapshotData, SnapshotHeader
from .snapshot.mapped import map_snapshot
from .stores.base import AsyncDownload, Download, Store
from .stores.cache import SKIPPED, FrameTee, SnapshotCache
from .stores.file import FileStore

Start = tuple[Engine, KeywordIndex | None]


@dataclass
class Fetched:
    """A downloaded chain: its target version, the bound model (None when no frame came: only
    compactions lay between the version held and the target), the full snapshot it starts
    with (as a fresh engine) if any, and the deltas to apply after it (or after the version
    the caller holds)."""

    version: int
    model: EmbeddingModel | None
    start: Start | None
    deltas: list[Frame]
    frames: list[Frame]


@dataclass
class _Memo:
    """The last decoded chain of an index (remote stores, float32): re-opens skip the decode."""

    header: SnapshotHeader
    full: Decoded
    deltas: list[Frame] = field(default_factory=list)

    @property
    def last(self) -> int:
        return self.deltas[-1][0] if self.deltas else self.full.version


@dataclass(frozen=True)
class _ChainDrain:
    """A flow step: feed a whole chain download to the reader (and to the cache), then close it."""

    download: Download | AsyncDownload
    reader: ChainReader
    tee: FrameTee | None

    def run(self) -> None:
        assert isinstance(self.download, Download)  # store.get_chain's
        try:
            for chunk in self.download:
                self.reader.feed(chunk)
                if self.tee is not None:
                    self.tee.feed(chunk)
        finally:
            self.download.close()

    async def arun(self) -> None:
        assert isinstance(self.download, AsyncDownload)  # store.aget_chain's
        try:
            async for chunk in self.download:
                self.reader.feed(chunk)
                if self.tee is not None:
                    await asyncio.to_thread(self.tee.feed, chunk)
        finally:
            await self.download.aclose()


def _kind(data: SnapshotData | DeltaData) -> str:
    return "full" if isinstance(data, SnapshotData) else "delta"


class Hydrator:
    """Load versions of one project's indexes from a store, through a disk cache for remote stores."""

    def __init__(self, store: Store, project: str, cache: SnapshotCache | None) -> None:
        self.store = store
        self.project = project
        # A local store is its own cache: copying its files would only cost time and disk.
        self.cache = None if getattr(store, "is_local", False) else cache
        self._memo: dict[str, _Memo] = {}

    # -- fetching chains ------------------------------------------------------------------------

    def fetch(
        self,
        name: str,
        model_id: str | None,
        model: EmbeddingModel | None,
        *,
        after: int | None = None,
        version: int | None = None,
    ) -> Flow[Fetched | None]:
        """Download the chain to ``version`` (the latest if None); None if ``after`` is current."""
        check = ModelCheck(model_id, model)
        got = yield from self.fetch_frames(name, after=after, version=version, check=check)
        if got is None:
            return None
        target, frames = got
        if not frames:
            return Fetched(target, check.bound or model, None, [], [])
        assert check.bound is not None
        start, deltas = self._split(name, frames)
        return Fetched(target, check.bound, start, deltas, frames)

    def fetch_frames(
        self,
        name: str,
        *,
        after: int | None = None,
        version: int | None = None,
        check: ModelCheck | None = None,
    ) -> Flow[tuple[int, list[Frame]] | None]:
        """The chain's target version and its decoded frames (cached for remote stores);
        None if ``after`` is current. ``check`` sees every version's header. Versions after
        ``after`` missing from a chain of deltas are compactions (equal to the version before):
        skipped, and remembered as such by the cache."""
        store, project = self.store, self.project
        if isinstance(store, FileStore):
            mapped = partial(self._mapped_chain, store, name, after, version, check)
            got: tuple[int, list[Frame]] | None = yield Offload(mapped)
            return got
        download = yield Io(
            lambda: store.get_chain(project, name, after=after, version=version),
            lambda: store.aget_chain(project, name, after=after, version=version),
        )
        if download.not_modified:
            return None
        reader = ChainReader(expected_name=name, on_header=check)
        with self._tee(name) as tee:
            yield _ChainDrain(download, reader, tee)
            frames = reader.finish()
            skipped: set[int] = set()
            if after is not None and all(isinstance(d, DeltaData) for _, d in frames):
                skipped = set(range(after + 1, download.version + 1))
                skipped.difference_update(number for number, _ in frames)
            if tee is not None:
                tee.commit({number: _kind(data) for number, data in frames}, skipped)
        if not frames and not skipped:
            raise SnapshotError(f"the store sent an empty chain for index {name!r}")
        return download.version, frames

    def _mapped_chain(
        self,
        store: FileStore,
        name: str,
        after: int | None,
        version: int | None,
        check: ModelCheck | None,
    ) -> tuple[int, list[Frame]] | None:
        """A file store's chain, its files mapped instead of streamed, so processes that open
        the same version share its pages; None if ``after`` is current."""
        for attempt in range(2):
            target, files = store.chain_paths(self.project, name, after=after, version=version)
            if target == after:
                return None
            try:
                frames = [
                    (number, map_snapshot(path, expected_name=name)) for number, _, path in files
                ]
            except FileNotFoundError:  # pruned after planning: plan again, once
                if attempt:
                    raise IndexNotFoundError(
                        f"version {target} of index {name!r} was pruned while it was opened: retry"
                    ) from None
                continue
            if check is not None:
                for number, data in frames:
                    check(number, data.header)
            return target, frames
        raise AssertionError("unreachable")  # pragma: no cover

    def _split(self, name: str, frames: list[Frame]) -> tuple[Start | None, list[Frame]]:
        """The full snapshot a chain starts with (as an engine) and the deltas after it."""
        fulls = [i for i, (_, data) in enumerate(frames) if isinstance(data, SnapshotData)]
        if not fulls:
            memo = self._memo.get(name)
            if memo is not None and memo.last == frames[0][0] - 1:
                memo.deltas.extend(frames)
            elif memo is not None:  # past a skipped compaction: re-opens read the cache
                self._memo.pop(name, None)
            return None, frames
        number, data = frames[fulls[-1]]
        assert isinstance(data, SnapshotData)
        deltas = frames[fulls[-1] + 1 :]
        if self.cache is None or data.int8 is not None:
            # int8 codes are updated in place by writes, so those versions are not shared.
            self._memo.pop(name, None)
            return full_pieces(data), deltas
        decoded = Decoded.of(number, data)
        self._memo[name] = _Memo(data.header, decoded, list(deltas))
        return decoded.pieces(), deltas

    @contextlib.contextmanager
    def _tee(self, name: str) -> Iterator[FrameTee | None]:
        if self.cache is None:
            yield None
            return
        with self.cache.chain_writer(self.store.location, self.project, name) as tee:
            yield tee

    # -- opening ----------------------------------------------------------------------------------

    def load_flow(
        self,
        name: str,
        model_id: str | None,
        model: EmbeddingModel | None,
        version: int | None = None,
    ) -> Flow[Loaded | None]:
        """The latest (or given) version; None if the index does not exist.

        A remote store's newest cached version is brought up to date with the deltas after it.
        """
        chain = self._cached_chain(name)
        held = chain[-1][0] if chain else None
        cached = partial(self._from_cache, name, model_id=model_id, model=model)
        in_cache = version is not None and chain and chain[0][0] <= version <= chain[-1][0]
        if in_cache and (hit := (yield Offload(partial(cached, version)))):
            return hit  # type: ignore[no-any-return]
        after = held if held is not None and (version is None or held < version) else None
        try:
            fetched = yield from self.fetch(name, model_id, model, after=after, version=version)
        except IndexNotFoundError:
            if version is not None:
                raise
            return None
        except ServiceUnavailableError:
            if held is None or not (hit := (yield Offload(partial(cached, held, stale=True)))):
                raise
            return hit  # type: ignore[no-any-return]
        if fetched is None:  # the cached version is the latest
            assert held is not None
            if hit := (yield Offload(partial(cached, held))):
                return hit  # type: ignore[no-any-return]
            fetched = yield from self.fetch(name, model_id, model, version=held)
        elif fetched.start is None:  # deltas after the cached version
            assert held is not None
            base = yield Offload(partial(cached, held))
            if base is not None and not fetched.frames:  # only compactions since
                base.version = fetched.version
                return base  # type: ignore[no-any-return]
            if base is not None:
                start = (base.engine, base.keywords)
                chain_stats = base.chain.then(fetched.frames)
                model = fetched.model or base.model
                return assemble(model, start, fetched.deltas, fetched.version, chain_stats)
            fetched = yield from self.fetch(name, model_id, model, version=fetched.version)
        assert fetched is not None and fetched.start is not None
        return loaded_from(fetched)

    def _cached_chain(self, name: str) -> list[tuple[int, str]]:
        if self.cache is None:
            return []
        return self.cache.chain(self.store.location, self.project, name)

    def _from_cache(
        self,
        name: str,
        upto: int,
        *,
        model_id: str | None,
        model: EmbeddingModel | None,
        stale: bool = False,
    ) -> Loaded | None:
        """Rebuild a cached version; None if it is not cached or found damaged (then dropped)."""
        chain = [(v, kind) for v, kind in self._cached_chain(name) if v <= upto]
        if not chain or chain[-1][0] != upto:
            return None
        chain = [(v, kind) for v, kind in chain if kind != SKIPPED]  # compactions skipped
        check = ModelCheck(model_id, model)
        memo = self._memo.get(name)
        if memo is not None and memo.full.version == chain[0][0] and memo.last >= upto:
            check(memo.full.version, memo.header)
            deltas = [frame for frame in memo.deltas if frame[0] <= upto]
            sizes = sum(data.header.total_size for _, data in deltas)
            stats = ChainStats(len(deltas), sizes, memo.full.size)
            assert check.bound is not None
            return assemble(check.bound, memo.full.pieces(), deltas, upto, stats, stale)
        frames: list[Frame] = []
        for number, _ in chain:
            data = self._read_cached(name, number, check)
            if data is None:
                return None
            frames.append((number, data))
        start, deltas = self._split(name, frames)
        assert start is not None and check.bound is not None
        return assemble(check.bound, start, deltas, upto, ChainStats().then(frames), stale)

    def _read_cached(
        self, name: str, number: int, check: ModelCheck
    ) -> SnapshotData | DeltaData | None:
        assert self.cache is not None
        where = (self.store.location, self.project, name, number)
        handle = self.cache.open(*where)
        if handle is None:
            return None
        with handle:
            path = handle.name
        # Mapped, not read: processes opening the same cached version share its pages. Cached
        # files are only ever replaced by rename, never rewritten, so the mapping stays valid.
        try:
            data = map_snapshot(path, expected_name=name)
        except SnapshotError:
            self.cache.discard(*where)
            return None
        except FileNotFoundError:  # pruned since it was opened: as if not cached
            return None
        check(number, data.header)
        return data


def loaded_from(fetched: Fetched) -> Loaded:
    """A fetched chain that starts with a full snapshot, as one loaded version."""
    assert fetched.start is not None and fetched.model is not None
    stats = ChainStats().then(fetched.frames)
    return assemble(fetched.model, fetched.start, fetched.deltas, fetched.version, stats)
