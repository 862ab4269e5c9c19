"""Which index kinds an engine searches with, and the build and search parameters of an
``"hnsw"`` index (stored in the snapshot header, so every process searches the same way).

Split from :mod:`moss.index.hnsw` (which re-exports these names): the graph itself lives there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import InvalidArgumentError

__all__ = [
    "INDEX_KINDS",
    "STORAGES",
    "HnswParams",
    "auto_ef_search",
    "hnsw_params",
    "parse_params",
]

#: Index kinds an engine can search with: exact scan, or an HNSW graph re-ranked exactly.
INDEX_KINDS = ("flat", "hnsw")
#: How the graph stores its vectors: 8-bit scalar-quantised codes, or float32 copies.
STORAGES = ("sq8", "flat")

_MAX_M = 256
_MAX_EF = 1 << 16


@dataclass(frozen=True)
class HnswParams:
    """Build and search parameters of an hnsw index (stored in the snapshot header).

    Defaults measured by benchmarks/bench_large.py (clustered 384-d corpus, 2 cores): M 32 and
    efConstruction 80 give recall@10 >= 0.95 at 100k and 1M with efSearch 64. ``ef_search``
    None (the default) grows the search breadth with the index (:func:`auto_ef_search`); an
    integer fixes it.
    """

    m: int = 32
    ef_construction: int = 80
    ef_search: int | None = None
    storage: str = "sq8"
    #: Rebuild the graph when this fraction of its slots are tombstones (deleted or replaced).
    rebuild_fraction: float = 0.25

    def __post_init__(self) -> None:
        _check_int("m", self.m, 2, _MAX_M)
        _check_int("ef_construction", self.ef_construction, 1, _MAX_EF)
        if self.ef_search is not None:
            _check_int("ef_search", self.ef_search, 1, _MAX_EF)
        if self.storage not in STORAGES:
            raise InvalidArgumentError(
                f"hnsw storage must be one of {', '.join(map(repr, STORAGES))}, "
                f"got {self.storage!r}"
            )
        fraction = self.rebuild_fraction
        if (
            isinstance(fraction, bool)
            or not isinstance(fraction, (int, float))
            or not math.isfinite(fraction)
            or not 0 < fraction <= 1
        ):
            raise InvalidArgumentError(
                f"hnsw rebuild_fraction must be a number in (0, 1], got {fraction!r}"
            )

    def ef_for(self, count: int) -> int:
        """The efSearch a search of an index of ``count`` rows uses (explicit or automatic)."""
        return self.ef_search if self.ef_search is not None else auto_ef_search(count)

    def to_json(self) -> dict[str, Any]:
        """The parameters as a JSON object (the snapshot header's ``index`` field, kind aside)."""
        return asdict(self)


def auto_ef_search(count: int) -> int:
    """The default efSearch for an index of ``count`` rows: 64 up to 1M rows, then growing as
    ``64 * (count / 1M) ** 1.3`` (rounded up to a multiple of 16), which keeps recall@10 near
    0.95-0.97 as the graph grows. Measured on the clustered 384-d corpus (M 32, efConstruction
    80; benchmarks/large_ef_sweep.py): efSearch 64 finds 0.976 of the true top 10 at 1M but
    0.854 at 5M, where 512 finds 0.969 at ~1.9 ms (this rule gives 528 there)."""
    if count <= _AUTO_EF_FROM:
        return _AUTO_EF_BASE
    grown: float = _AUTO_EF_BASE * (count / _AUTO_EF_FROM) ** _AUTO_EF_POWER
    return min(_MAX_AUTO_EF, 16 * math.ceil(grown / 16))


_AUTO_EF_BASE = 64
_AUTO_EF_FROM = 1_000_000
_AUTO_EF_POWER = 1.3
_MAX_AUTO_EF = 4096


def parse_params(value: HnswParams | Mapping[str, Any] | None) -> HnswParams:
    """``HnswParams`` from itself, a mapping of its fields (unknown keys refused) or None."""
    if value is None:
        return HnswParams()
    if isinstance(value, HnswParams):
        return value
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(f"hnsw parameters must be a mapping, got {value!r}")
    known = HnswParams.__dataclass_fields__
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise InvalidArgumentError(
            f"unknown hnsw parameter {unknown[0]!r}; known: {', '.join(sorted(known))}"
        )
    return HnswParams(**value)


def hnsw_params(index: object, hnsw: HnswParams | Mapping[str, Any] | None) -> HnswParams | None:
    """Check an index kind and its parameters; return them (None for ``"flat"``)."""
    if index not in INDEX_KINDS:
        raise InvalidArgumentError(
            f"index must be one of {', '.join(map(repr, INDEX_KINDS))}, got {index!r}"
        )
    return None if index == "flat" else parse_params(hnsw)


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidArgumentError(
            f"hnsw {name} must be an integer in {low}..{high}, got {value!r}"
        )
