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

__all__ = ["INDEX_KINDS", "STORAGES", "HnswParams", "hnsw_params", "parse_params"]

#: Index kinds an engine can search with: exact scan, or an HNSW graph re-ranked exactly.
INDEX_KINDS = ("flat", "hnsw")
#: How the graph stores its vectors: 8-bit scalar-quantised codes, or float32 copies.
STORAGES = ("sq8", "flat")

_MAX_M = 256
_MAX_EF = 1 << 16


@dataclass(frozen=True)
class HnswParams:
    """Build and search parameters of an hnsw index (stored in the snapshot header).

    Defaults measured by benchmarks/bench_large.py (clustered 384-d corpus, 2 cores): M 32,
    efConstruction 80 and efSearch 64 give recall@10 >= 0.95 at 100k and 1M.
    """

    m: int = 32
    ef_construction: int = 80
    ef_search: int = 64
    storage: str = "sq8"
    #: Rebuild the graph when this fraction of its slots are tombstones (deleted or replaced).
    rebuild_fraction: float = 0.25

    def __post_init__(self) -> None:
        _check_int("m", self.m, 2, _MAX_M)
        _check_int("ef_construction", self.ef_construction, 1, _MAX_EF)
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

    def to_json(self) -> dict[str, Any]:
        """The parameters as a JSON object (the snapshot header's ``index`` field, kind aside)."""
        return asdict(self)


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
