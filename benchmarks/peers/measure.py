"""The child processes: one writes a store, one opens it and queries it, each measuring itself.

Each runs in a fresh interpreter so that imports, open time and memory are the peer's own.
Memory is read from ``/proc/self/status``: ``VmHWM`` (the child's own peak; ``ru_maxrss`` of a
child forked by a large parent reports the parent's peak on Linux) and ``VmRSS`` before and
after opening (the memory the opened store holds).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from adapters import PEERS, Matrix

BATCH = 32
#: Queries whose results are compared with the exact answer (recall@10).
RECALL_QUERIES = 50


def proc_status(field: str) -> float:
    """A memory figure of this process from /proc/self/status, in MB (0 where unavailable)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def build(peer_name: str, folder: Path, vectors_file: Path) -> dict[str, Any]:
    """Write the store; report add and persist times and the writer's peak memory."""
    vectors = np.load(vectors_file)
    peer = PEERS[peer_name]
    peer.imports()
    figures: dict[str, Any] = dict(peer.write(folder, vectors))
    figures["build_peak_rss_mb"] = proc_status("VmHWM")
    return figures


def _latencies(fn: Callable[[Matrix], object], queries: Matrix, budget_s: float) -> list[float]:
    """Seconds per call after 3 warm-up calls; stops past the budget (after at least 10)."""
    for q in queries[:3]:
        fn(q)
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    for q in queries[3:]:
        started = time.perf_counter()
        fn(q)
        times.append(time.perf_counter() - started)
        if len(times) >= 10 and time.perf_counter() > deadline:
            break
    return times


def _recall(found: list[list[str]], truth: list[list[str]]) -> float:
    hits = [len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=False) if t]
    return float(np.mean(hits)) if hits else float("nan")


def query(
    peer_name: str, folder: Path, queries_file: Path, truth_file: Path, budget_s: float
) -> dict[str, Any]:
    """Import, open, query; every figure of one run."""
    peer = PEERS[peer_name]
    queries = np.load(queries_file)
    truth = json.loads(truth_file.read_text())
    baseline_mb = proc_status("VmRSS")
    started = time.perf_counter()
    peer.imports()
    imported = time.perf_counter()
    rss_before = proc_status("VmRSS")
    handle = peer.open(folder)
    opened = time.perf_counter()
    rss_open = proc_status("VmRSS")
    first = peer.search(handle, queries[0])
    first_ms = (time.perf_counter() - opened) * 1000

    found = [first] + [peer.search(handle, q) for q in queries[1:RECALL_QUERIES]]
    times = _latencies(lambda q: peer.search(handle, q), queries[RECALL_QUERIES:], budget_s)
    batches = [queries[i : i + BATCH] for i in range(0, len(queries) - BATCH + 1, BATCH)]
    # A peer whose 32 queries take longer than the budget (a loop of slow queries) is not
    # batch-timed: its batch figure would be 32 x its single query anyway.
    slow = np.percentile(times, 50) * BATCH > budget_s
    batch_times = [] if slow else _batch_latencies(peer, handle, batches, budget_s)
    figures: dict[str, Any] = {
        "import_s": imported - started,
        "open_s": opened - imported,
        "first_query_ms": first_ms,
        "query_p50_ms": float(np.percentile(times, 50)) * 1000,
        "query_p99_ms": float(np.percentile(times, 99)) * 1000,
        "queries": len(times),
        "batch_ms": float(np.median(batch_times)) * 1000 if batch_times else None,
        "recall_at_10": _recall(found, truth["plain"]),
    }
    started = time.perf_counter()
    filtered = peer.search_filtered(handle, queries[0])
    if filtered is not None:
        # The first filtered query evaluates the filter; moss then reuses its rows until a write.
        figures["filtered_first_ms"] = (time.perf_counter() - started) * 1000
        found_f = [peer.search_filtered(handle, q) or [] for q in queries[:RECALL_QUERIES]]
        times_f = _latencies(
            lambda q: peer.search_filtered(handle, q), queries[RECALL_QUERIES:], budget_s
        )
        figures["filtered_p50_ms"] = float(np.percentile(times_f, 50)) * 1000
        figures["filtered_recall_at_10"] = _recall(found_f, truth["filtered"])
    figures["memory_after_open_mb"] = rss_open - rss_before
    figures["baseline_rss_mb"] = baseline_mb
    figures["peak_rss_mb"] = proc_status("VmHWM")
    return figures


def _batch_latencies(peer: Any, handle: Any, batches: list[Matrix], budget_s: float) -> list[float]:
    if not batches:
        return []
    peer.search_batch(handle, batches[0])
    times = []
    deadline = time.perf_counter() + budget_s
    for batch in batches[1:]:
        started = time.perf_counter()
        peer.search_batch(handle, batch)
        times.append(time.perf_counter() - started)
        if len(times) >= 3 and time.perf_counter() > deadline:
            break
    return times
