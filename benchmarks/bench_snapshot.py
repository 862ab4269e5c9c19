"""Snapshot encode/decode speed against np.save/np.load + json of the same data.

Run: ``python benchmarks/bench_snapshot.py [count] [dimension]`` (default 100000 x 384).
Files are written to a temporary directory and read back from the page cache, so this measures
parsing and copying, not the disk. Prints the best of a few runs and the ratios.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from moss.snapshot import SnapshotReader, decode_snapshot, encode_snapshot

CHUNK = 8 << 20


def best_of(runs: int, fn: Callable[[], Any]) -> float:
    """Return the fastest wall time of ``runs`` calls of ``fn``."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def file_chunks(path: Path) -> Iterator[bytes]:
    """Yield a file in CHUNK-sized reads, as a file store's get() does."""
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def main(count: int = 100_000, dimension: int = 384) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((count, dimension), dtype=np.float32)
    ids = [f"doc-{i}" for i in range(count)]
    texts = [f"document number {i} says something short about topic {i % 97}" for i in range(count)]
    metadata: list[dict[str, Any] | None] = [
        {"source": f"file-{i % 13}.md", "page": i % 50, "tags": ["a", "b"]} for i in range(count)
    ]
    tmp = Path(tempfile.mkdtemp())
    npy, js, snap = tmp / "v.npy", tmp / "d.json", tmp / "i.moss"

    def write_baseline() -> None:
        np.save(npy, vectors)
        js.write_text(json.dumps({"ids": ids, "texts": texts, "metadata": metadata}))

    def write_snapshot() -> None:
        _, chunks = encode_snapshot(
            index_name="bench", model_id="custom", model_artifact="", vectors=vectors,
            ids=ids, texts=texts, metadata=metadata,
        )  # fmt: skip
        with snap.open("wb") as f:
            for chunk in chunks:
                f.write(chunk)

    def read_baseline() -> None:
        np.load(npy)
        with js.open("rb") as f:
            json.load(f)

    def read_baseline_orjson() -> None:
        np.load(npy)
        orjson.loads(js.read_bytes())

    def validate_only() -> None:
        reader = SnapshotReader(keep_data=False)
        for chunk in file_chunks(snap):
            reader.feed(chunk)
        reader.finish()

    _, memory_chunks = encode_snapshot(
        index_name="bench", model_id="custom", model_artifact="", vectors=vectors,
        ids=ids, texts=texts, metadata=metadata,
    )  # fmt: skip
    in_memory = [bytes(c) for c in memory_chunks]

    results = {
        "write np.save + json.dumps": best_of(3, write_baseline),
        "write encode_snapshot to file": best_of(3, write_snapshot),
        "read np.load + json.load": best_of(5, read_baseline),
        "read np.load + orjson.loads": best_of(5, read_baseline_orjson),
        "read decode_snapshot from file": best_of(5, lambda: decode_snapshot(file_chunks(snap))),
        "read decode_snapshot in memory": best_of(5, lambda: decode_snapshot(in_memory)),
        "validate keep_data=False from file": best_of(5, validate_only),
    }
    size = snap.stat().st_size
    print(f"{count} x {dimension} vectors, snapshot {size / 1e6:.1f} MB")
    for name, seconds in results.items():
        print(f"  {name:38s} {seconds * 1000:8.1f} ms")
    ratios = [
        ("write", "write encode_snapshot to file", "write np.save + json.dumps"),
        ("read (file)", "read decode_snapshot from file", "read np.load + json.load"),
        ("read (file) vs orjson", "read decode_snapshot from file", "read np.load + orjson.loads"),
        ("read (memory)", "read decode_snapshot in memory", "read np.load + json.load"),
    ]
    for label, ours, theirs in ratios:
        print(f"  ratio {label:22s} {results[ours] / results[theirs]:.2f}x baseline")
    for path in (npy, js, snap):
        path.unlink()
    tmp.rmdir()


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:3]))
