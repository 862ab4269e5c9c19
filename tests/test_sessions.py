"""Sessions through the client on the file store: the seed's semantics with custom vectors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from moss import (
    DocumentInfo,
    FileStore,
    IndexNotFoundError,
    InvalidArgumentError,
    ModelMismatchError,
    MossClient,
    QueryOptions,
)

DIM = 16


def vec(seed: int) -> list[float]:
    return np.random.default_rng(seed).standard_normal(DIM).astype(np.float32).tolist()


def doc(i: int, **metadata: object) -> DocumentInfo:
    return DocumentInfo(id=f"d{i}", text=f"text {i}", metadata=metadata or None, embedding=vec(i))


@pytest.fixture
def client(tmp_path: Path) -> MossClient:
    return MossClient("proj", store=FileStore(tmp_path / "store"))


async def test_push_then_open_elsewhere_without_reembedding(
    client: MossClient, tmp_path: Path
) -> None:
    session = await client.session("conv-1", model_id="custom")
    assert (session.version, session.doc_count, session.dimension) == (0, 0, None)
    added = await session.add_docs([doc(1), doc(2), doc(3)])
    assert (added.added, added.updated) == (3, 0)
    assert session.has_unpushed_changes
    pushed = await session.push_index()
    assert (pushed.version, pushed.doc_count, pushed.index_name) == (1, 3, "conv-1")
    assert not session.has_unpushed_changes

    other = MossClient("proj", store=f"file://{tmp_path / 'store'}")
    reopened = await other.session("conv-1")
    assert (reopened.model_id, reopened.version, reopened.doc_count, reopened.dimension) == (
        "custom",
        1,
        3,
        DIM,
    )
    original = await session.get_docs(["d2"], include_embeddings=True)
    loaded = await reopened.get_docs(["d2"], include_embeddings=True)
    assert np.array_equal(np.asarray(original[0].embedding), np.asarray(loaded[0].embedding))
    result = await reopened.query("ignored", QueryOptions(top_k=1, embedding=vec(2)))
    assert [d.id for d in result.docs] == ["d2"]
    assert result.docs[0].score == pytest.approx(1.0, abs=1e-5)
    assert result.index_name == "conv-1" and result.query == "ignored"


async def test_upsert_delete_and_scores(client: MossClient) -> None:
    session = await client.session("u", model_id="custom")
    await session.add_docs([doc(1), doc(2)])
    again = await session.add_docs(
        [DocumentInfo(id="d1", text="new text", embedding=vec(5)), doc(3)]
    )
    assert (again.added, again.updated) == (1, 1)
    assert session.doc_count == 3
    assert [d.text for d in await session.get_docs(["d1"])] == ["new text"]
    assert await session.delete_docs(["d2", "unknown"]) == 1
    assert sorted(d.id for d in await session.get_docs()) == ["d1", "d3"]
    result = await session.query("q", QueryOptions(top_k=5, embedding=vec(5)))
    assert next(d.id for d in result.docs) == "d1"
    assert all(-1.0 <= d.score <= 1.0 for d in result.docs)
    high = await session.query("q", QueryOptions(top_k=5, embedding=vec(5), min_score=0.99))
    assert [d.id for d in high.docs] == ["d1"]


async def test_filters_apply_before_ranking(client: MossClient) -> None:
    session = await client.session("f", model_id="custom")
    await session.add_docs([doc(i, kind="a" if i % 2 else "b", n=i) for i in range(20)])
    result = await session.query(
        "q", QueryOptions(top_k=3, embedding=vec(4), filter={"kind": "a", "n": {"$gte": 5}})
    )
    assert len(result.docs) == 3
    assert all(d.metadata["kind"] == "a" and d.metadata["n"] >= 5 for d in result.docs)  # type: ignore[index]
    moss_form = await session.query(
        "q",
        QueryOptions(
            top_k=3, embedding=vec(4), filter={"field": "kind", "condition": {"$eq": "a"}}
        ),
    )
    assert all(d.metadata["kind"] == "a" for d in moss_form.docs)  # type: ignore[index]


async def test_metadata_of_every_json_type_round_trips(client: MossClient) -> None:
    metadata = {
        "s": "text ✓",
        "i": 7,
        "big": 2**62,
        "neg": -3,
        "f": 1.5,
        "whole_float": 2.0,
        "t": True,
        "no": False,
        "null": None,
        "list": [1, "two", 3.0, None, True],
        "nested": {"a": {"b": [1, 2]}, "empty": {}},
        "empty_list": [],
    }
    session = await client.session("meta", model_id="custom")
    await session.add_docs([DocumentInfo(id="m", text="x", metadata=metadata, embedding=vec(1))])
    await session.push_index()
    loaded = (await (await client.session("meta")).get_docs(["m"]))[0].metadata
    assert loaded == metadata
    assert type(loaded["i"]) is int and type(loaded["whole_float"]) is float  # type: ignore[index]
    assert type(loaded["t"]) is bool and type(loaded["list"][0]) is int  # type: ignore[index]


async def test_opening_with_another_model_raises(client: MossClient) -> None:
    session = await client.session("mm", model_id="custom")
    await session.add_docs([doc(1)])
    await session.push_index()
    with pytest.raises(ModelMismatchError, match=r"'custom'.*'moss-minilm'"):
        await client.session("mm", model_id="moss-minilm")
    with pytest.raises(ModelMismatchError):
        client.sync.session("mm", model_id="moss-minilm")


async def test_custom_session_without_vectors_raises(client: MossClient) -> None:
    session = await client.session("cv", model_id="custom")
    with pytest.raises(InvalidArgumentError, match="embedding"):
        await session.add_docs([DocumentInfo(id="a", text="no vector")])
    await session.add_docs([doc(1)])
    with pytest.raises(InvalidArgumentError, match="embedding"):
        await session.query("needs a vector")
    with pytest.raises(InvalidArgumentError, match="dimensions"):
        await session.add_docs([DocumentInfo(id="b", text="x", embedding=[1.0, 2.0])])
    with pytest.raises(InvalidArgumentError, match="NaN"):
        await session.add_docs([DocumentInfo(id="b", text="x", embedding=[float("nan")] * DIM)])
    with pytest.raises(InvalidArgumentError):
        await (await client.session("empty-custom", model_id="custom")).push_index()


@pytest.mark.parametrize(
    "bad",
    [
        DocumentInfo(id="", text="x"),
        DocumentInfo(id="x" * 513, text="x"),
        DocumentInfo(id=7, text="x"),  # type: ignore[arg-type]
        DocumentInfo(id="a", text=None),  # type: ignore[arg-type]
        DocumentInfo(id="a", text="x", metadata=["not", "a", "dict"]),  # type: ignore[arg-type]
        DocumentInfo(id="a", text="x", metadata={"f": float("inf")}),
        DocumentInfo(id="a", text="x", metadata={"o": object()}),
        DocumentInfo(id="a", text="x", metadata={1: "non-string key"}),  # type: ignore[dict-item]
        DocumentInfo(id="a", text="x", metadata={"i": 2**64}),
        {"id": "a", "text": "not a DocumentInfo"},
    ],
)
async def test_bad_documents_are_refused(client: MossClient, bad: object) -> None:
    session = await client.session("bad", model_id="custom")
    if isinstance(bad, DocumentInfo) and bad.embedding is None:
        bad.embedding = vec(0)
    with pytest.raises(InvalidArgumentError):
        await session.add_docs([bad])  # type: ignore[list-item]
    assert session.doc_count == 0


@pytest.mark.parametrize("bad", ["", "..", "a/b", "../etc", "white space", "x" * 129, None, 5])
async def test_bad_index_names_are_refused(client: MossClient, bad: object) -> None:
    with pytest.raises(InvalidArgumentError, match="index name"):
        await client.session(bad, model_id="custom")  # type: ignore[arg-type]


async def test_bad_query_options_are_refused(client: MossClient) -> None:
    session = await client.session("q", model_id="custom")
    await session.add_docs([doc(1)])
    for options in (
        QueryOptions(top_k=0, embedding=vec(1)),
        QueryOptions(top_k=2.5, embedding=vec(1)),
    ):  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="top_k"):
            await session.query("q", options)
    with pytest.raises(InvalidArgumentError, match="alpha"):
        await session.query("q", QueryOptions(alpha=1.5, embedding=vec(1)))
    with pytest.raises(InvalidArgumentError, match="filter"):
        await session.query("q", QueryOptions(embedding=vec(1), filter={"x": {"$regex": "a"}}))


async def test_expected_version_and_refresh(client: MossClient) -> None:
    a = await client.session("shared", model_id="custom")
    await a.add_docs([doc(1)])
    await a.push_index(expected_version=0)
    b = await client.session("shared")
    await b.add_docs([doc(2)])
    await b.push_index(expected_version=1)
    await a.add_docs([doc(3)])
    from moss import ConflictError

    with pytest.raises(ConflictError):
        await a.push_index(expected_version=1)
    assert await a.refresh() is True  # local d3 is replayed onto version 2 and stays unpushed
    assert (a.version, a.has_unpushed_changes) == (2, True)
    assert sorted(d.id for d in await a.get_docs()) == ["d1", "d2", "d3"]
    assert (await a.push_index(expected_version=2)).version == 3
    assert await a.refresh() is False

    await b.add_docs([doc(4)])
    await b.delete_docs(["d1"])
    assert await b.refresh(discard_changes=True) is True
    assert (b.version, b.has_unpushed_changes) == (3, False)
    assert sorted(d.id for d in await b.get_docs()) == ["d1", "d2", "d3"]


async def test_merge_push_replays_local_changes_onto_newer_versions(client: MossClient) -> None:
    a = await client.session("merge", model_id="custom")
    await a.add_docs([doc(1), doc(2)])
    await a.push_index()
    b = await client.session("merge")
    await b.add_docs([DocumentInfo(id="d1", text="b wins", embedding=vec(1))])
    await b.delete_docs(["d2"])
    await a.add_docs([doc(3), DocumentInfo(id="d1", text="a loses", embedding=vec(1))])
    await a.push_index(merge=True)
    result = await b.push_index(merge=True)  # conflicts, replays its changes onto a's version
    assert result.version == 3
    final = await client.session("merge")
    docs = {d.id: d.text for d in await final.get_docs()}
    assert docs == {"d1": "b wins", "d3": "text 3"}
    with pytest.raises(InvalidArgumentError, match="merge"):
        await b.push_index(expected_version=3, merge=True)
    await client.delete_index("merge")
    assert (await b.push_index(merge=True)).version == 4  # deleted meanwhile: recreated


def test_sync_merge_push(client: MossClient) -> None:
    a = client.sync.session("smerge", model_id="custom")
    a.sync.add_docs([doc(1)])
    a.sync.push_index()
    b = client.sync.session("smerge")
    a.sync.add_docs([doc(2)])
    a.sync.push_index(merge=True)
    b.sync.add_docs([doc(3)])
    assert b.sync.push_index(merge=True).version == 3
    assert sorted(d.id for d in client.sync.session("smerge").sync.get_docs()) == ["d1", "d2", "d3"]


async def test_auto_refresh_follows_pushes(client: MossClient) -> None:
    writer = await client.session("live", model_id="custom")
    await writer.add_docs([doc(1)])
    await writer.push_index()
    async with await client.session("live", auto_refresh=True) as follower:
        await writer.add_docs([doc(2)])
        await writer.push_index()
        for _ in range(100):
            if follower.version == 2:
                break
            await asyncio.sleep(0.02)
        assert (follower.version, follower.doc_count) == (2, 2)


def test_sync_auto_refresh_follows_pushes(client: MossClient) -> None:
    import time

    writer = client.sync.session("slive", model_id="custom")
    writer.sync.add_docs([doc(1)])
    writer.sync.push_index()
    with client.sync.session("slive", auto_refresh=True) as follower:
        writer.sync.add_docs([doc(2)])
        writer.sync.push_index()
        deadline = time.monotonic() + 2
        while follower.version != 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (follower.version, follower.doc_count) == (2, 2)


async def test_version_argument_and_missing_version(client: MossClient) -> None:
    session = await client.session("hist", model_id="custom")
    await session.add_docs([doc(1)])
    await session.push_index()
    await session.add_docs([doc(2)])
    await session.push_index()
    old = await client.session("hist", version=1)
    assert (old.version, old.doc_count) == (1, 1)
    with pytest.raises(IndexNotFoundError):
        await client.session("hist", version=9)


async def test_list_and_delete(client: MossClient) -> None:
    for name in ("b-idx", "a-idx"):
        session = await client.session(name, model_id="custom")
        await session.add_docs([doc(1)])
        await session.push_index()
    assert [info.name for info in await client.list_indexes()] == ["a-idx", "b-idx"]
    assert await client.delete_index("a-idx") is True
    assert await client.delete_index("a-idx") is False
    assert [info.name for info in client.sync.list_indexes()] == ["b-idx"]
    fresh = await client.session("a-idx", model_id="custom")
    await fresh.add_docs([doc(2)])
    assert (await fresh.push_index()).version == 2  # versions are never reused


async def test_sync_view_works_inside_a_running_event_loop(client: MossClient) -> None:
    asyncio.get_running_loop()  # we are inside one, as in Jupyter or LangGraph
    session = client.sync.session("sync-in-loop", model_id="custom")
    session.sync.add_docs([doc(1), doc(2)])
    assert session.sync.push_index().version == 1
    reopened = client.sync.session("sync-in-loop")
    assert reopened.sync.query("q", QueryOptions(top_k=1, embedding=vec(2))).docs[0].id == "d2"
    assert reopened.sync.delete_docs(["d1"]) == 1
    assert [d.id for d in reopened.sync.get_docs()] == ["d2"]
    assert reopened.sync.refresh(discard_changes=True) is False
    assert reopened.has_unpushed_changes


def test_default_store_comes_from_moss_home(tmp_path: Path) -> None:
    with MossClient() as client:
        session = client.sync.session("home", model_id="custom")
        session.sync.add_docs([doc(1)])
        session.sync.push_index()
        assert client.project_id == "default"
    assert (tmp_path / "moss-home" / "projects").is_dir()


async def test_closed_session_refuses_work(client: MossClient) -> None:
    async with await client.session("closing", model_id="custom") as session:
        await session.add_docs([doc(1)])
    from moss import MossError

    with pytest.raises(MossError, match="closed"):
        await session.query("q", QueryOptions(embedding=vec(1)))


async def test_int8_precision_is_pushed_and_can_be_overridden(client: MossClient) -> None:
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((9000, DIM)).astype(np.float32)  # above the exact-search cutoff
    session = await client.session("compact", model_id="custom", precision="int8")
    assert session.precision == "int8"
    await session.add_docs(
        [DocumentInfo(id=f"c{i}", text="t", embedding=vectors[i]) for i in range(len(vectors))]
    )
    exact = await session.query("q", QueryOptions(top_k=5, embedding=vectors[42]))
    assert exact.docs[0].id == "c42" and exact.docs[0].score == pytest.approx(1.0, abs=1e-5)
    await session.push_index()
    reopened = await client.session("compact")
    assert reopened.precision == "int8"  # the stored codes came with the snapshot
    again = await reopened.query("q", QueryOptions(top_k=5, embedding=vectors[42]))
    assert [d.id for d in again.docs] == [d.id for d in exact.docs]
    assert (await client.session("compact", precision="float32")).precision == "float32"
    with pytest.raises(InvalidArgumentError, match="precision"):
        await client.session("compact", precision="int4")


async def test_push_index_with_ttl_expires_the_index(client: MossClient) -> None:
    session = await client.session("conv-ttl", model_id="custom")
    await session.add_docs([doc(1)])
    for bad in (0, -1.0, float("nan"), float("inf"), "10", True):
        with pytest.raises(InvalidArgumentError):
            await session.push_index(ttl=bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError):
            session.sync.push_index(ttl=bad)  # type: ignore[arg-type]
    assert (await session.push_index(ttl=0.3)).version == 1
    assert [info.name for info in await client.list_indexes()] == ["conv-ttl"]
    await asyncio.sleep(0.6)
    assert await client.list_indexes() == []
    with pytest.raises(IndexNotFoundError):
        await client.session("conv-ttl", version=1)
    assert (await client.session("conv-ttl", model_id="custom")).version == 0  # starts afresh
    assert session.sync.push_index(ttl=60).version == 2  # numbers are never reused
    assert [info.version for info in client.sync.list_indexes()] == [2]
