"""Large sessions (issue 19): the ``"hnsw"`` index kind against exact moss and raw FAISS HNSW,
and opening a 1M-document snapshot (flat, hnsw; decoded or memory-mapped), ratios from one run.

Corpus: a Gaussian mixture of ``--centres`` centres in 384 dimensions, normalised (clustered
like embeddings, unlike uniform random vectors); queries are drawn from the same mixture.
Per size:

- build: the graph over all vectors (``HnswGraph.build``, FAISS's threads), seconds per 1M;
- search p50 and recall@10 against the exact answer: moss hnsw (graph candidates, exact
  re-rank) and raw FAISS on the same graph with the same efSearch, in alternating rounds (the
  median round each), exact moss (flat engine), FAISS's ``IndexFlatIP`` with 1 and 2 OpenMP
  threads, and up to ``--chroma-max`` rows Chroma's HNSW at its defaults and with moss's
  parameters (large_peers.py); the same filtered to 10% of the rows;
- a 1,000-document delta (500 added, 500 deleted) applied to the hnsw engine;
- open of the snapshot in a fresh process (flat and hnsw, streamed, and through
  ``map_snapshot``: first the open that verifies the checksums and marks the file, then opens of
  the marked file): seconds to a searchable engine and its first query, RSS and PSS after; and
  the seconds a fresh process takes to import faiss (part of every hnsw open);
- ten processes holding the same mapped snapshot: total PSS against one process.

Above ``--heavy-max`` rows (1M) the deltas and the processes held at once are skipped: the first
delta copies the matrix (7.7 GB at 5M) and each process holds its own documents (~2 GB at 5M),
which the 24 GiB shared machine cannot take; exact moss is timed on 30 queries (~1 s each) and
each open once; the 5M run also uses ``--queries 100`` and
``--chroma-max`` below it (Chroma adds ~20k vectors a minute).

The same search side runs on real MiniLM embeddings: ``--minilm`` WordNet glosses (the
benchmarks/peers sample) embedded once and cached; held-out gloss starts as queries.

Run: ``.venv/bin/python benchmarks/bench_large.py [--sizes 100000 1000000] [--json PATH]``.
Corpora and built graphs are cached in ``--cache`` (rebuilt when absent). On shared cores
compare the ratios, not the milliseconds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt
from large_peers import CHROMA_CONFIGS, chroma_search, minilm_corpus

from moss.index.engine import Engine
from moss.index.hnsw import GraphParts, HnswGraph, HnswParams
from moss.snapshot import encode_snapshot

DIM = 384
TOP_K = 10
Matrix = npt.NDArray[np.float32]


def corpus(count: int, centres: int, seed: int = 0, spread: float = 0.6) -> Matrix:
    """``count`` unit vectors around ``centres`` random unit centres (noise ``spread``)."""
    rng = np.random.default_rng(seed)
    middle = rng.standard_normal((centres, DIM), dtype=np.float32)
    middle /= np.linalg.norm(middle, axis=1, keepdims=True)
    out = np.empty((count, DIM), np.float32)
    for start in range(0, count, 100_000):
        end = min(count, start + 100_000)
        rows = middle[rng.integers(0, centres, end - start)]
        rows += rng.standard_normal((end - start, DIM), dtype=np.float32) * (spread / DIM**0.5)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        out[start:end] = rows
    return out


def exact_top(
    vectors: Matrix, queries: Matrix, rows: npt.NDArray[np.intp] | None, block: int = 250_000
) -> list[set[int]]:
    """The true top 10 rows of each query (of ``rows`` only, if given), ``block`` rows at a
    time: the scores of all rows at once would take 4 GB at 5M rows and 200 queries."""
    picked = np.arange(len(vectors)) if rows is None else rows
    best_rows = np.empty((len(queries), 0), np.intp)
    best_scores = np.empty((len(queries), 0), np.float32)
    for start in range(0, len(picked), block):
        part = picked[start : start + block]
        matrix = vectors[start : start + len(part)] if rows is None else vectors[part]
        scores = queries @ matrix.T
        top = np.argpartition(-scores, min(TOP_K, len(part) - 1), axis=1)[:, :TOP_K]
        best_rows = np.hstack([best_rows, part[top]])
        best_scores = np.hstack([best_scores, np.take_along_axis(scores, top, axis=1)])
        keep = np.argsort(-best_scores, axis=1)[:, :TOP_K]
        best_rows = np.take_along_axis(best_rows, keep, axis=1)
        best_scores = np.take_along_axis(best_scores, keep, axis=1)
    return [set(found.tolist()) for found in best_rows]


def timed(fn: Any, queries: Matrix) -> tuple[float, list[Any]]:
    """p50 milliseconds of ``fn(query)`` over the queries (after one warm-up), and the results."""
    fn(queries[0])
    times, results = [], []
    for query in queries:
        start = time.perf_counter()
        results.append(fn(query))
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), results


def recall(found: list[set[int]], truth: list[set[int]]) -> float:
    return float(np.mean([len(f & t) / TOP_K for f, t in zip(found, truth, strict=True)]))


def graph_for(
    x: Matrix, params: HnswParams, cache: Path, tag: str = ""
) -> tuple[GraphParts, float]:
    """The graph over ``x`` and its build seconds, from the cache when built before."""
    path, meta = cache / f"graph{tag}-{len(x)}.faiss", cache / f"graph{tag}-{len(x)}.json"
    if path.exists() and meta.exists():
        index = faiss.read_index(str(path))
        return GraphParts(index, np.arange(len(x), dtype=np.int64)), json.loads(meta.read_text())[
            "build_s"
        ]
    start = time.perf_counter()
    graph = HnswGraph.build(x, params)
    build = time.perf_counter() - start
    faiss.write_index(graph.index, str(path))
    meta.write_text(json.dumps({"build_s": build}))
    return GraphParts(graph.index, graph.row_of_slot), build


def search_side(
    x: Matrix,
    queries: Matrix,
    parts: GraphParts,
    params: HnswParams,
    peers: Path | None,
    rounds: int,
    deltas: bool = True,
    exact_queries: int | None = None,
) -> dict[str, Any]:
    """Search p50s and recalls of moss (hnsw, exact), raw FAISS and, when ``peers`` (a cache
    folder) is given, Chroma; then the deltas' cost if asked (the first delta copies the
    matrix: 7.7 GB more at 5M rows). Exact moss is timed on the first ``exact_queries``
    (all if None: ~1 s a query at 5M rows)."""
    count = len(x)
    ids = [f"d{i}" for i in range(count)]
    metadata: list[dict[str, Any] | None] = [{"bucket": i % 10} for i in range(count)]
    row = {doc_id: i for i, doc_id in enumerate(ids)}
    hnsw = Engine.from_arrays(
        x, ids, [""] * count, metadata, index="hnsw", hnsw=params, graph=parts
    )
    flat = Engine.from_arrays(x, list(ids), [""] * count, list(metadata))
    truth = exact_top(x, queries, None)
    matching = np.flatnonzero(np.arange(count) % 10 == 3)
    truth_filtered = exact_top(x, queries, matching)
    where = {"bucket": 3}
    out: dict[str, Any] = {}

    def moss(engine: Engine, flt: Any = None) -> Any:
        return lambda q: {row[d.id] for d, _ in engine.search(q, TOP_K, flt)}

    search = faiss.SearchParametersHNSW(efSearch=params.ef_for(count))  # type: ignore[attr-defined]

    def raw(q: Matrix) -> set[int]:
        return set(parts.index.search(q[None, :], TOP_K, params=search)[1][0].tolist())

    def rerank(q: Matrix) -> set[int]:
        # The least a Python layer re-ranking FAISS's candidates exactly does (moss's candidate
        # count, one gather, one product, a sort), without documents or checks.
        rows = parts.index.search(q[None, :], 2 * TOP_K, params=search)[1][0]
        exact = np.einsum("ij,j->i", x[rows], q)
        ranked = sorted(zip(rows.tolist(), exact.tolist(), strict=True), key=lambda p: -p[1])
        return {r for r, _ in ranked[:TOP_K]}

    # moss hnsw and raw FAISS in alternating rounds, each going first in every other round (the
    # median round's p50 of each, and the median of the rounds' ratios), so the ratio is not
    # one side's luck on shared cores nor the order's.
    sides: dict[str, list[float]] = {
        "moss_hnsw": [],
        "faiss_hnsw_same_graph": [],
        "faiss_hnsw_python_rerank": [],
    }
    turns = [
        ("moss_hnsw", moss(hnsw)),
        ("faiss_hnsw_same_graph", raw),
        ("faiss_hnsw_python_rerank", rerank),
    ]
    for turn in range(rounds):
        for name, fn in turns if turn % 2 == 0 else turns[::-1]:
            ms, found = timed(fn, queries)
            sides[name].append(ms)
            out[name] = {"p50_ms": statistics.median(sides[name]), "recall": recall(found, truth)}
            out[name]["rounds_ms"] = sides[name]
    out["moss_over_faiss_round_ratios"] = [
        m / r for m, r in zip(sides["moss_hnsw"], sides["faiss_hnsw_same_graph"], strict=True)
    ]
    ms, found = timed(moss(hnsw, where), queries)
    out["moss_hnsw_filtered10"] = {"p50_ms": ms, "recall": recall(found, truth_filtered)}
    few = slice(exact_queries)
    ms, found = timed(moss(flat), queries[few])
    out["moss_exact"] = {"p50_ms": ms, "recall": recall(found, truth[few])}
    ms, found = timed(moss(flat, where), queries[few])
    out["moss_exact_filtered10"] = {"p50_ms": ms, "recall": recall(found, truth_filtered[few])}
    if peers is not None:
        for name, config in CHROMA_CONFIGS.items():
            chroma, build = chroma_search(x, peers, name, config)
            ms, found = timed(chroma, queries)
            out[name] = {"p50_ms": ms, "recall": recall(found, truth), "build_s": build}
            del chroma
    # faiss.knn is what IndexFlatIP.search runs (knn_inner_product), without the copy of ``x``
    # that IndexFlatIP.add makes.
    for threads in (1, 2):
        faiss.omp_set_num_threads(threads)
        ms, _ = timed(
            lambda q: faiss.knn(q[None, :], x, TOP_K, metric=faiss.METRIC_INNER_PRODUCT),
            queries[:30],
        )
        out[f"faiss_flat_{threads}_thread"] = {"p50_ms": ms}
    faiss.omp_set_num_threads(2)
    for threads in (1, 2):  # FAISS searches one query on one thread whatever the setting
        faiss.omp_set_num_threads(threads)
        out[f"moss_hnsw_{threads}_thread_p50_ms"] = timed(moss(hnsw), queries)[0]
    if not deltas:
        return out
    # 1,000-document deltas (500 deleted, 500 added) as a reader applies them: the first one
    # also grows the adopted matrix (one copy of it), the second is the steady state.
    rng = np.random.default_rng(7)
    for delta in ("first", "second"):
        new = corpus(500, 50, seed=len(delta))
        start = time.perf_counter()
        hnsw.delete([f"d{i}" for i in rng.choice(count, 500, replace=False)])
        hnsw.upsert([f"{delta}{i}" for i in range(500)], [""] * 500, [None] * 500, new)
        out[f"delta_1000_apply_ms_{delta}"] = (time.perf_counter() - start) * 1e3
    return out


_OPEN = r"""
import json, os, sys, time
import numpy as np
from moss.index.engine import Engine
from moss.snapshot import SnapshotReader, map_snapshot
path, mode, hold = sys.argv[1], sys.argv[2], float(sys.argv[3])
start = time.perf_counter()
if mode == "mapped":
    data = map_snapshot(path)
else:
    reader = SnapshotReader()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            reader.feed(chunk)
    data = reader.finish()
engine = Engine.from_arrays(data.vectors, data.ids, data.texts, data.metadata,
                            index=data.index_kind, hnsw=data.hnsw, graph=data.graph)
engine.search(np.ones(engine.dimension, np.float32) / engine.dimension ** 0.5, 10)
seconds = time.perf_counter() - start
if hold:  # a process that has read every vector and the whole graph (the most it maps)
    data.vectors.sum(dtype=np.float64)
    if data.graph is not None and data.graph.serialized is not None:
        data.graph.serialized.sum(dtype=np.uint64)
def field(name, key):
    for line in open(f"/proc/self/{name}"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
print(json.dumps({"open_s": seconds, "rss": field("status", "VmRSS:"),
                  "pss": field("smaps_rollup", "Pss:")}), flush=True)
time.sleep(hold)
"""


def open_side(files: dict[str, Path], processes: int, tries: int = 2) -> dict[str, Any]:
    """Open seconds (the best of ``tries``), RSS and PSS per snapshot and mode; then
    ``processes`` (0: skip) holding the mapped hnsw snapshot at once."""
    out: dict[str, Any] = {"faiss_import_s": _faiss_import_s()}
    for kind, path in files.items():
        # The first mapped open hashes every section and marks the file verified; later ones
        # (in any process) map it without hashing or touching its pages.
        with contextlib.suppress(OSError):
            os.removexattr(path, "user.moss.verified")
        out[f"{kind}_mapped_first"] = _open(path, "mapped")
        for mode in ("streamed", "mapped"):
            runs = [_open(path, mode) for _ in range(tries)]
            out[f"{kind}_{mode}"] = min(runs, key=lambda r: r["open_s"])
    if not processes:
        return out
    # Ten processes holding the same mapped hnsw snapshot at once: PSS shares the page cache.
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN, str(files["hnsw"]), "mapped", "20"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    held = [json.loads(p.stdout.readline()) for p in procs if p.stdout is not None]
    for p in procs:
        p.kill()
        p.wait()
    out[f"{processes}_mapped_hnsw_total_pss"] = sum(h["pss"] for h in held)
    out[f"{processes}_mapped_hnsw_total_rss"] = sum(h["rss"] for h in held)
    # One of them alone: its RSS counts every page it maps (shared or not) once.
    out["mapped_hnsw_touched_rss"] = statistics.median(h["rss"] for h in held)
    return out


def _faiss_import_s() -> float:
    """Seconds a fresh process takes to import faiss after numpy (part of an hnsw open)."""
    code = (
        "import time, numpy; s = time.perf_counter(); import faiss; print(time.perf_counter() - s)"
    )
    runs = [
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
        for _ in range(3)
    ]
    return min(float(run.stdout) for run in runs)


def _open(path: Path, mode: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _OPEN, str(path), mode, "0"],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def write_snapshots(
    x: Matrix, parts: GraphParts, params: HnswParams, cache: Path
) -> dict[str, Path]:
    count = len(x)
    ids = [f"d{i}" for i in range(count)]
    metadata = [{"bucket": i % 10} for i in range(count)]
    files = {}
    # graph_for's file holds the bytes faiss.serialize_index returns: mapped, not a copy of the
    # graph in memory (3.3 GB at 5M rows).
    serialized = np.memmap(cache / f"graph-{count}.faiss", dtype=np.uint8, mode="r")
    for kind in ("flat", "hnsw"):
        path = cache / f"{kind}-{count}.snap"
        files[kind] = path
        if path.exists():
            continue
        extra: dict[str, Any] = {}
        if kind == "hnsw":
            extra = {"index": "hnsw", "hnsw": params, "graph": (serialized, parts.row_of_slot)}
        _, chunks = encode_snapshot(
            index_name="large",
            model_id="synthetic",
            model_artifact="",
            vectors=x,
            ids=ids,
            texts=[""] * count,
            metadata=metadata,
            **extra,
        )
        with open(path.with_suffix(".tmp"), "wb") as f:
            for chunk in chunks:
                f.write(chunk)
        path.with_suffix(".tmp").rename(path)
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--centres", type=int, default=2000)
    parser.add_argument("--processes", type=int, default=10)
    parser.add_argument(
        "--heavy-max",
        type=int,
        default=1_000_000,
        help="largest size with the deltas (they copy the matrix) and the processes held at once",
    )
    parser.add_argument("--rounds", type=int, default=5, help="moss/raw FAISS rounds")
    parser.add_argument("--chroma-max", type=int, default=100_000, help="largest Chroma size")
    parser.add_argument("--minilm", type=int, default=100_000, help="glosses (0: skip)")
    parser.add_argument("--embed-budget", type=float, default=900, help="seconds per run")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/moss-bench-large"))
    parser.add_argument(
        "--json", type=Path, default=Path(__file__).parent / "results" / "large.json"
    )
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    params = HnswParams()
    # Parts not run this time keep their numbers from the last run that ran them.
    report: dict[str, Any] = json.loads(args.json.read_text()) if args.json.exists() else {}
    report.update(
        schema=1,
        benchmark="large",
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        command=" ".join(["benchmarks/bench_large.py", *sys.argv[1:]]),
        cpus=os.cpu_count(),
        faiss=faiss.__version__,
        params=params.to_json(),
    )
    report.setdefault("sizes", {})
    for count in args.sizes:
        everything = corpus(count + args.queries, args.centres)
        # A copy of the queries, so that ``del x`` below frees the corpus.
        queries, x = everything[: args.queries].copy(), everything[args.queries :]
        del everything
        parts, build = graph_for(x, params, args.cache)
        result: dict[str, Any] = {"build_s": build, "build_s_per_1m": build * 1e6 / count}
        files = write_snapshots(x, parts, params, args.cache)
        peers = args.cache / f"chroma-{count}" if count <= args.chroma_max else None
        heavy = count <= args.heavy_max
        result.update(
            search_side(x, queries, parts, params, peers, args.rounds, heavy, None if heavy else 30)
        )
        del x, parts
        result["open"] = open_side(files, args.processes if heavy else 0, 2 if heavy else 1)
        report["sizes"][str(count)] = result
        print_ratios(f"{count:,} synthetic", result)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if not args.minilm:
        return
    real = minilm_corpus(args.minilm, args.queries, args.cache, args.embed_budget)
    if real is not None:
        x, queries = real
        parts, build = graph_for(x, params, args.cache, tag=f"-minilm{args.minilm}")
        result = {"rows": len(x), "build_s": build, "build_s_per_1m": build * 1e6 / len(x)}
        peers = args.cache / f"chroma-minilm-{len(x)}" if len(x) <= args.chroma_max else None
        result.update(search_side(x, queries, parts, params, peers, args.rounds, deltas=False))
        report["minilm_wordnet"] = result
        print_ratios(f"{len(x):,} MiniLM WordNet glosses", result)
        args.json.write_text(json.dumps(report, indent=2) + "\n")


def print_ratios(what: str, r: dict[str, Any]) -> None:
    hnsw, raw, exact = r["moss_hnsw"], r["faiss_hnsw_same_graph"], r["moss_exact"]
    lines = [
        f"--- {what} x {DIM}: build {r['build_s']:.1f} s ({r['build_s_per_1m']:.0f} s per 1M)",
        f"moss hnsw p50 {hnsw['p50_ms']:.3f} ms recall {hnsw['recall']:.3f}; filtered 10% "
        f"{r['moss_hnsw_filtered10']['p50_ms']:.2f} ms recall "
        f"{r['moss_hnsw_filtered10']['recall']:.3f}",
        f"raw faiss same graph p50 {raw['p50_ms']:.3f} ms recall {raw['recall']:.3f}  "
        f"(moss/faiss {hnsw['p50_ms'] / raw['p50_ms']:.2f}x, median round ratio "
        f"{statistics.median(r['moss_over_faiss_round_ratios']):.2f}x; a bare Python exact "
        f"re-rank {r['faiss_hnsw_python_rerank']['p50_ms'] / raw['p50_ms']:.2f}x; rounds "
        f"{[round(v, 3) for v in hnsw['rounds_ms']]} vs {[round(v, 3) for v in raw['rounds_ms']]})",
        f"exact moss p50 {exact['p50_ms']:.2f} ms (hnsw/exact "
        f"{hnsw['p50_ms'] / exact['p50_ms']:.3f}x), filtered "
        f"{r['moss_exact_filtered10']['p50_ms']:.2f} ms; faiss flat 1 thread "
        f"{r['faiss_flat_1_thread']['p50_ms']:.2f} ms, 2 threads "
        f"{r['faiss_flat_2_thread']['p50_ms']:.2f} ms",
        *(
            f"{name}: p50 {r[name]['p50_ms']:.2f} ms recall {r[name]['recall']:.3f} "
            f"(build {r[name]['build_s']:.0f} s)"
            for name in CHROMA_CONFIGS
            if name in r
        ),
    ]
    if "delta_1000_apply_ms_first" in r:
        lines.append(
            f"1,000-doc delta on hnsw: {r['delta_1000_apply_ms_first']:.0f} ms first (grows "
            f"the matrix), {r['delta_1000_apply_ms_second']:.0f} ms next"
        )
    if "open" in r:
        o = r["open"]
        flat_s, hnsw_s = o["flat_streamed"], o["hnsw_streamed"]
        flat_m, hnsw_m = o["flat_mapped"], o["hnsw_mapped"]
        total = next((v for k, v in o.items() if "total_pss" in k), None)
        shared = (
            f"processes held at once (each read every vector and the graph): total PSS "
            f"{total / o['mapped_hnsw_touched_rss']:.2f}x one process's RSS "
            f"({o['mapped_hnsw_touched_rss'] / 2**20:.0f} MiB)"
            if total is not None
            else "processes held at once: skipped"
        )
        first = {
            k: o[f"{k}_mapped_first"]["open_s"]
            for k in ("flat", "hnsw")
            if f"{k}_mapped_first" in o
        }
        lines += [
            f"open hnsw/flat streamed {hnsw_s['open_s'] / flat_s['open_s']:.2f}x "
            f"({hnsw_s['open_s']:.2f} s), mapped {hnsw_m['open_s'] / flat_m['open_s']:.2f}x "
            f"({hnsw_m['open_s']:.3f} s vs flat {flat_m['open_s']:.3f} s; first mapped open, "
            f"which verifies: {first}; import faiss {o.get('faiss_import_s', 0):.3f} s)",
            f"RSS after open hnsw/flat streamed {hnsw_s['rss'] / flat_s['rss']:.2f}x; mapped "
            f"hnsw PSS {hnsw_m['pss'] / 2**20:.0f} MiB, RSS {hnsw_m['rss'] / 2**20:.0f} MiB; "
            f"{shared}",
        ]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
