"""Open stored versions: check the model against each header, build an engine from a full
snapshot and the deltas after it (the fetching lives in :mod:`moss.hydrator`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from .embeddings import DEFAULT_MODEL_ID, CustomModel, EmbeddingModel, resolve_model
from .errors import InvalidArgumentError, ModelMismatchError, SnapshotError
from .index.columns import LazyColumn
from .index.engine import Engine
from .index.hnsw import GraphParts, HnswParams
from .index.keyword import KeywordIndex
from .index.local import Changes, LocalIndex
from .snapshot.codec import DeltaData, SnapshotData, SnapshotHeader
from .snapshot.keywords import decode_keywords

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


Frame = tuple[int, SnapshotData | DeltaData]


@dataclass(frozen=True)
class ChainStats:
    """The chain behind a version: deltas since the newest full snapshot, their bytes, and the
    full snapshot's bytes (a pusher compacts when it grows too long)."""

    length: int = 0
    bytes: int = 0
    base_bytes: int = 0

    def then(self, frames: Iterable[Frame]) -> ChainStats:
        """The stats after these versions."""
        stats = self
        for _, data in frames:
            size = data.header.total_size
            if isinstance(data, SnapshotData):
                stats = ChainStats(0, 0, size)
            else:
                stats = ChainStats(stats.length + 1, stats.bytes + size, stats.base_bytes)
        return stats


@dataclass
class Loaded:
    """A decoded version: the bound model, its engine, its number, and whether it came from a stale cache."""

    model: EmbeddingModel
    engine: Engine
    version: int
    stale: bool = False
    keywords: KeywordIndex | None = None
    chain: ChainStats = field(default_factory=ChainStats)


@dataclass(frozen=True)
class Decoded:
    """The immutable pieces of one decoded full snapshot; each session opened from it gets its own engine.

    The vectors are read-only (an engine writes new and changed rows to its own blocks) and each
    engine gets its own overlay over the shared lazy columns (ids too, with their id table), so
    opening again costs at most the id list and map (snapshots without an id table) and the
    keyword index, not a decode: a re-open of an unchanged 100k index drops from ~0.5 s to milliseconds.
    """

    version: int
    vectors: npt.NDArray[np.float32]
    ids: tuple[str, ...] | LazyColumn[str]
    texts: list[str] | LazyColumn[str]
    metadata: list[Metadata] | LazyColumn[Metadata]
    keywords: bytes | None
    size: int
    index_kind: str = "flat"
    hnsw: HnswParams | None = None
    #: The loaded graph, shared: its FAISS index views the checksummed section bytes, so an
    #: engine copies it before its first add (HnswGraph) and the others keep searching it.
    graph: GraphParts | None = None

    @classmethod
    def of(cls, version: int, data: SnapshotData) -> Decoded:
        data.vectors.flags.writeable = False
        return cls(
            version,
            data.vectors,
            data.ids if isinstance(data.ids, LazyColumn) else tuple(data.ids),
            data.texts,
            data.metadata,
            data.keywords,
            data.header.total_size,
            data.index_kind,
            data.hnsw,
            data.graph,
        )

    def pieces(self) -> tuple[Engine, KeywordIndex | None]:
        """A new engine (and keyword index) over these pieces, for a session of its own."""
        ids, texts, metadata = _own(self.ids), _own(self.texts), _own(self.metadata)
        keywords = _keywords(self.keywords, ids, metadata)
        engine = Engine.from_arrays(
            self.vectors,
            ids,
            texts,
            metadata,
            index=self.index_kind,
            hnsw=self.hnsw,
            graph=self.graph,
        )
        return engine, keywords


def _own(column: Sequence[_T]) -> list[_T] | LazyColumn[_T]:
    """A column an engine may adopt: lazy views are immutable, lists are copied."""
    return column if isinstance(column, LazyColumn) else list(column)


def _keywords(
    data: bytes | None, ids: Sequence[str], metadata: list[Metadata] | LazyColumn[Metadata]
) -> KeywordIndex | None:
    if data is None:
        return None
    try:
        return decode_keywords(data, ids, metadata)
    except SnapshotError:
        return None  # checksummed, so only a writer bug lands here: rebuild lazily


def full_pieces(data: SnapshotData) -> tuple[Engine, KeywordIndex | None]:
    """An engine that adopts a decoded full snapshot's arrays (int8 codes included)."""
    keywords = _keywords(data.keywords, data.ids, data.metadata)  # before the engine adopts them
    engine = Engine.from_arrays(
        data.vectors,
        data.ids,
        data.texts,
        data.metadata,
        precision=data.precision,
        int8=data.int8,
        index=data.index_kind,
        hnsw=data.hnsw,
        graph=data.graph,
    )
    return engine, keywords


def delta_changes(deltas: Iterable[DeltaData]) -> Changes:
    """Consecutive decoded deltas as one batch of writes for :meth:`LocalIndex.apply`.

    Each id's last operation wins (an upsert replaces the whole document), so one batch
    equals applying the deltas in turn, at the cost of one write instead of one per delta.
    """
    deltas = list(deltas)
    if not deltas:
        return Changes()
    if len(deltas) == 1:
        only = deltas[0]
        return Changes(only.ids, only.texts, only.metadata, only.vectors, only.deleted)
    last: dict[str, tuple[int, int] | None] = {}  # id -> (delta, row) of its upsert, or deleted
    for number, delta in enumerate(deltas):
        last.update((doc_id, (number, row)) for row, doc_id in enumerate(delta.ids))
        last.update(dict.fromkeys(delta.deleted))
    upserts = [(doc_id, where) for doc_id, where in last.items() if where is not None]
    ids = [doc_id for doc_id, _ in upserts]
    texts = [deltas[n].texts[row] for _, (n, row) in upserts]
    metadata = [deltas[n].metadata[row] for _, (n, row) in upserts]
    dimension = deltas[0].vectors.shape[1]
    vectors = np.empty((len(upserts), dimension), dtype=np.float32)
    for i, (_, (n, row)) in enumerate(upserts):
        vectors[i] = deltas[n].vectors[row]
    deleted = [doc_id for doc_id, where in last.items() if where is None]
    return Changes(ids, texts, metadata, vectors, deleted)


def assemble(
    model: EmbeddingModel,
    start: tuple[Engine, KeywordIndex | None],
    deltas: Iterable[Frame],
    version: int,
    chain: ChainStats,
    stale: bool = False,
) -> Loaded:
    """A full snapshot's engine with the deltas after it applied, as one loaded version."""
    local = LocalIndex(*start)
    batch = [delta for _, delta in deltas if isinstance(delta, DeltaData)]
    if batch:
        local.apply(delta_changes(batch), record=False)
    assert local.engine is not None
    return Loaded(model, local.engine, version, stale, local.keywords, chain)


class ModelCheck:
    """Checks every version's header against the requested model; binds the model at the first."""

    def __init__(self, model_id: str | None, model: EmbeddingModel | None) -> None:
        self.model_id = model_id
        self.model = model
        self.bound: EmbeddingModel | None = None

    def __call__(self, version: int, header: SnapshotHeader) -> None:
        self.bound = model_for_header(header, self.model_id, self.bound or self.model)
