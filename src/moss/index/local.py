"""LocalIndex: a session's documents in memory, vector and keyword index behind one lock.

Every write (upsert, delete, adopting a newer version with local changes replayed onto it)
takes the one lock and updates the engine, the keyword index and the change log together, so a
query never sees one index ahead of the other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .engine import Engine, EngineExport, StoredDoc
from .fusion import Candidates, gather_many
from .hnsw import HnswParams
from .keyword import KeywordIndex

__all__ = ["Changes", "LocalIndex"]

Metadata = dict[str, Any] | None


@dataclass
class Changes:
    """A batch of writes: upserted documents (columns and vectors) and deleted ids."""

    ids: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    metadata: list[Metadata] = field(default_factory=list)
    vectors: npt.NDArray[np.float32] | None = None
    deletes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Export:
    """Everything a push encodes, read under the lock, and the write count it reflects."""

    parts: EngineExport
    keywords: bytes | None
    mutations: int


class LocalIndex:
    """The vector engine, the keyword index (built at the first keyword query) and the change log.

    The change log maps each id written since the loaded version to ``"upsert"`` or
    ``"delete"``; values are read back from the engine (:meth:`changes`), so it costs only ids.
    """

    def __init__(
        self,
        engine: Engine | None = None,
        keywords: KeywordIndex | None = None,
        *,
        precision: str | None = None,
        index: str | None = None,
        hnsw: HnswParams | None = None,
    ) -> None:
        # The precision and index kind asked for at open (None: the stored index's, float32
        # and flat for a new one); ``hnsw`` is already checked (``hnsw_params``).
        self._precision = precision
        self._index = index
        self._hnsw = hnsw
        self._engine = engine
        self._keywords = keywords
        self._changes: dict[str, str] = {}
        self._mutations = 0
        self._lock = threading.Lock()

    # -- reads --------------------------------------------------------------------------------

    @property
    def engine(self) -> Engine | None:
        """The current engine (None before the first vector of a new index, and once closed)."""
        return self._engine

    @property
    def keywords(self) -> KeywordIndex | None:
        """The keyword index if it was built (or carried by the loaded snapshot)."""
        return self._keywords

    @property
    def precision(self) -> str:
        if self._engine is not None:
            return self._engine.precision
        return self._precision or "float32"

    @property
    def index_kind(self) -> str:
        """``"flat"`` or ``"hnsw"``: the engine's kind, else the one asked for at open."""
        if self._engine is not None:
            return self._engine.index_kind
        return self._index or "flat"

    def __len__(self) -> int:
        engine = self._engine
        return len(engine) if engine is not None else 0

    @property
    def has_changes(self) -> bool:
        """Whether anything was written since the loaded version or the last push."""
        return bool(self._changes)

    def get(
        self, ids: Sequence[str] | None, filter: dict[str, Any] | None, limit: int | None
    ) -> tuple[list[StoredDoc], Engine | None]:
        """Documents by id and/or filter, with the engine they were read from (for vectors)."""
        engine = self._engine
        if engine is None:
            return [], None
        return engine.get(ids, filter=filter, limit=limit), engine

    def changes(self) -> Changes:
        """The change log read out: upserted documents with their vectors, and deleted ids."""
        with self._lock:
            return self._read_changes()

    def pending(self) -> tuple[Changes, int]:
        """The change log read out, and the write count it reflects (for :meth:`pushed`)."""
        with self._lock:
            return self._read_changes(), self._mutations

    def _read_changes(self) -> Changes:
        deletes = [i for i, op in self._changes.items() if op == "delete"]
        upserts = [i for i, op in self._changes.items() if op == "upsert"]
        if not upserts or self._engine is None:
            return Changes(deletes=deletes)
        docs = self._engine.get(upserts)
        ids, texts, metadata = _columns(docs)
        return Changes(ids, texts, metadata, self._engine.vectors_for(ids), deletes)

    def keywords_pending(self) -> bool:
        """Whether a keyword query must build the keyword index first."""
        return self._keywords is None and self._engine is not None

    def gather(
        self,
        index_name: str,
        vector: npt.NDArray[np.float32] | None,
        text: str,
        *,
        alpha: float,
        depth: int,
        filter: dict[str, Any] | None,
        min_score: float | None,
        ef_search: int | None = None,
    ) -> Candidates:
        """Each side's ranked candidates (the keyword side built now if this is its first use)."""
        if vector is None:
            return Candidates([], [])
        return self.gather_many(
            index_name,
            vector[np.newaxis, :],
            [text],
            alpha=alpha,
            depth=depth,
            filter=filter,
            min_score=min_score,
            ef_search=ef_search,
        )[0]

    def gather_many(
        self,
        index_name: str,
        vectors: npt.NDArray[np.float32],
        texts: Sequence[str],
        *,
        alpha: float,
        depth: int,
        filter: dict[str, Any] | None,
        min_score: float | None,
        ef_search: int | None = None,
    ) -> list[Candidates]:
        """:meth:`gather` for each row of ``vectors`` and its text, the vectors scored together."""
        with self._lock:
            engine = self._engine
            if alpha < 1.0 and engine is not None and self._keywords is None:
                self._keywords = build_keywords(engine)
            keywords = self._keywords if alpha < 1.0 else None
        if engine is None:
            return [Candidates([], []) for _ in texts]
        return gather_many(
            index_name,
            engine,
            keywords,
            self._lock,
            vectors,
            texts,
            alpha=alpha,
            depth=depth,
            filter=filter,
            min_score=min_score,
            ef_search=ef_search,
        )

    def unchanged(
        self, ids: Sequence[str], texts: Sequence[str]
    ) -> tuple[list[int], npt.NDArray[np.float32] | None]:
        """Positions of the ``(ids[i], texts[i])`` already stored with exactly that text, and
        their stored vectors (so re-adding an unchanged text embeds nothing)."""
        with self._lock:
            engine = self._engine
            if engine is None or not ids:
                return [], None
            stored = {doc.id: doc.text for doc in engine.get(ids)}
            if not stored:
                return [], None
            positions = [
                i
                for i, (doc_id, text) in enumerate(zip(ids, texts, strict=True))
                if stored.get(doc_id) == text
            ]
            if not positions:
                return [], None
            return positions, engine.vectors_for([ids[i] for i in positions])

    def build_keywords(self) -> None:
        """Build the keyword index now (callers move this to a worker thread when large)."""
        with self._lock:
            if self._engine is not None and self._keywords is None:
                self._keywords = build_keywords(self._engine)

    def export(
        self, dimension: int, encode_keywords: Callable[[KeywordIndex, list[str]], bytes]
    ) -> Export:
        """The documents to push (an empty engine of ``dimension`` if there are none yet).

        The keyword index is encoded under the lock too (by the snapshot layer's
        ``encode_keywords``), so it matches the exported rows.
        """
        with self._lock:
            if self._engine is None:
                self._engine = self._new_engine(dimension)
            parts = self._engine.export_all()
            keywords = self._keywords
            encoded = encode_keywords(keywords, parts.ids) if keywords is not None else None
            return Export(parts, encoded, self._mutations)

    # -- writes -------------------------------------------------------------------------------

    def _new_engine(self, dimension: int) -> Engine:
        """The engine of a new index: the precision and index kind asked for at open."""
        return Engine(
            dimension,
            precision=self._precision or "float32",
            index=self._index or "flat",
            hnsw=self._hnsw,
        )

    def upsert(
        self,
        ids: list[str],
        texts: list[str],
        metadata: list[Metadata],
        vectors: npt.NDArray[np.float32],
    ) -> tuple[int, int]:
        """Add or replace documents in both indexes; return (added, updated)."""
        with self._lock:
            if self._engine is None:  # a new index learns its dimension from its first vectors
                self._engine = self._new_engine(vectors.shape[1])
            return self._apply(self._engine, self._keywords, Changes(ids, texts, metadata, vectors))

    def delete(self, ids: list[str]) -> int:
        """Delete documents from both indexes; return how many existed."""
        with self._lock:
            if self._engine is None:
                return 0
            return self._apply(self._engine, self._keywords, Changes(deletes=ids))[1]

    def apply(self, changes: Changes, *, record: bool = True) -> tuple[int, int]:
        """Apply a batch of upserts then deletes atomically; return (added, updated+deleted).

        ``record=False`` applies changes that came from the store (they are not local changes
        to push); :meth:`adopt` replays the change log through the same path.
        """
        with self._lock:
            if self._engine is None:
                if changes.vectors is None:
                    return 0, 0
                self._engine = self._new_engine(changes.vectors.shape[1])
            return self._apply(self._engine, self._keywords, changes, record)

    def apply_versions(self, versions: Sequence[Changes]) -> None:
        """Apply newer stored versions (deltas) in place, replaying unpushed changes after them.

        Replayed changes stay unpushed; the same id changed here and there: the local change
        wins, as in :meth:`adopt`. Only the rows the deltas touch are written.
        """
        with self._lock:
            local = self._read_changes() if self._changes else None
            for changes in versions:
                if self._engine is None:
                    if changes.vectors is None or not changes.ids:
                        continue
                    self._engine = self._new_engine(changes.vectors.shape[1])
                self._apply(self._engine, self._keywords, changes, record=False)
            if local is not None and self._engine is not None:
                self._apply(self._engine, self._keywords, local, record=False)
            self._mutations += 1

    def _apply(
        self, engine: Engine, keywords: KeywordIndex | None, changes: Changes, record: bool = True
    ) -> tuple[int, int]:
        added = updated = deleted = 0
        if changes.ids:
            assert changes.vectors is not None
            added, updated = engine.upsert(
                changes.ids, changes.texts, changes.metadata, changes.vectors
            )
            if keywords is not None:
                keywords.upsert(changes.ids, changes.texts, changes.metadata)
        if changes.deletes:
            deleted = engine.delete(changes.deletes)
            if deleted and keywords is not None:
                keywords.delete(changes.deletes)
        if record and (changes.ids or deleted):
            self._changes.update(dict.fromkeys(changes.ids, "upsert"))
            if deleted:
                self._changes.update(dict.fromkeys(changes.deletes, "delete"))
            self._mutations += 1
        return added, updated + deleted

    def adopt(
        self, engine: Engine, keywords: KeywordIndex | None, *, discard_changes: bool
    ) -> None:
        """Swap in a newer version's engine, replaying the unpushed changes onto it.

        Replayed changes stay unpushed. The same id changed here and there: the local change
        wins (last writer wins, the writer being whoever pushes last).
        """
        if self._precision is not None:
            engine.set_precision(self._precision)
        if self._index is not None:
            engine.set_index(self._index, self._hnsw)
        # A session that uses keyword search gets the new version's index built here, outside
        # the lock (nobody else sees this engine yet), rather than at its next query.
        if keywords is None and self._keywords is not None:
            keywords = build_keywords(engine)
        with self._lock:
            if discard_changes:
                self._changes.clear()
            elif self._changes:
                self._apply(engine, keywords, self._read_changes(), record=False)
            # Queries in flight keep the engine they started with; new ones see this one.
            self._engine = engine
            self._keywords = keywords
            self._mutations += 1

    def pushed(self, mutations: int) -> None:
        """A push of the state at ``mutations`` writes succeeded: clear the log if still current."""
        with self._lock:
            if self._mutations == mutations:  # nothing changed while the push streamed
                self._changes.clear()

    def close(self) -> None:
        """Drop the documents (the session is closed)."""
        with self._lock:
            self._engine = None
            self._keywords = None


def build_keywords(engine: Engine) -> KeywordIndex:
    """The keyword index of every document of ``engine``."""
    return KeywordIndex.build(*_columns(engine.get()))


def _columns(docs: Iterable[StoredDoc]) -> tuple[list[str], list[str], list[Metadata]]:
    docs = list(docs)
    return [d.id for d in docs], [d.text for d in docs], [d.metadata for d in docs]
