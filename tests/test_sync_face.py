"""The blocking face: client.sync.session returns a session whose methods block (issue 12.4)."""

from __future__ import annotations

import asyncio
import logging
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

from moss import (
    AddResult,
    DocumentInfo,
    FileStore,
    IndexNotFoundError,
    InvalidArgumentError,
    MossClient,
    QueryOptions,
    Session,
    SyncSession,
)

DIM = 8


def vec(seed: int) -> list[float]:
    values: list[float] = np.random.default_rng(seed).standard_normal(DIM).tolist()
    return values


def doc(i: int) -> DocumentInfo:
    return DocumentInfo(id=f"d{i}", text=f"text {i}", embedding=vec(i))


@pytest.fixture
def client(tmp_path: Path) -> MossClient:
    return MossClient("proj", store=FileStore(tmp_path / "store"))


def test_client_sync_session_methods_block(client: MossClient) -> None:
    session = client.sync.session("x", model_id="custom")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an un-awaited coroutine would warn here
        added = session.add_docs([doc(1), doc(2)])
    assert isinstance(session, SyncSession)
    assert added == AddResult(added=2, updated=0)
    assert session.query("q", QueryOptions(top_k=1, embedding=vec(2))).docs[0].id == "d2"
    assert [d.id for d in session.get_docs(["d1"])] == ["d1"]
    assert session.has_unpushed_changes
    assert session.push_index().version == 1
    assert session.delete_docs(["d1"]) == 1
    assert session.refresh() is False
    assert session.sync is session  # code written as session.sync.method() keeps running
    session.close()
    with pytest.raises(Exception, match="closed"):
        session.get_docs()


async def test_both_faces_show_the_same_properties(client: MossClient) -> None:
    blocking = client.sync.session("x", model_id="custom")
    blocking.add_docs([doc(1)])
    blocking.push_index()
    opened = await client.session("x")
    for face in (blocking, opened, opened.sync):
        assert (face.name, face.model_id, face.dimension, face.precision) == (
            "x",
            "custom",
            DIM,
            "float32",
        )
        assert (face.doc_count, face.version, face.stale, face.has_unpushed_changes) == (
            1,
            1,
            False,
            False,
        )
    assert opened.sync.model is opened.model
    await opened.add_docs([doc(2)])
    assert opened.sync.doc_count == 2 and opened.sync.has_unpushed_changes  # one state, two faces
    with client.sync.session("x") as managed:
        assert managed.doc_count == 1
    with pytest.raises(Exception, match="closed"):
        managed.query("q", QueryOptions(embedding=vec(1)))


async def test_query_multi_index_takes_sessions_opened_either_way(client: MossClient) -> None:
    a = client.sync.session("a", model_id="custom")
    a.add_docs([doc(1)])
    b = await client.session("b", model_id="custom")
    await b.add_docs([doc(2)])
    options = QueryOptions(top_k=2, embedding=vec(2))
    found = client.sync.query_multi_index(["a", "b"], "q", options)
    assert (found.docs[0].index_name, found.docs[0].id) == ("b", "d2")
    again = await client.query_multi_index(["a", "b"], "q", options)
    assert again.docs == found.docs


async def test_push_if_changed_pushes_once_and_only_when_changed(client: MossClient) -> None:
    session = await client.session("p", model_id="custom")
    assert await session.push_if_changed() is None  # nothing to push
    await session.add_docs([doc(i) for i in range(50)])
    # Many handlers push at once: they take turns, and only the first finds changes.
    results = await asyncio.gather(*(session.push_if_changed() for _ in range(5)))
    pushed = [r for r in results if r is not None]
    assert [r.version for r in pushed] == [1]
    assert (await client.store.ahead("proj", "p")) is not None
    assert client.sync.session("p").version == 1


def test_sync_push_if_changed_from_many_threads(client: MossClient) -> None:
    session = client.sync.session("p", model_id="custom")
    session.add_docs([doc(i) for i in range(200)])
    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(session.push_if_changed(merge=True)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.version for r in results if r is not None) == [1]  # type: ignore[attr-defined]
    assert session.push_if_changed(merge=False, expected_version=1) is None
    session.add_docs([doc(999)])
    pushed = session.push_if_changed(merge=False, expected_version=1)
    assert pushed is not None and pushed.version == 2


async def test_must_exist_names_the_store_and_project(
    client: MossClient, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(IndexNotFoundError, match=r"'nope'.*project 'proj'.*store") as error:
        await client.session("nope", must_exist=True)
    assert client.store.location in str(error.value)
    with pytest.raises(IndexNotFoundError, match="project 'proj'"):
        client.sync.session("nope", must_exist=True)
    made = client.sync.session("yes", model_id="custom")
    made.add_docs([doc(1)])
    made.push_index()
    with caplog.at_level(logging.INFO, logger="moss"):
        assert (await client.session("yes", must_exist=True)).version == 1
    assert "'yes'" in caplog.text and "'proj'" in caplog.text and "version 1" in caplog.text


@pytest.mark.parametrize("text", ["", "   \n"])
async def test_empty_query_text_without_embedding_is_refused(client: MossClient, text: str) -> None:
    session = await client.session("q", model_id="custom")
    await session.add_docs([doc(1)])
    with pytest.raises(InvalidArgumentError, match=r"pass the text to search for.*embedding"):
        await session.query(text)
    with pytest.raises(InvalidArgumentError, match="embedding"):
        session.sync.query(text)
    assert (await session.query(text, QueryOptions(embedding=vec(1)))).docs[0].id == "d1"


def test_session_faces_are_the_public_classes(client: MossClient) -> None:
    session = asyncio.run(_open(client))
    assert isinstance(session, Session) and isinstance(session.sync, SyncSession)


async def _open(client: MossClient) -> Session:
    return await client.session("f", model_id="custom")


async def test_a_cancelled_push_leaves_the_next_one_free(client: MossClient) -> None:
    session = await client.session("c", model_id="custom")
    await session.add_docs([doc(i) for i in range(2000)])
    task = asyncio.create_task(session.push_index())
    await asyncio.sleep(0)  # the push has taken its turn
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    pushed = await asyncio.wait_for(session.push_if_changed(), timeout=30)
    assert pushed is not None and pushed.doc_count == 2000
