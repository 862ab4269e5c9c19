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
from operator import itemgetter

import numpy as np
import numpy.typing as npt

from .rows import DocumentRows

try:
    # What np.einsum calls (same kernel, same bits) without its Python-level dispatch, which
    # costs ~5-8 us once a graph walk has evicted it (numpy 2; numpy 1 keeps np.einsum).
    from numpy._core._multiarray_umath import c_einsum as _einsum
except ImportError:  # pragma: no cover
    _einsum = np.einsum

__all__ = [
    "candidates",
    "faster_kernel",
    "rank_exact",
    "rank_graph",
    "rank_int8",
    "rank_measured",
]

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
# The graph proposes this many candidates per query (at least; 2 x top_k if more) for the exact
# re-rank. Its SQ8 scores are close to exact, so the true top 10 the walk found are among its
# first few: at efSearch 64 recall@10 is the same with 15, 20 or 40 candidates (bench_large
# corpus 0.9995 at 100k, 0.9765 at 1M; MiniLM glosses 0.9835 at 100k), and each further
# candidate costs a random row read (~0.6 us). A filtered search keeps _FILTERED_CANDIDATES.
_GRAPH_CANDIDATES = 20
_FILTERED_CANDIDATES = 40
# Top-k candidates: the maxima of groups of at most _GROUP columns bound the k-th best score,
# with at least _GROUPS_PER_PICK groups per wanted score (more: a tighter bound, fewer picks).
_GROUP = 64
_GROUPS_PER_PICK = 4
# top() sorts up to this many scores outright instead of partitioning them first.
_SORT_ALL = 128
# Timed runs of each kernel when the int8 scan is first weighed against float32 (the fastest
# run counts: on shared cores the others measure the neighbours, not the kernel).
_TRIALS = 3
# One query over at most this many rows is scored single-threaded (see _product).
_SINGLE_THREAD_ROWS = 16_384


def rank_exact(
    store: DocumentRows, queries: Matrix, subset: Rows | None, top_k: int, min_score: float | None
) -> Picks:
    """The best (row, score) pairs of each query by exact float32 scores."""
    scores = _scores(store, queries, subset)
    picks = []
    for query, columns in enumerate(candidates(scores, top_k, min_score)):
        rows = columns if subset is None else subset[columns]
        picks.append(top(store, scores[query, columns], rows, top_k, min_score))
    return picks


def candidates(
    scores: npt.NDArray[np.float32] | npt.NDArray[np.int32], count: int, floor: float | None = None
) -> list[Rows]:
    """For each row of ``scores``, ascending columns that include its ``count`` best scores and
    every score tied with the last of them (and none below ``floor``), few more.

    A partition per query walks its row several times (~1 ms per 100k scores, as long as the
    product itself for a batch of queries). Instead the maxima of disjoint groups of columns
    bound the ``count``-th best score from below (``count`` groups each hold a score at least
    that high), so one comparison over the whole matrix keeps only the few columns above it.
    A group is every ``groups``-th column: the maxima are then an element-wise maximum of
    contiguous slices (SIMD), several times faster than reducing short runs.
    """
    m, n = scores.shape
    width = min(_GROUP, n // (_GROUPS_PER_PICK * count))
    if n == 0:
        return [np.arange(0) for _ in range(m)]
    if n <= count:
        bounds = scores.min(axis=1)
    elif width < 2:
        bounds = np.partition(scores, n - count, axis=1)[:, n - count]
    else:
        groups = n // width
        peaks = scores[:, : groups * width].reshape(m, width, groups).max(axis=1)
        if groups * width < n:  # the last columns make one more group
            tail = scores[:, groups * width :].max(axis=1, keepdims=True)
            peaks = np.concatenate([peaks, tail], axis=1)
        bounds = np.partition(peaks, peaks.shape[1] - count, axis=1)[:, peaks.shape[1] - count]
    if floor is not None:
        bounds = np.maximum(bounds, np.asarray(floor, dtype=bounds.dtype))
    # One flat nonzero: np.nonzero over a 2-d mask is ~20x slower.
    flat = np.flatnonzero(scores >= bounds[:, None])
    if m == 1:
        return [flat]
    ends = np.searchsorted(flat, np.arange(1, m) * n)
    return [part - i * n for i, part in enumerate(np.split(flat, ends))]


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
    for query, columns in zip(queries, candidates(approx, wanted), strict=True):
        rows = columns if subset is None else subset[columns]
        exact: Matrix = _einsum("ij,j->i", store.take(rows), query)  # see _product
        picks.append(top(store, exact, rows, top_k, min_score))
    return picks


def rank_graph(
    store: DocumentRows,
    queries: Matrix,
    subset: Rows | None,
    top_k: int,
    min_score: float | None,
    ef_search: int,
) -> Picks:
    """Candidates proposed by the HNSW graph (only rows of ``subset`` if given), ranked by their
    exact float32 scores. The graph's own scores are not used: with 8-bit storage they are
    approximate, and re-ranking a few dozen rows costs ~10 us."""
    assert store.graph is not None
    wanted = max(_GRAPH_CANDIDATES if subset is None else _FILTERED_CANDIDATES, 2 * top_k)
    found = store.graph.candidates(queries, wanted, ef_search, subset)
    # FAISS pads a short answer with -1 at its end. (One query is the usual case: numpy calls
    # on its 40 labels cost ~5 us each once FAISS's walk has pushed numpy out of the caches.)
    # Not faiss.fvec_inner_products_by_idx, which reads the rows in place: it opens an OpenMP
    # parallel region even for one query, which waits for a busy second core (0.1-0.7 ms).
    if len(found) == 1 and found[0, -1] >= 0:
        rows = found[0]
        exact: Matrix = _einsum("ij,j->i", store.blocks.take(rows), queries[0])  # see _product
        return [top(store, exact, rows, top_k, min_score)]
    lines = [rows[rows >= 0] for rows in found]
    # One gather for every query's candidates (each gather costs a few us before its rows).
    vectors = store.take(np.concatenate(lines))
    picks = []
    start = 0
    for query, rows in zip(queries, lines, strict=True):
        end = start + len(rows)
        exact = _einsum("ij,j->i", vectors[start:end], query)
        picks.append(top(store, exact, rows, top_k, min_score))
        start = end
    return picks


def _scores(store: DocumentRows, queries: Matrix, subset: Rows | None) -> Matrix:
    """Inner products, shape (len(queries), rows considered)."""
    count = len(store)
    scores: Matrix
    if subset is None:
        scores = store.blocks.scores(queries, _product)
    elif len(subset) <= GATHER_FRACTION * count:
        scores = _product(queries, store.take(subset))
    else:
        scores = store.blocks.scores(queries, _product)[:, subset]
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
    if len(scores) <= _SORT_ALL:
        # A few dozen scores (the usual case: callers pass candidates): sort them all in Python
        # (fewer calls into numpy, whose code a graph walk has pushed out of the caches), and
        # decide by id only if two of the best are equal (sorting by id too costs ~40% more).
        labels = range(len(scores)) if subset is None else subset.tolist()
        pairs = zip(labels, scores.tolist(), strict=True)
        ranked = sorted(pairs, key=_SCORE, reverse=True)[: top_k + 1]
        if len(set(map(_SCORE, ranked))) == len(ranked):
            del ranked[top_k:]
            if ranked and (ranked[0][1] > 1.0 or ranked[-1][1] < -1.0):  # sorted: the ends
                ranked = [(row, _clip(score)) for row, score in ranked]
            return ranked
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
    return [(row, _clip(score)) for score, row in ranked[:top_k]]


_SCORE = itemgetter(1)  # of a (row, score) pair


def _clip(score: float) -> float:
    """Rounding can put a product of unit vectors a hair outside [-1, 1]."""
    return min(1.0, max(-1.0, score))


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
        row: Matrix = _einsum("ij,j->i", matrix, queries[0])
        return row[None, :]
    result: Matrix = queries @ matrix.T
    return result
