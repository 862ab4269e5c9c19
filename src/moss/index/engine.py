"""The in-memory index: vectors, documents, metadata filters and exact inner-product search.

Vectors live in one numpy float32 matrix with spare capacity (doubling, so appends are amortised
O(1)); row ``i`` belongs to ``ids[i]``, ``texts[i]`` and ``metadata[i]``, and ``_rows`` maps each
id to its row. Deleting moves the last row into the hole, so the first ``len(engine)`` rows are
always dense and a search is one matrix-vector product over a view: no second copy of the vectors
exists (an ``IndexFlatIP`` would hold its own).

Search is exact: ``scores = vectors @ query`` with BLAS, then a partition for the top k.
Measured (benchmarks/bench_engine_search.py, 384-d, 2 shared cores) this beats both
``faiss.IndexFlatIP.search`` and ``faiss.knn`` over the same matrix: one query 0.3 vs 0.7 ms at
10k and ~4 vs ~10 ms at 100k; 32 queries at 100k 32 vs 136 ms. A filter is evaluated column-wise
over the metadata first and only matching rows are ranked, so a filtered query returns the true
top k of the matching documents (never fewer because of post-filtering).

Precision ``"int8"`` keeps, beside the float32 matrix, int8 codes of every vector
(:mod:`moss.quantize`): a search scans the codes (a quarter of the bytes), takes the best
``max(100, 10 * top_k)`` candidates and re-ranks them by their exact float32 scores, so scores
stay exact cosines and only the candidate choice is approximate. Measured by
benchmarks/peers (384-d, 2 cores): 2.2 ms against 3.6 ms in float32 at 100k, 31 against 55 ms
at 1M, recall@10 1.00 on random vectors and on MiniLM embeddings of WordNet glosses. It costs a quarter more memory.

Texts and metadata opened from a snapshot stay :class:`~moss.snapshot_documents.LazyColumn`
views of its bytes, decoded per value as results are returned, until a write, a filter or an
export turns them into lists: opening costs no per-document Python work beyond the ids.

Thread safety: one re-entrant lock guards every read and write of the shared state, so a reader
never sees a half-applied upsert or delete.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import orjson

from ..errors import InvalidArgumentError
from .columns import LazyColumn
from .filters import Filter, compile_filter
from .quantize import Int8Codes, Int8Index

__all__ = ["PRECISIONS", "Engine", "EngineExport", "StoredDoc"]

#: Vector precisions an engine can search in: exact float32, or int8 codes re-ranked in float32.
PRECISIONS = ("float32", "int8")

T = TypeVar("T")
Matrix = npt.NDArray[np.float32]
Rows = npt.NDArray[np.intp]

_MIN_CAPACITY = 64
# Ranking a filtered subset: gathering the matching rows (np.take) costs several times a row's
# share of the full product; measured at 10k and 100k x 384, past ~1/8 of the rows scoring all
# rows and selecting is cheaper.
_GATHER_FRACTION = 0.125
# Queries scored together by search_many: bounds the (queries x rows) score matrix.
_QUERY_BLOCK = 64
# int8 search re-ranks this many candidates per query in float32 (at least), or
# _RERANK_FACTOR x top_k if more: a gather of 100 rows costs ~20 us, so erring high is cheap.
_RERANK_MIN = 100
_RERANK_FACTOR = 10
# Below this many rows an exact float32 product is as fast as the int8 scan plus its re-rank
# (measured: 0.04 vs 0.1 ms at 1k x 384), so int8 engines search small indexes exactly.
_INT8_MIN_ROWS = 8192
# One query over at most this many rows is scored single-threaded (see _product).
_SINGLE_THREAD_ROWS = 16_384
# Filters whose matching rows are remembered until the next write. Evaluating a filter walks
# every metadata dict in Python (~10 ms per 100k documents), more than ranking the 10% of rows
# it keeps; agents repeat the same filters (a conversation, a user), so the rows are reused.
_CACHED_FILTERS = 16


@dataclass(frozen=True)
class EngineExport:
    """A consistent view of an engine for the snapshot encoder (see :meth:`Engine.export_all`)."""

    vectors: Matrix
    ids: list[str]
    texts: list[str]
    metadata: list[dict[str, Any] | None]
    #: The int8 codes (a copy) when the engine's precision is ``"int8"``.
    int8: Int8Codes | None


@dataclass(frozen=True, slots=True)
class StoredDoc:
    """A document as the engine stores it (its vector is kept apart, in the matrix)."""

    id: str
    text: str
    metadata: dict[str, Any] | None


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

    ``Engine(384, precision="int8")`` searches int8 codes and re-ranks in float32.
    """

    def __init__(self, dimension: int, *, precision: str = "float32") -> None:
        if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension < 1:
            raise InvalidArgumentError(f"dimension must be a positive integer, got {dimension!r}")
        _check_precision(precision)
        self._dimension = dimension
        self._int8: Int8Index | None = Int8Index(dimension) if precision == "int8" else None
        self._lock = threading.RLock()
        self._vectors: Matrix = np.empty((0, dimension), dtype=np.float32)
        self._ids: list[str] = []
        # Lists, or LazyColumns of a snapshot's documents (decoded per value as they are read)
        # until the first write or whole-column read turns them into lists.
        self._texts: list[str] | LazyColumn[str] = []
        self._metadata: list[dict[str, Any] | None] | LazyColumn[dict[str, Any] | None] = []
        self._rows: dict[str, int] = {}
        # True while rows [0:len] of self._vectors may be seen by someone else (an export, or a
        # read-only array handed to from_arrays): the next in-place write copies the matrix first.
        self._shared = False
        # Canonical filter JSON -> matching rows; cleared by every write.
        self._filter_rows: dict[bytes, Rows] = {}

    @classmethod
    def from_arrays(
        cls,
        vectors: np.ndarray,
        ids: list[str],
        texts: list[str] | LazyColumn[str],
        metadata: list[dict[str, Any] | None] | LazyColumn[dict[str, Any] | None],
        *,
        precision: str = "float32",
        int8: tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]] | None = None,
    ) -> Engine:
        """Build an engine that takes ownership of these arrays without copying them.

        ``vectors`` is (n, d) float32, C-contiguous and normalised; ``ids`` are unique. The lists
        are adopted as they are: the caller must not use them afterwards. Texts and metadata may
        be :class:`LazyColumn` views of a snapshot, decoded only as they are read. With
        ``precision="int8"``, stored ``int8`` codes of these vectors are adopted (else the
        vectors are quantised, ~0.2 s per 100k x 384); with ``"float32"`` codes are ignored.
        """
        _check_precision(precision)
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
        engine = cls(int(vectors.shape[1]))
        rows = dict(zip(ids, range(count), strict=True))
        if len(rows) != count:
            raise InvalidArgumentError("document ids must be unique; found duplicates")
        engine._vectors = vectors
        engine._ids = ids if type(ids) is list else list(ids)
        engine._texts = texts if type(texts) in (list, LazyColumn) else list(texts)
        engine._metadata = metadata if type(metadata) in (list, LazyColumn) else list(metadata)
        engine._rows = rows
        # A read-only array (np.frombuffer over bytes) cannot be written in place.
        engine._shared = not vectors.flags.writeable
        if precision == "int8":
            if int8 is not None:
                engine._int8 = Int8Index.from_codes(int8, count, engine._dimension)
            else:
                engine._int8 = Int8Index.build(vectors)
        return engine

    @property
    def dimension(self) -> int:
        """The length of every vector in this index."""
        return self._dimension

    @property
    def precision(self) -> str:
        """``"float32"`` (exact search) or ``"int8"`` (int8 scan, float32 re-rank)."""
        return "float32" if self._int8 is None else "int8"

    def set_precision(self, precision: str) -> None:
        """Switch precision: quantise every vector (to ``"int8"``) or drop the codes."""
        _check_precision(precision)
        with self._lock:
            if precision == self.precision:
                return
            if precision == "float32":
                self._int8 = None
            else:
                self._int8 = Int8Index.build(self._vectors[: len(self._ids)])

    def __len__(self) -> int:
        return len(self._ids)

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
        vectors = self._check_batch(ids, texts, metadata, vectors)
        # Last occurrence wins: a dict keeps the last index written for each id.
        last = {doc_id: i for i, doc_id in enumerate(ids)}
        with self._lock:
            self._filter_rows.clear()
            self._materialize()
            rows = self._rows
            new = [i for doc_id, i in last.items() if doc_id not in rows]
            old = (
                [i for doc_id, i in last.items() if doc_id in rows] if len(new) < len(last) else []
            )
            self._reserve(len(self._ids) + len(new))  # may raise: nothing changed yet
            if old:
                self._update_rows(old, ids, texts, metadata, vectors)
            if new:
                self._append_rows(new, ids, texts, metadata, vectors, whole=len(new) == len(ids))
        return len(new), len(old)

    def delete(self, ids: Iterable[str]) -> int:
        """Delete documents by id; return how many existed. Unknown ids are ignored."""
        deleted = 0
        with self._lock:
            self._materialize()
            for doc_id in ids:
                row = self._rows.get(doc_id)
                if row is None:
                    continue
                if self._shared:
                    self._unshare()
                self._remove_row(doc_id, row)
                deleted += 1
            if deleted:
                self._filter_rows.clear()
                self._shrink()
        return deleted

    def _check_batch(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadata: Sequence[dict[str, Any] | None],
        vectors: np.ndarray,
    ) -> Matrix:
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
        return vectors

    def _reserve(self, needed: int) -> None:
        """Grow the matrix (doubling) so it holds ``needed`` rows."""
        capacity = self._vectors.shape[0]
        if needed <= capacity:
            return
        grown = np.empty((max(needed, 2 * capacity, _MIN_CAPACITY), self._dimension), np.float32)
        count = len(self._ids)
        grown[:count] = self._vectors[:count]
        # The old matrix now belongs to whoever still views it (an export): nothing is shared.
        self._vectors = grown
        self._shared = False

    def _unshare(self) -> None:
        """Copy the matrix before an in-place write, so an exported view stays unchanged."""
        count = len(self._ids)
        copy = np.empty_like(self._vectors)
        copy[:count] = self._vectors[:count]
        self._vectors = copy
        self._shared = False

    def _update_rows(
        self,
        batch: list[int],
        ids: Sequence[str],
        texts: Sequence[str],
        metadata: Sequence[dict[str, Any] | None],
        vectors: Matrix,
    ) -> None:
        if self._shared:
            self._unshare()
        rows = [self._rows[ids[i]] for i in batch]
        self._vectors[rows] = vectors[batch]
        stored_texts, stored_metadata = self._lists()
        if self._int8 is not None:
            self._int8.assign(rows, vectors[batch], self._vectors[: len(self._ids)])
        for row, i in zip(rows, batch, strict=True):
            stored_texts[row] = texts[i]
            stored_metadata[row] = metadata[i]

    def _append_rows(
        self,
        batch: list[int],
        ids: Sequence[str],
        texts: Sequence[str],
        metadata: Sequence[dict[str, Any] | None],
        vectors: Matrix,
        *,
        whole: bool,
    ) -> None:
        start = len(self._ids)
        stored_texts, stored_metadata = self._lists()
        # Rows past the current count are never part of an export's view: no copy needed.
        if whole:
            self._vectors[start : start + len(batch)] = vectors
            self._ids.extend(ids)
            stored_texts.extend(texts)
            stored_metadata.extend(metadata)
        else:
            self._vectors[start : start + len(batch)] = vectors[batch]
            self._ids.extend([ids[i] for i in batch])
            stored_texts.extend([texts[i] for i in batch])
            stored_metadata.extend([metadata[i] for i in batch])
        self._rows.update(zip(self._ids[start:], range(start, len(self._ids)), strict=True))
        if self._int8 is not None:
            end = len(self._ids)
            self._int8.append(self._vectors[start:end], self._vectors[:end])

    def _remove_row(self, doc_id: str, row: int) -> None:
        """Move the last row into ``row`` so rows stay dense (O(1) per delete)."""
        last = len(self._ids) - 1
        texts, metadata = self._lists()
        del self._rows[doc_id]
        if row != last:
            moved = self._ids[last]
            self._vectors[row] = self._vectors[last]
            self._ids[row] = moved
            texts[row] = texts[last]
            metadata[row] = metadata[last]
            self._rows[moved] = row
            if self._int8 is not None:
                self._int8.move(last, row)
        self._ids.pop()
        texts.pop()
        metadata.pop()
        if self._int8 is not None:
            self._int8.truncate(last)

    def _shrink(self) -> None:
        """Give memory back after mass deletes (keeps 2x headroom, so no thrashing)."""
        count, capacity = len(self._ids), self._vectors.shape[0]
        if capacity > 4 * max(count, _MIN_CAPACITY):
            self._vectors = self._vectors[: max(2 * count, _MIN_CAPACITY)].copy()
            self._shared = False

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
            rows: Iterable[int]
            if ids is not None:
                rows = (r for r in map(self._rows.get, ids) if r is not None)
                if predicate is not None:
                    metadata = self._metadata
                    rows = (r for r in rows if predicate(metadata[r]))
            elif predicate is not None:
                rows = self._matching_rows(predicate, filter).tolist()
            else:
                if limit is None or limit > 1000:
                    self._materialize()  # one parse beats decoding value by value
                rows = range(len(self._ids))
            docs = [self._doc(row) for row in itertools.islice(rows, limit)]
        return docs

    def vectors_for(self, ids: Sequence[str]) -> Matrix:
        """Copies of the stored vectors of ``ids``, in order; unknown ids are skipped."""
        with self._lock:
            rows = [r for r in map(self._rows.get, ids) if r is not None]
            return self._vectors[rows]  # fancy indexing copies

    def search(
        self,
        query: np.ndarray,
        top_k: int,
        filter: Mapping[str, Any] | None = None,
        min_score: float | None = None,
    ) -> list[tuple[StoredDoc, float]]:
        """The ``top_k`` documents most similar to ``query``, best first, with cosine scores.

        A filter restricts the candidates before ranking; ``min_score`` drops weaker results.
        Equal scores are ordered by id, so results do not depend on insertion history.
        """
        query = np.asarray(query, dtype=np.float32)
        if query.shape != (self._dimension,):
            raise InvalidArgumentError(
                f"query must be a vector of shape ({self._dimension},), got {query.shape}"
            )
        return self.search_many(query[None, :], top_k, filter, min_score)[0]

    def search_many(
        self,
        queries: np.ndarray,
        top_k: int,
        filter: Mapping[str, Any] | None = None,
        min_score: float | None = None,
    ) -> list[list[tuple[StoredDoc, float]]]:
        """:meth:`search` for each row of ``queries`` (shape (m, d)), sharing the filter work."""
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self._dimension:
            raise InvalidArgumentError(
                f"queries must have shape (count, {self._dimension}), got {queries.shape}"
            )
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise InvalidArgumentError(f"top_k must be a positive integer, got {top_k!r}")
        predicate = compile_filter(filter)
        with self._lock:
            subset = None if predicate is None else self._matching_rows(predicate, filter)
            # A small filtered subset is cheaper to rank exactly than to scan in int8.
            count = len(self._ids)
            compact = (
                self._int8 is not None
                and count >= _INT8_MIN_ROWS
                and (subset is None or len(subset) > _GATHER_FRACTION * count)
            )
            results: list[list[tuple[StoredDoc, float]]] = []
            for start in range(0, queries.shape[0], _QUERY_BLOCK):
                block = queries[start : start + _QUERY_BLOCK]
                picks = (
                    self._top_int8(block, subset, top_k, min_score)
                    if compact
                    else [
                        self._top(row_scores, subset, top_k, min_score)
                        for row_scores in self._scores(block, subset)
                    ]
                )
                results.extend(
                    [(self._doc(row), score) for row, score in picked] for picked in picks
                )
        return results

    def _top_int8(
        self, queries: Matrix, subset: Rows | None, top_k: int, min_score: float | None
    ) -> list[list[tuple[int, float]]]:
        """Candidates from the int8 scan, ranked by their exact float32 scores."""
        assert self._int8 is not None
        approx = self._int8.scores(queries)
        if subset is not None:
            approx = approx[:, subset]
        wanted = max(_RERANK_MIN, _RERANK_FACTOR * top_k)
        picks = []
        for query, row_approx in zip(queries, approx, strict=True):
            if len(row_approx) > wanted:
                candidates = np.argpartition(row_approx, len(row_approx) - wanted)[-wanted:]
            else:
                candidates = np.arange(len(row_approx))
            rows = candidates if subset is None else subset[candidates]
            exact: Matrix = np.einsum("ij,j->i", self._vectors[rows], query)  # see _product
            picks.append(self._top(exact, rows, top_k, min_score))
        return picks

    def _matching_rows(self, predicate: Filter, filter: Mapping[str, Any] | None = None) -> Rows:
        """Rows whose metadata match, ascending (read-only: they may be cached)."""
        key = _filter_key(filter)
        rows = self._filter_rows.get(key) if key is not None else None
        if rows is None:
            self._metadata = _as_list(self._metadata)
            rows = np.flatnonzero(predicate.mask(self._metadata))
            rows.flags.writeable = False
            if key is not None:
                if len(self._filter_rows) >= _CACHED_FILTERS:
                    del self._filter_rows[next(iter(self._filter_rows))]  # the oldest
                self._filter_rows[key] = rows
        return rows

    def _scores(self, queries: Matrix, subset: Rows | None) -> Matrix:
        """Inner products, shape (len(queries), rows considered)."""
        count = len(self._ids)
        scores: Matrix
        if subset is None:
            scores = _product(queries, self._vectors[:count])
        elif len(subset) <= _GATHER_FRACTION * count:
            scores = _product(queries, np.take(self._vectors, subset, axis=0))
        else:
            scores = _product(queries, self._vectors[:count])[:, subset]
        return scores

    def _top(
        self, scores: Matrix, subset: Rows | None, top_k: int, min_score: float | None
    ) -> list[tuple[int, float]]:
        """The best ``top_k`` (row, score) pairs, best first, ties broken by id."""
        if min_score is not None:
            keep = np.flatnonzero(scores >= min_score)
            scores = scores[keep]
            subset = keep if subset is None else subset[keep]
        if len(scores) > top_k:
            # Every score equal to the k-th best is a candidate, so ties at the cut are decided
            # by id below, not by argpartition's arbitrary choice.
            kth = np.partition(scores, len(scores) - top_k)[len(scores) - top_k]
            candidates = np.flatnonzero(scores >= kth)
        else:
            candidates = np.arange(len(scores))
        rows = candidates if subset is None else subset[candidates]
        ids = self._ids
        ranked = sorted(
            zip(scores[candidates].tolist(), rows.tolist(), strict=True),
            key=lambda p: (-p[0], ids[p[1]]),
        )
        # Rounding can put a product of unit vectors a hair outside [-1, 1].
        return [(row, min(1.0, max(-1.0, score))) for score, row in ranked[:top_k]]

    def _doc(self, row: int) -> StoredDoc:
        return StoredDoc(self._ids[row], self._texts[row], self._metadata[row])

    # --- snapshot ---------------------------------------------------------------------------

    def export(self) -> tuple[Matrix, list[str], list[str], list[dict[str, Any] | None]]:
        """A consistent read-only view of every document, for the snapshot encoder.

        O(1) for the vectors: they are a read-only view of the live matrix, and the engine copies
        the matrix before its next in-place write (update or delete) while the view may be in use;
        appends only write rows past the view. The lists are shallow copies (pointer copies,
        ~1 ms per 100k). So the result never changes, whatever writers do afterwards.
        """
        with self._lock:
            view = self._vectors[: len(self._ids)]
            view.flags.writeable = False
            self._shared = True
            self._materialize()
            return view, list(self._ids), list(self._texts), list(self._metadata)

    def _materialize(self) -> None:
        """Turn lazy columns into lists (before writes and whole-column reads)."""
        self._lists()

    def _lists(self) -> tuple[list[str], list[dict[str, Any] | None]]:
        texts = self._texts = _as_list(self._texts)
        metadata = self._metadata = _as_list(self._metadata)
        return texts, metadata

    def export_all(self) -> EngineExport:
        """:meth:`export`, plus a copy of the int8 codes when the precision is ``"int8"``."""
        with self._lock:
            vectors, ids, texts, metadata = self.export()
            int8 = self._int8.export() if self._int8 is not None else None
            return EngineExport(vectors, ids, texts, metadata, int8)


def _product(queries: Matrix, matrix: Matrix) -> Matrix:
    """``queries @ matrix.T``: one query over a small matrix in numpy's own single-threaded
    loop, anything larger by BLAS.

    OpenBLAS splits even a 3,000-row product over both cores, and when the other core is busy
    (embedding the next query, another process) the call waits for it: measured on 2 cores,
    3k x 384 took 0.08 ms at best but 1-9 ms median and 12 ms p95 under load, einsum a steady
    0.18-0.21 ms (10k rows: 0.56-0.63 ms, against 0.26 ms for BLAS on a quiet machine). Past
    _SINGLE_THREAD_ROWS rows the second core's bandwidth is worth the wait.
    """
    if len(queries) == 1 and len(matrix) <= _SINGLE_THREAD_ROWS:
        row: Matrix = np.einsum("ij,j->i", matrix, queries[0])
        return row[None, :]
    result: Matrix = queries @ matrix.T
    return result


def _as_list(column: list[T] | LazyColumn[T]) -> list[T]:
    return column.materialize() if isinstance(column, LazyColumn) else column


def _filter_key(filter: Mapping[str, Any] | None) -> bytes | None:
    """A canonical form of a filter (sorted keys; ``1`` and ``true`` stay distinct), or None."""
    if filter is None:
        return None
    try:
        return orjson.dumps(filter, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        return None  # not JSON (compile_filter accepted it): evaluate without caching


def _check_precision(precision: object) -> None:
    if precision not in PRECISIONS:
        raise InvalidArgumentError(
            f"precision must be one of {', '.join(map(repr, PRECISIONS))}, got {precision!r}"
        )
