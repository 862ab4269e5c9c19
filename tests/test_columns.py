"""LazyColumn.take: a page of values decoded together, exactly as reading them one by one."""

from __future__ import annotations

import numpy as np
import pytest

from moss.errors import SnapshotError
from moss.index.columns import LazyColumn
from moss.snapshot.documents import check_ids


def column(raw: bytes, bounds: list[int]) -> LazyColumn[str]:
    return LazyColumn[str](raw, np.array(bounds, dtype=np.int64), check_ids)


def test_take_reads_what_indexing_reads_overlay_included() -> None:
    values = [f"id{i}" for i in range(40)]
    raw = ("[" + ",".join(f'"{v}"' for v in values) + "]").encode()
    bounds = [1 + sum(len(v) + 3 for v in values[:i]) for i in range(len(values) + 1)]
    lazy = column(raw, bounds)
    rows = [39, 0, 17, 3, 3, 25]
    assert lazy.take(rows) == [values[row] for row in rows]
    assert lazy.take([]) == []
    lazy[17] = "replaced"
    lazy.append("appended")
    lazy.pop()
    lazy.pop()  # the snapshot's last value is gone: row 39 is now out of range
    lazy.append("new")
    assert lazy.take([17, 39, 0]) == ["replaced", "new", "id0"] == [lazy[r] for r in (17, 39, 0)]
    assert lazy.take([-1]) == ["new"]
    with pytest.raises(IndexError):
        lazy.take([40])


def test_take_decodes_each_value_on_its_own_bounds() -> None:
    # Value 0's bounds span '"a","b"' (a crafted index skipping a separator): read alone it is
    # not one JSON value, and taking it with others must not split it into values that shift
    # the rest (as decoding one joined list would).
    raw = b'["a","b","c"]'
    lazy = column(raw, [1, 9, 13])
    assert lazy.take([1]) == ["c"]
    with pytest.raises(SnapshotError, match="document 0 is not valid JSON"):
        lazy.take([1, 0])
    with pytest.raises(SnapshotError, match="document 0 is not valid JSON"):
        lazy[0]


def test_take_checks_values_as_reading_them_alone_does() -> None:
    raw = b'["x",7,"x"]'
    lazy = column(raw, [1, 5, 7, 11])
    with pytest.raises(SnapshotError, match="7 is not a non-empty string"):
        lazy.take([0, 1])
    # Equal ids at two rows are refused by the whole column's check, not by reading each
    # value: taking them returns both, like indexing.
    assert lazy.take([2, 0]) == ["x", "x"] == [lazy[2], lazy[0]]
