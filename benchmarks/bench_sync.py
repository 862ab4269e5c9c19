"""Incremental sync (issue 18): what a one-document hand-off costs, beside a whole-index one.

Run: .venv/bin/python benchmarks/bench_sync.py [--n 100000] [--dim 384] [--repeat 7]
     [--targets file,serve,postgres] [--out benchmarks/results/sync.json]

For each store (the file store directly, a real `moss serve` subprocess over a file store on
127.0.0.1, and PostgreSQL from tests/pg.py with durable settings), one writer session holds an
index of ``--n`` documents with custom ``--dim`` vectors and one reader session follows it:

- full push / cold open: the whole index pushed (a full snapshot) and opened by a new client;
- delta push: the writer adds one document and pushes (a delta), median of ``--repeat``;
- refresh: the reader's ``refresh()`` after each such push (it applies the delta in place),
  median; the first refresh after an open is reported on its own (``first_refresh_ms``: it is
  the first write to a freshly decoded index, which once paid a copy of it);
- bytes: the stored size of each version (what a push writes or sends) and the bytes the
  reader's chain downloads hand out.

On the file store it also opens the index through a chain of 64 one-document deltas and
through the compacted snapshot of the same state (median of 5 cold opens each). Every number
of one store comes from the same run, so the ratios compare like with like.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from moss import DocumentInfo, MossClient, refresh_policy
from moss.errors import IndexNotFoundError
from moss.stores import open_store
from moss.stores.base import AsyncDownload, Download, Store

PROJECT = "bench"
KEY = "bench-key-0123456789abcdefghijkl"
NAME = "sync"


def corpus(n: int, dim: int) -> list[DocumentInfo]:
    vectors = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
    return [
        DocumentInfo(
            id=f"doc-{i}",
            text=f"document {i} about topic {i % 97} with a few more words to look like a turn",
            metadata={"topic": i % 97, "channel": "chat"},
            embedding=vectors[i],
        )
        for i in range(n)
    ]


class Counting:
    """A store that counts the bytes its downloads hand out (everything else passes through)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.read = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def get_chain(self, *args: Any, **kwargs: Any) -> Download:
        download = self._store.get_chain(*args, **kwargs)
        download.chunks = self._count(download.chunks)
        return download

    async def aget_chain(self, *args: Any, **kwargs: Any) -> AsyncDownload:
        raise NotImplementedError("the benchmark drives blocking sessions only")

    def _count(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.read += len(chunk)
            yield chunk


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def one_doc(step: int, dim: int) -> list[DocumentInfo]:
    vector = np.random.default_rng(10_000 + step).standard_normal(dim).astype(np.float32)
    return [DocumentInfo(id=f"turn-{step}", text=f"a new turn number {step}", embedding=vector)]


def full_push(session: Any) -> float:
    """Time a push forced to send the whole index (a compaction)."""
    saved = refresh_policy.COMPACT_CHAIN_LENGTH
    refresh_policy.COMPACT_CHAIN_LENGTH = 0
    try:
        return timed(session.push_index)
    finally:
        refresh_policy.COMPACT_CHAIN_LENGTH = saved


class Target:
    """One store under test: a writer session and a reader session that follows it."""

    def __init__(self, label: str, url: str, key: str | None, temp: Path) -> None:
        self.label, self.url, self.key, self.temp = label, url, key, temp
        self._caches = iter(range(10**6))

    def client(self, store: Store | None = None) -> MossClient:
        cache = self.temp / "cache" / str(next(self._caches))  # a new client: a cold cache
        return MossClient(PROJECT, self.key, store=store or self.url, cache_dir=cache)

    def size_of_latest(self, client: MossClient) -> int:
        return client.sync.versions(NAME)[-1].size_bytes

    def run(self, docs: list[DocumentInfo], dim: int, repeat: int) -> dict[str, Any]:
        writer_client = self.client()
        writer = writer_client.sync.session(NAME, model_id="custom")
        writer.add_docs(docs)
        writer.push_index()  # the first version: schema, file tree and caches warm
        result: dict[str, Any] = {"full_push_ms": full_push(writer)}
        result["full_push_bytes"] = self.size_of_latest(writer_client)
        counting = Counting(open_store(self.url, project_key=self.key))
        started = time.perf_counter()
        reader = self.client(counting).sync.session(NAME)
        result["open_ms"] = (time.perf_counter() - started) * 1000
        result["open_bytes"] = counting.read
        writer.add_docs(one_doc(0, dim))
        writer.push_index()
        result["first_refresh_ms"] = timed(reader.refresh)
        pushes, sizes, refreshes, reads = [], [], [], []
        for step in range(1, repeat + 1):
            writer.add_docs(one_doc(step, dim))
            pushes.append(timed(writer.push_index))
            sizes.append(self.size_of_latest(writer_client))
            counting.read = 0
            refreshes.append(timed(reader.refresh))
            reads.append(counting.read)
        assert reader.version == writer.version and reader.doc_count == writer.doc_count
        result |= {
            "delta_push_ms": statistics.median(pushes),
            "delta_push_bytes": max(sizes),
            "refresh_ms": statistics.median(refreshes),
            "refresh_bytes": max(reads),
            "delta_push_ms_all": [round(x, 2) for x in pushes],
            "refresh_ms_all": [round(x, 2) for x in refreshes],
        }
        result["push_ratio"] = result["delta_push_ms"] / result["full_push_ms"]
        result["refresh_vs_open_ratio"] = result["refresh_ms"] / result["open_ms"]
        result["push_bytes_ratio"] = result["delta_push_bytes"] / result["full_push_bytes"]
        if self.label == "file":
            result |= self.chain_open(writer, dim)
        return result

    def cold_opens(self, repeat: int = 5) -> float:
        """Median of cold opens, each after a collection (so freed indexes do not weigh)."""
        times = []
        for _ in range(repeat):
            gc.collect()
            times.append(timed(lambda: self.client().sync.session(NAME)))
        return statistics.median(times)

    def chain_open(self, writer: Any, dim: int, deltas: int = 64) -> dict[str, Any]:
        """Cold opens through a chain of ``deltas`` deltas vs the compacted snapshot."""
        full_push(writer)
        for step in range(deltas):
            writer.add_docs(one_doc(1000 + step, dim))
            writer.push_index()
        kinds = [v.kind for v in self.client().sync.versions(NAME)]
        assert kinds[-deltas:] == ["delta"] * deltas, kinds
        chain = self.cold_opens()
        full_push(writer)
        compacted = self.cold_opens()
        return {
            "open_chain64_ms": chain,
            "open_compacted_ms": compacted,
            "chain64_open_ratio": chain / compacted,
        }


def chain_served(url: str) -> bool:
    """Whether the server answers the chain endpoint (the server side of issue 18)."""
    store = open_store(url, project_key=KEY)
    try:
        store.get_chain(PROJECT, "never-pushed-probe")
    except IndexNotFoundError as exc:
        return "does not exist" in str(exc) or "no index" in str(exc).lower()
    finally:
        store.close()
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--targets", default="file,serve,postgres")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "sync.json")
    args = parser.parse_args()
    wanted = args.targets.split(",")
    docs = corpus(args.n, args.dim)
    temp = Path(tempfile.mkdtemp(prefix="moss-bench-sync-"))
    results: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    if "file" in wanted:
        target = Target("file", (temp / "file").as_uri(), None, temp / "file-client")
        results["file"] = target.run(docs, args.dim, args.repeat)
    if "serve" in wanted:
        from service import Server

        with Server(temp / "serve", keys={PROJECT: KEY}) as server:
            if chain_served(server.url):
                target = Target("serve", server.url, KEY, temp / "serve-client")
                results["serve"] = target.run(docs, args.dim, args.repeat)
            else:
                skipped["serve"] = "moss serve does not answer GET /v1/indexes/{name}/chain yet"
    if "postgres" in wanted:
        from pg import Cluster

        with Cluster(durable=True) as cluster:
            target = Target("postgres", cluster.url(), None, temp / "pg-client")
            results["postgres"] = target.run(docs, args.dim, args.repeat)
    for label, reason in skipped.items():
        print(f"skipped {label}: {reason}")
    report = {
        "benchmark": "bench_sync.py",
        "n": args.n,
        "dim": args.dim,
        "repeat": args.repeat,
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "results": results,
        "skipped": skipped,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)


def print_table(report: dict[str, Any]) -> None:
    print(f"\n{report['n']} x {report['dim']}, median of {report['repeat']}")
    rows = [
        ("full push", "full_push_ms", "full_push_bytes"),
        ("push after 1 doc", "delta_push_ms", "delta_push_bytes"),
        ("cold open", "open_ms", "open_bytes"),
        ("refresh after it", "refresh_ms", "refresh_bytes"),
        ("first refresh after open", "first_refresh_ms", None),
    ]
    for label, result in report["results"].items():
        print(f"-- {label}")
        for name, ms, size in rows:
            shown = f"{result[size]:>12,} B" if size else ""
            print(f"  {name:26} {result[ms]:>9.1f} ms {shown}")
        print(
            f"  push {result['push_ratio']:.4f}x a full push, {result['push_bytes_ratio']:.6f}x "
            f"its bytes; refresh {result['refresh_vs_open_ratio']:.4f}x a cold open"
        )
        if "chain64_open_ratio" in result:
            print(
                f"  open through 64 deltas {result['open_chain64_ms']:.0f} ms vs compacted "
                f"{result['open_compacted_ms']:.0f} ms: {result['chain64_open_ratio']:.2f}x"
            )


if __name__ == "__main__":
    main()
