"""Lazily decoded document columns: a JSON list kept as bytes, decoded value by value.

A column opened from a snapshot's documents section (see :mod:`moss.snapshot.documents`) stays
a view of its raw bytes until it is read: a query decodes its results only, a filter, a write or
an export decodes the whole column at once.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from typing import Any, Generic, TypeVar, overload

import numpy as np
import numpy.typing as npt
import orjson

from ..errors import SnapshotError
from .gc_pause import gc_paused

__all__ = ["LazyColumn"]

_T = TypeVar("_T")


class LazyColumn(Sequence[_T], Generic[_T]):
    """A column of the documents section, decoded value by value as it is read.

    ``materialize()`` decodes the whole column at once (one ``orjson.loads``, checked like an
    eagerly parsed column), which is faster than reading every value.
    """

    __slots__ = ("_bounds", "_check", "_raw")

    def __init__(self, raw: bytes, bounds: npt.NDArray[np.int64], check: Any) -> None:
        self._raw = raw
        self._bounds = bounds
        self._check = check

    def __len__(self) -> int:
        return len(self._bounds) - 1

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
        literal = self._raw[self._bounds[i] : self._bounds[i + 1] - 1]
        try:
            value = orjson.loads(literal)
        except orjson.JSONDecodeError as exc:
            raise SnapshotError(f"snapshot document {i} is not valid JSON: {exc}") from exc
        self._check([value])
        return value  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[_T]:
        return iter(self.materialize())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (LazyColumn, list)):
            return self.materialize() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def materialize(self) -> list[_T]:
        """Every value, as a new list."""
        with gc_paused():
            try:
                column = orjson.loads(self._raw[self._bounds[0] - 1 : self._bounds[-1]])
            except orjson.JSONDecodeError as exc:
                raise SnapshotError(f"snapshot documents column is not valid JSON: {exc}") from exc
        if not isinstance(column, list) or len(column) != len(self):
            raise SnapshotError("snapshot documents column does not match its index")
        self._check(column)
        return column
