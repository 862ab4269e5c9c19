"""Lazily decoded document columns: a JSON list kept as bytes, decoded value by value.

A column opened from a snapshot's documents section (see :mod:`moss.snapshot.documents`) stays
a view of its raw bytes until it is read: a query decodes its results only, a filter or an export
decodes the whole column at once. Writes go to an overlay (values replaced by row, values
appended after the snapshot's), so applying a small delta to a freshly opened index costs what
it writes, not a decode of every value.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Generic, TypeVar, overload

import numpy as np
import numpy.typing as npt
import orjson

from ..errors import SnapshotError
from .gc_pause import gc_paused

__all__ = ["LazyColumn", "adopt_column"]

_T = TypeVar("_T")


class LazyColumn(Sequence[_T], Generic[_T]):
    """A column of the documents section, decoded value by value as it is read.

    ``materialize()`` decodes the whole column at once (one ``orjson.loads``, checked like an
    eagerly parsed column), which is faster than reading every value. Rows can be replaced,
    appended and popped like a list's; those values are kept apart and never encoded.
    """

    __slots__ = ("_appended", "_bounds", "_check", "_count", "_offsets", "_raw", "_replaced")

    def __init__(self, raw: bytes, bounds: npt.NDArray[np.int64], check: Any) -> None:
        self._raw = raw
        self._bounds = bounds
        # The same offsets read as Python ints (no copy): a numpy index costs more than a
        # page of results' values.
        self._offsets = np.ascontiguousarray(bounds, dtype=np.int64).data.cast("B").cast("q")
        self._check = check
        # The first _count values of the snapshot are rows (pops from the end lower it), the
        # ones in _replaced by row override them, and rows from _count on are in _appended.
        self._count = len(bounds) - 1
        self._replaced: dict[int, _T] = {}
        self._appended: list[_T] = []

    def __len__(self) -> int:
        return self._count + len(self._appended)

    @overload
    def __getitem__(self, i: int) -> _T: ...
    @overload
    def __getitem__(self, i: slice) -> list[_T]: ...
    def __getitem__(self, i: int | slice) -> _T | list[_T]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = operator.index(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError("document index out of range")
        if i >= self._count:
            return self._appended[i - self._count]
        if i in self._replaced:
            return self._replaced[i]
        return self.base(i)

    @property
    def pristine(self) -> bool:
        """Whether the column holds exactly the snapshot's values (nothing written since)."""
        return self._count == len(self._bounds) - 1 and not self._replaced and not self._appended

    @property
    def raw(self) -> bytes:
        """The bytes the snapshot's values are read from (a memoryview of a mapped file, too)."""
        return self._raw

    @property
    def bounds(self) -> npt.NDArray[np.int64]:
        """Where each snapshot value starts (and one past the last one's separator)."""
        return self._bounds

    def base(self, i: int) -> _T:
        """The snapshot's value ``i`` (``0 <= i < len(bounds) - 1``), whatever was written since."""
        literal = self._raw[self._offsets[i] : self._offsets[i + 1] - 1]
        try:
            value = orjson.loads(literal)
        except orjson.JSONDecodeError as exc:
            raise SnapshotError(f"snapshot document {i} is not valid JSON: {exc}") from exc
        self._check([value])
        return value  # type: ignore[no-any-return]

    def take(self, rows: list[int]) -> list[_T]:
        """``[self[row] for row in rows]``, ~3x faster for a page of results: the snapshot's
        values are still each decoded from their own bounds (so no value can run into the
        next), then checked in one call; anything unusual (a row written since or out of range,
        a value that fails) goes value by value, which raises what reading it alone raises."""
        count = self._count
        if (
            not rows
            or min(rows) < 0
            or max(rows) >= count
            or (self._replaced and not self._replaced.keys().isdisjoint(rows))
        ):
            return [self[row] for row in rows]
        raw, offsets, loads = self._raw, self._offsets, orjson.loads
        try:
            values = [loads(raw[offsets[row] : offsets[row + 1] - 1]) for row in rows]
            self._check(values)
        except (orjson.JSONDecodeError, SnapshotError):
            # One by one, for the error reading that value alone raises (the id check also
            # refuses duplicates, which only the whole column can have).
            return [self[row] for row in rows]
        return values

    def __iter__(self) -> Iterator[_T]:
        return iter(self.materialize())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (LazyColumn, list)):
            return self.materialize() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def copy(self) -> LazyColumn[_T]:
        """A column of the same values whose writes are its own (the bytes are shared)."""
        column = self._new()
        column._count = self._count
        column._replaced = dict(self._replaced)
        column._appended = list(self._appended)
        return column

    def _new(self) -> LazyColumn[_T]:
        """An empty overlay over the same snapshot values (subclasses keep what they carry)."""
        return LazyColumn[_T](self._raw, self._bounds, self._check)

    def __setitem__(self, i: int, value: _T) -> None:
        i = operator.index(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError("document index out of range")
        if i >= self._count:
            self._appended[i - self._count] = value
        else:
            self._replaced[i] = value

    def append(self, value: _T) -> None:
        self._appended.append(value)

    def extend(self, values: Iterable[_T]) -> None:
        self._appended.extend(values)

    def pop(self) -> _T:
        """Remove and return the last value."""
        if self._appended:
            return self._appended.pop()
        if not self._count:
            raise IndexError("pop from an empty column")
        value = self[self._count - 1]
        self._count -= 1
        self._replaced.pop(self._count, None)
        return value

    def materialize(self) -> list[_T]:
        """Every value, as a new list."""
        column = self._decode_all()
        del column[self._count :]
        for row, value in self._replaced.items():
            column[row] = value
        column.extend(self._appended)
        return column

    def _decode_all(self) -> list[_T]:
        """Every value of the snapshot's column, checked."""
        with gc_paused():
            try:
                column = orjson.loads(self._raw[self._bounds[0] - 1 : self._bounds[-1]])
            except orjson.JSONDecodeError as exc:
                raise SnapshotError(f"snapshot documents column is not valid JSON: {exc}") from exc
        if not isinstance(column, list) or len(column) != len(self._bounds) - 1:
            raise SnapshotError("snapshot documents column does not match its index")
        self._check(column)
        return column


def adopt_column(column: Sequence[_T]) -> list[_T] | LazyColumn[_T]:
    """A column for an engine to own: a list as it is, a lazy column as a copy whose writes are
    its own (several engines may open the same decoded snapshot), anything else as a list."""
    if type(column) is list:
        return column
    return column.copy() if isinstance(column, LazyColumn) else list(column)
