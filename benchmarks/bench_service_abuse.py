"""Service under abuse: slow clients, crashes and contention must not cost other projects.

Run: .venv/bin/python benchmarks/bench_service_abuse.py [--index-mib 65] [--downloads 30]
     [--uploads 600] [--kills 12] [--writers 20] [--writer-seconds 30]

Every server is a real `moss serve` subprocess over its own file store (tests/service.py).
Prints, as one table:

- server RSS idle, with ``--downloads`` clients that request a ``--index-mib`` index and never
  read, and after the server drops them (its stall timeout is set to 5 s here);
- server RSS with ``--uploads`` uploads that send 1,000 bytes and stop (from one key), and after
  the server drops them (idle timeout 5 s here);
- another project's p50/p99 latency (a small GET) during both;
- temp files left in the store after ``--kills`` cycles of SIGKILL mid-upload and restart;
- merge-push give-ups (ConflictError) of ``--writers`` processes pushing with merge=True into one
  index for ``--writer-seconds``.
The default run takes under 3 minutes. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import base64
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import contextlib

from service import Server, worker_env
from snapshots import snapshot_bytes

KEY = "abuse-bench-key-0123456789abcdef"
OTHER_KEY = "abuse-bench-other-0123456789abcd"
LIMITS = {"MOSS_SERVE_DOWNLOAD_STALL_SECONDS": "5", "MOSS_SERVE_UPLOAD_IDLE_SECONDS": "5"}


def rss_mib(server: Server) -> float:
    assert server.process is not None
    return float(psutil.Process(server.process.pid).memory_info().rss) / (1 << 20)


def raw_request(server: Server, head: str, body: bytes = b"") -> socket.socket:
    auth = base64.b64encode(f"p:{KEY}".encode()).decode()
    conn = socket.socket()
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # stall the server's writes soon
    conn.connect(("127.0.0.1", server.port))
    conn.sendall(f"{head}\r\nHost: x\r\nAuthorization: Basic {auth}\r\n\r\n".encode() + body)
    return conn


class Prober:
    """Another project's client, timing a small GET in a loop while the abuse goes on."""

    def __init__(self, server: Server) -> None:
        self.client = httpx.Client(base_url=server.url, auth=("q", OTHER_KEY), timeout=30)
        assert self.client.put("/v1/indexes/probe", content=snapshot_bytes("probe")).is_success
        self.times: list[float] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                ok = self.client.get("/v1/indexes/probe").status_code == 200
            except httpx.HTTPError:
                ok = False
            self.times.append(time.perf_counter() - started)
            self.errors += not ok
            time.sleep(0.02)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.client.close()

    def summary(self) -> str:
        ms = sorted(t * 1000 for t in self.times)
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        return f"p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, {self.errors} errors"


def stalled_downloads(root: Path, index_mib: int, count: int) -> list[tuple[str, str]]:
    rows = []
    keys = {"p": KEY, "q": OTHER_KEY}
    with Server(root, keys=keys, env=LIMITS) as server:
        docs = max(1, (index_mib << 20) // (384 * 4 + 40))
        blob = snapshot_bytes("large", count=docs, dimension=384)
        with httpx.Client(base_url=server.url, auth=("p", KEY), timeout=120) as client:
            assert client.put("/v1/indexes/large", content=blob).is_success
            assert len(client.get("/v1/indexes/large").content) == len(blob)  # warm
        idle = rss_mib(server)
        with Prober(server) as prober:
            conns = [raw_request(server, "GET /v1/indexes/large HTTP/1.1") for _ in range(count)]
            peak = idle
            for _ in range(8):  # while they stall (the server drops them after 5 s)
                time.sleep(0.5)
                peak = max(peak, rss_mib(server))
            time.sleep(4)
            after = rss_mib(server)
        for conn in conns:
            conn.close()
        rows.append(
            (
                f"RSS, {count} stalled downloads of {len(blob) >> 20} MiB",
                f"idle {idle:.0f} MiB, peak {peak:.0f} MiB, after drop {after:.0f} MiB",
            )
        )
        rows.append(("other project's GET during them", prober.summary()))
    return rows


def stalled_uploads(root: Path, count: int) -> list[tuple[str, str]]:
    rows = []
    with Server(root, keys={"p": KEY, "q": OTHER_KEY}, env=LIMITS) as server:
        blob = snapshot_bytes("slow", count=2000, dimension=64)
        head = f"PUT /v1/indexes/slow HTTP/1.1\r\nContent-Length: {len(blob)}"
        idle = rss_mib(server)
        with Prober(server) as prober:
            conns = [raw_request(server, head, blob[:1000]) for _ in range(count)]
            time.sleep(1.0)
            during = rss_mib(server)
            refused = 0
            for conn in conns:
                conn.settimeout(0.01)
                with contextlib.suppress(OSError):
                    refused += conn.recv(12).startswith(b"HTTP/1.1 429")
            time.sleep(6)  # past the 5 s idle timeout
            after = rss_mib(server)
        for conn in conns:
            conn.close()
        temp = len(list((root / "store").rglob(".tmp-*")))
        rows.append(
            (
                f"RSS, {count} stalled uploads (one key)",
                f"idle {idle:.0f} MiB, during {during:.0f} MiB, after drop {after:.0f} MiB; "
                f"{refused} refused with 429; {temp} temp files left",
            )
        )
        rows.append(("other project's GET during them", prober.summary()))
    return rows


def kill_cycles(root: Path, cycles: int) -> list[tuple[str, str]]:
    server = Server(root, keys={"p": KEY})
    blob = snapshot_bytes("killed", count=20_000, dimension=128)
    for _ in range(cycles):
        server.start()
        conn = raw_request(
            server,
            f"PUT /v1/indexes/killed HTTP/1.1\r\nContent-Length: {len(blob)}",
            blob[: len(blob) // 2],
        )
        time.sleep(0.3)
        server.kill()
        conn.close()
    server.start()
    with httpx.Client(base_url=server.url, auth=("p", KEY), timeout=60) as client:
        assert client.put("/v1/indexes/killed", content=blob).is_success
    server.stop()
    left = len(list((root / "store").rglob(".tmp-*")))
    return [(f"temp files left after {cycles} SIGKILL/restart cycles", f"{left} (goal 0)")]


def merge_writers(root: Path, writers: int, seconds: float) -> list[tuple[str, str]]:
    with Server(root, keys={"p": KEY}) as server:
        env = worker_env(MOSS_PROJECT_KEY=KEY)
        procs = [
            subprocess.Popen(
                [sys.executable, __file__, "--writer", server.url, str(n), str(seconds)],
                stdout=subprocess.PIPE,
                env=env,
            )
            for n in range(writers)
        ]
        results = [
            json.loads(proc.communicate()[0].decode().strip().splitlines()[-1]) for proc in procs
        ]
    pushes = sum(r["pushes"] for r in results)
    gave_up = sum(r["gave_up"] for r in results)
    return [
        (
            f"merge pushes, {writers} writers for {seconds:g} s",
            f"{pushes} pushed, {gave_up} gave up (goal 0)",
        )
    ]


def writer(url: str, number: int, seconds: float) -> None:
    """One merge-pushing process: add a document, push with merge=True, repeat."""
    from moss import ConflictError, DocumentInfo, MossClient

    rng = np.random.default_rng(number)
    counts = {"pushes": 0, "gave_up": 0}
    deadline = time.monotonic() + seconds
    with MossClient("p", store=url) as client:
        session = client.sync.session("shared", model_id="custom")
        n = 0
        while time.monotonic() < deadline:
            vector = rng.standard_normal(8).astype(np.float32)
            session.sync.add_docs([DocumentInfo(f"w{number}-{n}", "text", embedding=vector)])
            n += 1
            try:
                session.sync.push_index(merge=True)
                counts["pushes"] += 1
            except ConflictError:
                counts["gave_up"] += 1
    print(json.dumps(counts), flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--writer":
        writer(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-mib", type=int, default=65)
    parser.add_argument("--downloads", type=int, default=30)
    parser.add_argument("--uploads", type=int, default=600)
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--writers", type=int, default=20)
    parser.add_argument("--writer-seconds", type=float, default=30.0)
    args = parser.parse_args()
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="moss-abuse-") as tmp:
        base = Path(tmp)
        rows += stalled_downloads(base / "downloads", args.index_mib, args.downloads)
        rows += stalled_uploads(base / "uploads", args.uploads)
        rows += kill_cycles(base / "kills", args.kills)
        rows += merge_writers(base / "writers", args.writers, args.writer_seconds)
    width = max(len(what) for what, _ in rows)
    for what, value in rows:
        print(f"{what:<{width}}  {value}")


if __name__ == "__main__":
    main()
