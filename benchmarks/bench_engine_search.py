"""Engine micro-benchmarks: search strategies, filtered search, upsert, load and export.

Compares the options a flat exact index could use, in one run, at 10k and 100k x 384-d:
``faiss.IndexFlatIP``, ``faiss.knn`` over a numpy matrix, and numpy's BLAS product plus
``argpartition`` (what :class:`moss.index.engine.Engine` uses), and prints ratios.

Run: ``.venv/bin/python benchmarks/bench_engine_search.py [--sizes 10000 100000]``
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import faiss
import numpy as np

from moss.index.engine import Engine
from moss.index.filters import compile_filter

DIM = 384
TOP_K = 10


def timed(fn: Callable[[], Any], repeat: int = 20) -> float:
    """Fastest of ``repeat`` runs in milliseconds (after one warm-up).

    The minimum, not the mean: on a shared machine other processes only ever add time.
    """
    fn()
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return min(runs) * 1e3


def unit_vectors(rng: np.random.Generator, count: int) -> np.ndarray:
    vectors = rng.standard_normal((count, DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def metadata(rng: np.random.Generator, count: int) -> list[dict[str, Any] | None]:
    categories = ["shipping", "billing", "returns", "account", "other"]
    return [
        {"category": categories[c], "price": float(p), "year": int(y), "tags": ["a", "b"][: c % 3]}
        for c, p, y in zip(
            rng.integers(0, 5, count),
            rng.uniform(0, 200, count),
            rng.integers(2000, 2025, count),
            strict=True,
        )
    ]


def bench_search(rng: np.random.Generator, count: int) -> None:
    vectors = unit_vectors(rng, count)
    query = vectors[7].copy()
    flat = faiss.IndexFlatIP(DIM)
    flat.add(vectors)
    ids = [f"doc-{i}" for i in range(count)]
    engine = Engine.from_arrays(vectors, ids, ["text"] * count, metadata(rng, count))
    numpy_ms = timed(lambda: np.argpartition(vectors @ query, count - TOP_K)[-TOP_K:])
    rows = {
        "faiss.IndexFlatIP.search": timed(lambda: flat.search(query[None, :], TOP_K)),
        "faiss.knn (numpy matrix)": timed(
            lambda: faiss.knn(query[None, :], vectors, TOP_K, metric=faiss.METRIC_INNER_PRODUCT)
        ),
        "numpy matmul+argpartition": numpy_ms,
        "Engine.search": timed(lambda: engine.search(query, TOP_K)),
    }
    print(f"\n== unfiltered top-{TOP_K}, {count:,} x {DIM} (ms, x numpy)")
    for name, ms in rows.items():
        print(f"  {name:34s} {ms:8.2f}  {ms / numpy_ms:5.2f}x")

    queries = vectors[:32].copy()
    print(
        f"  32 queries: IndexFlatIP {timed(lambda: flat.search(queries, TOP_K), 5):.1f} ms, "
        f"Engine.search_many {timed(lambda: engine.search_many(queries, TOP_K), 5):.1f} ms"
    )

    print(f"== filtered top-{TOP_K}, {count:,} (ms)")
    meta = engine.export()[3]
    filters: list[tuple[str, dict[str, Any]]] = [
        ("category == returns (~20%)", {"category": "returns"}),
        ("price < 20 (~10%)", {"field": "price", "condition": {"$lt": 20}}),
        ("year >= 2001 (~96%)", {"year": {"$gte": 2001}}),
        (
            "$or, tags $contains (~40%)",
            {"$or": [{"category": "billing"}, {"tags": {"$contains": "b"}}]},
        ),
    ]
    for label, flt in filters:
        predicate = compile_filter(flt)
        assert predicate is not None
        mask_ms = timed(partial(predicate.mask, meta), 5)
        per_doc_ms = timed(partial(lambda p, m: [p(x) for x in m], predicate, meta), 5)
        search_ms = timed(partial(engine.search, query, TOP_K, flt), 5)
        print(
            f"  {label:30s} search {search_ms:7.2f}  (filter mask {mask_ms:6.2f}; "
            f"one call per document {per_doc_ms:6.2f})"
        )
    for fraction in (0.02, 0.05, 0.1, 0.15, 0.25, 0.5, 0.9):
        subset = np.flatnonzero(rng.random(count) < fraction)
        gather = timed(partial(lambda s: np.take(vectors, s, axis=0) @ query, subset), 10)
        select = timed(partial(lambda s: (vectors @ query)[s], subset), 10)
        print(
            f"  score {fraction:4.0%} of rows: gather+matmul {gather:6.2f}  all+select {select:6.2f}"
        )


def bench_writes(rng: np.random.Generator, count: int) -> None:
    vectors = unit_vectors(rng, count)
    ids = [f"doc-{i}" for i in range(count)]
    texts = ["some text"] * count
    meta: list[dict[str, Any] | None] = [{"i": i} for i in range(count)]
    print(f"== writes, {count:,} x {DIM}")

    def fresh_upsert() -> None:
        Engine(DIM).upsert(ids, texts, meta, vectors)

    ms = timed(fresh_upsert, 5)
    print(f"  upsert {count:,} new into empty      {ms:8.2f} ms  ({count / ms * 1e3:,.0f} docs/s)")
    engine = Engine(DIM)
    engine.upsert(ids, texts, meta, vectors)
    ms = timed(lambda: engine.upsert(ids, texts, meta, vectors), 5)
    print(f"  upsert {count:,} existing (update)   {ms:8.2f} ms  ({count / ms * 1e3:,.0f} docs/s)")
    ms = timed(lambda: Engine.from_arrays(vectors, list(ids), texts, meta), 5)
    dict_ms = timed(lambda: dict(zip(ids, range(count), strict=True)), 5)
    print(f"  from_arrays                         {ms:8.2f} ms  (id dict alone {dict_ms:.2f} ms)")
    print(f"  export (view + list copies)         {timed(engine.export, 5):8.2f} ms")
    print(f"  copy of the matrix (for reference)  {timed(lambda: vectors.copy(), 5):8.2f} ms")
    victims = ids[: count // 10]
    engine = Engine.from_arrays(vectors.copy(), list(ids), list(texts), list(meta))
    start = time.perf_counter()
    engine.delete(victims)
    ms = (time.perf_counter() - start) * 1e3
    print(f"  delete {len(victims):,} (swap-remove)         {ms:8.2f} ms")
    engine.export()
    start = time.perf_counter()
    engine.delete(ids[count // 10 : count // 10 + 1])
    ms = (time.perf_counter() - start) * 1e3
    print(f"  first delete after an export        {ms:8.2f} ms  (copies the matrix once)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    threads = faiss.omp_get_max_threads()
    print(f"faiss {faiss.__version__}, numpy {np.__version__}, faiss threads {threads}")
    for count in args.sizes:
        bench_search(rng, count)
        bench_writes(rng, count)


if __name__ == "__main__":
    main()
