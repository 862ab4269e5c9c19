"""Several `moss serve` replicas over one PostgreSQL database, as a load balancer would see them.

Two replicas (A and B, real subprocesses on their own ports) share one schema of the run's
throw-away cluster; clients talk HTTP to either one.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
import xxhash

from moss import DocumentInfo, MossClient
from moss.errors import ConflictError, MossError
from moss.snapshot import encode_snapshot
from moss.stores.auth import ProjectKeys
from moss.stores.http import HttpStore
from moss.stores.postgres import PostgresStore
from moss.stores.postgres.sql import parse_url
from pg import Cluster, replica, shared_cluster
from snapshots import snapshot_bytes

P = "acme"


@dataclass
class Deployment:
    cluster: Cluster
    url: str
    key: str
    a: Any
    b: Any

    def store(self, server: Any) -> HttpStore:
        return HttpStore(server.url, project_key=self.key)


@pytest.fixture(scope="module")
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    cluster = shared_cluster(request.config)
    url = cluster.fresh_url()
    admin = PostgresStore(url)
    _, key = ProjectKeys(admin).create_project(P)  # kept in the database: both replicas see it
    admin.close()
    root = tmp_path_factory.mktemp("replicas")
    a = replica(cluster, url, root / "a").start()
    try:
        b = replica(cluster, url, root / "b").start()
    except BaseException:
        a.stop()
        raise
    yield Deployment(cluster, url, key, a, b)
    a.stop()
    b.stop()


def vec(i: int, dimension: int = 8) -> list[float]:
    rng = np.random.default_rng(i)
    return [float(x) for x in rng.standard_normal(dimension)]


def docs(*numbers: int) -> list[DocumentInfo]:
    return [DocumentInfo(id=f"d{i}", text=f"text {i}", embedding=vec(i)) for i in numbers]


def test_a_push_through_a_is_visible_through_b_at_once(
    deployment: Deployment, tmp_path: Path
) -> None:
    d = deployment
    with (
        MossClient(P, d.key, store=d.a.url, cache_dir=tmp_path / "ca") as client_a,
        MossClient(P, d.key, store=d.b.url, cache_dir=tmp_path / "cb") as client_b,
    ):
        writer = client_a.sync.session("shared", model_id="custom")
        writer.sync.add_docs(docs(1, 2, 3))
        version = writer.sync.push_index().version
        reader = client_b.sync.session("shared")
        assert (reader.version, reader.doc_count) == (version, 3)
        writer.sync.add_docs(docs(4))
        writer.sync.push_index()
        assert client_b.sync.session("shared").doc_count == 4  # no delay, no stale copy
        assert [info.name for info in client_b.sync.list_indexes()] == ["shared"]


async def test_a_session_kept_fresh_through_b_sees_a_push_through_a_within_a_second(
    deployment: Deployment, tmp_path: Path
) -> None:
    d = deployment
    async with (
        MossClient(P, d.key, store=d.a.url, cache_dir=tmp_path / "ca") as client_a,
        MossClient(P, d.key, store=d.b.url, cache_dir=tmp_path / "cb") as client_b,
    ):
        writer = await client_a.session("live", model_id="custom")
        await writer.add_docs(docs(1))
        await writer.push_index()
        follower = await client_b.session("live", auto_refresh=True)
        await asyncio.sleep(0.5)  # the follower's watch request is now parked at B
        await writer.add_docs(docs(2))
        pushed_at = time.monotonic()
        version = (await writer.push_index()).version
        while follower.version != version and time.monotonic() - pushed_at < 5:
            await asyncio.sleep(0.01)
        seen_after = time.monotonic() - pushed_at
        assert (follower.version, follower.doc_count) == (version, 2)
        # B polls the store every 5 s at most; within a second means NOTIFY woke it.
        assert seen_after < 1.0
        await follower.close()


def test_racing_conditional_pushes_through_both_replicas_have_one_winner(
    deployment: Deployment,
) -> None:
    d = deployment
    stores = [d.store(d.a), d.store(d.b)]
    stores[0].put(P, "race", [snapshot_bytes("race")])
    blobs = [snapshot_bytes("race", count=500, seed=seed) for seed in range(8)]
    outcomes: list[str] = []
    start = threading.Barrier(len(blobs))

    def push(seed: int) -> None:
        start.wait()
        try:
            stores[seed % 2].put(P, "race", [blobs[seed]], expected_version=1)
            outcomes.append(f"won:{seed}")
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=push, args=(seed,)) for seed in range(len(blobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [o for o in outcomes if o.startswith("won")]
    assert len(winners) == 1 and outcomes.count("conflict") == len(blobs) - 1
    winner = int(winners[0].split(":")[1])
    for store in stores:  # both replicas serve the winner's bytes
        download = store.get(P, "race")
        assert (download.version, b"".join(download)) == (2, blobs[winner])
        store.close()


def _copying_backends(url: str) -> int:
    with psycopg.connect(parse_url(url).conninfo, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY%' AND state = 'active'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_replica_killed_mid_upload_leaves_the_previous_version_loadable(
    deployment: Deployment, tmp_path: Path
) -> None:
    d = deployment
    through_b = d.store(d.b)
    good = snapshot_bytes("crash", count=200)
    through_b.put(P, "crash", [good])
    big = snapshot_bytes("crash", count=40_000, dimension=128, seed=1)  # ~20 MiB: rows get written
    victim = replica(d.cluster, d.url, tmp_path / "victim").start()
    resume = threading.Event()

    def slow_chunks() -> Iterator[bytes]:
        yield big[: len(big) * 3 // 4]
        resume.wait(30)
        yield big[len(big) * 3 // 4 :]

    errors: list[BaseException] = []

    def upload() -> None:
        try:
            HttpStore(victim.url, project_key=d.key, retries=0).put(P, "crash", slow_chunks())
        except MossError as exc:
            errors.append(exc)

    uploader = threading.Thread(target=upload)
    uploader.start()
    deadline = time.monotonic() + 20
    while _copying_backends(d.url) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _copying_backends(d.url) == 1, "the upload never reached the database"
    time.sleep(0.3)  # let whole rows land inside the open transaction
    victim.kill()
    resume.set()
    uploader.join()
    assert errors, "the upload through a killed replica cannot have succeeded"
    download = through_b.get(P, "crash")
    assert (download.version, b"".join(download)) == (1, good)
    assert [info.version for info in through_b.versions(P, "crash")] == [1]
    # The dead replica holds no lock: a conditional push through B goes through at once.
    assert through_b.put(P, "crash", [good], expected_version=1).version == 2
    through_b.close()


def _vm_hwm_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


@pytest.mark.slow
def test_a_1_gib_snapshot_round_trips_through_a_replica_in_bounded_memory(
    deployment: Deployment, tmp_path: Path
) -> None:
    d = deployment
    count, dimension = 65_536, 4096  # 1 GiB of vectors, few documents
    vectors = np.arange(count * dimension, dtype=np.float32).reshape(count, dimension)
    _, chunks = encode_snapshot(
        index_name="huge",
        model_id="custom",
        model_artifact="",
        vectors=vectors,
        ids=[f"d{i}" for i in range(count)],
        texts=[""] * count,
        metadata=[{}] * count,
    )
    sent = xxhash.xxh3_128()

    def hashed() -> Iterator[bytes | memoryview]:
        for chunk in chunks:
            sent.update(chunk)
            yield chunk

    server = replica(d.cluster, d.url, tmp_path / "big").start()
    try:
        store = HttpStore(server.url, project_key=d.key, timeout=300)
        info = store.put(P, "huge", hashed())
        assert info.size_bytes > 1 << 30
        received, size = xxhash.xxh3_128(), 0
        download = store.get(P, "huge")
        for chunk in download:
            received.update(chunk)
            size += len(chunk)
        assert (size, received.digest()) == (info.size_bytes, sent.digest())
        assert server.process is not None
        peak = _vm_hwm_bytes(server.process.pid)
        store.close()
    finally:
        server.stop()
    print(
        f"replica peak RSS for a {info.size_bytes / 2**30:.2f} GiB round trip: {peak / 2**20:.0f} MiB"
    )
    assert peak < 400 << 20
