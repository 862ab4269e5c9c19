"""Scale-out speed: a `moss serve` replica over PostgreSQL vs one over the file store.

Run: .venv/bin/python benchmarks/bench_postgres.py [--n 100000] [--dim 384] [--repeat 5]

Both replicas are real `moss serve` subprocesses on 127.0.0.1; clients use
``MossClient(store="http://...")``, so every number includes HTTP, auth and the client. The
PostgreSQL cluster is a throw-away one started by tests/pg.py on this machine, with durable
settings (fsync and synchronous_commit on, as the file store fsyncs every version). "Open" is a
cold open (empty client cache: the replica streams the whole snapshot and the client builds the
index); "push" pushes the same session again (a new version each time, older ones pruned). The
"bytes" rows move the encoded snapshot through the replica with no client-side work, isolating
the store. Both replicas run at once and are measured in turn, so that a busy moment of the
machine hits both alike; median of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from moss import DocumentInfo, MossClient
from moss.stores.http import HttpStore
from pg import Cluster, replica
from service import Server

PROJECT = "bench"
KEY = "bench-key-0123456789abcdefghijkl"


def corpus(n: int, dim: int) -> list[DocumentInfo]:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [
        DocumentInfo(
            id=f"doc-{i}",
            text=f"document {i} about topic {i % 97} with a few more words to look like a turn",
            metadata={"topic": i % 97, "channel": "chat"},
            embedding=vectors[i],
        )
        for i in range(n)
    ]


class Target:
    """One replica under test, with what its measurements need."""

    def __init__(self, url: str, docs: list[DocumentInfo], temp: Path) -> None:
        self.url = url
        self.temp = temp
        self._caches = iter(range(100_000))
        self.session = self.client().sync.session("idx", model_id="custom")
        self.session.sync.add_docs(docs)
        self.session.sync.push_index()  # the first version: schema, file tree and caches warm
        self.store = HttpStore(url, project_key=KEY, timeout=300)
        self.blob = b"".join(self.store.get(PROJECT, "idx"))

    def client(self) -> MossClient:
        cache = self.temp / "cache" / str(next(self._caches))  # always cold
        return MossClient(PROJECT, KEY, store=self.url, cache_dir=cache)

    def operations(self) -> dict[str, Callable[[], object]]:
        return {
            "open": lambda: self.client().sync.session("idx"),
            "push": self.session.sync.push_index,
            "download bytes": lambda: b"".join(self.store.get(PROJECT, "idx")),
            "upload bytes": lambda: self.store.put(PROJECT, "idx", [self.blob]),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    docs = corpus(args.n, args.dim)
    temp = Path(tempfile.mkdtemp(prefix="moss-bench-postgres-"))
    keys = {PROJECT: KEY}
    times: dict[tuple[str, str], list[float]] = {}
    with (
        Cluster(durable=True) as cluster,
        replica(cluster, cluster.url(), temp / "pg", keys=keys) as pg_server,
        Server(temp / "file", keys=keys) as file_server,
    ):
        targets = {
            "postgres": Target(pg_server.url, docs, temp / "pg"),
            "file": Target(file_server.url, docs, temp / "file"),
        }
        # Interleaved, so that a busy moment of the machine hits both sides alike.
        for _ in range(args.repeat):
            for label in ("open", "push", "download bytes", "upload bytes"):
                for kind, target in targets.items():
                    started = time.perf_counter()
                    target.operations()[label]()
                    times.setdefault((label, kind), []).append(time.perf_counter() - started)
        size = len(targets["file"].blob) / 2**20
    print(f"\n{args.n} x {args.dim} index ({size:.0f} MiB snapshot), median of {args.repeat}")
    print(f"{'through one replica':20} {'postgres':>10} {'file store':>11} {'ratio':>7}")
    for label in ("open", "push", "download bytes", "upload bytes"):
        pg = statistics.median(times[(label, "postgres")])
        fs = statistics.median(times[(label, "file")])
        print(f"{label:20} {pg:>9.3f}s {fs:>10.3f}s {pg / fs:>6.2f}x")


if __name__ == "__main__":
    main()
