"""Sessions of index kind "hnsw": the kind, knobs and graph travel with the index, so a reader
that opens it by name searches the same way without rebuilding the graph, and deltas reach it
in place."""

from __future__ import annotations

import mmap
import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from moss import FileStore, InvalidArgumentError, MossClient, QueryOptions
from moss.index.engine import Engine
from moss.index.hnsw import GRAPH_MIN_ROWS, HnswGraph
from service import Server

DIM = 32
COUNT = GRAPH_MIN_ROWS * 2
Matrix = npt.NDArray[np.float32]


def clustered(count: int, seed: int) -> Matrix:
    """Unit vectors around 300 centres, as embeddings cluster."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((300, DIM)).astype(np.float32)
    vectors: Matrix = centres[rng.integers(0, 300, count)]
    vectors += 0.5 * rng.standard_normal((count, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


@pytest.fixture(scope="module")
def corpus() -> tuple[Matrix, Matrix]:
    vectors = clustered(COUNT + 40, seed=7)
    return vectors[40:], vectors[:40]


def client_at(tmp_path: Path, cache: str) -> MossClient:
    return MossClient("proj", store=FileStore(tmp_path / "store"), cache_dir=tmp_path / cache)


def ids_of(session: Any, query: Matrix, **options: Any) -> list[str]:
    found = session.query("", QueryOptions(top_k=10, alpha=1.0, embedding=query, **options))
    return [doc.id for doc in found.docs]


def exact_top(vectors: Matrix, query: Matrix) -> set[str]:
    return {f"d{i}" for i in np.argsort(-(vectors @ query), kind="stable")[:10]}


def test_hnsw_travels_with_the_index(
    tmp_path: Path, corpus: tuple[Matrix, Matrix], monkeypatch: pytest.MonkeyPatch
) -> None:
    vectors, queries = corpus
    writer = client_at(tmp_path, "w").sync.session(
        "big", model_id="custom", index="hnsw", hnsw={"ef_search": 48}
    )
    writer.add_arrays([f"d{i}" for i in range(COUNT)], [""] * COUNT, vectors)
    assert writer.index_kind == "hnsw"
    assert writer.push_index().version == 1

    # The reader loads the stored graph: building one would fail here.
    def no_build(*_: object) -> HnswGraph:
        raise AssertionError("the graph was rebuilt instead of loaded")

    monkeypatch.setattr(HnswGraph, "build", classmethod(no_build))
    reader = client_at(tmp_path, "r").sync.session("big")  # no index= given
    assert reader.index_kind == "hnsw"
    engine = reader._core.index.engine
    assert engine is not None and engine.hnsw is not None and engine.hnsw.ef_search == 48
    hits = 0
    for query in queries:
        found = ids_of(reader, query)
        assert found == ids_of(writer, query)
        hits += len(set(found) & exact_top(vectors, query))
    assert hits / (10 * len(queries)) >= 0.95

    # A delta from the writer reaches the reader in place, through the same graph.
    graph = engine._store.graph
    assert graph is not None
    slots = graph.slots
    fresh = clustered(5, seed=99)
    writer.add_arrays([f"new{i}" for i in range(5)], [""] * 5, fresh)
    writer.delete_docs(["d0"])
    pushed = writer.push_index()
    assert pushed.version == 2
    assert reader.refresh()
    assert reader._core.index.engine is engine and engine._store.graph is graph
    assert graph.slots == slots + 5 and graph.dead == 1
    assert ids_of(reader, fresh[3])[0] == "new3"
    assert "d0" not in ids_of(reader, vectors[0])


def test_open_options_refused_with_clear_errors(tmp_path: Path) -> None:
    client = client_at(tmp_path, "c")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"index": "ivf"}, "index must be one of 'flat', 'hnsw'"),
        ({"index": "hnsw", "hnsw": {"m": 1}}, "hnsw m must be an integer in 2..256"),
        ({"index": "hnsw", "hnsw": {"ef": 10}}, "unknown hnsw parameter 'ef'"),
        ({"index": "hnsw", "hnsw": {"storage": "pq"}}, "storage must be one of"),
        ({"hnsw": {"m": 16}}, "apply to index='hnsw' only"),
        ({"index": "flat", "hnsw": {"m": 16}}, "apply to index='hnsw' only"),
        ({"precision": "int4"}, "precision must be one of"),
    ]
    for kwargs, message in cases:
        with pytest.raises(InvalidArgumentError, match=message):
            client.sync.session("x", model_id="custom", **kwargs)


async def test_async_face_and_ef_search_per_query(
    tmp_path: Path, corpus: tuple[Matrix, Matrix], monkeypatch: pytest.MonkeyPatch
) -> None:
    vectors, queries = corpus
    count = GRAPH_MIN_ROWS + 500
    session = await client_at(tmp_path, "a").session(
        "q", model_id="custom", index="hnsw", precision="int8"
    )
    await session.add_arrays([f"d{i}" for i in range(count)], [""] * count, vectors[:count])
    assert (session.index_kind, session.precision) == ("hnsw", "int8")
    seen: list[int] = []
    on_loop: list[bool] = []  # whether each graph search ran on the event loop's thread
    candidates = HnswGraph.candidates

    def spy(self: HnswGraph, queries: Matrix, wanted: int, ef_search: int, rows: Any) -> Any:
        seen.append(ef_search)
        on_loop.append(threading.current_thread() is threading.main_thread())
        return candidates(self, queries, wanted, ef_search, rows)

    monkeypatch.setattr(HnswGraph, "candidates", spy)
    options = QueryOptions(top_k=10, alpha=1.0, embedding=queries[0], ef_search=300)
    found = await session.query("", options)
    assert seen == [300] and found.docs[0].id in exact_top(vectors[:count], queries[0])
    await session.query_many(
        None, QueryOptions(top_k=3, alpha=1.0, ef_search=200), embeddings=queries[:4]
    )
    assert seen[-1] == 200
    await session.query("", QueryOptions(top_k=10, alpha=1.0, embedding=queries[0]))
    assert seen[-1] == 64  # the index's own setting
    # The graph alone answers in well under a millisecond: on the loop, not in a worker thread
    # (whose round trip would cost a sixth as much again); a wide efSearch or a batch does not.
    assert on_loop == [False, False, True]
    search_many = Engine.search_many

    def spy_search(self: Engine, *args: Any, **kwargs: Any) -> Any:
        on_loop.append(threading.current_thread() is threading.main_thread())
        return search_many(self, *args, **kwargs)

    monkeypatch.setattr(Engine, "search_many", spy_search)
    await session.query(
        "", QueryOptions(top_k=10, alpha=1.0, embedding=queries[0], filter={"a": 1})
    )
    assert on_loop[-1] is False  # a filter may make it an exact scan
    for bad in (0, -3, 1.5, True, "64"):
        with pytest.raises(InvalidArgumentError, match="ef_search must be an integer"):
            await session.query("", QueryOptions(embedding=queries[0], ef_search=bad))  # type: ignore[arg-type]


def mapped(array: Any) -> bool:
    """Whether ``array`` views a memory-mapped file."""
    while array is not None and not isinstance(array, mmap.mmap):
        array = getattr(array, "obj", None) if isinstance(array, memoryview) else array.base
    return array is not None


def test_cached_versions_open_mapped(tmp_path: Path, corpus: tuple[Matrix, Matrix]) -> None:
    vectors, queries = corpus
    count = GRAPH_MIN_ROWS + 100
    clients: list[MossClient] = []
    with Server(tmp_path / "server", keys={"team": "k" * 24}) as server:

        def client(cache: str) -> MossClient:
            made = MossClient("team", "k" * 24, store=server.url, cache_dir=tmp_path / cache)
            clients.append(made)
            return made

        writer = client("w").sync.session("far", model_id="custom", index="hnsw")
        writer.add_arrays([f"d{i}" for i in range(count)], [""] * count, vectors[:count])
        writer.push_index()
        first = client("r").sync.session("far")  # downloads, keeping the version in its cache
        engine = first._core.index.engine
        assert engine is not None and not mapped(engine._store.vectors)
        again = client("r").sync.session("far")  # a fresh client: from the cached file
        engine = again._core.index.engine
        assert engine is not None and mapped(engine._store.vectors)
        assert again.index_kind == "hnsw" and engine._store.graph is not None
        assert ids_of(again, queries[0]) == ids_of(first, queries[0])
        # Writes copy first: the cached file stays as pushed for the next opener.
        again.add_arrays(["new"], [""], queries[1:2])
        again.delete_docs(["d1"])
        assert ids_of(again, queries[1])[0] == "new" and not mapped(engine._store.vectors)
        third = client("r").sync.session("far")
        assert third.doc_count == count and third.sync.get_docs(["d1"])[0].id == "d1"
        for session in (writer, first, again, third):
            session.close()
        for made in clients:
            made.sync.close()


async def test_switching_a_stored_index_kind(tmp_path: Path, corpus: tuple[Matrix, Matrix]) -> None:
    vectors, queries = corpus
    count = GRAPH_MIN_ROWS + 100
    client = client_at(tmp_path, "s")
    flat = await client.session("kind", model_id="custom")
    await flat.add_arrays([f"d{i}" for i in range(count)], [""] * count, vectors[:count])
    await flat.push_index()
    switched = await client.session("kind", index="hnsw", hnsw={"m": 16})
    engine = switched._core.index.engine
    assert engine is not None and engine._store.graph is not None and engine.hnsw is not None
    assert engine.hnsw.m == 16
    await switched.push_index()
    assert (await client_at(tmp_path, "t").session("kind")).index_kind == "hnsw"
    back = await client.session("kind", index="flat")
    engine = back._core.index.engine
    assert back.index_kind == "flat" and engine is not None and engine._store.graph is None
    found = await back.query("", QueryOptions(top_k=10, alpha=1.0, embedding=queries[2]))
    assert {d.id for d in found.docs} == exact_top(vectors[:count], queries[2])
