"""The ``ids_index`` section: where each id lies in the documents section, and every id's hash
in ascending order with its row, so a reader keeps the ids as a lazy column and finds rows by
binary search instead of decoding every id into a dict (spec in ``docs/snapshot-format.md``).

Internal to :mod:`moss.snapshot`. Opening checks the layout and every bound against the
section's bytes (vectorised, so a mapped open stays fast); the hash table is checked against the
ids in full before its first lookup (:meth:`moss.index.id_table.IdTable.verify`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import SnapshotError
from ..index.id_table import IdColumn, literal_hashes

__all__ = ["ID_SECTION", "encode_ids_index", "parse_ids_index"]

ID_SECTION = "ids_index"
_QUOTE, _COMMA, _OPEN, _CLOSE = ord('"'), ord(","), ord("["), ord("]")


def section_length(count: int) -> int:
    """``count + 1`` u64 bounds, ``count`` u64 hashes, ``count`` u32 rows."""
    return 8 * (count + 1) + 8 * count + 4 * count


def encode_ids_index(
    ids_json: bytes, bounds: npt.NDArray[np.uint64], offset: int, ids: Sequence[str]
) -> bytes:
    """The section for ids already checked by the writer: ``ids_json`` their JSON list at
    ``offset`` in the documents section, ``bounds`` where each of its values starts (plus one
    past the ``]``), relative to ``ids_json``."""
    local = bounds.astype(np.int64)
    hashes = literal_hashes(ids_json, local, ids.__getitem__)
    order = np.argsort(hashes, kind="stable")
    return b"".join(
        [
            (local + offset).astype("<u8").tobytes(),
            hashes[order].astype("<u8").tobytes(),
            order.astype("<u4").tobytes(),
        ]
    )


def parse_ids_index(
    raw: bytes | memoryview,
    section: bytes | memoryview,
    count: int,
    ids_range: tuple[int, int],
    check: Callable[[list[Any]], None],
) -> IdColumn:
    """The ids of a documents section ``raw`` (their list at ``ids_range``) as a lazy column over
    ``raw`` with its id table, both views of the bytes given (no copy)."""
    if len(section) != section_length(count) or count < 1:
        raise SnapshotError(
            f"snapshot ids index is {len(section)} bytes; {count} documents need "
            f"{section_length(count)}: the data is corrupt"
        )
    bounds = np.frombuffer(section, dtype="<i8", count=count + 1)
    hashes = np.frombuffer(section, dtype="<u8", count=count, offset=8 * (count + 1))
    rows = np.frombuffer(section, dtype="<u4", count=count, offset=16 * count + 8)
    data = np.frombuffer(raw, dtype=np.uint8)
    start, end = ids_range
    # The first id starts after the list's "[", the last ends at its "]"; each is at least a
    # quoted character and its separator, so every bound lies inside the list.
    if bounds[0] != start + 1 or bounds[-1] != end or np.any(np.diff(bounds) < 4):
        raise SnapshotError("snapshot ids index does not match the ids list: the data is corrupt")
    ends = bounds[1:] - 1  # each id's separator
    if (
        data[start] != _OPEN
        or data[end - 1] != _CLOSE
        or np.any(data[ends[:-1]] != _COMMA)
        or np.any(data[bounds[:-1]] != _QUOTE)
        or np.any(data[ends - 1] != _QUOTE)
    ):
        raise SnapshotError("snapshot ids index does not match the ids list: the data is corrupt")
    return IdColumn(raw, bounds, check, hashes, rows)  # type: ignore[arg-type]
