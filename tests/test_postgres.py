"""PostgresStore beyond the contract suite: URLs, schema, races across processes, NOTIFY,
pruning under a streaming reader, crashes mid-upload, connections given back, projects and keys.

Each test works in a fresh PostgreSQL schema of the run's throw-away cluster (tests/pg.py).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from moss.errors import (
    ConflictError,
    IndexNotFoundError,
    InvalidArgumentError,
    ServiceUnavailableError,
)
from moss.stores import open_store
from moss.stores.auth import ProjectKeys, auth_records
from moss.stores.postgres import SCHEMA_VERSION, PostgresStore
from moss.stores.postgres.listen import AsyncListener
from moss.stores.postgres.sql import SchemaTooNewError, Statements, parse_url
from pg import Cluster, free_port, shared_cluster
from snapshots import snapshot_bytes

P = "proj"
TESTS = Path(__file__).parent


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> Cluster:
    return shared_cluster(request.config)


@pytest.fixture
def url(cluster: Cluster) -> str:
    """A database URL with a schema of its own."""
    return cluster.fresh_url()


@pytest.fixture
def store(url: str) -> Iterator[PostgresStore]:
    made = PostgresStore(url)
    yield made
    made.close()


def rows(url: str, query: str) -> list[tuple[Any, ...]]:
    """Run a query on the store's schema, outside moss."""
    target = parse_url(url)
    with psycopg.connect(target.conninfo, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{target.schema}"')
        return conn.execute(query).fetchall()


# -- URLs, settings and the schema --------------------------------------------------------


def test_url_parameters_are_moss_s_and_the_location_hides_the_password() -> None:
    target = parse_url(
        "postgresql://me:s3cret@db:5433/app?schema=idx&keep_versions=9&sslmode=disable"
    )
    assert target.schema == "idx" and target.keep_versions == 9
    assert "schema" not in target.conninfo and "sslmode=disable" in target.conninfo
    assert "s3cret" in target.conninfo and "s3cret" not in target.location
    assert target.location == "postgresql://me@db:5433/app?sslmode=disable&schema=idx"
    store = PostgresStore("postgresql://me:s3cret@db/app?keep_versions=3", schema="other")
    assert (store.schema, store.keep_versions) == ("other", 3)
    assert "s3cret" not in repr(store)
    for bad in ("Caps", "1x", "a-b", "x" * 49, ""):
        with pytest.raises(InvalidArgumentError):
            parse_url(f"postgresql://db/app?schema={bad}")
    with pytest.raises(InvalidArgumentError):
        PostgresStore("postgresql://db/app", keep_versions=0)


def test_open_store_maps_postgresql_urls(url: str) -> None:
    store = open_store(url)
    assert isinstance(store, PostgresStore)
    assert auth_records(store) is store
    store.close()


def test_unreachable_database_is_service_unavailable_quickly() -> None:
    store = PostgresStore(f"postgresql://moss@127.0.0.1:{free_port()}/moss", connect_timeout=1)
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableError, match="PostgreSQL"):
        store.head(P, "x")
    assert time.monotonic() - started < 5
    store.close()


def test_schema_is_created_on_first_use_and_upgrade_is_idempotent(url: str) -> None:
    strict = PostgresStore(url, auto_upgrade=False)
    with pytest.raises(InvalidArgumentError, match="moss db upgrade"):
        strict.list(P)
    assert strict.upgrade() == (0, SCHEMA_VERSION)
    assert strict.upgrade() == (SCHEMA_VERSION, SCHEMA_VERSION)
    assert strict.list(P) == []
    strict.close()
    assert rows(url, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]


def test_moss_db_upgrade_command(url: str) -> None:
    from click.testing import CliRunner

    from moss.cli import main

    runner = CliRunner()
    first = runner.invoke(main, ["db", "upgrade", "--store", url])
    assert first.exit_code == 0 and f"from version 0 to {SCHEMA_VERSION}" in first.output
    again = runner.invoke(main, ["db", "upgrade", "--store", url])
    assert again.exit_code == 0 and "up to date" in again.output
    refused = runner.invoke(main, ["db", "upgrade", "--store", "file:///tmp/x"])
    assert refused.exit_code != 0 and "PostgreSQL store" in refused.output


def test_replicas_starting_together_create_the_schema_once(url: str) -> None:
    stores = [PostgresStore(url) for _ in range(4)]
    errors: list[BaseException] = []

    def first_use(store: PostgresStore) -> None:
        try:
            store.list(P)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=first_use, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert errors == []


def test_a_schema_from_a_newer_moss_is_refused(url: str, store: PostgresStore) -> None:
    store.list(P)
    rows(url, f"UPDATE schema_version SET version = {SCHEMA_VERSION + 1} RETURNING version")
    newer = PostgresStore(url)
    with pytest.raises(SchemaTooNewError, match="upgrade moss-sessions"):
        newer.head(P, "x")
    newer.close()


# -- compare-and-swap across processes ----------------------------------------------------

_RACER = """
import sys, time
sys.path.insert(0, {tests!r})
from moss.errors import ConflictError
from moss.stores.postgres import PostgresStore
from snapshots import snapshot_bytes
store = PostgresStore({url!r})
blob = snapshot_bytes("race", seed=int(sys.argv[1]))
store.head("proj", "race")  # connect before the start line
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
try:
    store.put("proj", "race", [blob], expected_version=1)
    print("won")
except ConflictError:
    print("conflict")
store.close()
"""


def test_racing_conditional_puts_from_processes_have_one_winner(
    url: str, store: PostgresStore
) -> None:
    store.put(P, "race", [snapshot_bytes("race")])
    script = _RACER.format(tests=str(TESTS), url=url)
    start = f"{time.time() + 1.5:.3f}"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(seed), start], stdout=subprocess.PIPE, text=True
        )
        for seed in range(4)
    ]
    outcomes = sorted(racer.communicate(timeout=60)[0].strip() for racer in racers)
    assert outcomes == ["conflict"] * 3 + ["won"]
    assert [info.version for info in store.versions(P, "race")] == [1, 2]


async def test_racing_async_puts_through_two_stores_have_one_winner(url: str) -> None:
    stores = [PostgresStore(url), PostgresStore(url)]
    await stores[0].aput(P, "arace", [snapshot_bytes("arace")])

    async def push(seed: int) -> str:
        try:
            await stores[seed % 2].aput(
                P, "arace", [snapshot_bytes("arace", seed=seed)], expected_version=1
            )
            return "won"
        except ConflictError:
            return "conflict"

    outcomes = sorted(await asyncio.gather(*(push(seed) for seed in range(6))))
    assert outcomes == ["conflict"] * 5 + ["won"]
    for store in stores:
        await store.aclose()


# -- NOTIFY and watch ----------------------------------------------------------------------


def test_watch_wakes_on_a_push_through_another_store(url: str, store: PostgresStore) -> None:
    other = PostgresStore(url)
    store.put(P, "w", [snapshot_bytes("w")])
    pushed_at: list[float] = []

    def push() -> None:
        other.put(P, "w", [snapshot_bytes("w", seed=1)])
        pushed_at.append(time.monotonic())

    timer = threading.Timer(0.3, push)
    timer.start()
    assert store.watch(P, "w", after=1, timeout=10) == 2
    woke_at = time.monotonic()
    timer.join()
    assert woke_at - pushed_at[0] < 0.5
    other.close()


async def test_awatch_wakes_every_watcher_from_one_listening_connection(
    url: str, store: PostgresStore
) -> None:
    other = PostgresStore(url)
    await store.aput(P, "a", [snapshot_bytes("a")])
    await store.aput(P, "b", [snapshot_bytes("b")])
    watchers = [
        asyncio.ensure_future(store.awatch(P, name, after=1, timeout=10)) for name in "ab" * 5
    ]
    await asyncio.sleep(0.3)
    assert not any(w.done() for w in watchers)
    listeners = rows(url, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'")
    assert listeners == [(1,)]
    started = time.monotonic()
    await other.aput(P, "a", [snapshot_bytes("a", seed=1)])
    await asyncio.sleep(0.2)
    assert [w.done() for w in watchers] == [True, False] * 5
    await other.aput(P, "b", [snapshot_bytes("b", seed=1)])
    assert await asyncio.gather(*watchers) == [2] * 10
    assert time.monotonic() - started < 1.0  # woken by NOTIFY, not by a poll
    await other.aclose()
    await store.aclose()


async def test_a_notification_wakes_only_the_watchers_of_its_index(
    url: str, store: PostgresStore
) -> None:
    target = parse_url(url)
    listener = AsyncListener(target.conninfo, {}, Statements(target.schema))
    await listener.start(timeout=10)
    assert listener.connected
    with listener.waiting((P, "a")) as a, listener.waiting((P, "b")) as b:
        await store.aput(P, "a", [snapshot_bytes("a")])
        await store.aput(P, "a", [snapshot_bytes("a", seed=1)])
        await asyncio.wait_for(a.event.wait(), 5)
        await asyncio.sleep(0.2)  # time for any other notification to arrive
        # The watchers of "b" are not woken, not even to look the table up again.
        assert (a.version, b.event.is_set(), b.recheck) == (2, False, False)
    await listener.aclose()
    await store.aclose()


async def test_awatch_survives_losing_its_listening_connection(
    url: str, store: PostgresStore
) -> None:
    await store.aput(P, "r", [snapshot_bytes("r")])
    watcher = asyncio.ensure_future(store.awatch(P, "r", after=1, timeout=20))
    await asyncio.sleep(0.3)
    killed = rows(
        url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'"
    )
    assert killed == [(True,)]
    await asyncio.sleep(0.2)
    await store.aput(P, "r", [snapshot_bytes("r", seed=1)])
    assert await asyncio.wait_for(watcher, 5) == 2
    await store.aclose()


# -- pruning under a streaming reader, crashes, connections ----------------------------------


def test_pruning_never_pulls_a_version_from_under_a_streaming_reader(url: str) -> None:
    store = PostgresStore(url, keep_versions=1, row_bytes=4096)
    first = snapshot_bytes("p", count=20_000, dimension=128)  # ~10 MiB: two 8 MiB reads
    store.put(P, "p", [first])
    download = store.get(P, "p")
    received = [next(download.chunks)]
    for seed in (1, 2):  # each push prunes every older version: version 1 is deleted
        store.put(P, "p", [snapshot_bytes("p", count=100, dimension=128, seed=seed)])
    assert [info.version for info in store.versions(P, "p")] == [3]
    assert rows(url, "SELECT count(DISTINCT blob_id) FROM chunks") == [(1,)]
    received.extend(download)
    assert (download.version, b"".join(received)) == (1, first)
    assert [len(chunk) for chunk in received[:-1]] == [2048 * 4096]  # streamed, 8 MiB at a time
    store.close()


async def test_async_reader_keeps_its_version_while_it_is_pruned(url: str) -> None:
    store = PostgresStore(url, keep_versions=1, row_bytes=4096)
    first = snapshot_bytes("ap", count=20_000, dimension=128)
    await store.aput(P, "ap", [first])
    download = await store.aget(P, "ap")
    received = [await download.chunks.__anext__()]
    await store.aput(P, "ap", [snapshot_bytes("ap", count=100, dimension=16, seed=1)])
    received.extend([chunk async for chunk in download])
    assert b"".join(received) == first
    assert rows(url, "SELECT count(DISTINCT blob_id) FROM chunks") == [(1,)]
    await store.aclose()


def test_downloads_closed_early_or_dropped_give_their_connection_back(url: str) -> None:
    store = PostgresStore(url, pool_size=1, connect_timeout=2, row_bytes=1024)
    blob = snapshot_bytes("c", count=100, dimension=16)
    store.put(P, "c", [blob])
    download = store.get(P, "c")
    next(download.chunks)
    download.close()
    unread = store.get(P, "c")
    del unread  # never iterated, never closed
    assert store.get(P, "c", if_none_match=1).not_modified
    assert b"".join(store.get(P, "c")) == blob
    store.close()


_CRASHER = """
import sys, time
sys.path.insert(0, {tests!r})
from moss.stores.postgres import PostgresStore
from snapshots import snapshot_bytes
blob = snapshot_bytes("k", count=2000, dimension=64, seed=1)
def chunks():
    yield blob[: len(blob) // 2]
    print("half", flush=True)
    time.sleep(60)
    yield blob[len(blob) // 2 :]
PostgresStore({url!r}, row_bytes=4096).put("proj", "k", chunks())
"""


def test_a_writer_killed_mid_upload_leaves_the_previous_version_intact(
    url: str, store: PostgresStore
) -> None:
    good = snapshot_bytes("k", count=50)
    store.put(P, "k", [good])
    writer = subprocess.Popen(
        [sys.executable, "-c", _CRASHER.format(tests=str(TESTS), url=url)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None and writer.stdout.readline().strip() == "half"
    assert rows(
        url, "SELECT count(*) FROM chunks WHERE blob_id <> (SELECT blob_id FROM versions)"
    ) == [(0,)]
    writer.kill()
    writer.communicate()
    assert (store.get(P, "k").version, b"".join(store.get(P, "k"))) == (1, good)
    assert store.put(P, "k", [good], expected_version=1).version == 2
    assert rows(url, "SELECT count(DISTINCT blob_id) FROM chunks") == [(2,)]


# -- projects and keys ---------------------------------------------------------------------


def test_auth_record_is_compare_and_swap(store: PostgresStore) -> None:
    assert store.read_auth() == (0, None)
    assert store.write_auth(b"one", expected_version=0) == 1
    with pytest.raises(ConflictError):
        store.write_auth(b"again", expected_version=0)
    assert store.write_auth(b"two", expected_version=1) == 2
    with pytest.raises(ConflictError) as caught:
        store.write_auth(b"stale", expected_version=1)
    assert (caught.value.expected, caught.value.actual) == (1, 2)
    assert store.read_auth() == (2, b"two")


async def test_projects_and_keys_are_shared_by_every_store_over_the_database(url: str) -> None:
    admins = [ProjectKeys(PostgresStore(url)) for _ in range(2)]
    made: list[tuple[str, str]] = []

    def create(keys: ProjectKeys, project: str) -> None:
        made.append((project, keys.create_project(project)[1]))

    threads = [threading.Thread(target=create, args=(admins[i % 2], f"team-{i}")) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    replica = PostgresStore(url)
    version, data = await replica.aread_auth()
    assert version == 4 and data is not None
    table = ProjectKeys(replica).table()
    assert sorted(table.projects) == [f"team-{i}" for i in range(4)]
    assert all(table.verify(project, key) for project, key in made)
    await replica.aclose()
    for admin in admins:
        assert isinstance(admin.records, PostgresStore)
        admin.records.close()


# -- clients straight over PostgreSQL (no server) -------------------------------------------


async def test_clients_share_sessions_straight_over_postgresql(url: str, tmp_path: Path) -> None:
    from moss import DocumentInfo, MossClient

    def docs(*numbers: int) -> list[DocumentInfo]:
        return [
            DocumentInfo(id=f"d{i}", text=f"t{i}", embedding=[float(i), 1.0, 0.5]) for i in numbers
        ]

    async with (
        MossClient("team", store=url, cache_dir=tmp_path / "a") as writer_client,
        MossClient("team", store=url, cache_dir=tmp_path / "b") as reader_client,
    ):
        writer = await writer_client.session("notes", model_id="custom")
        await writer.add_docs(docs(1, 2))
        assert (await writer.push_index()).version == 1
        follower = await reader_client.session("notes", auto_refresh=True)
        assert follower.doc_count == 2
        await writer.add_docs(docs(3))
        await writer.push_index()
        deadline = time.monotonic() + 2
        while follower.version != 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert (follower.version, follower.doc_count) == (2, 3)
        await follower.close()
    with MossClient("team", store=url, cache_dir=tmp_path / "c") as sync_client:
        session = sync_client.sync.session("notes", auto_refresh=True)
        assert session.doc_count == 3
        session.sync.add_docs(docs(4))
        assert session.sync.push_index(expected_version=2).version == 3
        session.sync.close()


# -- input shapes ----------------------------------------------------------------------------


async def test_rows_have_the_configured_size_whatever_the_chunks(url: str) -> None:
    store = PostgresStore(url, row_bytes=1000)
    blob = snapshot_bytes("s", count=40, dimension=16)

    async def pieces() -> AsyncIterator[bytes]:
        start = 0
        for size in (1, 999, 2500, 7, len(blob)):
            yield blob[start : start + size]
            start += size

    await store.aput(P, "s", pieces())
    sizes = rows(url, "SELECT octet_length(data) FROM chunks ORDER BY seq")
    assert all(size == 1000 for (size,) in sizes[:-1]) and sum(s for (s,) in sizes) == len(blob)
    download = await store.aget(P, "s")
    assert b"".join([chunk async for chunk in download]) == blob
    with pytest.raises(IndexNotFoundError, match="kept versions: \\[1\\]"):
        await store.aget(P, "s", version=7)
    await store.aclose()
