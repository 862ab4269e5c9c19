"""HttpStore against a real `moss serve`: streaming, conditional gets, watch, errors, retries."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from moss.errors import (
    IndexNotFoundError,
    InvalidArgumentError,
    ServiceUnavailableError,
    SnapshotError,
)
from moss.stores import open_store
from moss.stores.http import HttpStore
from moss.stores.http.io import DOWNLOAD_CHUNK
from service import TESTS, Server, worker_env
from snapshots import snapshot_bytes

KEY = "http-store-test-key-0123456789"
P = "p"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("http"), keys={P: KEY}, max_upload_bytes=8 << 20) as srv:
        yield srv


@pytest.fixture
def store(server: Server) -> HttpStore:
    made: HttpStore = server.store(KEY)
    return made


def test_open_store_makes_an_http_store_and_urls_are_checked(server: Server) -> None:
    made = open_store(server.url + "/", project_key=KEY)
    assert isinstance(made, HttpStore) and made.location == server.url
    assert KEY not in repr(made)
    made.close()
    for bad in ("http://", "ftp://host", f"http://p:{KEY}@127.0.0.1:1", "http://h:1/?x=1"):
        with pytest.raises(InvalidArgumentError):
            HttpStore(bad)


def test_big_snapshots_stream_both_ways(store: HttpStore, tmp_path: Path) -> None:
    blob = snapshot_bytes("big", count=20_000, dimension=64)  # ~5.3 MB
    assert store.put(P, "big", io.BytesIO(blob)).version == 1  # a readable file
    pieces = (blob[i : i + 100_000] for i in range(0, len(blob), 100_000))
    assert store.put(P, "big", pieces, expected_version=1).version == 2  # a generator
    download = store.get(P, "big")
    chunks = list(download)
    assert b"".join(chunks) == blob
    assert max(map(len, chunks)) == DOWNLOAD_CHUNK and len(chunks) == -(
        -len(blob) // DOWNLOAD_CHUNK
    )


def test_unchanged_index_reopens_without_downloading(store: HttpStore, server: Server) -> None:
    blob = snapshot_bytes("cached", count=50)
    store.put(P, "cached", [blob])
    first = store.get(P, "cached", if_none_match=None)
    assert sum(map(len, first)) == len(blob)
    second = store.get(P, "cached", if_none_match=1)
    assert (second.version, second.not_modified, sum(map(len, second))) == (1, True, 0)
    assert '"GET /v1/indexes/cached HTTP/1.1" 304' in server.log.read_text()
    store.put(P, "cached", [blob])
    third = store.get(P, "cached", if_none_match=1)
    assert (third.version, third.not_modified, b"".join(third)) == (2, False, blob)


def test_closing_a_download_early_releases_its_connection(store: HttpStore) -> None:
    store.put(P, "partial", [snapshot_bytes("partial", count=20_000, dimension=64)])
    for _ in range(30):  # more than a pool would hold if connections leaked
        download = store.get(P, "partial")
        next(iter(download))
        download.close()
    head = store.head(P, "partial")
    assert head is not None and head.version == 1


def test_refused_uploads_are_reported_not_reset(store: HttpStore) -> None:
    big = snapshot_bytes("named", count=60_000, dimension=32)  # 7.7 MB, under the 8 MiB limit
    with pytest.raises(SnapshotError, match="not 'other'"):
        store.put(P, "other", [big])  # refused at its header, while the body is still coming
    huge = snapshot_bytes("huge", count=80_000, dimension=32)  # 10 MB, over the limit
    with pytest.raises(SnapshotError, match="limit"):
        store.put(P, "huge", [huge])
    assert store.head(P, "huge") is None and store.head(P, "other") is None


def test_a_failing_body_stores_nothing(store: HttpStore) -> None:
    blob = snapshot_bytes("cut", count=2_000, dimension=64)

    def dies_midway() -> Iterator[bytes]:
        yield blob[:100_000]
        raise OSError("the disk went away")

    with pytest.raises(OSError, match="went away"):
        store.put(P, "cut", dies_midway())
    assert store.head(P, "cut") is None
    assert store.put(P, "cut", [blob]).version == 1  # the store is fine afterwards


def test_server_down_is_service_unavailable_naming_the_url(server: Server) -> None:
    down = HttpStore("http://127.0.0.1:9", project_key=KEY, retries=1)
    with pytest.raises(ServiceUnavailableError, match=r"127\.0\.0\.1:9"):
        down.head(P, "x")
    with pytest.raises(ServiceUnavailableError, match=r"127\.0\.0\.1:9"):
        down.put(P, "x", [snapshot_bytes("x")])
    down.close()


def test_requests_retry_until_the_server_is_up(tmp_path: Path) -> None:
    later = Server(tmp_path, keys={P: KEY})
    starter = threading.Timer(0.2, later.start)
    starter.start()
    try:
        store = HttpStore(later.url, project_key=KEY, retries=8)  # backoff adds up to ~10 s
        assert store.head(P, "x") is None
        store.close()
    finally:
        starter.join()
        later.stop()


def test_version_and_name_arguments_are_checked(store: HttpStore) -> None:
    with pytest.raises(InvalidArgumentError):
        store.get(P, "x", version=0)
    with pytest.raises(InvalidArgumentError):
        store.get(P, "../x")
    with pytest.raises(IndexNotFoundError):
        store.get(P, "never-pushed")


class Pusher:
    """Another process that pushes one version of an index when told to, through ``target``
    (the server's URL, or its file store directly: the server must notice either way)."""

    def __init__(self, target: str, name: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(TESTS / "service.py"), "push", target, P, name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=worker_env(MOSS_PROJECT_KEY=KEY),
        )
        assert self.process.stdout is not None and self.process.stdin is not None
        assert self.process.stdout.readline().strip() == "ready"

    def push_soon(self, delay: float = 0.3) -> None:
        """Push ``delay`` seconds from now (the caller is watching by then)."""
        threading.Timer(delay, self._go).start()

    def _go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def result(self) -> dict[str, float]:
        out, _ = self.process.communicate(timeout=60)
        assert self.process.returncode == 0
        result: dict[str, float] = json.loads(out)
        return result


@pytest.mark.parametrize("through", ["server", "file-store"])
def test_watch_wakes_within_a_second_of_a_push_by_another_process(
    store: HttpStore, server: Server, through: str
) -> None:
    name = f"watched-{through}"
    store.put(P, name, [snapshot_bytes(name)])
    pusher = Pusher(server.url if through == "server" else server.store_url, name)
    pusher.push_soon()
    version = store.watch(P, name, after=1, timeout=30)
    woke = time.time()
    pushed = pusher.result()
    assert version == pushed["version"] == 2
    assert woke - pushed["pushed_at"] < 1.0


async def test_async_twins_stream_and_watch(store: HttpStore, server: Server) -> None:
    blob = snapshot_bytes("async", count=20_000, dimension=64)

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(blob), 1 << 20):
            yield blob[start : start + (1 << 20)]

    assert (await store.aput(P, "async", pieces())).version == 1
    download = await store.aget(P, "async")
    assert b"".join([chunk async for chunk in download]) == blob
    fresh = await store.aget(P, "async", if_none_match=1)
    assert fresh.not_modified and [chunk async for chunk in fresh] == []
    pusher = await asyncio.to_thread(Pusher, server.url, "async")
    pusher.push_soon()
    version = await store.awatch(P, "async", after=1, timeout=30)
    woke = time.time()
    pushed = await asyncio.to_thread(pusher.result)
    assert version == 2 and woke - pushed["pushed_at"] < 1.0
    assert [info.version for info in await store.aversions(P, "async")] == [1, 2]
    await store.aclose()
