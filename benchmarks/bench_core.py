"""Core speed: open, push and add_docs on the file store against the floor a user would write.

Run: .venv/bin/python benchmarks/bench_core.py [--n 100000] [--dim 384] [--repeat 5]

The floor for opening is ``numpy.load`` of the vectors from a ``.npy`` file plus ``json.load``
of the texts and metadata; for pushing, writing the same number of bytes to a new file with
fsync (keeping the last five, as the store keeps versions). Everything
runs in one process with a warm page cache, median of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from moss import DocumentInfo, FileStore, MossClient


def median_time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def make_corpus(
    n: int, dim: int
) -> tuple[np.ndarray, list[str], list[str], list[dict[str, object]]]:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"doc-{i}" for i in range(n)]
    texts = [
        f"document {i} about topic {i % 97} with a few more words to look like a turn"
        for i in range(n)
    ]
    metadata: list[dict[str, object]] = [
        {"topic": i % 97, "channel": "chat", "score": i / n} for i in range(n)
    ]
    return vectors, ids, texts, metadata


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    vectors, ids, texts, metadata = make_corpus(args.n, args.dim)
    rows: list[tuple[str, float, str, float]] = []

    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        # Floors: what a user would hand-write.
        np.save(root / "vectors.npy", vectors)
        with open(root / "docs.json", "w") as handle:
            json.dump({"ids": ids, "texts": texts, "metadata": metadata}, handle)

        def floor_open() -> None:
            np.load(root / "vectors.npy")
            with open(root / "docs.json") as f:
                json.load(f)

        client = MossClient("bench", store=FileStore(root / "store"))
        docs = [
            DocumentInfo(id=i, text=t, metadata=m, embedding=v)
            for i, t, m, v in zip(ids, texts, metadata, vectors, strict=False)
        ]

        def add() -> None:
            session = client.sync.session("add-bench", model_id="custom")
            session.sync.add_docs(docs)

        add_s = median_time(add, args.repeat)
        session = client.sync.session("bench", model_id="custom")
        session.sync.add_docs(docs)
        push_s = median_time(session.sync.push_index, args.repeat)
        size = client.store.head("bench", "bench").size_bytes  # type: ignore[union-attr]
        payload = os.urandom(1 << 20)

        written: list[Path] = []

        def floor_write() -> None:
            # A new file each time, like any crash-safe write (temporary file, fsync, rename):
            # rewriting one file in place skips block allocation and would flatter the floor.
            target = root / f"floor-{len(written)}.bin"
            with open(target, "wb") as f:
                for offset in range(0, size, len(payload)):
                    f.write(payload[: min(len(payload), size - offset)])
                f.flush()
                os.fsync(f.fileno())
            written.append(target)
            if len(written) > 5:  # keep as many files as the store keeps versions
                written[-6].unlink()

        floor_write_s = median_time(floor_write, args.repeat)
        floor_open_s = median_time(floor_open, args.repeat)
        open_s = median_time(lambda: client.sync.session("bench"), args.repeat)
        peer_open = _langchain_faiss_open(root, vectors, ids, texts, metadata, args.repeat)

    rows.append(("open by name (file store)", open_s, "numpy.load + json.load", floor_open_s))
    if peer_open is not None:
        rows.append(("open by name (file store)", open_s, "langchain FAISS.load_local", peer_open))
    rows.append(
        ("push_index", push_s, f"write {size / 1e6:.0f} MB new file + fsync", floor_write_s)
    )
    print(
        f"moss core benchmark: {args.n} documents x {args.dim} dimensions, median of {args.repeat}"
    )
    print(f"{'operation':30} {'moss s':>9} {'peer':32} {'peer s':>9} {'ratio':>7}")
    for name, ours, peer, theirs in rows:
        print(f"{name:30} {ours:9.3f} {peer:32} {theirs:9.3f} {ours / theirs:6.2f}x")
    print(
        f"{'add_docs (precomputed vectors)':30} {add_s:9.3f} {'goal: >= 200,000 docs/s':32} "
        f"{'':>9} {args.n / add_s:,.0f} docs/s"
    )


def _langchain_faiss_open(
    root: Path,
    vectors: np.ndarray,
    ids: list[str],
    texts: list[str],
    metadata: list[dict[str, object]],
    repeat: int,
) -> float | None:
    """langchain-community's FAISS.load_local, if that peer is installed."""
    try:
        from langchain_community.vectorstores import FAISS
        from langchain_core.embeddings import FakeEmbeddings
    except ImportError:
        return None
    embeddings = FakeEmbeddings(size=vectors.shape[1])
    store = FAISS.from_embeddings(
        list(zip(texts, vectors.tolist(), strict=False)), embeddings, metadatas=metadata, ids=ids
    )
    store.save_local(str(root / "lc-faiss"))
    return median_time(
        lambda: FAISS.load_local(
            str(root / "lc-faiss"), embeddings, allow_dangerous_deserialization=True
        ),
        repeat,
    )


if __name__ == "__main__":
    main()
