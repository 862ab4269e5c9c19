"""Engine throughput against numpy floors (issue 17), ratios from one run.

- int8 against float32 search, one query at ``--count`` rows: p50 of each, recall@10 of int8.
- 32 queries in one ``search_many`` against the floor: one ``queries @ matrix.T`` product.
- int8 codes to and from the snapshot's row-major layout (``export`` / ``from_codes``).
- Adding documents with precomputed vectors against the floor (a copy into a preallocated
  matrix), docs/s and peak RSS of each in a fresh process.

Run: ``.venv/bin/python benchmarks/bench_engine_throughput.py [--count 100000] [--adds 1000000]``
(on shared cores, compare the ratios, not the milliseconds).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt
from child_runs import compare_adds

from moss.index.engine import Engine
from moss.index.quantize import Int8Index

DIM = 384
TOP_K = 10


def runs(fn: Callable[[], Any], repeat: int) -> list[float]:
    """Milliseconds of ``repeat`` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def p50(fn: Callable[[], Any], repeat: int) -> float:
    """Median milliseconds of ``repeat`` runs after one warm-up."""
    return statistics.median(runs(fn, repeat))


def unit_vectors(rng: np.random.Generator, count: int) -> npt.NDArray[np.float32]:
    vectors = rng.standard_normal((count, DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def floor_query(vectors: npt.NDArray[np.float32], query: npt.NDArray[np.float32]) -> object:
    return np.argpartition(vectors @ query, -TOP_K)[-TOP_K:]


def bench_search(count: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    vectors = unit_vectors(rng, count)
    ids = [f"doc-{i}" for i in range(count)]
    plain = Engine.from_arrays(vectors, ids, [""] * count, [None] * count)
    int8 = Engine.from_arrays(vectors, list(ids), [""] * count, [None] * count, precision="int8")
    # Queries near documents, as real ones are: the top 10 is then well separated from the rest.
    queries = vectors[rng.choice(count, 64, replace=False)] + 0.05 * unit_vectors(rng, 64)
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    floor = [p50(partial(floor_query, vectors, q), 3) for q in queries[:8]]
    float_ms: list[float] = []
    int8_ms: list[float] = []
    hits = 0
    for query in queries:
        float_ms += runs(partial(plain.search, query, TOP_K), 2)
        int8_ms += runs(partial(int8.search, query, TOP_K), 2)
        exact = {doc.id for doc, _ in plain.search(query, TOP_K)}
        hits += len(exact & {doc.id for doc, _ in int8.search(query, TOP_K)})
    f50, i50 = statistics.median(float_ms), statistics.median(int8_ms)
    n50 = statistics.median(floor)
    print(f"== one query, top-{TOP_K} at {count:,} x {DIM} (p50 ms, x numpy matmul+argpartition)")
    print(f"  numpy floor           {n50:7.2f}")
    print(f"  Engine float32        {f50:7.2f}  {f50 / n50:5.2f}x")
    print(f"  Engine int8           {i50:7.2f}  {i50 / n50:5.2f}x   int8/float32 {i50 / f50:.2f}")
    recall = hits / (TOP_K * len(queries))
    print(f"  int8 recall@{TOP_K}: {recall:.3f}")
    result: dict[str, float] = {
        "count": count,
        "floor_ms": n50,
        "float32_p50_ms": f50,
        "int8_p50_ms": i50,
    }
    result["int8_recall_at_10"] = recall

    batch = queries[:32].copy()
    floor_ms = p50(lambda: batch @ vectors.T, 7)
    print(f"== 32 queries at {count:,} (p50 ms, x the floor: one batched product)")
    print(f"  numpy batched product {floor_ms:7.2f}")
    result["batch32_floor_ms"] = floor_ms
    for name, engine in (("float32", plain), ("int8", int8)):
        ms = p50(partial(engine.search_many, batch, TOP_K), 7)
        print(f"  search_many {name:8s}  {ms:7.2f}  {ms / floor_ms:5.2f}x")
        result[f"batch32_{name}_ms"] = ms
    one_by_one = p50(lambda: [plain.search(q, TOP_K) for q in batch], 3)
    print(f"  32 x search float32   {one_by_one:7.2f}  {one_by_one / floor_ms:5.2f}x")

    built = Int8Index.build(vectors)
    export_ms = p50(built.export, 5)
    stored = built.export()
    open_ms = p50(lambda: Int8Index.from_codes(stored, count, DIM), 5)
    adopted = Int8Index.from_codes(stored, count, DIM)
    reexport_ms = p50(adopted.export, 5)
    first_scan = float(
        statistics.median(
            runs(lambda: Int8Index.from_codes(stored, count, DIM).scores(queries[:1]), 5)
        )
    )
    scan = p50(lambda: adopted.scores(queries[:1]), 5)
    copy_ms = p50(stored.codes.copy, 5)
    print(f"== int8 codes <-> snapshot layout at {count:,} (p50 ms, x a plain copy of the codes)")
    print(f"  copy of the codes           {copy_ms:7.2f}")
    print(f"  export after writes         {export_ms:7.2f}  {export_ms / copy_ms:5.2f}x")
    print(f"  export of unchanged codes   {reexport_ms:7.2f}  {reexport_ms / copy_ms:5.2f}x")
    print(f"  Int8Index.from_codes        {open_ms:7.2f}  {open_ms / copy_ms:5.2f}x")
    print(f"  first scan after opening    {first_scan:7.2f}  (later scans {scan:.2f})")
    result.update(
        codes_copy_ms=copy_ms,
        export_after_writes_ms=export_ms,
        export_unchanged_ms=reexport_ms,
        from_codes_ms=open_ms,
    )
    return {key: round(float(value), 4) for key, value in result.items()}


def add_child(kind: str, count: int) -> None:
    """In a fresh process: build ``count`` documents the way ``kind`` says; print docs/s, RSS."""
    rng = np.random.default_rng(1)
    vectors = np.empty((count, DIM), dtype=np.float32)
    for offset in range(0, count, 100_000):  # no matrix-sized temporaries before the baseline
        chunk = vectors[offset : offset + 100_000]
        chunk[:] = unit_vectors(rng, len(chunk))
    ids = [f"doc-{i}" for i in range(count)]
    texts = [f"text {i}" for i in range(count)]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    if kind == "floor":
        matrix = np.empty_like(vectors)
        matrix[:] = vectors
        rows = dict(zip(ids, range(count), strict=True))
        kept: tuple[object, ...] = (matrix, rows, list(ids), list(texts))
    else:
        engine = Engine(DIM)
        for offset in range(0, count, 100_000):
            end = offset + 100_000
            engine.upsert(
                ids[offset:end],
                texts[offset:end],
                [None] * len(ids[offset:end]),
                vectors[offset:end],
            )
        kept = (engine,)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{count / seconds:.0f} {(peak - base) / 1024:.0f} {len(kept)}")


def bench_adds(count: int) -> dict[str, float]:
    print(f"== add {count:,} precomputed vectors in batches of 100k (fresh process each)")
    results = compare_adds(__file__, ("floor", "engine"), count)
    floor_rate, floor_mb = results["floor"]
    engine_rate, engine_mb = results["engine"]
    return {
        "count": count,
        "floor_docs_per_s": round(floor_rate),
        "engine_docs_per_s": round(engine_rate),
        "floor_peak_mb": floor_mb,
        "engine_peak_mb": engine_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--adds", type=int, default=1_000_000)
    parser.add_argument("--child", choices=["floor", "engine"])
    parser.add_argument("--only", choices=["search", "adds"])
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.child:
        add_child(args.child, args.adds)
        return
    report: dict[str, Any] = {"cpus": os.cpu_count()}
    if args.only != "adds":
        report["search"] = bench_search(args.count)
    if args.only != "search":
        report["adds"] = bench_adds(args.adds)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)


if __name__ == "__main__":
    main()
