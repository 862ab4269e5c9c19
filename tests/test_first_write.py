"""The first write after an open costs what it writes: an engine opened from a snapshot keeps its
decoded vectors and lazy columns, and writes go beside them (moss.index.vector_blocks, the
overlay of moss.index.columns.LazyColumn), with the same results as an engine built by writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from moss.index.columns import LazyColumn
from moss.index.engine import Engine
from moss.index.id_table import IdColumn, IdRows
from moss.index.vector_blocks import VectorBlocks
from moss.snapshot import encode_snapshot, map_snapshot
from moss.snapshot.data import SnapshotData

DIM = 8
COUNT = 300


def unit(rng: np.random.Generator, count: int) -> np.ndarray:
    vectors = rng.standard_normal((count, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def documents(count: int, tag: str) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    ids = [f"d{i}" for i in range(count)]
    return (
        ids,
        [f"text {i} {tag}" for i in range(count)],
        [{"i": i, "tag": tag} for i in range(count)],
    )


def opened(tmp_path: Path, vectors: np.ndarray, precision: str = "float32") -> Engine:
    """An engine adopting a mapped snapshot of ``vectors``: read-only rows, lazy columns."""
    ids, texts, metadata = documents(len(vectors), "v1")
    _, chunks = encode_snapshot(
        index_name="notes", model_id="m", model_artifact="", vectors=vectors,
        ids=ids, texts=texts, metadata=metadata,
    )  # fmt: skip
    path = tmp_path / "v.snap"
    path.write_bytes(b"".join(bytes(chunk) for chunk in chunks))
    data = map_snapshot(path, expected_name="notes")
    assert isinstance(data, SnapshotData) and isinstance(data.texts, LazyColumn)
    assert not data.vectors.flags.writeable
    return Engine.from_arrays(
        data.vectors, data.ids, data.texts, data.metadata, precision=precision
    )


def built(vectors: np.ndarray, precision: str = "float32") -> Engine:
    engine = Engine(DIM, precision=precision)
    engine.upsert(*documents(len(vectors), "v1"), vectors)
    return engine


def same(engine: Engine, reference: Engine, queries: np.ndarray, *, whole: bool = False) -> None:
    """Both engines hold the same documents and rank them the same. Reads by id and searches
    keep lazy columns and the base as they are; ``whole`` also compares what decodes them
    (every document, filters, the export)."""
    assert len(engine) == len(reference)
    ids = sorted(doc.id for doc in reference.get())
    assert engine.get(ids) == reference.get(ids)
    np.testing.assert_array_equal(engine.vectors_for(ids), reference.vectors_for(ids))
    for got, want in zip(
        engine.search_many(queries, 5), reference.search_many(queries, 5), strict=True
    ):
        assert [(d.id, d.text, d.metadata) for d, _ in got] == [
            (d.id, d.text, d.metadata) for d, _ in want
        ]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-6)
    if not whole:
        return
    assert engine.get() == reference.get()
    for subset in ({"i": {"$lt": 20}}, {"tag": "v2"}):  # a gathered subset, a scored one
        got_f = engine.search(queries[0], 5, filter=subset)
        want_f = reference.search(queries[0], 5, filter=subset)
        assert [d.id for d, _ in got_f] == [d.id for d, _ in want_f]
    exported, reference_export = engine.export(), reference.export()
    np.testing.assert_array_equal(exported[0], reference_export[0])
    assert exported[1:] == reference_export[1:]


def test_first_write_keeps_the_decoded_vectors_and_columns(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    vectors = unit(rng, COUNT)
    engine = opened(tmp_path, vectors)
    base = engine._store.blocks.base
    new = unit(rng, 1)
    engine.upsert(["new"], ["a new text"], [{"i": -1}], new)
    store = engine._store
    # Neither the vectors were copied nor a column decoded as a whole, nor a dict of every id
    # built: the snapshot's id table finds rows, and only the ids written are kept apart.
    assert store.blocks.base is base and not base.flags.writeable
    assert isinstance(store.texts, LazyColumn) and isinstance(store.metadata, LazyColumn)
    assert isinstance(store.ids, IdColumn) and isinstance(store.row_of, IdRows)
    engine.upsert(["d5"], ["changed"], [{"i": 5, "tag": "v2"}], new)  # an update of a base row
    engine.delete(["d7"])  # the last row moves into the hole
    assert store.blocks.base is base and isinstance(store.texts, LazyColumn)
    # "new" (the last row) moved into d7's row; d7 is marked deleted over the table.
    assert isinstance(store.ids, IdColumn) and store.row_of._changed == {"new": 7, "d7": -1}
    assert engine.search(new[0], 2)[0][0].id in {"new", "d5"}
    assert [d.text for d in engine.get(["d5", "new", "d7"])] == ["changed", "a new text"]


def test_writes_after_an_open_match_an_engine_built_by_writes(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    vectors = unit(rng, COUNT)
    engine, reference = opened(tmp_path, vectors), built(vectors)
    queries = unit(rng, 4)
    live = [f"d{i}" for i in range(COUNT)]
    fresh = 0
    for step in range(60):
        kind = step % 4
        if kind == 0:  # append new documents
            ids = [f"n{fresh + i}" for i in range(3)]
            fresh += 3
        elif kind == 1:  # update existing ones (base rows and appended ones)
            ids = [str(i) for i in rng.choice(live, 4, replace=False)]
        else:  # delete, now and then the last row
            ids = [*(str(i) for i in rng.choice(live, 3, replace=False)), live[-1]]
            for engine_ in (engine, reference):
                assert engine_.delete(ids) == len(set(ids))
            live = [i for i in live if i not in set(ids)]
            same(engine, reference, queries)
            continue
        batch = unit(rng, len(ids))
        texts = [f"{doc_id} at {step}" for doc_id in ids]
        metadata = [{"i": step, "tag": "v2"} for _ in ids]
        assert engine.upsert(ids, texts, metadata, batch) == reference.upsert(
            ids, texts, metadata, batch
        )
        live += [i for i in ids if i not in set(live)]
        same(engine, reference, queries)
        if step == 10:
            assert not engine._store.blocks.plain and engine._store.blocks.patch_rows
    # The columns took every write in their overlays; enough base rows were patched to fold
    # the vectors into one matrix on the way.
    assert isinstance(engine._store.texts, LazyColumn) and engine._store.blocks.plain
    same(engine, reference, queries, whole=True)


def test_deleting_into_the_base_then_appending(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    vectors = unit(rng, 40)
    engine, reference = opened(tmp_path, vectors), built(vectors)
    queries = unit(rng, 3)
    doomed = [f"d{i}" for i in range(0, 40, 3)] + ["d39", "d38"]
    for engine_ in (engine, reference):
        engine_.delete(doomed)
    same(engine, reference, queries)
    more = unit(rng, 5)
    for engine_ in (engine, reference):
        engine_.upsert([f"m{i}" for i in range(5)], ["m"] * 5, [None] * 5, more)
        engine_.delete(["m4", "d1"])
    same(engine, reference, queries)
    for engine_ in (engine, reference):
        engine_.delete([doc.id for doc in engine_.get()])
    assert len(engine) == 0 and engine.search(queries[0], 3) == []
    for engine_ in (engine, reference):
        engine_.upsert(["z"], ["z"], [None], more[:1])
    same(engine, reference, queries, whole=True)


def test_an_export_does_not_change_with_later_writes(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    engine = opened(tmp_path, unit(rng, 50))
    engine.upsert(["a"], ["a"], [None], unit(rng, 1))
    view, ids, texts, metadata = engine.export()
    before = view.copy()
    engine.upsert(["d3", "b"], ["x", "y"], [None, None], unit(rng, 2))
    engine.delete(["d0", "a"])
    np.testing.assert_array_equal(view, before)
    assert len(ids) == len(texts) == len(metadata) == 51 and texts[3] == "text 3 v1"


def test_int8_engines_stay_in_step(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    vectors = unit(rng, COUNT)
    engine = opened(tmp_path, vectors, precision="int8")
    new = unit(rng, 3)
    engine.upsert(["a", "b", "d9"], ["a", "b", "c"], [None] * 3, new)
    engine.delete(["d1"])
    store = engine._store
    assert store.int8 is not None
    codes = store.int8.export().codes
    np.testing.assert_array_equal(store.vectors, store.take(range(len(engine))))
    assert codes.shape == (len(engine), DIM)
    for row, doc_id in enumerate(["a", "b", "d9"]):
        assert engine.search(new[row], 1)[0][0].id == doc_id


def test_lazy_column_overlay_reads_like_a_list(tmp_path: Path) -> None:
    engine = opened(tmp_path, unit(np.random.default_rng(8), 6))
    column = engine._store.texts
    assert isinstance(column, LazyColumn)
    expected = [f"text {i} v1" for i in range(6)]
    column[2] = "two"
    column.append("six")
    column.extend(["seven", "eight"])
    expected[2] = "two"
    expected += ["six", "seven", "eight"]
    assert column.pop() == expected.pop() == "eight"
    for _ in range(4):  # into the snapshot's values, past a replaced one
        assert column.pop() == expected.pop()
    column[-1] = "last"
    expected[-1] = "last"
    assert len(column) == len(expected) == 4
    assert [column[i] for i in range(-4, 4)] == expected + expected
    assert column[1:3] == expected[1:3] and column[::-1] == expected[::-1]
    assert column == expected and list(column) == expected
    assert column.materialize() == expected
    with pytest.raises(IndexError):
        column[4] = "out of range"
    with pytest.raises(IndexError):
        column[-5]


def test_vector_blocks_fold_into_one_writable_matrix() -> None:
    rng = np.random.default_rng(9)
    base = unit(rng, 100)
    base.flags.writeable = False
    blocks = VectorBlocks.adopt(base)
    blocks.append(unit(rng, 10))
    blocks.assign([3, 105], unit(rng, 2))
    expected = np.concatenate([base, blocks.tail[:10]])
    expected[3] = blocks.patch_vectors[0]
    query = unit(rng, 1)
    scores = blocks.scores(query, lambda q, m: q @ m.T)
    np.testing.assert_allclose(scores, query @ expected.T, atol=1e-6)
    np.testing.assert_array_equal(blocks.take([3, 0, 105]), expected[[3, 0, 105]])
    merged = blocks.matrix()  # folds: one copy
    assert blocks.plain and merged.flags.writeable and merged.flags.c_contiguous
    np.testing.assert_array_equal(merged, expected)


def test_an_append_after_deleting_the_last_row_keeps_an_export() -> None:
    rng = np.random.default_rng(10)
    engine = built(unit(rng, 20))
    view, *_ = engine.export()
    before = view.copy()
    engine.delete(["d19"])  # no row moves: nothing written yet
    engine.upsert(["new"], ["new"], [None], unit(rng, 1))  # would land on the exported row 19
    np.testing.assert_array_equal(view, before)


def test_engines_opened_from_the_same_columns_write_apart(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    first = opened(tmp_path, unit(rng, 10))
    store = first._store
    assert isinstance(store.texts, LazyColumn) and isinstance(store.metadata, LazyColumn)
    second = Engine.from_arrays(store.blocks.base, list(store.ids), store.texts, store.metadata)
    first.upsert(["d1", "new"], ["changed", "new"], [{"i": 1}, None], unit(rng, 2))
    first.delete(["d2"])
    assert len(second) == 10 and second.get(["d1"])[0].text == "text 1 v1"
    assert [d.text for d in second.get()] == [f"text {i} v1" for i in range(10)]
