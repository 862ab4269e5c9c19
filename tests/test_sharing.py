"""Sharing through `moss serve`: cached re-opens, auto-refresh, merges, stale sessions."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from moss import DocumentInfo, MossClient, QueryOptions, ServiceUnavailableError
from moss.stores.base import Download
from moss.stores.http import HttpStore
from service import TESTS, Server, worker_env

KEY = "sharing-test-key-0123456789"
P = "team"


def vec(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(8).astype(np.float32)


class CountingStore(HttpStore):
    """An HttpStore that counts the version bytes it downloads (one version or a chain)."""

    downloaded = 0

    def get(self, *args: Any, **kwargs: Any) -> Download:
        download = super().get(*args, **kwargs)
        download.chunks = self._count(download.chunks)
        return download

    def get_chain(self, *args: Any, **kwargs: Any) -> Download:
        download = super().get_chain(*args, **kwargs)
        download.chunks = self._count(download.chunks)
        return download

    def _count(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.downloaded += len(chunk)
            yield chunk


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with Server(tmp_path / "server", keys={P: KEY}) as srv:
        yield srv


_open_clients: list[MossClient] = []


@pytest.fixture(autouse=True)
def close_clients() -> Iterator[None]:
    yield
    while _open_clients:
        client = _open_clients.pop()
        client.sync.close()
        client.store.close()  # also the stores the tests made themselves


def client_for(server: Server, tmp_path: Path, store: HttpStore | None = None) -> MossClient:
    """A client with its own disk cache; closed after the test."""
    client = MossClient(P, KEY, store=store or server.url, cache_dir=tmp_path / "cache")
    _open_clients.append(client)
    return client


def test_reopening_an_unchanged_index_downloads_nothing(server: Server, tmp_path: Path) -> None:
    writer = client_for(server, tmp_path / "w")
    session = writer.sync.session("conv", model_id="custom")
    session.sync.add_docs([DocumentInfo(id=f"d{i}", text="t", embedding=vec(i)) for i in range(50)])
    session.sync.push_index()

    counting = CountingStore(server.url, project_key=KEY)
    reader = client_for(server, tmp_path / "r", counting)
    first = reader.sync.session("conv")
    assert first.doc_count == 50 and counting.downloaded > 0
    before = counting.downloaded
    again = reader.sync.session("conv")
    assert (again.version, again.doc_count, counting.downloaded) == (1, 50, before)
    session.sync.add_docs([DocumentInfo(id="new", text="t", embedding=vec(99))])
    session.sync.push_index()
    assert reader.sync.session("conv").doc_count == 51
    # Only the new version's delta travels: the 50 documents it held are not sent again.
    assert 0 < counting.downloaded - before < 16 << 10


async def test_auto_refresh_sees_another_process_push_within_a_second(
    server: Server, tmp_path: Path
) -> None:
    client = client_for(server, tmp_path)
    writer = await client.session("live", model_id="custom")
    await writer.add_docs([DocumentInfo(id="a", text="t", embedding=vec(1))])
    await writer.push_index()
    follower = await client.session("live", auto_refresh=True)
    await asyncio.sleep(0.2)  # the watch request is waiting on the server
    start = tmp_path / "go"
    start.touch()
    pusher = await asyncio.create_subprocess_exec(
        sys.executable,
        str(TESTS / "workers" / "merge_pusher.py"),
        server.url,
        P,
        KEY,
        "live",
        "other",
        "1",
        "3",
        str(start),
        env=worker_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _, err = await pusher.communicate()
    assert pusher.returncode == 0, err.decode()
    pushed_at = asyncio.get_running_loop().time()
    while follower.version < 2 and asyncio.get_running_loop().time() - pushed_at < 1.0:
        await asyncio.sleep(0.01)
    assert (follower.version, follower.doc_count) == (2, 4)
    await follower.close()


@pytest.mark.slow
def test_concurrent_merge_pushes_lose_nothing(server: Server, tmp_path: Path) -> None:
    rounds, per_round = 5, 100
    start = tmp_path / "go"
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                str(TESTS / "workers" / "merge_pusher.py"),
                server.url,
                P,
                KEY,
                "merged",
                tag,
                str(rounds),
                str(per_round),
                str(start),
            ],
            env=worker_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("left", "right")
    ]
    start.touch()
    for worker in workers:
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
    final = client_for(server, tmp_path).sync.session("merged")
    ids = {doc.id for doc in final.sync.get_docs()}
    expected = {
        f"{t}-{r}-{i}" for t in ("left", "right") for r in range(rounds) for i in range(per_round)
    }
    assert ids == expected
    assert final.version >= 2 * rounds


def test_server_down_opens_stale_from_cache_and_refresh_heals(
    server: Server, tmp_path: Path
) -> None:
    client = client_for(server, tmp_path)
    session = client.sync.session("resilient", model_id="custom")
    session.sync.add_docs([DocumentInfo(id="a", text="alpha", embedding=vec(1))])
    session.sync.push_index()
    client.sync.session("resilient")  # cached locally now

    server.stop()
    offline = client_for(server, tmp_path, HttpStore(server.url, project_key=KEY, retries=0))
    stale = offline.sync.session("resilient")
    assert stale.stale and stale.doc_count == 1
    assert stale.sync.query("q", QueryOptions(embedding=vec(1), top_k=1)).docs[0].id == "a"
    assert stale.sync.refresh() is False and stale.stale
    with pytest.raises(ServiceUnavailableError):
        offline.sync.session("never-cached")

    server.start()
    assert stale.sync.refresh() is False  # the store answered: version 1 is current
    assert not stale.stale
    session.sync.add_docs([DocumentInfo(id="b", text="beta", embedding=vec(2))])
    session.sync.push_index()
    assert stale.sync.refresh() is True and stale.doc_count == 2


def test_reopened_sessions_share_nothing_mutable(server: Server, tmp_path: Path) -> None:
    writer = client_for(server, tmp_path / "w")
    session = writer.sync.session("cow", model_id="custom")
    session.sync.add_docs(
        [DocumentInfo(id=f"d{i}", text=f"t{i}", embedding=vec(i)) for i in range(20)]
    )
    session.sync.push_index()
    reader = client_for(server, tmp_path / "r")
    first = reader.sync.session("cow")
    second = reader.sync.session("cow")  # unchanged: built from the decoded pieces of the first
    first.sync.add_docs([DocumentInfo(id="d3", text="changed", embedding=vec(99))])
    first.sync.delete_docs(["d0"])
    assert second.doc_count == 20
    kept = second.sync.get_docs(["d0", "d3"], include_embeddings=True)
    assert [d.text for d in kept] == ["t0", "t3"]
    expected = vec(3) / np.linalg.norm(vec(3))
    assert np.allclose(np.asarray(kept[1].embedding), expected, atol=1e-6)
    third = reader.sync.session("cow")
    assert third.doc_count == 20 and third.sync.get_docs(["d3"])[0].text == "t3"
