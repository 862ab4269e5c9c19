"""Open time and query latency against index size: moss, the numpy + JSON floor, LangChain's InMemoryVectorStore.

Run: .venv/bin/python benchmarks/bench_open_query.py [--sizes 1000,10000,100000]
         [--peers moss,numpy-json,langchain-inmemory] [--out benchmarks/results/open_query.json]

For each peer and size, the same documents (random unit vectors of 384 dimensions, the size of
moss-minilm's, with short texts and small metadata) are persisted the way that peer persists
them: a pushed moss index in a file store; ``vectors.npy`` plus ``docs.json`` (the floor a user
would write by hand); ``InMemoryVectorStore.dump``. Then a **fresh Python process** per run
imports the library (``import_s``), opens the persisted index until it can answer
(``open_s``), and runs top-10 queries with given query vectors (``query_p50_ms``,
``query_p95_ms``), so no peer pays for embedding the query text. Each figure is the median of
``--repeats`` processes, with the page cache warm (the files were just written).

InMemoryVectorStore stops at ``--inmemory-max`` documents (10,000 by default): its dump is
indented JSON (about 11 KB per 384-d vector) and every query rebuilds a matrix from Python
lists, so 100,000 documents would take minutes per run and close to a gigabyte of JSON.

The results follow the schema in ``benchmarks/results/README.md``; notebook
``notebooks/05_performance.ipynb`` draws them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

SCHEMA_VERSION = 1
PEERS = ("moss", "numpy-json", "langchain-inmemory")
DEFAULT_OUT = Path(__file__).parent / "results" / "open_query.json"
TOP_K = 10
Matrix = npt.NDArray[np.float32]


# -- the documents ------------------------------------------------------------------------


def make_vectors(n: int, dimension: int, seed: int) -> Matrix:
    """``n`` random unit vectors (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def make_docs(n: int) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Ids, texts and metadata shaped like conversation turns."""
    for i in range(n):
        text = f"turn {i} of conversation {i // 20}: a few words about topic {i % 97}"
        yield f"doc-{i}", text, {"conversation": i // 20, "topic": i % 97, "speaker": "agent"}


# -- writing each peer's persisted form ------------------------------------------------------


def write_moss(folder: Path, vectors: Matrix) -> None:
    from moss import DocumentInfo, MossClient

    with MossClient(store=folder.as_uri()) as client:
        session = client.sync.session("bench", model_id="custom")
        session.sync.add_docs(
            DocumentInfo(id=doc_id, text=text, metadata=meta, embedding=vector)
            for (doc_id, text, meta), vector in zip(make_docs(len(vectors)), vectors, strict=True)
        )
        session.sync.push_index()


def write_numpy_json(folder: Path, vectors: Matrix) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "vectors.npy", vectors)
    docs = [{"id": i, "text": t, "metadata": m} for i, t, m in make_docs(len(vectors))]
    (folder / "docs.json").write_text(json.dumps(docs), encoding="utf-8")


class Precomputed:
    """LangChain ``Embeddings`` handing out given vectors, so writing the store embeds nothing."""

    def __init__(self, vectors: Matrix | None = None) -> None:
        self._vectors = [] if vectors is None else vectors.tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        taken, self._vectors = self._vectors[: len(texts)], self._vectors[len(texts) :]
        return taken

    def embed_query(self, text: str) -> list[float]:
        raise NotImplementedError("the benchmark queries by vector")


def write_langchain_inmemory(folder: Path, vectors: Matrix) -> None:
    from langchain_core.vectorstores import InMemoryVectorStore

    folder.mkdir(parents=True, exist_ok=True)
    store = InMemoryVectorStore(embedding=Precomputed(vectors))  # type: ignore[arg-type]
    ids, texts, metas = zip(*make_docs(len(vectors)), strict=True)
    store.add_texts(list(texts), metadatas=list(metas), ids=list(ids))
    store.dump(str(folder / "store.json"))


WRITERS: dict[str, Callable[[Path, Matrix], None]] = {
    "moss": write_moss,
    "numpy-json": write_numpy_json,
    "langchain-inmemory": write_langchain_inmemory,
}


# -- one measured run, in a fresh process ---------------------------------------------------


def child(peer: str, folder: Path, dimension: int, queries: int, budget_s: float) -> None:
    """Import, open, query; print the timings as one JSON line."""
    started = time.perf_counter()
    if peer == "moss":
        from moss import MossClient, QueryOptions
    elif peer == "langchain-inmemory":
        from langchain_core.vectorstores import InMemoryVectorStore
    imported = time.perf_counter()

    search: Callable[[Matrix], object]
    if peer == "moss":
        session = MossClient(store=folder.as_uri()).sync.session("bench")

        def search(q: Matrix) -> object:
            return session.sync.query("", QueryOptions(top_k=TOP_K, embedding=q))

    elif peer == "numpy-json":
        matrix = np.load(folder / "vectors.npy")
        docs = json.loads((folder / "docs.json").read_text(encoding="utf-8"))

        def search(q: Matrix) -> object:
            scores = matrix @ q
            top = np.argpartition(-scores, TOP_K)[:TOP_K]
            return [(docs[i], float(scores[i])) for i in top[np.argsort(-scores[top])]]

    else:
        store = InMemoryVectorStore.load(str(folder / "store.json"), embedding=Precomputed())  # type: ignore[arg-type]

        def search(q: Matrix) -> object:
            return store.similarity_search_by_vector(q.tolist(), k=TOP_K)

    opened = time.perf_counter()
    times = _time_queries(search, make_vectors(queries + 5, dimension, seed=7), budget_s)
    print(
        json.dumps(
            {
                "import_s": imported - started,
                "open_s": opened - imported,
                "query_p50_ms": float(np.percentile(times, 50)) * 1000,
                "query_p95_ms": float(np.percentile(times, 95)) * 1000,
                "queries": len(times),
            }
        )
    )


def _time_queries(
    search: Callable[[Matrix], object], vectors: Matrix, budget_s: float
) -> list[float]:
    """Time each query after 5 warm-up ones; stop early (after at least 20) past the budget."""
    for q in vectors[:5]:
        search(q)
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    for q in vectors[5:]:
        t0 = time.perf_counter()
        search(q)
        times.append(time.perf_counter() - t0)
        if len(times) >= 20 and time.perf_counter() > deadline:
            break
    return times


def measure(peer: str, folder: Path, args: argparse.Namespace) -> dict[str, float]:
    """Run ``--repeats`` fresh processes; the median of each figure."""
    runs = []
    for _ in range(args.repeats):
        done = subprocess.run(
            [sys.executable, __file__, "--child", peer, str(folder), "--dimension",
             str(args.dimension), "--queries", str(args.queries), "--query-budget-s",
             str(args.query_budget_s)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(f"{peer} run failed:\n{done.stderr}")
        runs.append(json.loads(done.stdout.splitlines()[-1]))
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


# -- the whole benchmark ----------------------------------------------------------------------


def machine() -> dict[str, Any]:
    import moss

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "moss": moss.__version__,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="moss-bench-open-query-") as tmp:
        for n in args.sizes:
            vectors = make_vectors(n, args.dimension, seed=n)
            for peer in args.peers:
                if peer == "langchain-inmemory" and n > args.inmemory_max:
                    print(f"{peer:>20} n={n:>7}: skipped (above --inmemory-max)", flush=True)
                    continue
                folder = Path(tmp) / f"{peer}-{n}"
                WRITERS[peer](folder, vectors)
                figures = measure(peer, folder, args)
                row = {"peer": peer, "n": n, **figures, "size_bytes": folder_size(folder)}
                rows.append(row)
                print(
                    f"{peer:>20} n={n:>7}: open {row['open_s'] * 1000:9.1f} ms  "
                    f"import {row['import_s'] * 1000:7.1f} ms  "
                    f"query p50 {row['query_p50_ms']:8.3f} ms  p95 {row['query_p95_ms']:8.3f} ms",
                    flush=True,
                )
    return {
        "schema": SCHEMA_VERSION,
        "benchmark": "open_query",
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["benchmarks/bench_open_query.py", *sys.argv[1:]]),
        "machine": machine(),
        "settings": {
            "dimension": args.dimension,
            "top_k": TOP_K,
            "queries": args.queries,
            "repeats": args.repeats,
            "query_input": "vector (the query text is not embedded)",
            "inmemory_max": args.inmemory_max,
        },
        "rows": rows,
    }


def print_ratios(result: dict[str, Any]) -> None:
    """Each peer against the numpy + JSON floor, per size."""
    floor = {row["n"]: row for row in result["rows"] if row["peer"] == "numpy-json"}
    print("\nratio to the numpy + JSON floor (lower is faster)")
    for row in result["rows"]:
        base = floor.get(row["n"])
        if base is None or row["peer"] == "numpy-json":
            continue
        print(
            f"{row['peer']:>20} n={row['n']:>7}: open x{row['open_s'] / base['open_s']:.2f}  "
            f"query p50 x{row['query_p50_ms'] / base['query_p50_ms']:.2f}"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--dimension", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--query-budget-s", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--inmemory-max", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--child", nargs=2, metavar=("PEER", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.sizes = [int(size) for size in str(args.sizes).split(",")]
    args.peers = str(args.peers).split(",")
    unknown = set(args.peers) - set(PEERS)
    if unknown:
        parser.error(f"unknown peers {sorted(unknown)}; choose from {', '.join(PEERS)}")
    return args


def main() -> None:
    args = parse_args()
    if args.child:
        peer, folder = args.child
        child(peer, Path(folder), args.dimension, args.queries, args.query_budget_s)
        return
    result = run(args)
    print_ratios(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
