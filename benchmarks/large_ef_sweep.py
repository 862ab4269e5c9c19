"""efSearch against recall@10 and p50 on bench_large's synthetic corpus and cached graph.

At 5M documents efSearch 64 (the default up to 1M) finds 0.85 of the true top 10; this shows
what a larger breadth buys, and checks the automatic default that grows with the index
(``moss.index.hnsw_params.auto_ef_search``: 528 at 5M). Run after
``bench_large.py --sizes N`` has cached the graph:
``.venv/bin/python benchmarks/large_ef_sweep.py --size 5000000 --cache /tmp/moss-bench-large-5m
--json benchmarks/results/large_5m.json`` (adds ``ef_sweep`` to the file, keeping the rest).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import bench_large as bench

from moss.index.engine import Engine
from moss.index.hnsw import HnswParams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=5_000_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--centres", type=int, default=2000)
    parser.add_argument("--ef", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/moss-bench-large-5m"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    everything = bench.corpus(args.size + args.queries, args.centres)
    queries, x = everything[: args.queries].copy(), everything[args.queries :]
    params = HnswParams()
    parts, _ = bench.graph_for(x, params, args.cache)
    ids = [f"d{i}" for i in range(args.size)]
    row = {doc_id: i for i, doc_id in enumerate(ids)}
    engine = Engine.from_arrays(
        x, ids, [""] * args.size, [None] * args.size, index="hnsw", hnsw=params, graph=parts
    )
    truth = bench.exact_top(x, queries, None)
    for query in queries:  # warm: the first pass faults the graph's pages in
        engine.search(query, bench.TOP_K, ef_search=max(args.ef))
    sweep: dict[str, Any] = {}
    for ef in args.ef:

        def search(query: Any, ef: int = ef) -> set[int]:
            return {row[doc.id] for doc, _ in engine.search(query, bench.TOP_K, ef_search=ef)}

        ms, found = bench.timed(search, queries)
        sweep[str(ef)] = {"p50_ms": ms, "recall": bench.recall(found, truth)}
        print(
            f"{args.size:,} ef_search {ef:4d}: p50 {ms:6.2f} ms recall {sweep[str(ef)]['recall']:.3f}"
        )
    if args.json:
        report = json.loads(args.json.read_text()) if args.json.exists() else {}
        report["ef_sweep"] = {"size": args.size, "queries": args.queries, "results": sweep}
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
