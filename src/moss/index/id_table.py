"""Finding a document's row by id without a dict of every id: a snapshot's sorted id hashes.

A dict of a million ids costs ~200 MB of Python strings in every process that opens the index.
A snapshot's ``ids_index`` section (``docs/snapshot-format.md``) instead carries the hash of
every id, sorted, with the row of each: :class:`IdTable` views those arrays (the pages of a
mapped file, shared by every process) and finds an id by binary search, confirming it by
decoding the candidate's id from the snapshot (so a hash collision never returns a wrong row).
:class:`IdRows` keeps the rows written since the open in a dict beside the table, so the first
write costs what it writes.

The hash (spec in ``docs/snapshot-format.md``) is computed with numpy over every id at once, so
a reader checks the whole table against the ids in a few ms per 100k before its first lookup,
instead of trusting it: a table that does not match its ids is a ``SnapshotError``, never a
missed or wrong row. It is not a cryptographic hash: colliding ids are handled, only slower.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import SnapshotError
from ..validation import MAX_ID_BYTES
from .columns import LazyColumn

__all__ = [
    "IdColumn",
    "IdRows",
    "IdTable",
    "hash_id",
    "hash_ids",
    "hash_segments",
    "literal_hashes",
]

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
_MASK = (1 << 64) - 1
_GOLDEN, _MIX1, _MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
# _KEEP[r] keeps the low r bytes of a little-endian word (r = 8: all of it).
_KEEP = np.array([(1 << (8 * r)) - 1 for r in range(9)], dtype=np.uint64)
_BACKSLASH = ord("\\")


def _mix(x: int) -> int:
    """splitmix64's output function of ``x + golden``, on Python ints (mod 2**64)."""
    z = (x + _GOLDEN) & _MASK
    z = ((z ^ (z >> 30)) * _MIX1) & _MASK
    z = ((z ^ (z >> 27)) * _MIX2) & _MASK
    return z ^ (z >> 31)


def _mix_array(z: U64) -> U64:
    """:func:`_mix` over an array (uint64 arithmetic wraps mod 2**64)."""
    z = z + np.uint64(_GOLDEN)
    z ^= z >> np.uint64(30)
    z *= np.uint64(_MIX1)
    z ^= z >> np.uint64(27)
    z *= np.uint64(_MIX2)
    z ^= z >> np.uint64(31)
    return z


def hash_id(doc_id: str) -> int:
    """The id hash of ``doc_id``: ``mix(length)``, then ``h = mix(h ^ word)`` for each 8-byte
    little-endian word of its UTF-8 bytes (the last one zero-padded)."""
    data = doc_id.encode("utf-8", "surrogatepass")
    h = _mix(len(data))
    for start in range(0, len(data), 8):
        h = _mix(h ^ int.from_bytes(data[start : start + 8], "little"))
    return h


def hash_segments(data: npt.NDArray[np.uint8], starts: I64, lengths: I64) -> U64:
    """:func:`hash_id` of every byte range ``data[starts[i] : starts[i] + lengths[i]]`` at once."""
    if len(data) < 8:  # the word view below needs 8 bytes
        data = np.concatenate([data, np.zeros(8, np.uint8)])
    # Every byte offset seen as the start of a little-endian u64 (unaligned, overlapping): no copy.
    words = np.ndarray((len(data) - 7,), dtype="<u8", buffer=data, strides=(1,))
    last = len(data) - 8
    h = _mix_array(lengths.astype(np.uint64))
    # Round k mixes in word k of the ids longer than 8k bytes (all of them in round 0, usually).
    active: npt.NDArray[np.intp] | None = None
    if len(lengths) and lengths.min() <= 0:
        active = np.flatnonzero(lengths > 0)
    offset = 0
    while active is None or len(active):
        left = lengths if active is None else lengths[active]
        at = starts if active is None else starts[active]
        if offset:
            left, at = left - offset, at + offset
        if len(at) and int(at.max()) > last:  # words that would run past the end: read each
            clipped = np.minimum(at, last)  # from earlier and shift it down
            word = words[clipped] >> ((at - clipped) * 8).astype(np.uint64)
        else:
            word = words[at]
        word &= _KEEP[np.minimum(left, 8)]
        if active is None:
            h = _mix_array(h ^ word)
            active = np.flatnonzero(left > 8)
        else:
            h[active] = _mix_array(h[active] ^ word)
            active = active[left > 8]
        offset += 8
    return h


def hash_ids(ids: Sequence[str]) -> U64:
    """:func:`hash_id` of each of ``ids``, computed together."""
    encoded = [doc_id.encode("utf-8", "surrogatepass") for doc_id in ids]
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    starts = np.zeros(len(encoded), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    return hash_segments(np.frombuffer(b"".join(encoded), dtype=np.uint8), starts, lengths)


def literal_hashes(raw: bytes | memoryview, bounds: I64, decode: Callable[[int], str]) -> U64:
    """:func:`hash_id` of each id of a JSON list whose literal ``i`` spans ``raw[bounds[i] :
    bounds[i+1] - 1]`` (quotes included; the separator follows). A literal without a backslash
    holds its id's UTF-8 bytes between its quotes; the rare escaped ones are hashed from
    ``decode(i)``. Raises :class:`SnapshotError` for an id that is empty or too long."""
    data = np.frombuffer(raw, dtype=np.uint8)
    lengths = bounds[1:] - bounds[:-1] - 3
    h = hash_segments(data, bounds[:-1] + 1, lengths)
    slashes = np.flatnonzero(data[bounds[0] : bounds[-1]] == _BACKSLASH) + bounds[0]
    # Marked by a mask, not np.unique (whose first call imports numpy.ma: ~30 ms).
    plain = np.ones(len(lengths), dtype=bool)
    plain[np.searchsorted(bounds, slashes, side="right") - 1] = False
    escaped = np.flatnonzero(~plain)
    if np.any(plain & ((lengths < 1) | (lengths > MAX_ID_BYTES))):
        bad = int(np.flatnonzero(plain & ((lengths < 1) | (lengths > MAX_ID_BYTES)))[0])
        raise SnapshotError(
            f"snapshot document id {bad} is empty or longer than {MAX_ID_BYTES} bytes"
        )
    for row in escaped.tolist():
        h[row] = hash_id(decode(row))
    return h


class IdTable:
    """The rows of a snapshot's ids, found by hash: ``hashes`` ascending, ``rows[k]`` the row of
    ``hashes[k]`` (read-only arrays, typically views of a mapped file), over ``ids``, the
    snapshot's id column (its overlay is ignored: the table describes the snapshot's rows).

    The table is checked against the ids in full before its first lookup (:meth:`verify`).
    Shared by every engine opened from the same snapshot; each keeps its writes in an
    :class:`IdRows`.
    """

    def __init__(self, hashes: U64, rows: npt.NDArray[Any], ids: LazyColumn[str]) -> None:
        self._hashes = hashes
        self._rows = rows
        self._ids = ids
        self._verified = False

    def __len__(self) -> int:
        return len(self._hashes)

    def find(self, doc_id: str) -> int | None:
        """The snapshot row of ``doc_id``, or None."""
        self.verify()
        return self._confirm(doc_id, int(np.searchsorted(self._hashes, np.uint64(hash_id(doc_id)))))

    def find_many(self, ids: Sequence[str]) -> list[int | None]:
        """:meth:`find` for each of ``ids`` (the hashes computed together)."""
        if len(ids) < 16:
            return [self.find(doc_id) for doc_id in ids]
        self.verify()
        hashes = hash_ids(ids)
        at = np.searchsorted(self._hashes, hashes)
        hit = np.zeros(len(ids), dtype=bool)
        inside = at < len(self._hashes)
        hit[inside] = self._hashes[at[inside]] == hashes[inside]
        found: list[int | None] = [None] * len(ids)
        for i in np.flatnonzero(hit).tolist():
            found[i] = self._confirm(ids[i], int(at[i]))
        return found

    def _confirm(self, doc_id: str, at: int) -> int | None:
        """The row among the equal hashes from ``at`` whose id is ``doc_id`` (read to confirm)."""
        hashes, count = self._hashes, len(self._hashes)
        wanted = hash_id(doc_id)
        while at < count and int(hashes[at]) == wanted:
            row = int(self._rows[at])
            if self._ids.base(row) == doc_id:
                return row
            at += 1
        return None

    def verify(self) -> None:
        """Check the table describes the ids (once): rows a permutation, hashes ascending and
        equal to the ids' hashes, ids distinct. Raises :class:`SnapshotError` otherwise."""
        if self._verified:
            return
        count, rows, hashes = len(self._ids.bounds) - 1, self._rows, self._hashes
        if len(rows) != count or len(hashes) != count:
            raise SnapshotError("snapshot id index does not cover its ids: the data is corrupt")
        if count:
            seen = np.zeros(count, dtype=bool)
            if int(rows.max()) >= count or not _all_set(seen, rows):
                raise SnapshotError("snapshot id index rows are not a permutation: corrupt data")
            if np.any(hashes[1:] < hashes[:-1]):
                raise SnapshotError("snapshot id index hashes are not sorted: the data is corrupt")
            actual = literal_hashes(self._ids.raw, self._ids.bounds, self._ids.base)
            if not np.array_equal(actual[rows], hashes):
                raise SnapshotError("snapshot id index does not match the ids: the data is corrupt")
            self._check_collisions()
        self._verified = True

    def _check_collisions(self) -> None:
        """Ids with equal hashes (rare) must still differ: read and compare them."""
        same = self._hashes[1:] == self._hashes[:-1]
        if not same.any():
            return
        groups: dict[int, set[str]] = {}
        for k in np.flatnonzero(np.r_[same, False] | np.r_[False, same]).tolist():
            doc_id = self._ids.base(int(self._rows[k]))
            group = groups.setdefault(int(self._hashes[k]), set())
            if doc_id in group:
                raise SnapshotError(f"snapshot document id {doc_id!r} occurs more than once")
            group.add(doc_id)


def _all_set(seen: npt.NDArray[np.bool_], rows: npt.NDArray[Any]) -> bool:
    seen[rows] = True
    return bool(seen.all())


class IdRows:
    """Row of each id for an engine opened from a snapshot: the snapshot's :class:`IdTable`
    for rows never moved, a dict for ids written, moved or deleted since (``-1``: deleted)."""

    __slots__ = ("_changed", "_table")

    def __init__(self, table: IdTable) -> None:
        self._table = table
        self._changed: dict[str, int] = {}

    def get(self, doc_id: str) -> int | None:
        row = self._changed.get(doc_id)
        if row is None:
            # Anything but a string is no id (as a dict of ids would answer).
            return self._table.find(doc_id) if isinstance(doc_id, str) else None
        return row if row >= 0 else None

    def get_many(self, ids: Sequence[str]) -> list[int | None]:
        changed = self._changed
        found = [changed.get(doc_id) for doc_id in ids]
        todo = [i for i, row in enumerate(found) if row is None and isinstance(ids[i], str)]
        for i, row in zip(todo, self._table.find_many([ids[i] for i in todo]), strict=True):
            found[i] = row
        return [None if row is None or row < 0 else row for row in found]

    def __contains__(self, doc_id: object) -> bool:
        return isinstance(doc_id, str) and self.get(doc_id) is not None

    def __getitem__(self, doc_id: str) -> int:
        row = self.get(doc_id)
        if row is None:
            raise KeyError(doc_id)
        return row

    def __setitem__(self, doc_id: str, row: int) -> None:
        self._changed[doc_id] = row

    def update(self, pairs: Iterable[tuple[str, int]]) -> None:
        self._changed.update(pairs)

    def remove(self, doc_id: str) -> None:
        """Forget ``doc_id`` (it must be present)."""
        if doc_id in self._changed and self._table.find(doc_id) is None:
            del self._changed[doc_id]  # written since the open: nothing of it in the table
        else:
            self._changed[doc_id] = -1


class IdColumn(LazyColumn[str]):
    """A snapshot's id column (decoded id by id, like texts) with the :class:`IdTable` that finds
    its rows; an engine adopting it looks ids up through the table instead of building a dict."""

    __slots__ = ("table",)

    def __init__(
        self, raw: bytes, bounds: I64, check: Any, hashes: U64, rows: npt.NDArray[Any]
    ) -> None:
        super().__init__(raw, bounds, check)
        self.table = IdTable(hashes, rows, LazyColumn[str](raw, bounds, check))

    def _new(self) -> IdColumn:
        column = IdColumn.__new__(IdColumn)
        LazyColumn.__init__(column, self._raw, self._bounds, self._check)
        column.table = self.table
        return column
