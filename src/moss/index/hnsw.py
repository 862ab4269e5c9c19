"""The approximate index kind ``"hnsw"``: a FAISS HNSW graph that proposes candidates, re-ranked
by exact float32 cosine, so scores stay exact and only the choice of candidates is approximate.

The graph stores its vectors scalar-quantised to 8 bits (``IndexHNSWSQ``, QT_8bit trained on the
vectors it is built from): a quarter of the float32 matrix, which the engine keeps anyway for
re-ranking, so a 1M x 384 session holds ~0.4 GB of codes and ~0.26 GB of links (M = 32) beside
its 1.5 GB of vectors; ``storage="flat"`` keeps float32 copies instead (twice the vectors).

Graph *slots* (FAISS's sequential labels) are not engine rows: rows move when a document is
deleted (the last row fills the hole), slots never do. ``row_of_slot`` / ``slot_of_row`` map
between them. A delete or an update leaves the old slot in the graph as a tombstone (its row
is -1), excluded from results by an id selector; an update adds a new slot. When the settable
``rebuild_fraction`` of slots is dead, the engine rebuilds the graph from the live rows.

Not thread-safe on its own: the engine calls it under its lock. FAISS is imported lazily.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ..errors import InvalidArgumentError
from .hnsw_params import INDEX_KINDS, HnswParams, hnsw_params, parse_params

__all__ = [
    "GRAPH_MIN_ROWS",
    "INDEX_KINDS",
    "GraphParts",
    "HnswGraph",
    "HnswParams",
    "hnsw_params",
    "load_graph",
    "maintain_graph",
    "parse_params",
]

#: Below this many rows an hnsw engine scans exactly (0.3-0.6 ms at 10k x 384, as fast as the
#: graph) and builds no graph: it is built, trained on every row, once the index reaches it.
GRAPH_MIN_ROWS = 10_000

Matrix = npt.NDArray[np.float32]
Slots = npt.NDArray[np.int64]


class GraphHolder(Protocol):
    """What keeps a graph beside its rows (the engine's row store)."""

    graph: HnswGraph | None

    def __len__(self) -> int: ...

    def matrix(self) -> npt.NDArray[np.float32]: ...


def maintain_graph(
    store: GraphHolder, params: HnswParams | None, previous: HnswParams | None = None
) -> None:
    """Keep ``store.graph`` as ``params`` want it: none for flat; dropped when a build parameter
    changed since ``previous``; built once the index has :data:`GRAPH_MIN_ROWS` rows; rebuilt
    from the live rows when ``rebuild_fraction`` of its slots are tombstones."""
    graph = store.graph
    if graph is not None and (
        params is None
        or (
            previous is not None
            and (previous.m, previous.ef_construction, previous.storage)
            != (params.m, params.ef_construction, params.storage)
        )
    ):
        store.graph = graph = None
    if params is None:
        return
    if graph is not None:
        graph.params = params
    if graph is None or graph.dead_fraction() >= params.rebuild_fraction:
        enough = len(store) >= GRAPH_MIN_ROWS
        store.graph = HnswGraph.build(store.matrix(), params) if enough else None


@dataclass(frozen=True)
class GraphParts:
    """A graph as it travels: the FAISS index object and the row of each slot (-1: dead).

    ``serialized``, when set, is the serialisation the index was read from: the index may view
    it without copying (its codes and links), so it must stay alive and unchanged while the
    index is used, and the index must be copied before anything is added to it.
    """

    index: Any
    row_of_slot: Slots
    serialized: npt.NDArray[np.uint8] | None = None


class _Buffers:
    """Where one query's search writes its ``wanted`` labels and distances, with the pointers
    FAISS takes (the distances are not read: the engine re-ranks exactly)."""

    def __init__(self, ptr: Any, wanted: int) -> None:
        self.labels: Slots = np.empty((1, wanted), dtype=np.int64)
        self._distances = np.empty((1, wanted), dtype=np.float32)
        self.ptr = ptr(self.labels)
        self.distances_ptr = ptr(self._distances)


def _faiss() -> Any:
    import faiss  # lazily: a flat session never pays for it

    return faiss


class HnswGraph:
    """An HNSW graph over an engine's rows, kept in step with its writes."""

    def __init__(self, parts: GraphParts, count: int, params: HnswParams) -> None:
        self.params = params
        self.index = parts.index
        # The bytes a loaded index views (see GraphParts): kept alive, and exported as they are
        # until the first write, which copies the index first (FAISS aborts the process on an
        # add to a viewed index).
        self._source = parts.serialized
        self.row_of_slot: Slots = np.array(parts.row_of_slot, dtype=np.int64)
        self.slot_of_row: Slots = np.full(max(count, 64), -1, dtype=np.int64)
        alive = np.flatnonzero(self.row_of_slot >= 0)
        if len(alive) != count:
            raise InvalidArgumentError(
                f"the hnsw graph holds {len(alive)} live rows, not {count}: pass the graph "
                "exported with these vectors"
            )
        self.slot_of_row[self.row_of_slot[alive]] = alive
        self.dead = len(self.row_of_slot) - len(alive)
        # Whether slot i holds row i for every slot (a graph built or loaded whole, then only
        # appended to): a search then needs no slot-to-row lookup (~7 us of random reads).
        self._identity = not self.dead and np.array_equal(alive, self.row_of_slot)
        self._alive_bits: npt.NDArray[np.uint8] | None = None
        self._serialized = parts.serialized
        # efSearch -> FAISS search parameters without a filter, and the bitmap their selector
        # points into (building them costs ~35 us, a sixth of a 100k search); cleared by writes.
        self._search_params: dict[int, tuple[Any, Any]] = {}
        # Candidate count -> the output buffers of one query's search.
        self._buffers: dict[int, _Buffers] = {}
        self._ptr = _faiss().swig_ptr

    @classmethod
    def build(cls, vectors: Matrix, params: HnswParams) -> HnswGraph:
        """A new graph over ``vectors`` (rows 0..n-1), trained on them."""
        faiss = _faiss()
        dimension = vectors.shape[1]
        if params.storage == "sq8":
            index = faiss.IndexHNSWSQ(
                dimension, faiss.ScalarQuantizer.QT_8bit, params.m, faiss.METRIC_INNER_PRODUCT
            )
        else:
            index = faiss.IndexHNSWFlat(dimension, params.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = params.ef_construction
        index.hnsw.efSearch = params.ef_for(len(vectors))
        if not index.is_trained:
            index.train(vectors)
        index.add(vectors)
        return cls(GraphParts(index, np.arange(len(vectors), dtype=np.int64)), len(vectors), params)

    @property
    def slots(self) -> int:
        return len(self.row_of_slot)

    def dead_fraction(self) -> float:
        return self.dead / self.slots if self.slots else 0.0

    # --- writes (mirroring DocumentRows) ----------------------------------------------------

    def append(self, start: int, vectors: Matrix) -> None:
        """Rows ``start .. start + len(vectors)`` were appended with these vectors."""
        self._add(np.arange(start, start + len(vectors), dtype=np.int64), vectors)

    def assign(self, rows: Sequence[int], vectors: Matrix) -> None:
        """``rows`` got new vectors: their old slots become tombstones, new slots are added."""
        picked = np.asarray(rows, dtype=np.int64)
        self._kill(self.slot_of_row[picked])
        self._add(picked, vectors)

    def remove(self, row: int, last: int) -> None:
        """``row`` was deleted and the last row ``last`` moved into it (if they differ)."""
        self._kill(self.slot_of_row[[row]])
        if row != last:
            moved = self.slot_of_row[last]
            self.slot_of_row[row] = moved
            self.row_of_slot[moved] = row
        self.slot_of_row[last] = -1

    def _add(self, rows: Slots, vectors: Matrix) -> None:
        if self._source is not None:
            faiss = _faiss()
            self.index = faiss.deserialize_index(faiss.serialize_index(self.index))
            self._source = None
        first = self.slots
        self._identity = self._identity and np.array_equal(
            rows, np.arange(first, first + len(rows))
        )
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self.row_of_slot = np.concatenate([self.row_of_slot, rows])
        needed = int(rows.max(initial=-1)) + 1
        if needed > len(self.slot_of_row):
            grown = np.full(max(needed, 2 * len(self.slot_of_row)), -1, dtype=np.int64)
            grown[: len(self.slot_of_row)] = self.slot_of_row
            self.slot_of_row = grown
        self.slot_of_row[rows] = np.arange(first, self.slots, dtype=np.int64)
        self._changed()

    def _kill(self, slots: Slots) -> None:
        live = slots[slots >= 0]
        self.row_of_slot[live] = -1
        self.dead += len(live)
        self._identity = self._identity and not len(live)
        self._changed()

    def _changed(self) -> None:
        self._alive_bits = None
        self._serialized = None
        self._search_params.clear()

    # --- search -----------------------------------------------------------------------------

    def candidates(
        self, queries: Matrix, wanted: int, ef_search: int, rows: npt.NDArray[np.intp] | None
    ) -> Slots:
        """For each query, the rows of up to ``wanted`` nearest graph slots (``rows``: only
        those rows may be proposed; None: any live row), one line per query, best first,
        padded with -1. For one query the answer may be a buffer the next search reuses: read
        it before searching again (the engine's lock serialises searches)."""
        ef = max(ef_search, wanted)
        cached = self._search_params.get(ef) if rows is None else None
        if cached is None:
            faiss = _faiss()
            bits = self._alive_bitmap() if rows is None else self._bitmap(rows)
            selector = (
                None if bits is None else faiss.IDSelectorBitmap(self.slots, faiss.swig_ptr(bits))
            )
            # The selector points into ``bits``: they stay referenced together until the search.
            cached = (faiss.SearchParametersHNSW(efSearch=ef, sel=selector), bits)
            if rows is None:
                self._search_params[ef] = cached
        # FAISS's own search_c, not its Python wrapper (which checks and allocates again).
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        count = len(queries)
        ptr = self._ptr
        if count == 1:
            # One query (the usual case) writes into buffers kept with their FAISS pointers:
            # each allocation and pointer costs a few us once the last walk evicted its code.
            buffers = self._buffers.get(wanted)
            if buffers is None:
                buffers = self._buffers[wanted] = _Buffers(ptr, wanted)
            labels, labels_ptr, distances_ptr = buffers.labels, buffers.ptr, buffers.distances_ptr
        else:
            labels = np.empty((count, wanted), dtype=np.int64)
            distances = np.empty((count, wanted), dtype=np.float32)  # referenced until searched
            labels_ptr, distances_ptr = ptr(labels), ptr(distances)
        self.index.search_c(count, ptr(queries), wanted, distances_ptr, labels_ptr, cached[0])
        if self._identity:
            return labels
        found: Slots = np.where(labels >= 0, self.row_of_slot[labels], -1)
        return found

    def _alive_bitmap(self) -> npt.NDArray[np.uint8] | None:
        if not self.dead:
            return None
        if self._alive_bits is None:
            self._alive_bits = np.packbits(self.row_of_slot >= 0, bitorder="little")
        return self._alive_bits

    def _bitmap(self, rows: npt.NDArray[np.intp]) -> npt.NDArray[np.uint8]:
        mask = np.zeros(self.slots, dtype=bool)
        mask[self.slot_of_row[rows]] = True
        return np.packbits(mask, bitorder="little")

    # --- snapshot ---------------------------------------------------------------------------

    def export(self) -> tuple[npt.NDArray[np.uint8], Slots]:
        """FAISS's serialisation of the graph (cached until the next write) and a copy of
        ``row_of_slot``."""
        if self._serialized is None:
            self._serialized = _faiss().serialize_index(self.index)
            self._serialized.flags.writeable = False
        return self._serialized, self.row_of_slot.copy()


def load_graph(
    serialized: npt.NDArray[np.uint8], row_of_slot: Slots, count: int, dimension: int
) -> GraphParts:
    """Read a graph section (its bytes already checksummed: FAISS's reader trusts them) and
    check it against the index it belongs to; raise :class:`InvalidArgumentError` if it does
    not fit.

    The index views ``serialized`` instead of copying it (FAISS's zero-copy reader): its codes
    and links stay in those bytes (a mapped file's pages, shared between processes), 12x faster
    than a copying read (measured at 200k). :class:`HnswGraph` copies it before a write.
    """
    rows = np.asarray(row_of_slot, dtype=np.int64)
    alive = rows[rows >= 0]
    if (
        rows.ndim != 1
        or rows.min(initial=0) < -1
        or len(alive) != count
        or (count and (alive.max() >= count or np.bincount(alive, minlength=count).max() != 1))
    ):
        raise InvalidArgumentError(
            f"hnsw slot map does not name each of the {count} rows exactly once"
        )
    faiss = _faiss()
    data = np.ascontiguousarray(serialized, dtype=np.uint8)
    try:
        reader = faiss.ZeroCopyIOReader(faiss.swig_ptr(data), data.size)
        index = faiss.read_index(reader, faiss.IO_FLAG_MMAP_IFC)
    except RuntimeError as exc:
        raise InvalidArgumentError(f"hnsw graph does not deserialise: {exc}") from exc
    # read_index already returns the concrete class (downcasting again would hand out a second,
    # non-owning wrapper of an index the first one frees).
    if (
        not isinstance(index, (faiss.IndexHNSWSQ, faiss.IndexHNSWFlat))
        or index.d != dimension
        or index.ntotal != len(rows)
        or index.metric_type != faiss.METRIC_INNER_PRODUCT
    ):
        raise InvalidArgumentError(
            f"hnsw graph is not an inner-product HNSW index of {len(rows)} vectors of "
            f"dimension {dimension}"
        )
    if not _reader_checks_links():
        _check_links(faiss, index)
    return GraphParts(index, rows, data)


@functools.cache
def _reader_checks_links() -> bool:
    """Whether this FAISS refuses, when reading it, a graph with a link outside it (FAISS
    1.12+ validates every link, level and offset as it reads: moss's own pass, ~50 ms per 1M
    slots, is then skipped). Found out once per process by reading such a graph."""
    faiss = _faiss()
    index = faiss.IndexHNSWFlat(4, 4, faiss.METRIC_INNER_PRODUCT)
    index.add(np.eye(4, dtype=np.float32))
    links = faiss.vector_to_array(index.hnsw.neighbors)
    links[0] = 1_000
    faiss.copy_array_to_vector(links, index.hnsw.neighbors)
    data = faiss.serialize_index(index)
    try:
        faiss.read_index(
            faiss.ZeroCopyIOReader(faiss.swig_ptr(data), data.size), faiss.IO_FLAG_MMAP_IFC
        )
    except RuntimeError:
        return True
    return False


def _check_links(faiss: Any, index: Any) -> None:
    """Every link and level of the graph within bounds, so a search never reads outside it
    (FAISS before 1.12 does not check what it reads; ~45 ms per 1M slots)."""
    graph, total = index.hnsw, index.ntotal
    # Views of FAISS's vectors, not copies (vector_to_array copies: ~30 ms per 1M slots).
    levels, offsets, neighbors, cumulative = (
        _view(faiss, vector)
        for vector in (graph.levels, graph.offsets, graph.neighbors, graph.cum_nneighbor_per_level)
    )
    if (
        len(levels) != total
        or len(offsets) != total + 1
        or not -1 <= graph.entry_point < max(total, 1)
        or (total and (graph.entry_point < 0 or levels.min() < 1))
        or levels.max(initial=1) > len(cumulative) - 1
        or offsets[0] != 0
        or offsets[-1] != len(neighbors)
        or not np.array_equal(np.diff(offsets), cumulative[levels] if total else offsets[1:])
        or not _all_within(neighbors, -1, total)
    ):
        raise InvalidArgumentError("hnsw graph links are out of bounds: the graph is corrupt")


def _view(faiss: Any, vector: Any) -> npt.NDArray[Any]:
    """A numpy view of a FAISS vector (valid while its index lives)."""
    size = vector.size()
    return faiss.rev_swig_ptr(vector.data(), size) if size else np.zeros(0, dtype=np.int64)


def _all_within(values: npt.NDArray[Any], low: int, end: int) -> bool:
    """Whether every value is in ``low .. end - 1``: min and max block by block, so the second
    pass reads from the cache (the links are ~260 MB per 1M slots: one pass from memory)."""
    step = 1 << 16
    for start in range(0, len(values), step):
        block = values[start : start + step]
        if block.min() < low or block.max() >= end:
            return False
    return True
