"""Which ranking a search uses: exact float32, the int8 scan, or the HNSW graph, by the index,
the size of the filtered subset and the measured costs of each (constants below).

Internal to :mod:`moss.index`; the engine calls :func:`choose_ranker` under its lock.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np
import numpy.typing as npt

from ..errors import InvalidArgumentError
from .ranking import GATHER_FRACTION, rank_exact, rank_graph, rank_measured
from .rows import DocumentRows

__all__ = ["MAX_EF_SEARCH", "Ranker", "check_ef_search", "choose_ranker"]

Matrix = npt.NDArray[np.float32]
Rows = npt.NDArray[np.intp]
Ranker = Callable[
    [DocumentRows, Matrix, "Rows | None", int, "float | None"], list[list[tuple[int, float]]]
]

#: The largest efSearch a query may ask for.
MAX_EF_SEARCH = 1 << 16
# Below this many rows an exact float32 product is as fast as the int8 scan plus its re-rank
# (measured: 0.04 vs 0.1 ms at 1k x 384), so int8 engines search small indexes exactly.
_INT8_MIN_ROWS = 8192
# A filtered graph search keeps only matching rows in its results but still walks the others,
# so it needs a larger efSearch: efSearch / fraction**_FILTER_EF_POWER (fraction: of rows
# matching), capped. Measured (bench_large corpus, recall@10 of the filtered top 10): at 100k,
# 10% matching, efSearch 200 / 360 / 640 found 0.939 / 0.965 / 0.982 (2.0 / 4.0 / 5.4 ms), 25%
# matching 0.998 at 200; at 1M, 10% matching, 0.997 from 240 to 640, p50 ~2.5 ms at 240-320
# against ~6 ms at 640. So 64 / 0.1**0.75 = 360 and 64 / 0.25**0.75 = 181.
_FILTER_EF_POWER = 0.75
_MAX_FILTER_EF = 4096
# One unit of efSearch costs about as much as scanning this many rows exactly (100k x 384, 2
# shared cores: ~5 us against ~0.2 us per row), so a filter matching fewer rows than
# _EXACT_ROWS_PER_EF x its efSearch is ranked by the exact scan: cheaper, and the true top k.
_EXACT_ROWS_PER_EF = 25


def check_ef_search(ef_search: object) -> None:
    """Raise :class:`InvalidArgumentError` unless ``ef_search`` is None or in range."""
    if ef_search is not None and (
        isinstance(ef_search, bool)
        or not isinstance(ef_search, int)
        or not 1 <= ef_search <= MAX_EF_SEARCH
    ):
        raise InvalidArgumentError(
            f"ef_search must be an integer in 1..{MAX_EF_SEARCH} or None, got {ef_search!r}"
        )


def choose_ranker(store: DocumentRows, subset: Rows | None, ef_search: int | None) -> Ranker:
    """The ranking for a search over ``store`` (restricted to ``subset`` if given)."""
    count = len(store)
    graph = store.graph
    if graph is not None and (subset is None or len(subset)):
        ef = ef_search or graph.params.ef_for(count)
        if subset is not None:
            ef = min(_MAX_FILTER_EF, math.ceil(ef * (count / len(subset)) ** _FILTER_EF_POWER))
        if subset is None or len(subset) > _EXACT_ROWS_PER_EF * ef:
            return partial(rank_graph, ef_search=ef)
    # A small filtered subset is cheaper to rank exactly than to scan in int8.
    compact = (
        store.int8 is not None
        and count >= _INT8_MIN_ROWS
        and (subset is None or len(subset) > GATHER_FRACTION * count)
    )
    return rank_measured if compact else rank_exact
