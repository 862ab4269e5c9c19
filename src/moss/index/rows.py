"""The engine's storage: one row per document across a vector matrix, ids, texts and metadata.

Vectors live in one numpy float32 matrix with spare capacity (doubling, so appends are amortised
O(1)); row ``i`` belongs to ``ids[i]``, ``texts[i]`` and ``metadata[i]``, and ``row_of`` maps each
id to its row. Deleting moves the last row into the hole, so the first ``len(rows)`` rows are
always dense and a search is one product over a view: no second copy of the vectors exists.

Texts and metadata opened from a snapshot stay :class:`~moss.index.columns.LazyColumn` views of
its bytes, decoded per value as results are returned, until a write, a filter or an export turns
them into lists. Not thread-safe on its own: the engine calls it under its lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt

from .columns import LazyColumn
from .quantize import Int8Index

if TYPE_CHECKING:
    from .hnsw import HnswGraph

__all__ = ["DocumentRows", "StoredDoc"]

T = TypeVar("T")
Matrix = npt.NDArray[np.float32]

_MIN_CAPACITY = 64


@dataclass(frozen=True, slots=True)
class StoredDoc:
    """A document as the engine stores it (its vector is kept apart, in the matrix)."""

    id: str
    text: str
    metadata: dict[str, Any] | None


class DocumentRows:
    """Dense rows of documents with copy-on-write vectors and optional int8 codes."""

    def __init__(self, dimension: int, int8: bool = False) -> None:
        self.dimension = dimension
        self.int8: Int8Index | None = Int8Index(dimension) if int8 else None
        # The HNSW graph of an hnsw engine once it has one (see moss.index.hnsw), kept in step.
        self.graph: HnswGraph | None = None
        self.vectors: Matrix = np.empty((0, dimension), dtype=np.float32)
        self.ids: list[str] = []
        # Lists, or LazyColumns of a snapshot's documents (decoded per value as they are read)
        # until the first write or whole-column read turns them into lists.
        self.texts: list[str] | LazyColumn[str] = []
        self.metadata: list[dict[str, Any] | None] | LazyColumn[dict[str, Any] | None] = []
        self.row_of: dict[str, int] = {}
        # True while rows [0:len] of self.vectors may be seen by someone else (an export, or a
        # read-only array handed to from_arrays): the next in-place write copies the matrix first.
        self.shared = False

    def __len__(self) -> int:
        return len(self.ids)

    def matrix(self) -> Matrix:
        """The live rows of the vector matrix (a view)."""
        return self.vectors[: len(self.ids)]

    def doc(self, row: int) -> StoredDoc:
        return StoredDoc(self.ids[row], self.texts[row], self.metadata[row])

    def lists(self) -> tuple[list[str], list[dict[str, Any] | None]]:
        """Texts and metadata as lists, decoding lazy columns (before writes and whole reads)."""
        texts = self.texts = _as_list(self.texts)
        metadata = self.metadata = _as_list(self.metadata)
        return texts, metadata

    def metadata_list(self) -> list[dict[str, Any] | None]:
        metadata = self.metadata = _as_list(self.metadata)
        return metadata

    # --- writes ---------------------------------------------------------------------------

    def upsert(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadata: Sequence[dict[str, Any] | None],
        vectors: Matrix,
    ) -> tuple[int, int]:
        """Add new documents and replace existing ones (last occurrence wins); (added, updated)."""
        # Last occurrence wins: a dict keeps the last index written for each id (built in C).
        last = dict(zip(ids, range(len(ids)), strict=True))
        self.lists()
        rows = self.row_of
        if len(last) == len(ids) and rows.keys().isdisjoint(last):
            self._append_new(ids, texts, metadata, vectors, last)
            return len(ids), 0
        new = [i for doc_id, i in last.items() if doc_id not in rows]
        old = [i for doc_id, i in last.items() if doc_id in rows] if len(new) < len(last) else []
        self._reserve(len(self.ids) + len(new))  # may raise: nothing changed yet
        if old:
            self._update_rows(old, ids, texts, metadata, vectors)
        if new:
            self._append_rows(new, ids, texts, metadata, vectors, whole=len(new) == len(ids))
        return len(new), len(old)

    def delete(self, ids: Iterable[str]) -> int:
        """Delete documents by id; return how many existed. Unknown ids are ignored."""
        deleted = 0
        self.lists()
        for doc_id in ids:
            row = self.row_of.get(doc_id)
            if row is None:
                continue
            if self.shared:
                self._unshare()
            self._remove_row(doc_id, row)
            deleted += 1
        if deleted:
            self._shrink()
        return deleted

    def _reserve(self, needed: int) -> None:
        """Grow the matrix so it holds ``needed`` rows (amortised O(1) per appended row)."""
        capacity = self.vectors.shape[0]
        if needed <= capacity:
            return
        if not self.shared:
            # In place when no one else holds the matrix (numpy refuses otherwise, checking its
            # references): the allocator moves the pages (mremap) instead of copying them, so
            # there is never a second matrix and a quarter of headroom keeps appends amortised.
            # Measured adding 1M x 384 in batches of 100k: doubling copies took 13 of 18 s.
            try:
                self.vectors.resize(
                    (max(needed, capacity + capacity // 4, _MIN_CAPACITY), self.dimension)
                )
                return
            except ValueError:  # viewed or adopted: copy
                pass
        grown = np.empty((max(needed, 2 * capacity, _MIN_CAPACITY), self.dimension), np.float32)
        count = len(self.ids)
        grown[:count] = self.vectors[:count]
        # The old matrix now belongs to whoever still views it (an export): nothing is shared.
        self.vectors = grown
        self.shared = False

    def _unshare(self) -> None:
        """Copy the matrix before an in-place write, so an exported view stays unchanged."""
        count = len(self.ids)
        copy = np.empty_like(self.vectors)
        copy[:count] = self.vectors[:count]
        self.vectors = copy
        self.shared = False

    def _update_rows(
        self,
        batch: list[int],
        ids: Sequence[str],
        texts: Sequence[str],
        metadata: Sequence[dict[str, Any] | None],
        vectors: Matrix,
    ) -> None:
        if self.shared:
            self._unshare()
        rows = [self.row_of[ids[i]] for i in batch]
        self.vectors[rows] = vectors[batch]
        stored_texts, stored_metadata = self.lists()
        if self.int8 is not None:
            self.int8.assign(rows, vectors[batch], self.matrix())
        if self.graph is not None:
            self.graph.assign(rows, vectors[batch])
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
        start = len(self.ids)
        stored_texts, stored_metadata = self.lists()
        # Rows past the current count are never part of an export's view: no copy needed.
        if whole:
            self.vectors[start : start + len(batch)] = vectors
            self.ids.extend(ids)
            stored_texts.extend(texts)
            stored_metadata.extend(metadata)
        else:
            self.vectors[start : start + len(batch)] = vectors[batch]
            self.ids.extend([ids[i] for i in batch])
            stored_texts.extend([texts[i] for i in batch])
            stored_metadata.extend([metadata[i] for i in batch])
        self.row_of.update(zip(self.ids[start:], range(start, len(self.ids)), strict=True))
        end = len(self.ids)
        if self.int8 is not None:
            self.int8.append(self.vectors[start:end], self.vectors[:end])
        if self.graph is not None:
            self.graph.append(start, self.vectors[start:end])

    def _append_new(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadata: Sequence[dict[str, Any] | None],
        vectors: Matrix,
        positions: dict[str, int],
    ) -> None:
        """Append a batch of new, distinct ids: column-wise, no per-document Python loop."""
        start = len(self.ids)
        self._reserve(start + len(ids))
        stored_texts, stored_metadata = self.lists()
        self.vectors[start : start + len(ids)] = vectors
        self.ids.extend(ids)
        stored_texts.extend(texts)
        stored_metadata.extend(metadata)
        if not self.row_of:
            self.row_of = positions  # rows are the batch positions: adopt the dict as it is
        else:
            self.row_of.update(zip(ids, range(start, start + len(ids)), strict=True))
        end = len(self.ids)
        if self.int8 is not None:
            self.int8.append(self.vectors[start:end], self.vectors[:end])
        if self.graph is not None:
            self.graph.append(start, self.vectors[start:end])

    def _remove_row(self, doc_id: str, row: int) -> None:
        """Move the last row into ``row`` so rows stay dense (O(1) per delete)."""
        last = len(self.ids) - 1
        texts, metadata = self.lists()
        del self.row_of[doc_id]
        if self.graph is not None:
            self.graph.remove(row, last)
        if row != last:
            moved = self.ids[last]
            self.vectors[row] = self.vectors[last]
            self.ids[row] = moved
            texts[row] = texts[last]
            metadata[row] = metadata[last]
            self.row_of[moved] = row
            if self.int8 is not None:
                self.int8.move(last, row)
        self.ids.pop()
        texts.pop()
        metadata.pop()
        if self.int8 is not None:
            self.int8.truncate(last)

    def _shrink(self) -> None:
        """Give memory back after mass deletes (keeps 2x headroom, so no thrashing)."""
        count, capacity = len(self.ids), self.vectors.shape[0]
        if capacity > 4 * max(count, _MIN_CAPACITY):
            self.vectors = self.vectors[: max(2 * count, _MIN_CAPACITY)].copy()
            self.shared = False

    # --- snapshot ---------------------------------------------------------------------------

    def export(self) -> tuple[Matrix, list[str], list[str], list[dict[str, Any] | None]]:
        """A read-only view of the vectors (copied before the next in-place write) and shallow
        copies of the lists."""
        view = self.matrix()
        view.flags.writeable = False
        self.shared = True
        texts, metadata = self.lists()
        return view, list(self.ids), list(texts), list(metadata)


def _as_list(column: list[T] | LazyColumn[T]) -> list[T]:
    return column.materialize() if isinstance(column, LazyColumn) else column
