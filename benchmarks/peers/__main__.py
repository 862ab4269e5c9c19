"""moss against the stores users would otherwise pick: the same data, one run, ratios to moss.

Run (a few minutes per size up to 100k; the 1M size only for moss and the floors)::

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/peers [--sizes 1000,10000,100000] [--large-sizes 1000000]
        [--peers moss,moss-int8,numpy-json,faiss-flat,langchain-faiss,langchain-inmemory,
                 llama-index-simple,chroma] [--text-size 10000] [--out benchmarks/results/peers.json]

For every size, the same documents (random unit vectors of 384 dimensions, the size of
moss-minilm's, with short texts and metadata ``{"conversation", "topic", "speaker"}``) are written
into each store by a child process (``add_s``, ``persist_s``), then each store is opened by a
**fresh process** per repeat, which measures: ``open_s`` (imports excluded), the first query,
``query_p50_ms``/``query_p99_ms`` of single top-10 queries by vector, ``batch_ms`` for 32 queries
(one call where the peer has a batch API, else a loop), ``filtered_p50_ms`` for a filter keeping
10% of documents, recall@10 against the exact answer, memory (``memory_after_open_mb``: RSS
growth during open; ``peak_rss_mb``: the child's own VmHWM) and bytes on disk. Figures are the
median of ``--repeats`` processes. Slow peers are skipped above their cap, with the reason.

Then a real-text corpus (WordNet glosses from Debian's ``wordnet-base``) is ingested as text and
queried as text with the built-in model by moss and by the peers using the same model.

Results follow ``benchmarks/results/README.md`` (``"benchmark": "open_query"``, with more
figures per row), so the performance notebook draws them.
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
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from adapters import FILTER_TOPIC, LARGE_PEERS, PEERS, TOP_K, TOPICS, Matrix  # noqa: E402
from measure import RECALL_QUERIES, build, query  # noqa: E402
from report import print_tables, print_text_table  # noqa: E402
from text import TEXT_PEERS, corpus, text_build, text_query  # noqa: E402

SCHEMA_VERSION = 1
DEFAULT_OUT = HERE.parent / "results" / "peers.json"
DIMENSION = 384
CHILD_TIMEOUT_S = 1800


def unit_vectors(n: int, seed: int) -> Matrix:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIMENSION), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def exact_truth(vectors: Matrix, queries: Matrix) -> dict[str, list[list[str]]]:
    """The exact top-10 ids of the recall queries, unfiltered and filtered."""
    topic_rows = np.flatnonzero(np.arange(len(vectors)) % TOPICS == FILTER_TOPIC)
    truth: dict[str, list[list[str]]] = {"plain": [], "filtered": []}
    for q in queries[:RECALL_QUERIES]:
        scores = vectors @ q
        truth["plain"].append([f"doc-{i}" for i in np.argsort(-scores)[:TOP_K]])
        sub = scores[topic_rows]
        truth["filtered"].append([f"doc-{topic_rows[i]}" for i in np.argsort(-sub)[:TOP_K]])
    return truth


def run_child(args: list[str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(HERE), "--child", *args],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip()[-2000:])
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def median_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for key in runs[0]:
        values = [run[key] for run in runs if isinstance(run.get(key), (int, float))]
        merged[key] = statistics.median(values) if values else runs[0][key]
    return merged


def measure_peer(peer: str, n: int, data: Path, args: argparse.Namespace) -> dict[str, Any] | None:
    folder = data / peer
    try:
        built = run_child(["build", peer, str(folder), str(data / "vectors.npy")])
        runs = []
        for repeat in range(args.repeats):
            runs.append(
                run_child(["query", peer, str(folder), str(data / "queries.npy"),
                           str(data / "truth.json"), str(args.budget_s)])
            )  # fmt: skip
            if runs[-1]["open_s"] > args.slow_open_s and repeat + 1 < args.repeats:
                print(f"  {peer}: open took {runs[-1]['open_s']:.0f} s, so 1 run only", flush=True)
                break
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"  {peer} n={n}: failed: {exc}", flush=True)
        return None
    row = {"peer": peer, "n": n, **built, **median_runs(runs), "runs": len(runs)}
    row["size_bytes"] = folder_size(folder)
    print(
        f"  {peer:>20} n={n:>8,}: open {row['open_s'] * 1000:9.1f} ms  p50 "
        f"{row['query_p50_ms']:8.2f} ms  recall {row['recall_at_10']:.2f}  "
        f"peak {row['peak_rss_mb']:7.0f} MB",
        flush=True,
    )
    return row


def run_vectors(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    rows = []
    queries = unit_vectors(args.queries, seed=7)
    sizes = [(n, args.peers) for n in args.sizes]
    sizes += [(n, [p for p in args.peers if p in LARGE_PEERS]) for n in args.large_sizes]
    for n, peers in sizes:
        data = tmp / f"n{n}"
        data.mkdir()
        vectors = unit_vectors(n, seed=n)
        np.save(data / "vectors.npy", vectors)
        np.save(data / "queries.npy", queries)
        (data / "truth.json").write_text(json.dumps(exact_truth(vectors, queries)))
        del vectors
        print(f"\n== {n:,} documents", flush=True)
        for peer in peers:
            cap = PEERS[peer].cap
            if cap is not None and n > cap and not args.no_caps:
                print(f"  {peer}: skipped above {cap:,} documents: {PEERS[peer].cap_reason}")
                continue
            row = measure_peer(peer, n, data, args)
            if row is not None:
                rows.append(row)
        subprocess.run(["rm", "-rf", str(data)], check=False)  # free the disk between sizes
    return rows


def run_text(args: argparse.Namespace, tmp: Path) -> dict[str, Any] | None:
    loaded = corpus(args.text_size, args.text_queries)
    if loaded is None:
        print("\n== text corpus skipped: WordNet glosses unavailable (no wordnet-base, no apt-get)")
        return None
    docs, queries = loaded
    (tmp / "text.json").write_text(json.dumps({"docs": docs, "queries": queries}))
    print(f"\n== text: {len(docs):,} WordNet glosses, {len(queries)} text queries", flush=True)
    rows = []
    for peer in args.text_peers:
        folder = tmp / f"text-{peer}"
        try:
            built = run_child(["text-build", peer, str(folder), str(tmp / "text.json")])
            queried = run_child(["text-query", peer, str(folder), str(tmp / "text.json")])
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"  {peer}: failed: {exc}", flush=True)
            continue
        rows.append(
            {"peer": peer, "n": len(docs), **built, **queried, "size_bytes": folder_size(folder)}
        )
        print(f"  {peer:>20}: {built['docs_per_s']:7.0f} docs/s  open {queried['open_s'] * 1000:8.1f} ms  "
              f"text query p50 {queried['text_query_p50_ms']:7.2f} ms", flush=True)  # fmt: skip
    reference = next((row["found"] for row in rows if row["peer"] == "moss"), None)
    for row in rows:
        found = row.pop("found")
        if reference is not None:
            hits = [
                len(set(f) & set(r)) / max(1, len(r)) for f, r in zip(found, reference, strict=True)
            ]
            row["recall_vs_moss"] = float(np.mean(hits))
    return {"corpus": "wordnet-base glosses (Debian)", "model": "moss-minilm", "rows": rows}


def machine() -> dict[str, Any]:
    import moss

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "processor": model or platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "moss": moss.__version__,
        "load_average_at_start": os.getloadavg()[0],
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--large-sizes", default="", help="sizes for moss and the floors only")
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--budget-s", type=float, default=4.0, help="time per query phase")
    parser.add_argument("--slow-open-s", type=float, default=20.0)
    parser.add_argument("--no-caps", action="store_true", help="run slow peers at every size")
    parser.add_argument("--text-size", type=int, default=10_000, help="0 skips the text corpus")
    parser.add_argument("--text-queries", type=int, default=100)
    parser.add_argument("--text-peers", default=",".join(TEXT_PEERS))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in str(args.sizes).split(",") if s]
    args.large_sizes = [int(s) for s in str(args.large_sizes).split(",") if s]
    args.peers = [p for p in str(args.peers).split(",") if p]
    args.text_peers = [p for p in str(args.text_peers).split(",") if p]
    unknown = (set(args.peers) - set(PEERS)) | (set(args.text_peers) - set(TEXT_PEERS))
    if unknown:
        parser.error(f"unknown peers {sorted(unknown)}; choose from {', '.join(PEERS)}")
    return args


def child(argv: list[str]) -> None:
    mode, peer, folder, *rest = argv
    if mode == "build":
        result = build(peer, Path(folder), Path(rest[0]))
    elif mode == "query":
        result = query(peer, Path(folder), Path(rest[0]), Path(rest[1]), float(rest[2]))
    else:
        text = json.loads(Path(rest[0]).read_text())
        if mode == "text-build":
            result = text_build(peer, Path(folder), [tuple(d) for d in text["docs"]])
        else:
            result = text_query(peer, Path(folder), text["queries"])
    print(json.dumps(result))


def main() -> None:
    args = parse_args()
    if args.child:
        child(args.child)
        return
    started = datetime.datetime.now(datetime.timezone.utc)
    with tempfile.TemporaryDirectory(prefix="moss-bench-peers-") as tmp:
        info = machine()
        rows = run_vectors(args, Path(tmp))
        text = run_text(args, Path(tmp)) if args.text_size > 0 else None
    result = {
        "schema": SCHEMA_VERSION,
        "benchmark": "open_query",
        "suite": "peers",
        "created_at": started.isoformat(timespec="seconds"),
        "command": " ".join(["benchmarks/peers", *sys.argv[1:]]),
        "machine": info,
        "settings": {
            "dimension": DIMENSION,
            "top_k": TOP_K,
            "queries": args.queries,
            "repeats": args.repeats,
            "query_input": "vector (the query text is not embedded)",
            "filter": f"topic == {FILTER_TOPIC} (10% of documents)",
            "batch": 32,
        },
        "rows": rows,
        "text": text,
    }
    print_tables(rows)
    if text:
        print_text_table(text["rows"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
