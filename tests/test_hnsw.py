"""The "hnsw" index kind: graph search with exact re-rank, writes, filters, and its snapshot
sections (decoded and memory-mapped)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from moss.errors import InvalidArgumentError, SnapshotError
from moss.index.engine import Engine
from moss.index.hnsw import GRAPH_MIN_ROWS, HnswGraph, HnswParams, load_graph
from moss.snapshot import decode_snapshot, encode_snapshot, map_snapshot
from moss.snapshot.data import SnapshotData
from moss.snapshot.graph import parse_index_field

DIM = 24
COUNT = GRAPH_MIN_ROWS + 2_000
Matrix = npt.NDArray[np.float32]


def clustered(count: int, seed: int = 0) -> Matrix:
    """Unit vectors around 200 centres (like embeddings; uniform vectors are unrealistically
    hard for any graph in few dimensions)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((200, DIM)).astype(np.float32)
    noise = 0.5 * rng.standard_normal((count, DIM)).astype(np.float32)
    vectors: Matrix = centres[rng.integers(0, 200, count)] + noise
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


@pytest.fixture(scope="module")
def corpus() -> tuple[Matrix, Matrix, list[str], list[dict[str, Any] | None]]:
    vectors = clustered(COUNT + 50)
    ids = [f"d{i}" for i in range(COUNT)]
    metadata: list[dict[str, Any] | None] = [{"bucket": i % 100} for i in range(COUNT)]
    return vectors[50:], vectors[:50], ids, metadata


def engines(corpus: Any, **hnsw: Any) -> tuple[Engine, Engine]:
    vectors, _, ids, metadata = corpus
    graph = Engine(DIM, index="hnsw", hnsw=hnsw or None)
    graph.upsert(ids, [""] * COUNT, metadata, vectors)
    flat = Engine.from_arrays(vectors.copy(), list(ids), [""] * COUNT, list(metadata))
    return graph, flat


def top_ids(engine: Engine, query: Matrix, **kwargs: Any) -> list[str]:
    return [doc.id for doc, _ in engine.search(query, 10, **kwargs)]


def recall(graph: Engine, flat: Engine, queries: Matrix, **kwargs: Any) -> float:
    found = [
        len(set(top_ids(graph, q, **kwargs)) & set(top_ids(flat, q, filter=kwargs.get("filter"))))
        for q in queries
    ]
    return sum(found) / (10 * len(queries))


def test_parameters_are_checked() -> None:
    with pytest.raises(InvalidArgumentError, match="index must be one of"):
        Engine(DIM, index="ivf")
    with pytest.raises(InvalidArgumentError, match="hnsw m must be"):
        Engine(DIM, index="hnsw", hnsw={"m": 1})
    with pytest.raises(InvalidArgumentError, match="unknown hnsw parameter 'ef'"):
        Engine(DIM, index="hnsw", hnsw={"ef": 10})
    with pytest.raises(InvalidArgumentError, match="rebuild_fraction"):
        HnswParams(rebuild_fraction=0)
    with pytest.raises(InvalidArgumentError, match="storage"):
        HnswParams(storage="pq")
    engine = Engine(DIM, index="hnsw")
    with pytest.raises(InvalidArgumentError, match="ef_search must be"):
        engine.search(np.ones(DIM, np.float32), 3, ef_search=0)
    assert Engine(DIM).index_kind == "flat" and Engine(DIM).hnsw is None


def test_small_index_scans_exactly_and_builds_the_graph_when_it_grows(corpus: Any) -> None:
    vectors, queries, ids, metadata = corpus
    engine = Engine(DIM, index="hnsw")
    engine.upsert(ids[:100], [""] * 100, metadata[:100], vectors[:100])
    assert engine._store.graph is None
    exact = Engine.from_arrays(vectors[:100].copy(), ids[:100], [""] * 100, metadata[:100])
    assert engine.search(queries[0], 5) == exact.search(queries[0], 5)
    rest = slice(100, COUNT)
    engine.upsert(ids[rest], [""] * (COUNT - 100), metadata[rest], vectors[rest])
    graph = engine._store.graph
    assert graph is not None and graph.slots == COUNT and graph.dead == 0


def test_recall_and_exact_scores(corpus: Any) -> None:
    graph, flat = engines(corpus)
    queries = corpus[1]
    assert graph._store.graph is not None
    assert recall(graph, flat, queries) >= 0.95
    assert recall(graph, flat, queries, ef_search=1024) == 1.0
    vectors, ids = corpus[0], corpus[2]
    for doc, score in graph.search(queries[0], 10):
        exact = float(vectors[ids.index(doc.id)] @ queries[0])
        assert score == pytest.approx(exact, abs=1e-6)


def test_rerank_is_exact_and_ties_go_by_id_in_every_vector_layout(corpus: Any) -> None:
    """Whatever the layout of the vectors (one adopted matrix; then a base, a tail, patches),
    the re-ranked answer is the exact engine's (when the graph finds the true top k): the same
    ids in the same order, exact scores, ties ordered by id."""
    vectors, queries, ids, metadata = corpus
    built = Engine(DIM, index="hnsw")
    built.upsert(ids, [""] * COUNT, metadata, vectors)
    exported = built.export_all()
    assert exported.graph is not None
    graph = Engine.from_arrays(
        vectors.copy(),
        list(ids),
        [""] * COUNT,
        list(metadata),
        index="hnsw",
        graph=load_graph(*exported.graph, COUNT, DIM),
    )
    flat = Engine.from_arrays(vectors.copy(), list(ids), [""] * COUNT, list(metadata))
    twin = vectors[5] * 0.999 + queries[0] * 0.001  # one vector for two documents: a tie
    twin /= np.linalg.norm(twin)
    layouts = (
        ("opened", lambda e: None),
        (
            "appended",
            lambda e: e.upsert(["zz", "aa"], ["", ""], [None, None], np.stack([twin, twin])),
        ),
        ("patched", lambda e: e.upsert(["d7"], [""], [None], vectors[8:9])),
        ("deleted", lambda e: e.delete(["d9", "d10"])),
    )
    for name, write in layouts:
        write(graph)
        write(flat)
        for query in [*queries[:20], twin]:
            found = graph.search(query, 10, ef_search=512)
            assert [d.id for d, _ in found] == [d.id for d, _ in flat.search(query, 10)], name
            for (doc, score), (_, exact) in zip(found, flat.search(query, 10), strict=True):
                assert score == pytest.approx(exact, abs=1e-6), (name, doc.id)
        if name != "opened":
            hits = [d.id for d, _ in graph.search(twin, 2)]
            assert hits == ["aa", "zz"], name


def test_single_queries_answer_as_the_batch_with_their_own_documents(corpus: Any) -> None:
    """One query at a time (the graph's output buffers reused from search to search, filtered
    or not, with and without tombstones) answers exactly what the batch answers; each result
    carries its own row's id, text and metadata, and its score is the einsum of its vectors."""
    vectors, queries, ids, metadata = corpus
    texts = [f"text {i}" for i in range(COUNT)]
    graph = Engine(DIM, index="hnsw")
    graph.upsert(ids, texts, metadata, vectors)
    by_id = {doc_id: i for i, doc_id in enumerate(ids)}
    for layout in ("built", "deleted"):
        if layout == "deleted":
            graph.delete(ids[:40:3])
            assert graph._store.graph is not None and graph._store.graph.dead
        for flt in (None, {"bucket": {"$lt": 50}}):
            batch = graph.search_many(queries, 10, filter=flt)
            singles = [graph.search(query, 10, filter=flt) for query in queries]
            assert singles == batch, (layout, flt)
            for query, found in zip(queries, singles, strict=True):
                assert len(found) == 10
                for doc, score in found:
                    row = by_id[doc.id]
                    assert (doc.text, doc.metadata) == (texts[row], metadata[row])
                    assert score == float(np.einsum("j,j->", vectors[row], query))


def test_deletes_are_tombstones_until_the_rebuild_fraction(corpus: Any) -> None:
    graph, flat = engines(corpus, rebuild_fraction=0.1)
    vectors, queries, ids, _ = corpus
    gone = ids[: COUNT // 20]
    graph.delete(gone)
    flat.delete(gone)
    state = graph._store.graph
    assert state is not None and state.dead == len(gone) and state.slots == COUNT
    deleted = set(gone)
    for query in [*queries, *vectors[:20]]:  # the deleted vectors themselves too
        assert not deleted & set(top_ids(graph, query))
    assert recall(graph, flat, queries) >= 0.95
    more = ids[COUNT // 20 : COUNT // 9]
    graph.delete(more)
    rebuilt = graph._store.graph
    assert rebuilt is not None and rebuilt.dead == 0 and rebuilt.slots == len(graph)


def test_updates_replace_the_vector_in_the_graph(corpus: Any) -> None:
    graph, _ = engines(corpus)
    vectors, _, _, metadata = corpus
    # Give d0 the vector of d1 and vice versa: each must now be found at the other's place.
    graph.upsert(["d0", "d1"], ["", ""], metadata[:2], vectors[[1, 0]])
    assert top_ids(graph, vectors[1])[0] in {"d0", "d1"}
    hits = dict((doc.id, score) for doc, score in graph.search(vectors[0], 3))
    assert hits["d1"] == pytest.approx(1.0, abs=1e-6)
    state = graph._store.graph
    assert state is not None and state.dead == 2 and state.slots == COUNT + 2


def test_filters_selective_exact_and_broad_through_the_selector(corpus: Any) -> None:
    graph, flat = engines(corpus)
    queries = corpus[1]
    selective = {"bucket": 7}  # 1% of rows: the exact scan, so the true top k
    for query in queries[:10]:
        assert graph.search(query, 10, filter=selective) == flat.search(query, 10, filter=selective)
    broad = {"bucket": {"$lt": 30}}  # 30%: the graph with a bitmap selector (a low efSearch)
    for query in queries:
        hits = graph.search(query, 10, broad, ef_search=8)
        assert all(doc.metadata is not None and doc.metadata["bucket"] < 30 for doc, _ in hits)
    assert recall(graph, flat, queries, filter=broad, ef_search=8) >= 0.9


def test_export_and_open_without_rebuilding(
    corpus: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph, _ = engines(corpus, ef_search=80)
    graph.delete(["d5", "d6"])
    data = roundtrip(graph)
    path = tmp_path / "v1.snap"
    path.write_bytes(encode(graph))
    mapped = map_snapshot(path)
    assert isinstance(mapped, SnapshotData)

    def no_build(*args: Any) -> None:
        raise AssertionError("the graph was rebuilt")

    monkeypatch.setattr(HnswGraph, "build", no_build)
    queries = corpus[1]
    for opened in (data, mapped):
        assert opened.index_kind == "hnsw" and opened.hnsw == HnswParams(ef_search=80)
        engine = Engine.from_arrays(
            opened.vectors,
            opened.ids,
            opened.texts,
            opened.metadata,
            index=opened.index_kind,
            hnsw=opened.hnsw,
            graph=opened.graph,
        )
        for query in queries[:10]:
            assert engine.search(query, 10) == graph.search(query, 10)
        exported = engine.export_all().graph
        assert exported is not None and exported[0] is opened.graph.serialized  # type: ignore[union-attr]
    assert not mapped.vectors.flags.writeable


def test_writes_after_a_mapped_open_copy_the_graph_and_vectors(corpus: Any, tmp_path: Path) -> None:
    graph, _ = engines(corpus)
    path = tmp_path / "v1.snap"
    blob = encode(graph)
    path.write_bytes(blob)
    data = map_snapshot(path)
    assert isinstance(data, SnapshotData)
    engine = Engine.from_arrays(
        data.vectors, data.ids, data.texts, data.metadata, index="hnsw", graph=data.graph
    )
    vectors = corpus[0]
    fresh = clustered(3, seed=5)
    engine.upsert(["new0", "new1", "d3"], ["", "", ""], [None] * 3, fresh)
    engine.delete(["d4"])
    assert top_ids(engine, fresh[0])[0] == "new0" and top_ids(engine, fresh[2])[0] == "d3"
    assert path.read_bytes() == blob
    assert np.array_equal(data.vectors, vectors)


def test_old_snapshots_open_flat(corpus: Any, tmp_path: Path) -> None:
    vectors, _, ids, metadata = corpus
    _, chunks = encode_snapshot(
        index_name="t", model_id="m", model_artifact="", vectors=vectors[:50],
        ids=ids[:50], texts=[""] * 50, metadata=metadata[:50],
    )  # fmt: skip
    blob = b"".join(bytes(c) for c in chunks)
    assert b'"index"' not in blob
    path = tmp_path / "old.snap"
    path.write_bytes(blob)
    for data in (decode_snapshot([blob]), map_snapshot(path)):
        assert isinstance(data, SnapshotData)
        assert data.index_kind == "flat" and data.hnsw is None and data.graph is None


@pytest.mark.parametrize("where", ["hnsw_graph", "hnsw_slots", "vectors"])
def test_a_corrupted_section_is_a_snapshot_error(corpus: Any, tmp_path: Path, where: str) -> None:
    graph, _ = engines(corpus)
    blob = bytearray(encode(graph))
    info = decode_snapshot([bytes(blob)]).header.sections[where]
    blob[info.offset + info.length // 2] ^= 0xFF
    with pytest.raises(SnapshotError, match=f"checksum mismatch in snapshot section '{where}'"):
        decode_snapshot([bytes(blob)])
    path = tmp_path / "bad.snap"
    path.write_bytes(blob)
    with pytest.raises(SnapshotError, match="checksum mismatch"):
        map_snapshot(path)


def test_a_checksummed_but_invalid_graph_is_a_snapshot_error(corpus: Any) -> None:
    graph, _ = engines(corpus)
    serialized, slots = graph.export_all().graph  # type: ignore[misc]
    export = graph.export_all()
    cases: list[tuple[Any, Any, str]] = [
        (serialized[: len(serialized) // 2], slots, "does not deserialise"),
        (np.frombuffer(b"garbage!" * 100, np.uint8), slots, "does not deserialise"),
        (serialized, np.concatenate([slots[:-1], slots[:1]]), "exactly once"),
        (serialized, np.concatenate([slots, [-1]]), "not an inner-product HNSW index"),
    ]
    links = corrupt_links(serialized)
    # FAISS >= 1.12 checks links itself ("out of range"); moss checks them for older ones.
    cases.append((links, slots, "out of (range|bounds)"))
    for data, rows, message in cases:
        _, chunks = encode_snapshot(
            index_name="t", model_id="m", model_artifact="", vectors=export.vectors,
            ids=export.ids, texts=export.texts, metadata=export.metadata,
            index="hnsw", graph=(data, rows),
        )  # fmt: skip
        with pytest.raises(SnapshotError, match=message):
            decode_snapshot(chunks)


def corrupt_links(serialized: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """The serialisation with one link pointing past the last slot (found by its value)."""
    import faiss

    index: Any = faiss.deserialize_index(serialized)
    links = faiss.vector_to_array(index.hnsw.neighbors)
    links[0] = index.ntotal + 5
    faiss.copy_array_to_vector(links, index.hnsw.neighbors)
    result: npt.NDArray[np.uint8] = faiss.serialize_index(index)
    return result


def test_links_are_checked_whether_or_not_faiss_checks_them(corpus: Any) -> None:
    import faiss

    from moss.index import hnsw

    graph, _ = engines(corpus)
    serialized, _ = graph.export_all().graph  # type: ignore[misc]
    index: Any = faiss.deserialize_index(serialized)
    hnsw._check_links(faiss, index)  # a sound graph passes
    version = tuple(int(part) for part in faiss.__version__.split(".")[:2])
    assert hnsw._reader_checks_links() == (version >= (1, 12))
    for position, value in ((0, index.ntotal + 5), (7, -2)):
        broken: Any = faiss.deserialize_index(serialized)
        links = faiss.vector_to_array(broken.hnsw.neighbors)
        links[position] = value
        faiss.copy_array_to_vector(links, broken.hnsw.neighbors)
        with pytest.raises(InvalidArgumentError, match="out of bounds"):
            hnsw._check_links(faiss, broken)
    broken = faiss.deserialize_index(serialized)
    broken.hnsw.entry_point = index.ntotal
    with pytest.raises(InvalidArgumentError, match="out of bounds"):
        hnsw._check_links(faiss, broken)


def test_index_field_is_checked() -> None:
    assert parse_index_field(None) == ("flat", None)
    assert parse_index_field({"kind": "hnsw", "m": 8}) == ("hnsw", HnswParams(m=8))
    bad: object
    for bad in ([], {"kind": "ivf"}, {"kind": "hnsw", "m": "8"}, {"kind": "hnsw", "x": 1}):
        with pytest.raises(SnapshotError, match="index"):
            parse_index_field(bad)


def encode(engine: Engine) -> bytes:
    export = engine.export_all()
    _, chunks = encode_snapshot(
        index_name="t", model_id="m", model_artifact="", vectors=export.vectors,
        ids=export.ids, texts=export.texts, metadata=export.metadata,
        index=export.index, hnsw=export.hnsw, graph=export.graph,
    )  # fmt: skip
    return b"".join(bytes(chunk) for chunk in chunks)


def roundtrip(engine: Engine) -> SnapshotData:
    data = decode_snapshot([encode(engine)])
    assert isinstance(data, SnapshotData)
    return data


def test_set_index_builds_keeps_or_drops_the_graph(corpus: Any) -> None:
    _, flat = engines(corpus)
    assert flat._store.graph is None and flat.export_all().graph is None
    flat.set_index("hnsw", {"ef_search": 32})
    built = flat._store.graph
    assert built is not None and flat.index_kind == "hnsw"
    flat.set_index("hnsw", {"ef_search": 128})  # a search parameter: the same graph
    assert flat._store.graph is built and built.params.ef_search == 128
    flat.set_index("hnsw", {"ef_search": 128, "m": 8})  # a build parameter: a new graph
    assert flat._store.graph is not built and flat.hnsw == HnswParams(m=8, ef_search=128)
    export = flat.export_all()
    assert export.index == "hnsw" and export.hnsw == flat.hnsw and export.graph is not None
    flat.set_index("flat")
    assert flat._store.graph is None and flat.hnsw is None and flat.export_all().index == "flat"
