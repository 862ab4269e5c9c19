"""Open stored versions: check the model against the header, decode into an engine, cache.

The decision logic lives once, in :meth:`Hydrator.load_flow`, driven blocking or awaited.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, BinaryIO, TypeVar

import numpy as np
import numpy.typing as npt

from .embeddings import DEFAULT_MODEL_ID, CustomModel, EmbeddingModel, resolve_model
from .errors import (
    IndexNotFoundError,
    InvalidArgumentError,
    ModelMismatchError,
    ServiceUnavailableError,
    SnapshotError,
)
from .flow import Flow, Io, Offload
from .index.columns import LazyColumn
from .index.engine import Engine
from .index.keyword import KeywordIndex
from .snapshot.codec import SnapshotData, SnapshotHeader, SnapshotReader
from .snapshot.keywords import decode_keywords
from .stores.base import AsyncDownload, Download, Store
from .stores.cache import SnapshotCache
from .stores.chunks import CHUNK_SIZE

_T = TypeVar("_T")
Metadata = dict[str, Any] | None


def requested_model(model_id: str | None, model: EmbeddingModel | None) -> EmbeddingModel | None:
    """Check what the caller asked for; return the model object if it is already known."""
    if model is not None:
        if not isinstance(model, EmbeddingModel):
            raise InvalidArgumentError(
                f"model must be an EmbeddingModel (e.g. EmbedderModel(embedder, model_id=...)), "
                f"got {type(model).__name__}"
            )
        if model_id is not None and model_id != model.model_id:
            raise InvalidArgumentError(
                f"model_id {model_id!r} and model.model_id {model.model_id!r} differ: pass one of them"
            )
        return model
    if model_id is not None and not isinstance(model_id, str):
        raise InvalidArgumentError(f"model_id must be a string, got {type(model_id).__name__}")
    return None


def model_for_new_index(model_id: str | None, model: EmbeddingModel | None) -> EmbeddingModel:
    """The model of a session that starts empty (no stored version yet)."""
    return model if model is not None else resolve_model(model_id or DEFAULT_MODEL_ID)


def model_for_header(
    header: SnapshotHeader, model_id: str | None, model: EmbeddingModel | None
) -> EmbeddingModel:
    """The model to use on a stored index; raise ModelMismatchError if the caller's differs."""
    stored = header.model_id
    asked = model.model_id if model is not None else model_id
    if asked is not None and asked != stored:
        raise ModelMismatchError(
            f"index {header.index_name!r} was built with embedding model {stored!r}, but "
            f"{asked!r} was requested: open it with model_id={stored!r} (or leave model_id out), "
            "or use another index name for the other model"
        )
    if model is None:
        if stored == "custom":
            model = CustomModel(dimension=header.dimension)
        else:
            try:
                model = resolve_model(stored)
            except InvalidArgumentError:
                raise InvalidArgumentError(
                    f"index {header.index_name!r} was built with your own embedding model {stored!r}: "
                    f"open it with model=EmbedderModel(your_embedder, model_id={stored!r})"
                ) from None
    if model.artifact_id and header.model_artifact and model.artifact_id != header.model_artifact:
        raise ModelMismatchError(
            f"index {header.index_name!r} was built with {stored!r} artifact {header.model_artifact}, "
            f"but this process has artifact {model.artifact_id}: install the same model version "
            "on every participant"
        )
    if model.dimension is not None and model.dimension != header.dimension:
        raise ModelMismatchError(
            f"index {header.index_name!r} holds {header.dimension}-dimensional vectors, but model "
            f"{stored!r} here produces {model.dimension}: use the same model on every participant"
        )
    return model


@dataclass
class Loaded:
    """A decoded version: the bound model, its engine, its number, and whether it came from a stale cache."""

    model: EmbeddingModel
    engine: Engine
    version: int
    stale: bool = False
    keywords: KeywordIndex | None = None


@dataclass(frozen=True)
class Decoded:
    """The immutable pieces of one decoded version; each session opened from it gets its own engine.

    The vectors are read-only (an engine copies them before its first in-place write) and lazy
    columns are immutable views, so opening again costs the id list, the id map and the keyword
    index, not a decode: a re-open of an unchanged 100k index drops from ~0.5 s to milliseconds.
    """

    version: int
    header: SnapshotHeader
    vectors: npt.NDArray[np.float32]
    ids: tuple[str, ...]
    texts: list[str] | LazyColumn[str]
    metadata: list[Metadata] | LazyColumn[Metadata]
    keywords: bytes | None

    def open(
        self, model_id: str | None, model: EmbeddingModel | None, stale: bool = False
    ) -> Loaded:
        """A new engine over these pieces, for a session of its own."""
        bound = model_for_header(self.header, model_id, model)
        ids, texts, metadata = list(self.ids), _own(self.texts), _own(self.metadata)
        keywords = _keywords(self.keywords, ids, metadata)
        engine = Engine.from_arrays(self.vectors, ids, texts, metadata)
        return Loaded(bound, engine, self.version, stale, keywords)


def _own(column: list[_T] | LazyColumn[_T]) -> list[_T] | LazyColumn[_T]:
    """A column an engine may adopt: lazy views are immutable, lists are copied."""
    return column if isinstance(column, LazyColumn) else list(column)


def _keywords(
    data: bytes | None, ids: list[str], metadata: list[Metadata] | LazyColumn[Metadata]
) -> KeywordIndex | None:
    if data is None:
        return None
    try:
        return decode_keywords(data, ids, metadata)
    except SnapshotError:
        return None  # checksummed, so only a writer bug lands here: rebuild lazily


class Decoder:
    """Feed snapshot bytes in; check the model as soon as the header is known; get an engine out.

    With ``shareable``, float32 versions also leave their pieces in :attr:`decoded` for cheap
    re-opens (int8 codes are updated in place by writes, so those versions are not shared).
    """

    def __init__(
        self,
        name: str,
        model_id: str | None,
        model: EmbeddingModel | None,
        *,
        shareable: bool = False,
    ) -> None:
        self._reader = SnapshotReader(keep_data=True, expected_name=name)
        self._model_id = model_id
        self._model = model
        self._bound: EmbeddingModel | None = None
        self._shareable = shareable
        self.decoded: Decoded | None = None

    def feed(self, chunk: bytes | memoryview) -> None:
        self._reader.feed(chunk)
        if self._bound is None and self._reader.header is not None:
            self._bound = model_for_header(self._reader.header, self._model_id, self._model)

    def finish(self, version: int, stale: bool = False) -> Loaded:
        data = self._reader.finish()
        assert isinstance(data, SnapshotData)
        bound = self._bound or model_for_header(data.header, self._model_id, self._model)
        if self._shareable and data.int8 is None:
            data.vectors.flags.writeable = False
            self.decoded = Decoded(
                version,
                data.header,
                data.vectors,
                tuple(data.ids),
                data.texts,
                data.metadata,
                data.keywords,
            )
            return self.decoded.open(self._model_id, bound, stale)
        keywords = _keywords(
            data.keywords, data.ids, data.metadata
        )  # before from_arrays adopts them
        engine = Engine.from_arrays(
            data.vectors,
            data.ids,
            data.texts,
            data.metadata,
            precision=data.precision,
            int8=data.int8,
        )
        return Loaded(bound, engine, version, stale, keywords)


@dataclass(frozen=True)
class _Drain:
    """A flow step: feed a whole download to the decoder (and to the cache file), then close it."""

    download: Download | AsyncDownload
    decoder: Decoder
    out: BinaryIO | None

    def run(self) -> None:
        assert isinstance(self.download, Download)  # store.get's
        try:
            for chunk in self.download:
                self.decoder.feed(chunk)
                if self.out is not None:
                    self.out.write(chunk)
        finally:
            self.download.close()

    async def arun(self) -> None:
        assert isinstance(self.download, AsyncDownload)  # store.aget's
        try:
            async for chunk in self.download:
                self.decoder.feed(chunk)
                if self.out is not None:
                    await asyncio.to_thread(self.out.write, chunk)
        finally:
            await self.download.aclose()


def _file_chunks(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while block := handle.read(CHUNK_SIZE):
            yield block


class Hydrator:
    """Load versions of one project's indexes from a store, through a disk cache for remote stores."""

    def __init__(self, store: Store, project: str, cache: SnapshotCache | None) -> None:
        self.store = store
        self.project = project
        # A local store is its own cache: copying its files would only cost time and disk.
        self.cache = None if getattr(store, "is_local", False) else cache
        # The last decoded version of each index (remote stores only), for cheap re-opens.
        self._decoded: dict[str, Decoded] = {}

    def _decoder(self, name: str, model_id: str | None, model: EmbeddingModel | None) -> Decoder:
        return Decoder(name, model_id, model, shareable=self.cache is not None)

    def _remember(self, name: str, decoder: Decoder) -> None:
        if decoder.decoded is not None:
            self._decoded[name] = decoder.decoded

    def _latest_cached(self, name: str, version: int | None) -> int | None:
        if self.cache is None or version is not None:
            return None
        return self.cache.latest(self.store.location, self.project, name)

    def _from_cache(
        self,
        name: str,
        version: int,
        model_id: str | None,
        model: EmbeddingModel | None,
        stale: bool = False,
    ) -> Loaded | None:
        """Decode a cached version; None if it is not cached or found damaged (then dropped)."""
        if self.cache is None:
            return None
        decoded = self._decoded.get(name)
        if decoded is not None and decoded.version == version:
            return decoded.open(model_id, model, stale)
        handle = self.cache.open(self.store.location, self.project, name, version)
        if handle is None:
            return None
        decoder = self._decoder(name, model_id, model)
        try:
            for chunk in _file_chunks(handle):
                decoder.feed(chunk)
            loaded = decoder.finish(version, stale)
            self._remember(name, decoder)
            return loaded
        except SnapshotError:
            self.cache.discard(self.store.location, self.project, name, version)
            return None

    def load_flow(
        self,
        name: str,
        model_id: str | None,
        model: EmbeddingModel | None,
        version: int | None = None,
        *,
        newer_than: int | None = None,
    ) -> Flow[Loaded | None]:
        """The latest (or given) version; None if the index is absent or not newer than ``newer_than``."""
        if version is not None and (
            hit := (yield Offload(partial(self._from_cache, name, version, model_id, model)))
        ):
            return hit  # type: ignore[no-any-return]
        cached = self._latest_cached(name, version)
        store, project, if_none_match = self.store, self.project, newer_than or cached
        try:
            download = yield Io(
                lambda: store.get(project, name, version, if_none_match=if_none_match),
                lambda: store.aget(project, name, version, if_none_match=if_none_match),
            )
        except IndexNotFoundError:
            if version is not None:
                raise
            return None
        except ServiceUnavailableError:
            if cached is None:
                raise
            stale = partial(self._from_cache, name, cached, model_id, model, True)
            if not (hit := (yield Offload(stale))):
                raise
            return hit  # type: ignore[no-any-return]
        if download.not_modified:
            if newer_than is not None and download.version == newer_than:
                return None
            number = download.version
            if hit := (yield Offload(partial(self._from_cache, name, number, model_id, model))):
                return hit  # type: ignore[no-any-return]
            download = yield Io(
                lambda: store.get(project, name, number), lambda: store.aget(project, name, number)
            )
        decoder = self._decoder(name, model_id, model)
        with self._cache_writer(name, download.version) as out:
            yield _Drain(download, decoder, out)
            loaded = decoder.finish(download.version)
        self._remember(name, decoder)
        return loaded

    @contextlib.contextmanager
    def _cache_writer(self, name: str, version: int) -> Iterator[BinaryIO | None]:
        if self.cache is None:
            yield None
            return
        with self.cache.writer(self.store.location, self.project, name, version) as out:
            yield out
