"""Exact inner-product ranking over an engine's rows: float32 products, int8 scans re-ranked in
float32, and the top-k selection with its tie-break by id.

Search is exact: ``scores = vectors @ query`` with BLAS, then a partition for the top k.
Measured (benchmarks/bench_engine_search.py, 384-d, 2 shared cores) this beats both
``faiss.IndexFlatIP.search`` and ``faiss.knn`` over the same matrix: one query 0.3 vs 0.7 ms at
10k and ~4 vs ~10 ms at 100k; 32 queries at 100k 32 vs 136 ms.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from .rows import DocumentRows

__all__ = ["faster_kernel", "rank_exact", "rank_int8", "rank_measured"]

Matrix = npt.NDArray[np.float32]
Rows = npt.NDArray[np.intp]
Picks = list[list[tuple[int, float]]]

# Ranking a filtered subset: gathering the matching rows (np.take) costs several times a row's
# share of the full product; measured at 10k and 100k x 384, past ~1/8 of the rows scoring all
# rows and selecting is cheaper.
GATHER_FRACTION = 0.125
# int8 search re-ranks this many candidates per query in float32 (at least), or
# _RERANK_FACTOR x top_k if more: a gather of 100 rows costs ~20 us, so erring high is cheap.
_RERANK_MIN = 100
_RERANK_FACTOR = 10
# Timed runs of each kernel when the int8 scan is first weighed against float32 (the fastest
# run counts: on shared cores the others measure the neighbours, not the kernel).
_TRIALS = 3
# One query over at most this many rows is scored single-threaded (see _product).
_SINGLE_THREAD_ROWS = 16_384


def rank_exact(
    store: DocumentRows, queries: Matrix, subset: Rows | None, top_k: int, min_score: float | None
) -> Picks:
    """The best (row, score) pairs of each query by exact float32 scores."""
    return [
        top(store, row_scores, subset, top_k, min_score)
        for row_scores in _scores(store, queries, subset)
    ]


def rank_measured(
    store: DocumentRows, queries: Matrix, subset: Rows | None, top_k: int, min_score: float | None
) -> Picks:
    """Rank with the int8 scan where it measured faster than float32 on this machine, else
    exactly in float32 (scores are exact cosines either way).

    The int8 kernel is not fast everywhere: on a 2-vCPU Xeon with AMX and AVX-512 VNNI,
    onnxruntime's integer product made a 100k query 17.8-26 ms against 5.9 ms in float32, while
    on others it is ~2x faster. So the first search of each shape (dimension, size to a power of
    two, one query or many) times both on the engine's own rows and the verdict is kept for the
    process: a few extra scans once, never a slow path afterwards.
    """
    key = (store.dimension, len(store).bit_length(), len(queries) > 1)
    use_int8 = _verdicts.get(key)
    if use_int8 is None:
        with _verdict_lock:
            use_int8 = _verdicts.get(key)
            if use_int8 is None:
                args = (store, queries, subset, top_k, min_score)
                use_int8 = faster_kernel(lambda: rank_int8(*args), lambda: rank_exact(*args))
                _verdicts[key] = use_int8
    return (rank_int8 if use_int8 else rank_exact)(store, queries, subset, top_k, min_score)


def faster_kernel(int8: Callable[[], object], exact: Callable[[], object]) -> bool:
    """Whether ``int8`` ran faster than ``exact``: one warm-up each (the first int8 call starts
    onnxruntime), then :data:`_TRIALS` interleaved timed runs, best of each compared."""
    int8()
    exact()
    best = {int8: float("inf"), exact: float("inf")}
    for _ in range(_TRIALS):
        for kernel in (int8, exact):
            start = time.perf_counter()
            kernel()
            best[kernel] = min(best[kernel], time.perf_counter() - start)
    return best[int8] < best[exact]


# (dimension, rows.bit_length(), several queries) -> whether the int8 scan wins on this machine.
_verdicts: dict[tuple[int, int, bool], bool] = {}
_verdict_lock = threading.Lock()


def rank_int8(
    store: DocumentRows, queries: Matrix, subset: Rows | None, top_k: int, min_score: float | None
) -> Picks:
    """Candidates from the int8 scan, ranked by their exact float32 scores."""
    assert store.int8 is not None
    approx = store.int8.scores(queries)
    if subset is not None:
        approx = approx[:, subset]
    wanted = max(_RERANK_MIN, _RERANK_FACTOR * top_k)
    picks = []
    for query, row_approx in zip(queries, approx, strict=True):
        if len(row_approx) > wanted:
            candidates = np.argpartition(row_approx, len(row_approx) - wanted)[-wanted:]
        else:
            candidates = np.arange(len(row_approx))
        rows = candidates if subset is None else subset[candidates]
        exact: Matrix = np.einsum("ij,j->i", store.vectors[rows], query)  # see _product
        picks.append(top(store, exact, rows, top_k, min_score))
    return picks


def _scores(store: DocumentRows, queries: Matrix, subset: Rows | None) -> Matrix:
    """Inner products, shape (len(queries), rows considered)."""
    count = len(store)
    scores: Matrix
    if subset is None:
        scores = _product(queries, store.vectors[:count])
    elif len(subset) <= GATHER_FRACTION * count:
        scores = _product(queries, np.take(store.vectors, subset, axis=0))
    else:
        scores = _product(queries, store.vectors[:count])[:, subset]
    return scores


def top(
    store: DocumentRows,
    scores: Matrix,
    subset: Rows | None,
    top_k: int,
    min_score: float | None,
) -> list[tuple[int, float]]:
    """The best ``top_k`` (row, score) pairs, best first, ties broken by id."""
    if min_score is not None:
        keep = np.flatnonzero(scores >= min_score)
        scores = scores[keep]
        subset = keep if subset is None else subset[keep]
    if len(scores) > top_k:
        # Every score equal to the k-th best is a candidate, so ties at the cut are decided
        # by id below, not by argpartition's arbitrary choice.
        kth = np.partition(scores, len(scores) - top_k)[len(scores) - top_k]
        candidates = np.flatnonzero(scores >= kth)
    else:
        candidates = np.arange(len(scores))
    rows = candidates if subset is None else subset[candidates]
    ids = store.ids
    ranked = sorted(
        zip(scores[candidates].tolist(), rows.tolist(), strict=True),
        key=lambda p: (-p[0], ids[p[1]]),
    )
    # Rounding can put a product of unit vectors a hair outside [-1, 1].
    return [(row, min(1.0, max(-1.0, score))) for score, row in ranked[:top_k]]


def _product(queries: Matrix, matrix: Matrix) -> Matrix:
    """``queries @ matrix.T``: one query over a small matrix in numpy's own single-threaded
    loop, anything larger by BLAS.

    OpenBLAS splits even a 3,000-row product over both cores, and when the other core is busy
    (embedding the next query, another process) the call waits for it: measured on 2 cores,
    3k x 384 took 0.08 ms at best but 1-9 ms median and 12 ms p95 under load, einsum a steady
    0.18-0.21 ms (10k rows: 0.56-0.63 ms, against 0.26 ms for BLAS on a quiet machine). Past
    _SINGLE_THREAD_ROWS rows the second core's bandwidth is worth the wait.
    """
    if len(queries) == 1 and len(matrix) <= _SINGLE_THREAD_ROWS:
        row: Matrix = np.einsum("ij,j->i", matrix, queries[0])
        return row[None, :]
    result: Matrix = queries @ matrix.T
    return result
