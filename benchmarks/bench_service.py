"""Service speed: the same index opened and pushed through `moss serve` vs the embedded file store.

Run: .venv/bin/python benchmarks/bench_service.py [--n 100000] [--dim 384] [--repeat 5] [--upload-mib 1024]

The server is a real `moss serve` subprocess on 127.0.0.1 over its own file store; clients use
``MossClient(store="http://...")``, so every number includes HTTP, auth and the client's disk
cache. "Open" is a cold open (empty client cache); "re-open unchanged" is a second open by the
same client (one conditional request answered 304, the snapshot read from the local cache); the
bare 304 round trip is reported too. Finally one large snapshot is uploaded and the server's
peak resident memory (VmHWM) is read from /proc. Median of ``--repeat`` runs, warm page cache.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np

from moss import DocumentInfo, MossClient
from moss.snapshot import encode_snapshot
from moss.stores import FileStore
from moss.stores.http import HttpStore

PROJECT = "bench"
KEY = "bench-key-0123456789abcdefghijkl"


def median_time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def moss_serve(root: Path) -> Iterator[tuple[str, int]]:
    """Start `moss serve` over a file store in ``root``; yield its URL and pid."""
    port = free_port()
    env = {**os.environ, "MOSS_SERVER_KEYS": f"{PROJECT}:{KEY}"}
    command = [sys.executable, "-c", "from moss.cli import run; run()", "serve"]
    args = ["--store", (root / "store").as_uri(), "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen([*command, *args], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            time.sleep(0.05)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(30)


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in bytes."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024
    return fields


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


def big_snapshot(size: int, dim: int) -> Iterator[bytes | memoryview]:
    """A snapshot of about ``size`` bytes, as chunks (the vectors are held once, in memory)."""
    count = size // (dim * 4)
    vectors = np.ones((count, dim), dtype=np.float32) / np.sqrt(dim)
    _, chunks = encode_snapshot(
        index_name="upload",
        model_id="custom",
        model_artifact="",
        vectors=vectors,
        ids=[str(i) for i in range(count)],
        texts=[""] * count,
        metadata=[None] * count,
    )
    return chunks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--upload-mib", type=int, default=1024)
    args = parser.parse_args()
    docs = corpus(args.n, args.dim)
    temp = Path(tempfile.mkdtemp(prefix="moss-bench-service-"))
    rows: list[tuple[str, float, str, float]] = []
    try:
        with moss_serve(temp / "server") as (url, pid):
            file_url = (temp / "file-store").as_uri()
            caches = iter(range(10_000))

            def client(store: str, *, fresh_cache: bool = True) -> MossClient:
                cache = temp / "cache" / str(next(caches) if fresh_cache else "shared")
                return MossClient(PROJECT, KEY, store=store, cache_dir=cache)

            # Push: the same 100k-document session, through the server and into the file store.
            pushes: dict[str, float] = {}
            for label, store in (("server", url), ("file", file_url)):
                session = client(store).sync.session("idx", model_id="custom")
                session.sync.add_docs(docs)
                pushes[label] = median_time(session.sync.push_index, args.repeat)
            rows.append(
                (f"push {args.n} x {args.dim}", pushes["server"], "file store", pushes["file"])
            )

            # Cold open: an empty client cache, so the server sends the whole snapshot.
            server_open = median_time(lambda: client(url).sync.session("idx"), args.repeat)
            file_open = median_time(lambda: client(file_url).sync.session("idx"), args.repeat)
            rows.append((f"open {args.n} x {args.dim}", server_open, "file store", file_open))

            # Re-open unchanged: the same client again (304, then its local cache).
            warm = client(url, fresh_cache=False)
            warm.sync.session("idx")
            reopen = median_time(lambda: warm.sync.session("idx"), args.repeat)
            rows.append(("re-open unchanged (client)", reopen, "file store open", file_open))
            http = HttpStore(url, project_key=KEY)
            latest = http.head(PROJECT, "idx").version  # type: ignore[union-attr]
            not_modified = median_time(
                lambda: http.get(PROJECT, "idx", if_none_match=latest), max(args.repeat, 20)
            )
            rows.append(("re-open unchanged (304 only)", not_modified, "20 ms budget", 0.020))

            # A big upload: the server streams it to disk; its memory must not grow with it.
            size = args.upload_mib << 20
            before = memory(pid)
            started = time.perf_counter()
            http.put(PROJECT, "upload", big_snapshot(size, args.dim))
            upload = time.perf_counter() - started
            after = memory(pid)
            local = FileStore(temp / "local")
            started = time.perf_counter()
            local.put(PROJECT, "upload", big_snapshot(size, args.dim))
            local_upload = time.perf_counter() - started
            rows.append(
                (f"push {args.upload_mib} MiB snapshot", upload, "file store", local_upload)
            )
            http.close()
        print(
            f"\nmoss service vs embedded file store: {args.n} docs x {args.dim} dims, "
            f"median of {args.repeat}, loopback"
        )
        print(f"{'operation':30} {'server s':>9} {'peer':18} {'peer s':>9} {'ratio':>7}")
        for name, ours, peer, theirs in rows:
            print(f"{name:30} {ours:9.4f} {peer:18} {theirs:9.4f} {ours / theirs:6.2f}x")
        print(
            f"server memory: {before['VmRSS'] >> 20} MiB resident (peak so far {before['VmHWM'] >> 20} MiB) "
            f"before the {args.upload_mib} MiB upload, "
            f"peak {after['VmHWM'] >> 20} MiB (VmHWM, whole life of the process), "
            f"{after['VmRSS'] >> 20} MiB after"
        )
    finally:
        shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
