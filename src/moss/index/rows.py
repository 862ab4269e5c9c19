"""The engine's storage: one row per document across a vector matrix, ids, texts and metadata.

Vectors live in :class:`~moss.index.vector_blocks.VectorBlocks`: one float32 matrix with spare
capacity for an engine built by writes; for one opened from a snapshot, the decoded vectors as a
base that is never written, plus the rows written since. Row ``i`` belongs to ``ids[i]``,
``texts[i]`` and ``metadata[i]``, and ``row_of`` maps each id to its row. Deleting moves the last
row into the hole, so rows stay dense and a search is one product per block.

Ids, texts and metadata opened from a snapshot stay :class:`~moss.index.columns.LazyColumn` views
of its bytes, decoded per value as results are returned; writes go to their overlays, and a
filter or an export turns them into lists. With the snapshot's id table, ``row_of`` is an
:class:`~moss.index.id_table.IdRows` (the table, plus a dict of the ids written since) instead of
a dict of every id. So the first write after an open costs what it writes. Not thread-safe on
its own: the engine calls it under its lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt

from ..errors import InvalidArgumentError
from .columns import LazyColumn, adopt_column
from .id_table import IdColumn, IdRows
from .quantize import Int8Index
from .vector_blocks import VectorBlocks

if TYPE_CHECKING:
    from .hnsw import HnswGraph

__all__ = ["DocumentRows", "StoredDoc"]

T = TypeVar("T")
Matrix = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class StoredDoc:
    """A document as the engine stores it (its vector is kept apart, in the matrix)."""

    id: str
    text: str
    metadata: dict[str, Any] | None

    def __init__(self, id: str, text: str, metadata: dict[str, Any] | None) -> None:
        # The fields' slot setters, not the frozen dataclass's object.__setattr__ per field:
        # half the cost (0.27 vs 0.53 us warm), and a search builds one per result.
        _SET_ID(self, id)
        _SET_TEXT(self, text)
        _SET_METADATA(self, metadata)


_SET_ID = StoredDoc.__dict__["id"].__set__
_SET_TEXT = StoredDoc.__dict__["text"].__set__
_SET_METADATA = StoredDoc.__dict__["metadata"].__set__


class DocumentRows:
    """Dense rows of documents with their vectors and optional int8 codes."""

    def __init__(self, dimension: int, int8: bool = False) -> None:
        self.dimension = dimension
        self.int8: Int8Index | None = Int8Index(dimension) if int8 else None
        # The HNSW graph of an hnsw engine once it has one (see moss.index.hnsw), kept in step.
        self.graph: HnswGraph | None = None
        self.blocks = VectorBlocks(dimension)
        # Lists, or LazyColumns of a snapshot's documents (decoded per value as they are read)
        # until a whole-column read turns them into lists.
        self.ids: list[str] | LazyColumn[str] = []
        self.texts: list[str] | LazyColumn[str] = []
        self.metadata: list[dict[str, Any] | None] | LazyColumn[dict[str, Any] | None] = []
        self.row_of: dict[str, int] | IdRows = {}

    def __len__(self) -> int:
        return len(self.ids)

    def matrix(self) -> Matrix:
        """The live rows of the vector matrix as one contiguous view (may copy them once)."""
        return self.blocks.matrix()

    @property
    def vectors(self) -> Matrix:
        """:meth:`matrix` (for tests and tools that read the stored vectors)."""
        return self.blocks.matrix()

    def take(self, rows: Sequence[int] | npt.NDArray[np.intp]) -> Matrix:
        """Copies of the vectors of ``rows``, in order."""
        return self.blocks.take(rows)

    def doc(self, row: int) -> StoredDoc:
        return StoredDoc(self.ids[row], self.texts[row], self.metadata[row])

    def hits(self, picked: list[tuple[int, float]]) -> list[tuple[StoredDoc, float]]:
        """The documents of ``(row, score)`` pairs, with their scores; lazy columns decode
        their values together (:meth:`LazyColumn.take`)."""
        rows = [row for row, _ in picked]
        columns = zip(
            _take(self.ids, rows),
            _take(self.texts, rows),
            _take(self.metadata, rows),
            [score for _, score in picked],
            strict=True,
        )
        return [(StoredDoc(doc_id, text, meta), score) for doc_id, text, meta, score in columns]

    def rows_of(self, ids: Sequence[str]) -> list[int | None]:
        """The row of each id (None for unknown ones), looked up together."""
        row_of = self.row_of
        if isinstance(row_of, dict):
            return list(map(row_of.get, ids))
        return row_of.get_many(ids)

    def adopt(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadata: Sequence[dict[str, Any] | None],
    ) -> None:
        """Take a snapshot's columns as the rows (see ``Engine.from_arrays``). A snapshot's
        :class:`IdColumn` brings the table that finds its rows (checked before its first use);
        other ids (and one written since, which its table no longer describes) are listed and
        mapped by a dict."""
        if isinstance(ids, IdColumn) and ids.pristine:
            self.ids = ids.copy()
            self.row_of = IdRows(ids.table)
        else:
            listed = ids if type(ids) is list else list(ids)
            rows = dict(zip(listed, range(len(listed)), strict=True))
            if len(rows) != len(listed):
                raise InvalidArgumentError("document ids must be unique; found duplicates")
            self.ids, self.row_of = listed, rows
        self.texts = adopt_column(texts)
        self.metadata = adopt_column(metadata)

    def lists(self) -> tuple[list[str], list[dict[str, Any] | None]]:
        """Texts and metadata as lists, decoding lazy columns (ids too) for whole reads."""
        self.ids = _as_list(self.ids)
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
        rows = self.row_of
        if isinstance(rows, dict):
            if len(last) == len(ids) and rows.keys().isdisjoint(last):
                self._append_new(ids, texts, metadata, vectors, last)
                return len(ids), 0
            found = [rows.get(doc_id) for doc_id in last]
        else:
            found = rows.get_many(list(last))
            if len(last) == len(ids) and all(row is None for row in found):
                self._append_new(ids, texts, metadata, vectors, last)
                return len(ids), 0
        new = [i for i, row in zip(last.values(), found, strict=True) if row is None]
        old = [(row, i) for i, row in zip(last.values(), found, strict=True) if row is not None]
        self.blocks.reserve(len(self.ids) + len(new))  # may raise: nothing changed yet
        if old:
            self._update_rows(old, texts, metadata, vectors)
        if new:
            self._append_rows(new, ids, texts, metadata, vectors, whole=len(new) == len(ids))
        return len(new), len(old)

    def delete(self, ids: Iterable[str]) -> int:
        """Delete documents by id; return how many existed. Unknown ids are ignored."""
        deleted = 0
        for doc_id in ids:
            row = self.row_of.get(doc_id)
            if row is None:
                continue
            self._remove_row(doc_id, row)
            deleted += 1
        if deleted:
            self.blocks.shrink()
        return deleted

    def _update_rows(
        self,
        found: list[tuple[int, int]],
        texts: Sequence[str],
        metadata: Sequence[dict[str, Any] | None],
        vectors: Matrix,
    ) -> None:
        """Replace rows in place: ``found`` pairs each row with its document's batch position."""
        rows = [row for row, _ in found]
        batch = [i for _, i in found]
        self.blocks.assign(rows, vectors[batch])
        stored_texts, stored_metadata = self.texts, self.metadata
        if self.int8 is not None:
            self.int8.assign(rows, vectors[batch], self.matrix)
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
        added = vectors if whole else vectors[batch]
        # Rows past the current count are never part of an export's view: no copy needed.
        self.blocks.append(added)
        added_ids = ids if whole else [ids[i] for i in batch]
        self.ids.extend(added_ids)
        if whole:
            self.texts.extend(texts)
            self.metadata.extend(metadata)
        else:
            self.texts.extend([texts[i] for i in batch])
            self.metadata.extend([metadata[i] for i in batch])
        self.row_of.update(zip(added_ids, range(start, len(self.ids)), strict=True))
        self._appended(start, added)

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
        self.blocks.append(vectors)  # may raise: nothing changed yet
        self.ids.extend(ids)
        self.texts.extend(texts)
        self.metadata.extend(metadata)
        if start == 0:
            self.row_of = positions  # rows are the batch positions: adopt the dict as it is
        else:
            self.row_of.update(zip(ids, range(start, start + len(ids)), strict=True))
        self._appended(start, vectors)

    def _appended(self, start: int, vectors: Matrix) -> None:
        """Keep the int8 codes and the graph in step with rows appended from ``start``."""
        vectors = np.ascontiguousarray(vectors)
        if self.int8 is not None:
            # The codes may need every row (to calibrate again): one contiguous matrix.
            self.int8.append(vectors, self.matrix)
        if self.graph is not None:
            self.graph.append(start, vectors)

    def _remove_row(self, doc_id: str, row: int) -> None:
        """Move the last row into ``row`` so rows stay dense (O(1) per delete)."""
        last = len(self.ids) - 1
        texts, metadata = self.texts, self.metadata
        if isinstance(self.row_of, dict):
            del self.row_of[doc_id]
        else:
            self.row_of.remove(doc_id)
        if self.graph is not None:
            self.graph.remove(row, last)
        if row != last:
            moved = self.ids[last]
            self.blocks.move(last, row)
            self.ids[row] = moved
            texts[row] = texts[last]
            metadata[row] = metadata[last]
            self.row_of[moved] = row
            if self.int8 is not None:
                self.int8.move(last, row)
        self.ids.pop()
        texts.pop()
        metadata.pop()
        self.blocks.truncate(last)
        if self.int8 is not None:
            self.int8.truncate(last)

    # --- snapshot ---------------------------------------------------------------------------

    def export(self) -> tuple[Matrix, list[str], list[str], list[dict[str, Any] | None]]:
        """A read-only view of the vectors (copied before the next in-place write) and shallow
        copies of the lists."""
        view = self.blocks.export()
        texts, metadata = self.lists()
        return view, list(self.ids), list(texts), list(metadata)


def _as_list(column: list[T] | LazyColumn[T]) -> list[T]:
    return column.materialize() if isinstance(column, LazyColumn) else column


def _take(column: list[T] | LazyColumn[T], rows: list[int]) -> list[T]:
    if isinstance(column, LazyColumn):
        return column.take(rows)
    return [column[row] for row in rows]
