"""The engine's cache of filter results: the rows matching each recent filter, until a write.

Evaluating a filter walks every metadata dict in Python (~10 ms per 100k documents), more than
ranking the 10% of rows it keeps; agents repeat the same filters (a conversation, a user), so
the rows are reused. Not thread-safe on its own: the engine calls it under its lock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from .filters import Filter

__all__ = ["FilterRows"]

Rows = npt.NDArray[np.intp]

# Filters whose matching rows are remembered until the next write.
_CACHED_FILTERS = 16


class FilterRows:
    """Canonical filter JSON -> the rows matching it (read-only arrays), oldest dropped first."""

    def __init__(self) -> None:
        self._rows: dict[bytes, Rows] = {}

    def clear(self) -> None:
        """Forget every filter (rows or metadata changed)."""
        self._rows.clear()

    def matching(
        self,
        predicate: Filter,
        filter: Mapping[str, Any] | None,
        metadata: Callable[[], list[dict[str, Any] | None]],
    ) -> Rows:
        """Rows whose metadata (``metadata()``, read only on a miss) match, ascending."""
        key = _filter_key(filter)
        rows = self._rows.get(key) if key is not None else None
        if rows is None:
            rows = np.flatnonzero(predicate.mask(metadata()))
            rows.flags.writeable = False
            if key is not None:
                if len(self._rows) >= _CACHED_FILTERS:
                    del self._rows[next(iter(self._rows))]  # the oldest
                self._rows[key] = rows
        return rows


def _filter_key(filter: Mapping[str, Any] | None) -> bytes | None:
    """A canonical form of a filter (sorted keys; ``1`` and ``true`` stay distinct), or None."""
    if filter is None:
        return None
    try:
        return orjson.dumps(filter, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        return None  # not JSON (compile_filter accepted it): evaluate without caching
