"""The automatic efSearch of an hnsw index: 64 up to 1M documents, growing beyond, stored as
``null`` in the header so every reader applies the rule to the index it opened."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from moss import FileStore, MossClient, QueryOptions
from moss.errors import InvalidArgumentError, SnapshotError
from moss.index import hnsw_params
from moss.index.engine import Engine
from moss.index.hnsw import GRAPH_MIN_ROWS, HnswGraph, HnswParams
from moss.index.hnsw_params import auto_ef_search
from moss.snapshot import decode_snapshot, encode_snapshot
from moss.snapshot.data import SnapshotData
from moss.snapshot.graph import parse_index_field

Matrix = npt.NDArray[np.float32]
DIM = 16
COUNT = GRAPH_MIN_ROWS + 500


def unit_vectors(count: int, seed: int = 0) -> Matrix:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((count, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def test_the_rule_keeps_64_to_a_million_then_grows() -> None:
    assert [auto_ef_search(n) for n in (0, 10_000, 100_000, 1_000_000)] == [64] * 4
    sizes = [1_000_001, 1_500_000, 2_000_000, 5_000_000, 10_000_000, 50_000_000, 10**9]
    grown = [auto_ef_search(n) for n in sizes]
    assert grown == sorted(grown) and all(ef % 16 == 0 for ef in grown)
    # 5M: the efSearch measured to find ~0.97 of the true top 10 (0.854 at 64).
    assert 512 <= auto_ef_search(5_000_000) <= 544
    assert grown[-1] == 4096


def test_default_is_automatic_and_an_integer_fixes_it() -> None:
    assert HnswParams().ef_search is None
    assert HnswParams().ef_for(5_000_000) == auto_ef_search(5_000_000)
    assert HnswParams(ef_search=32).ef_for(5_000_000) == 32
    with pytest.raises(InvalidArgumentError, match="ef_search must be an integer"):
        HnswParams(ef_search=0)


def test_header_stores_null_and_old_headers_keep_their_integer() -> None:
    vectors = unit_vectors(50)
    _, chunks = encode_snapshot(
        index_name="x",
        model_id="m",
        model_artifact="",
        vectors=vectors,
        ids=[f"d{i}" for i in range(50)],
        texts=[""] * 50,
        metadata=[None] * 50,
        index="hnsw",
        hnsw=HnswParams(),
    )
    blob = b"".join(bytes(chunk) for chunk in chunks)
    assert b'"ef_search":null' in blob.replace(b" ", b"")
    data = decode_snapshot([blob])
    assert isinstance(data, SnapshotData) and data.hnsw == HnswParams()
    old = {"kind": "hnsw", "m": 32, "ef_construction": 80, "ef_search": 64}
    assert parse_index_field(json.loads(json.dumps(old)))[1] == HnswParams(ef_search=64)
    for bad in ("auto", 0, 1.5, True):
        with pytest.raises(SnapshotError, match="'index' is invalid"):
            parse_index_field({**old, "ef_search": bad})


def test_searches_use_the_breadth_of_the_index_size(monkeypatch: pytest.MonkeyPatch) -> None:
    # The rule's threshold lowered so a test-sized graph is "large": the search must ask FAISS
    # for the breadth the rule gives this index, not 64.
    monkeypatch.setattr(hnsw_params, "_AUTO_EF_FROM", 1_000)
    expected = auto_ef_search(COUNT)
    assert expected > 64
    vectors = unit_vectors(COUNT + 5)
    engine = Engine(DIM, index="hnsw")
    engine.upsert([f"d{i}" for i in range(COUNT)], [""] * COUNT, [None] * COUNT, vectors[5:])
    seen: list[int] = []
    candidates = HnswGraph.candidates

    def spy(self: HnswGraph, queries: Matrix, wanted: int, ef_search: int, rows: Any) -> Any:
        seen.append(ef_search)
        return candidates(self, queries, wanted, ef_search, rows)

    monkeypatch.setattr(HnswGraph, "candidates", spy)
    engine.search(vectors[0], 10)
    engine.search(vectors[1], 10, ef_search=40)
    assert seen == [expected, 40]


async def test_a_large_automatic_breadth_moves_queries_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Above INLINE_EF_SEARCH (256) a graph search is slow enough for a worker thread.
    monkeypatch.setattr(hnsw_params, "_AUTO_EF_FROM", 100)
    vectors = unit_vectors(COUNT + 1)
    client = MossClient("proj", store=FileStore(tmp_path / "store"), cache_dir=tmp_path / "c")
    session = await client.session("big", model_id="custom", index="hnsw")
    await session.add_arrays([f"d{i}" for i in range(COUNT)], [""] * COUNT, vectors[1:])
    on_loop: list[bool] = []
    candidates = HnswGraph.candidates

    def spy(self: HnswGraph, queries: Matrix, wanted: int, ef_search: int, rows: Any) -> Any:
        on_loop.append(threading.current_thread() is threading.main_thread())
        return candidates(self, queries, wanted, ef_search, rows)

    monkeypatch.setattr(HnswGraph, "candidates", spy)
    await session.query("", QueryOptions(top_k=3, alpha=1.0, embedding=vectors[0]))
    await session.query("", QueryOptions(top_k=3, alpha=1.0, embedding=vectors[0], ef_search=64))
    assert on_loop == [False, True]
