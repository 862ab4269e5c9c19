"""The engine's vector matrix, as a read-only base block, patches of it and a writable tail.

An engine opened from a snapshot adopts the decoded vectors as they are (often read-only views of
the snapshot's bytes, or of a mapped file). Growing one matrix would copy all of them at the
first append (measured: most of a 0.3 s first refresh at 100k x 384), so the adopted rows stay a
*base* that is never written: appended rows go to a writable *tail* with spare capacity, and a
base row that is overwritten (an update, or a delete moving the last row into a hole) is kept
as a *patch* whose scores replace the base's. Once patches pass a fraction of the base (or a
caller needs one contiguous matrix) everything is folded into the tail, one copy in all.

An engine built by writes has no base: its tail is the whole matrix, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["VectorBlocks"]

Matrix = npt.NDArray[np.float32]
Rows = npt.NDArray[np.intp]

_MIN_CAPACITY = 64
# Patches are folded into one matrix past this fraction of the base rows: each search scores
# the patched rows a second time, so a few percent of them costs a few percent of a search.
_PATCH_FRACTION = 1 / 32


class VectorBlocks:
    """Vectors of rows ``0 .. count-1``: base rows, then tail rows; patched base rows replaced."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self.base: Matrix = np.empty((0, dimension), dtype=np.float32)
        self.tail: Matrix = np.empty((0, dimension), dtype=np.float32)
        self.count = 0
        # Patched base rows (unordered) and their vectors, in the first len(patch_rows) rows of
        # patch_vectors; patch_slot maps a base row to its patch (-1: none), made at the first.
        self.patch_rows: list[int] = []
        self.patch_vectors: Matrix = np.empty((0, dimension), dtype=np.float32)
        self.patch_slot: Rows | None = None
        # How many tail rows an export may still be viewing: writing one of them (an update, a
        # delete's move, an append after deletes) copies the tail first.
        self.exported = 0

    @classmethod
    def adopt(cls, vectors: Matrix) -> VectorBlocks:
        """Blocks whose base is ``vectors``, never written (so it may be read-only)."""
        blocks = cls(vectors.shape[1])
        blocks.base = vectors
        blocks.count = len(vectors)
        return blocks

    def __len__(self) -> int:
        return self.count

    @property
    def plain(self) -> bool:
        """Whether every row is in the tail, in place (no base, no patches)."""
        return len(self.base) == 0

    # --- reads ----------------------------------------------------------------------------

    def take(self, rows: Sequence[int] | Rows) -> Matrix:
        """Copies of the vectors of ``rows``, in order."""
        if self.plain:
            return np.take(self.tail, rows, axis=0)  # copies
        picked = np.asarray(rows, dtype=np.intp)
        split = len(self.base)
        if self.count <= split:
            out = self.base[picked]
        else:
            out = np.empty((len(picked), self.dimension), dtype=np.float32)
            in_base = picked < split
            out[in_base] = self.base[picked[in_base]]
            out[~in_base] = self.tail[picked[~in_base] - split]
        if self.patch_slot is not None:
            in_base = picked < split
            slots = self.patch_slot[picked[in_base]]
            hit = slots >= 0
            if hit.any():
                out[np.flatnonzero(in_base)[hit]] = self.patch_vectors[slots[hit]]
        return out

    def scores(self, queries: Matrix, product: Callable[[Matrix, Matrix], Matrix]) -> Matrix:
        """``product(queries, block)`` over every row, shape (len(queries), count)."""
        if self.plain:
            return product(queries, self.tail[: self.count])
        split = len(self.base)
        scores = product(queries, self.base)
        if self.count > split:
            tail = product(queries, self.tail[: self.count - split])
            scores = np.concatenate([scores, tail], axis=1)
        if self.patch_rows:
            patched = product(queries, self.patch_vectors[: len(self.patch_rows)])
            scores[:, self.patch_rows] = patched
        return scores

    def matrix(self) -> Matrix:
        """Every row as one contiguous matrix (a view; folds a base that has company)."""
        if not self.plain and (self.patch_rows or self.count > len(self.base)):
            self.fold()
        return self.base[: self.count] if not self.plain else self.tail[: self.count]

    # --- writes ---------------------------------------------------------------------------

    def append(self, vectors: Matrix) -> None:
        """Add ``vectors`` as the next rows (amortised O(1) per row; the base is not copied)."""
        start = self.count - len(self.base)
        self.reserve(self.count + len(vectors))
        if start < self.exported:
            self._unshare()
        self.tail[start : start + len(vectors)] = vectors
        self.count += len(vectors)

    def reserve(self, needed: int) -> None:
        """Make room for ``needed`` rows in all (may raise MemoryError: nothing changes then)."""
        needed -= len(self.base)
        capacity = self.tail.shape[0]
        if needed <= capacity:
            return
        used = self.count - len(self.base)
        if not used:
            # Nothing to keep: a fresh matrix, never zero-filled (resize zero-fills its growth,
            # which touched every page twice: measured 2x the time of one 1M x 384 add).
            self.tail = np.empty((max(needed, _MIN_CAPACITY), self.dimension), np.float32)
            self.exported = 0
            return
        if not self.exported:
            # In place when no one else holds the matrix (numpy refuses otherwise, checking its
            # references): the allocator moves the pages (mremap) instead of copying them, so
            # there is never a second matrix and a quarter of headroom keeps appends amortised.
            # Measured adding 1M x 384 in batches of 100k: doubling copies took 13 of 18 s.
            try:
                self.tail.resize(
                    (max(needed, capacity + capacity // 4, _MIN_CAPACITY), self.dimension)
                )
                return
            except ValueError:  # viewed or adopted: copy
                pass
        grown = np.empty((max(needed, 2 * capacity, _MIN_CAPACITY), self.dimension), np.float32)
        grown[:used] = self.tail[:used]
        # The old matrix now belongs to whoever still views it (an export): nothing is shared.
        self.tail = grown
        self.exported = 0

    def assign(self, rows: Sequence[int], vectors: Matrix) -> None:
        """Overwrite ``rows`` (each < count) with ``vectors``."""
        split = len(self.base)
        if not self.plain and len(self.patch_rows) + len(rows) > self._patch_limit():
            self.fold()  # a big batch: one copy now rather than patches and a copy later
        if self.exported:
            self._unshare()
        if self.plain:
            self.tail[rows] = vectors
            return
        for row, vector in zip(rows, vectors, strict=True):
            if row >= split:
                self.tail[row - split] = vector
            else:
                self._patch(row, vector)

    def _patch_limit(self) -> float:
        return max(_MIN_CAPACITY, _PATCH_FRACTION * len(self.base))

    def move(self, source: int, target: int) -> None:
        """Copy row ``source`` over row ``target``."""
        if not self.plain:
            self.assign([target], self.take([source]))
            return
        if self.exported:
            self._unshare()
        self.tail[target] = self.tail[source]

    def truncate(self, count: int) -> None:
        """Forget the rows from ``count`` on."""
        self.count = count
        split = len(self.base)
        if count < split:
            self.base = self.base[:count]
            if self.patch_slot is not None:
                self.patch_slot = self.patch_slot[:count]
            if any(row >= count for row in self.patch_rows):
                self._drop_patches_from(count)

    def shrink(self) -> None:
        """Give memory back after mass deletes (keeps 2x headroom, so no thrashing)."""
        used, capacity = self.count - len(self.base), self.tail.shape[0]
        if capacity > 4 * max(used, _MIN_CAPACITY):
            self.tail = self.tail[: max(2 * used, _MIN_CAPACITY)].copy()
            self.exported = 0

    def export(self) -> Matrix:
        """A read-only view of every row, copied before the next in-place write."""
        view = self.matrix()
        view.flags.writeable = False
        if self.plain:  # (a base is never written)
            # An earlier export may view more rows than this one (deletes came between).
            self.exported = max(self.exported, self.count)
        return view

    def fold(self) -> None:
        """Copy every row, patches applied, into the tail: one contiguous writable matrix."""
        count = self.count
        merged = np.empty((max(count + count // 4, _MIN_CAPACITY), self.dimension), np.float32)
        split = min(len(self.base), count)
        merged[:split] = self.base[:split]
        merged[split:count] = self.tail[: count - split]
        if self.patch_rows:
            merged[self.patch_rows] = self.patch_vectors[: len(self.patch_rows)]
        self.tail = merged
        self.base = np.empty((0, self.dimension), dtype=np.float32)
        self._drop_patches_from(0)
        self.exported = 0

    def _unshare(self) -> None:
        """Copy the tail before an in-place write, so an exported view stays unchanged."""
        used = self.count - len(self.base)
        copy = np.empty_like(self.tail)
        copy[:used] = self.tail[:used]
        self.tail = copy
        self.exported = 0

    def _patch(self, row: int, vector: Matrix) -> None:
        if self.patch_slot is None:
            self.patch_slot = np.full(len(self.base), -1, dtype=np.intp)
        slot = int(self.patch_slot[row])
        if slot < 0:
            slot = len(self.patch_rows)
            if slot == len(self.patch_vectors):
                grown = np.empty((max(2 * slot, 16), self.dimension), dtype=np.float32)
                grown[:slot] = self.patch_vectors[:slot]
                self.patch_vectors = grown
            self.patch_rows.append(row)
            self.patch_slot[row] = slot
        self.patch_vectors[slot] = vector

    def _drop_patches_from(self, count: int) -> None:
        """Forget the patches of rows ``count`` and later."""
        keep = [slot for slot, row in enumerate(self.patch_rows) if row < count]
        self.patch_vectors = self.patch_vectors[keep]
        self.patch_rows = [self.patch_rows[slot] for slot in keep]
        if self.patch_slot is not None:
            self.patch_slot[:] = -1
            self.patch_slot[self.patch_rows] = np.arange(len(keep), dtype=np.intp)
        if not self.patch_rows:
            self.patch_slot = None
