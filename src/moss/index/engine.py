"""The in-memory index: documents, metadata filters and exact inner-product search.

Storage (one dense row per document, copy-on-write vectors, lazy snapshot columns) is
:mod:`moss.index.rows`; ranking (float32 products, int8 scans, top-k with ties by id) is
:mod:`moss.index.ranking`. This module holds the public API and the lock; filter results are
cached by :mod:`moss.index.filter_cache`.

A filter is evaluated column-wise over the metadata first and only matching rows are ranked, so
a filtered query returns the true top k of the matching documents (never fewer because of
post-filtering).

Precision ``"int8"`` keeps, beside the float32 matrix, int8 codes of every vector
(:mod:`moss.index.quantize`): a search scans the codes (a quarter of the bytes), takes the best
``max(100, 10 * top_k)`` candidates and re-ranks them by their exact float32 scores, so scores
stay exact cosines and only the candidate choice is approximate. Where the int8 scan is not the
faster kernel on the running machine (timed at first use, see
:func:`~moss.index.ranking.rank_measured`) an int8 engine searches exactly in float32. Measured by
benchmarks/peers (384-d, 2 cores): 2.2 ms against 3.6 ms in float32 at 100k, 31 against 55 ms
at 1M, recall@10 1.00 on random vectors and on MiniLM embeddings of WordNet glosses. It costs a
quarter more memory.

Index kind ``"hnsw"`` (:mod:`moss.index.hnsw`) adds a FAISS HNSW graph from 10k rows on, whose
candidates are re-ranked by exact float32 scores, so scores stay exact; selective filters are
ranked exactly instead (:mod:`moss.index.search_plan`), so they still return the true top k.

Thread safety: one re-entrant lock guards every read and write of the shared state, so a reader
never sees a half-applied upsert or delete.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import InvalidArgumentError
from .columns import LazyColumn
from .filter_cache import FilterRows
from .filters import Filter, compile_filter
from .hnsw import INDEX_KINDS, GraphParts, HnswGraph, HnswParams, hnsw_params, maintain_graph
from .quantize import Int8Codes, Int8Index
from .rows import DocumentRows, StoredDoc
from .search_plan import check_ef_search, choose_ranker
from .vector_blocks import VectorBlocks

__all__ = ["INDEX_KINDS", "PRECISIONS", "Engine", "EngineExport", "HnswParams", "StoredDoc"]

#: Vector precisions an engine can search in: exact float32, or int8 codes re-ranked in float32.
PRECISIONS = ("float32", "int8")

Matrix = npt.NDArray[np.float32]
Rows = npt.NDArray[np.intp]

# Queries scored together by search_many: bounds the (queries x rows) score matrix.
_QUERY_BLOCK = 64


@dataclass(frozen=True)
class EngineExport:
    """A consistent view of an engine for the snapshot encoder (see :meth:`Engine.export_all`)."""

    vectors: Matrix
    ids: list[str]
    texts: list[str]
    metadata: list[dict[str, Any] | None]
    #: The int8 codes (a copy) when the engine's precision is ``"int8"``.
    int8: Int8Codes | None
    #: ``"flat"`` or ``"hnsw"``, its parameters (None for flat), and the graph if it has one:
    #: FAISS's serialisation (read-only) and the row of each slot.
    index: str = "flat"
    hnsw: HnswParams | None = None
    graph: tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]] | None = None


class Engine:
    """An in-memory index of documents with exact cosine (inner-product) search.

    Vectors must already be float32 and L2-normalised: the caller validates and normalises.
    Metadata dicts are stored as given, not copied; callers must not mutate them afterwards.

    >>> engine = Engine(3)
    >>> engine.upsert(["a"], ["hello"], [{"lang": "en"}], np.eye(3, dtype=np.float32)[:1])
    (1, 0)
    >>> hits = engine.search(np.eye(3, dtype=np.float32)[0], top_k=5)
    >>> [(doc.id, round(score, 3)) for doc, score in hits]
    [('a', 1.0)]

    ``Engine(384, precision="int8")`` searches int8 codes and re-ranks in float32;
    ``Engine(384, index="hnsw", hnsw={"ef_search": 128})`` searches an HNSW graph.
    """

    def __init__(
        self,
        dimension: int,
        *,
        precision: str = "float32",
        index: str = "flat",
        hnsw: HnswParams | Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension < 1:
            raise InvalidArgumentError(f"dimension must be a positive integer, got {dimension!r}")
        _check_precision(precision)
        self._hnsw = hnsw_params(index, hnsw)
        self._dimension = dimension
        self._store = DocumentRows(dimension, int8=precision == "int8")
        self._lock = threading.RLock()
        # The rows of recent filters (see filter_cache); cleared by every write.
        self._filter_rows = FilterRows()

    @classmethod
    def from_arrays(
        cls,
        vectors: np.ndarray,
        ids: list[str] | LazyColumn[str],
        texts: list[str] | LazyColumn[str],
        metadata: list[dict[str, Any] | None] | LazyColumn[dict[str, Any] | None],
        *,
        precision: str = "float32",
        int8: tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]] | None = None,
        index: str = "flat",
        hnsw: HnswParams | Mapping[str, Any] | None = None,
        graph: GraphParts | None = None,
    ) -> Engine:
        """Build an engine that takes ownership of these arrays without copying them.

        ``vectors`` is (n, d) float32, C-contiguous and normalised; ``ids`` are unique. The lists
        are adopted as they are: the caller must not use them afterwards. Ids, texts and metadata
        may be :class:`LazyColumn` views of a snapshot, decoded only as they are read (a
        snapshot's id column brings the table that finds rows by id, checked before first use). Vectors and
        lazy columns are never written (engines may share them): writes go beside them. With
        ``precision="int8"``, stored ``int8`` codes of these vectors are adopted (else the
        vectors are quantised, ~0.2 s per 100k x 384); with ``"float32"`` codes are ignored.
        With ``index="hnsw"``, a deserialised ``graph`` of these rows is adopted (else one is
        built when there are enough rows); with ``"flat"`` it is ignored.
        """
        _check_precision(precision)
        params = hnsw_params(index, hnsw)
        if vectors.ndim != 2 or vectors.dtype != np.float32 or not vectors.flags.c_contiguous:
            raise InvalidArgumentError(
                "vectors must be a C-contiguous float32 matrix of shape (count, dimension), "
                f"got {vectors.dtype} {vectors.shape}"
            )
        count = vectors.shape[0]
        if not len(ids) == len(texts) == len(metadata) == count:
            raise InvalidArgumentError(
                f"got {count} vectors, {len(ids)} ids, {len(texts)} texts and {len(metadata)} "
                "metadata entries; pass one of each per document"
            )
        engine = cls(int(vectors.shape[1]), index=index, hnsw=params)
        store = engine._store
        store.adopt(ids, texts, metadata)  # may raise: duplicate ids
        store.blocks = VectorBlocks.adopt(vectors)  # never written: may be read-only
        if precision == "int8":
            if int8 is not None:
                store.int8 = Int8Index.from_codes(int8, count, engine._dimension)
            else:
                store.int8 = Int8Index.build(vectors)
        if params is not None and graph is not None:
            store.graph = HnswGraph(graph, count, params)
        else:
            maintain_graph(store, params)
        return engine

    @property
    def dimension(self) -> int:
        """The length of every vector in this index."""
        return self._dimension

    @property
    def precision(self) -> str:
        """``"float32"`` (exact search) or ``"int8"`` (int8 scan, float32 re-rank)."""
        return "float32" if self._store.int8 is None else "int8"

    def set_precision(self, precision: str) -> None:
        """Switch precision: quantise every vector (to ``"int8"``) or drop the codes."""
        _check_precision(precision)
        with self._lock:
            if precision == self.precision:
                return
            store = self._store
            store.int8 = None if precision == "float32" else Int8Index.build(store.matrix())

    @property
    def index_kind(self) -> str:
        """``"flat"`` (exact scan) or ``"hnsw"`` (HNSW graph, exact re-rank)."""
        return "flat" if self._hnsw is None else "hnsw"

    @property
    def hnsw(self) -> HnswParams | None:
        """The hnsw parameters, or None for a flat engine."""
        return self._hnsw

    def set_index(self, index: str, hnsw: HnswParams | Mapping[str, Any] | None = None) -> None:
        """Switch the index kind or its parameters (a new graph only for new build ones)."""
        params = hnsw_params(index, hnsw)
        with self._lock:
            maintain_graph(self._store, params, self._hnsw)
            self._hnsw = params

    def __len__(self) -> int:
        return len(self._store)

    # --- writes ---------------------------------------------------------------------------

    def upsert(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadata: Sequence[dict[str, Any] | None],
        vectors: np.ndarray,
    ) -> tuple[int, int]:
        """Add new documents and replace existing ones; return ``(added, updated)``.

        Within one batch a repeated id counts once and its last occurrence wins.
        """
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self._dimension:
            raise InvalidArgumentError(
                f"vectors must have shape (count, {self._dimension}), got {vectors.shape}"
            )
        if not len(ids) == len(texts) == len(metadata) == vectors.shape[0]:
            raise InvalidArgumentError(
                f"got {len(ids)} ids, {len(texts)} texts, {len(metadata)} metadata entries and "
                f"{vectors.shape[0]} vectors; pass one of each per document"
            )
        with self._lock:
            self._filter_rows.clear()
            counts = self._store.upsert(ids, texts, metadata, vectors)
            maintain_graph(self._store, self._hnsw)
            return counts

    def delete(self, ids: Iterable[str]) -> int:
        """Delete documents by id; return how many existed. Unknown ids are ignored."""
        with self._lock:
            deleted = self._store.delete(ids)
            if deleted:
                self._filter_rows.clear()
                maintain_graph(self._store, self._hnsw)
        return deleted

    # --- reads ----------------------------------------------------------------------------

    def get(
        self,
        ids: Sequence[str] | None = None,
        filter: Mapping[str, Any] | None = None,
        limit: int | None = None,
    ) -> list[StoredDoc]:
        """Documents by id (in the order given, unknown ids skipped) and/or matching a filter.

        With neither, all documents (in storage order). ``limit`` caps how many are returned.
        """
        predicate = compile_filter(filter)
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise InvalidArgumentError(
                f"limit must be a non-negative integer or None, got {limit!r}"
            )
        with self._lock:
            store = self._store
            rows: Iterable[int]
            if ids is not None:
                rows = (r for r in store.rows_of(ids) if r is not None)
                if predicate is not None:
                    metadata = store.metadata
                    rows = (r for r in rows if predicate(metadata[r]))
            elif predicate is not None:
                rows = self._matching_rows(predicate, filter).tolist()
            else:
                if limit is None or limit > 1000:
                    store.lists()  # one parse beats decoding value by value
                rows = range(len(store))
            docs = [store.doc(row) for row in itertools.islice(rows, limit)]
        return docs

    def vectors_for(self, ids: Sequence[str]) -> Matrix:
        """Copies of the stored vectors of ``ids``, in order; unknown ids are skipped."""
        with self._lock:
            rows = [r for r in self._store.rows_of(ids) if r is not None]
            return self._store.take(rows)

    def search(
        self,
        query: np.ndarray,
        top_k: int,
        filter: Mapping[str, Any] | None = None,
        min_score: float | None = None,
        ef_search: int | None = None,
    ) -> list[tuple[StoredDoc, float]]:
        """The ``top_k`` documents most similar to ``query``, best first, with cosine scores.

        A filter restricts the candidates before ranking; ``min_score`` drops weaker results.
        Equal scores are ordered by id, so results do not depend on insertion history.
        ``ef_search`` overrides the hnsw parameter for this query (ignored by flat engines).
        """
        query = np.asarray(query, dtype=np.float32)
        if query.shape != (self._dimension,):
            raise InvalidArgumentError(
                f"query must be a vector of shape ({self._dimension},), got {query.shape}"
            )
        return self._search(query[None, :], top_k, filter, min_score, ef_search)[0]

    def search_many(
        self,
        queries: np.ndarray,
        top_k: int,
        filter: Mapping[str, Any] | None = None,
        min_score: float | None = None,
        ef_search: int | None = None,
    ) -> list[list[tuple[StoredDoc, float]]]:
        """:meth:`search` for each row of ``queries`` (shape (m, d)), sharing the filter work."""
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self._dimension:
            raise InvalidArgumentError(
                f"queries must have shape (count, {self._dimension}), got {queries.shape}"
            )
        return self._search(queries, top_k, filter, min_score, ef_search)

    def _search(
        self,
        queries: Matrix,
        top_k: int,
        filter: Mapping[str, Any] | None,
        min_score: float | None,
        ef_search: int | None,
    ) -> list[list[tuple[StoredDoc, float]]]:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise InvalidArgumentError(f"top_k must be a positive integer, got {top_k!r}")
        if ef_search is not None:  # (calls skipped when there is nothing to check: ~1 us each)
            check_ef_search(ef_search)
        predicate = None if filter is None else compile_filter(filter)
        with self._lock:
            store = self._store
            subset = None if predicate is None else self._matching_rows(predicate, filter)
            rank = choose_ranker(store, subset, ef_search)
            if len(queries) <= _QUERY_BLOCK:
                picks = rank(store, queries, subset, top_k, min_score)
            else:
                picks = []
                for start in range(0, len(queries), _QUERY_BLOCK):
                    block = queries[start : start + _QUERY_BLOCK]
                    picks.extend(rank(store, block, subset, top_k, min_score))
            # The columns looked up once, not per result (store.doc's lookups, ~1 us each).
            ids, texts, metadata = store.ids, store.texts, store.metadata
            if type(ids) is not list or type(texts) is not list or type(metadata) is not list:
                # Lazy columns of a snapshot: decoded together (70 -> ~25 us for 10 results).
                return [store.hits(picked) for picked in picks]
            return [
                [(StoredDoc(ids[row], texts[row], metadata[row]), score) for row, score in picked]
                for picked in picks
            ]

    def _matching_rows(self, predicate: Filter, filter: Mapping[str, Any] | None = None) -> Rows:
        """Rows whose metadata match, ascending (read-only: they may be cached)."""
        return self._filter_rows.matching(predicate, filter, self._store.metadata_list)

    # --- snapshot ---------------------------------------------------------------------------

    def export(self) -> tuple[Matrix, list[str], list[str], list[dict[str, Any] | None]]:
        """A consistent read-only view of every document, for the snapshot encoder.

        O(1) for the vectors: they are a read-only view of the live matrix, and the engine copies
        the matrix before its next in-place write (update or delete) while the view may be in use;
        appends only write rows past the view. The lists are shallow copies (pointer copies,
        ~1 ms per 100k). So the result never changes, whatever writers do afterwards.
        """
        with self._lock:
            return self._store.export()

    def export_all(self) -> EngineExport:
        """:meth:`export`, plus a copy of the int8 codes when the precision is ``"int8"``."""
        with self._lock:
            vectors, ids, texts, metadata = self._store.export()
            int8 = self._store.int8.export() if self._store.int8 is not None else None
            graph = self._store.graph.export() if self._store.graph is not None else None
            return EngineExport(
                vectors, ids, texts, metadata, int8, self.index_kind, self._hnsw, graph
            )


def _check_precision(precision: object) -> None:
    if precision not in PRECISIONS:
        raise InvalidArgumentError(
            f"precision must be one of {', '.join(map(repr, PRECISIONS))}, got {precision!r}"
        )
