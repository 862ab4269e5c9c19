"""The in-memory engine: upsert/delete bookkeeping, exact (filtered) search against a numpy
brute force, export isolation, and concurrent readers and writers."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from moss.errors import InvalidArgumentError
from moss.index import ranking
from moss.index.engine import Engine, StoredDoc
from moss.index.filters import compile_filter
from test_filters import filters, metadatas

DIM = 8


def unit(rng: np.random.Generator, count: int, dim: int = DIM) -> np.ndarray:
    vectors = rng.standard_normal((count, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def build(count: int, seed: int = 0, meta: list[Any] | None = None) -> tuple[Engine, np.ndarray]:
    rng = np.random.default_rng(seed)
    vectors = unit(rng, count)
    engine = Engine(DIM)
    ids = [f"d{i}" for i in range(count)]
    metadata = meta if meta is not None else [{"i": i, "even": i % 2 == 0} for i in range(count)]
    engine.upsert(ids, [f"text {i}" for i in range(count)], metadata, vectors)
    return engine, vectors


def brute_force(
    vectors: np.ndarray,
    ids: list[str],
    metadata: list[Any],
    query: np.ndarray,
    top_k: int,
    flt: dict[str, Any] | None = None,
    min_score: float | None = None,
) -> list[tuple[str, float]]:
    predicate = compile_filter(flt)
    scores = vectors.astype(np.float64) @ query.astype(np.float64)
    hits = [
        (ids[i], float(scores[i]))
        for i in range(len(ids))
        if (predicate is None or predicate(metadata[i]))
        and (min_score is None or scores[i] >= min_score)
    ]
    hits.sort(key=lambda hit: (-hit[1], hit[0]))
    return hits[:top_k]


def assert_same_hits(got: list[tuple[StoredDoc, float]], want: list[tuple[str, float]]) -> None:
    assert [doc.id for doc, _ in got] == [doc_id for doc_id, _ in want]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-5)


# --- construction ---------------------------------------------------------------------------


def test_empty_engine() -> None:
    engine = Engine(DIM)
    assert len(engine) == 0
    assert engine.dimension == DIM
    assert engine.search(np.ones(DIM, np.float32) / np.sqrt(DIM), 5) == []
    assert engine.search(np.ones(DIM, np.float32), 5, filter={"x": 1}) == []
    assert engine.get() == []
    assert engine.vectors_for(["nope"]).shape == (0, DIM)
    assert engine.delete(["nope"]) == 0
    vectors, ids, texts, metadata = engine.export()
    assert vectors.shape == (0, DIM)
    assert ids == [] and texts == [] and metadata == []


@pytest.mark.parametrize("dimension", [0, -1, 2.0, True, "8"])
def test_bad_dimension(dimension: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="dimension"):
        Engine(dimension)


def test_from_arrays_adopts_without_copy() -> None:
    rng = np.random.default_rng(1)
    vectors = unit(rng, 50)
    ids = [f"d{i}" for i in range(50)]
    engine = Engine.from_arrays(vectors, ids, ["t"] * 50, [None] * 50)
    assert len(engine) == 50 and engine.dimension == DIM
    assert np.shares_memory(engine.export()[0], vectors)
    assert_same_hits(
        engine.search(vectors[3], 3), brute_force(vectors, ids, [None] * 50, vectors[3], 3)
    )


def test_from_arrays_read_only_buffer_is_copied_before_writes() -> None:
    rng = np.random.default_rng(2)
    source = unit(rng, 4)
    blob = source.tobytes()
    vectors = np.frombuffer(blob, dtype=np.float32).reshape(4, DIM)
    engine = Engine.from_arrays(vectors, ["a", "b", "c", "d"], ["t"] * 4, [None] * 4)
    engine.upsert(["b"], ["new"], [None], source[:1])  # update in place
    engine.delete(["a"])
    engine.upsert(["e"], ["t"], [None], source[2:3])  # append
    assert blob == source.tobytes()
    np.testing.assert_array_equal(engine.vectors_for(["b", "d", "e"]), source[[0, 3, 2]])


@pytest.mark.parametrize(
    ("vectors", "ids", "match"),
    [
        (np.zeros((2, DIM), np.float64), ["a", "b"], "float32"),
        (np.zeros((2, DIM), np.float32)[:, ::2], ["a", "b"], "C-contiguous"),
        (np.zeros(DIM, np.float32), ["a"], "shape"),
        (np.zeros((2, DIM), np.float32), ["a"], "one of each"),
        (np.zeros((2, DIM), np.float32), ["a", "a"], "unique"),
    ],
)
def test_from_arrays_rejects_bad_input(vectors: np.ndarray, ids: list[str], match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        Engine.from_arrays(vectors, ids, ["t"] * len(ids), [None] * len(ids))


# --- writes ---------------------------------------------------------------------------------


def test_upsert_counts_added_and_updated() -> None:
    rng = np.random.default_rng(3)
    engine = Engine(DIM)
    assert engine.upsert(["a", "b"], ["A", "B"], [None, {"k": 1}], unit(rng, 2)) == (2, 0)
    new = unit(rng, 3)
    assert engine.upsert(["b", "c", "a"], ["B2", "C", "A2"], [None] * 3, new) == (1, 2)
    assert len(engine) == 3
    docs = engine.get(["a", "b", "c"])
    assert [(d.id, d.text, d.metadata) for d in docs] == [
        ("a", "A2", None),
        ("b", "B2", None),
        ("c", "C", None),
    ]
    np.testing.assert_array_equal(engine.vectors_for(["b", "c", "a"]), new)


def test_duplicate_ids_in_one_batch_last_wins() -> None:
    rng = np.random.default_rng(4)
    vectors = unit(rng, 4)
    engine = Engine(DIM)
    assert engine.upsert(["x", "y", "x", "x"], ["1", "2", "3", "4"], [None] * 4, vectors) == (2, 0)
    assert len(engine) == 2
    assert engine.get(["x"])[0].text == "4"
    np.testing.assert_array_equal(engine.vectors_for(["x", "y"]), vectors[[3, 1]])
    assert engine.upsert(["y", "y"], ["5", "6"], [None, {"v": 6}], vectors[:2]) == (0, 1)
    assert engine.get(["y"]) == [StoredDoc("y", "6", {"v": 6})]


def test_upsert_rejects_mismatched_batches() -> None:
    engine = Engine(DIM)
    with pytest.raises(InvalidArgumentError, match="shape"):
        engine.upsert(["a"], ["t"], [None], np.zeros((1, DIM + 1), np.float32))
    with pytest.raises(InvalidArgumentError, match="one of each"):
        engine.upsert(["a", "b"], ["t"], [None], np.zeros((2, DIM), np.float32))
    assert len(engine) == 0


def test_delete_swaps_last_row_into_the_hole() -> None:
    engine, vectors = build(10)
    assert engine.delete(["d0", "d5", "nope", "d5", "d9"]) == 3
    assert len(engine) == 7
    left = [f"d{i}" for i in (1, 2, 3, 4, 6, 7, 8)]
    assert sorted(doc.id for doc in engine.get()) == sorted(left)
    np.testing.assert_array_equal(engine.vectors_for(left), vectors[[1, 2, 3, 4, 6, 7, 8]])
    for i in (1, 2, 3, 4, 6, 7, 8):
        (doc, score), *_ = engine.search(vectors[i], 1)
        assert doc.id == f"d{i}" and score == pytest.approx(1.0, abs=1e-6)
    assert engine.delete(iter(left)) == 7
    assert len(engine) == 0 and engine.get() == []


def test_many_small_appends_then_mass_delete() -> None:
    rng = np.random.default_rng(5)
    engine = Engine(DIM)
    vectors = unit(rng, 1000)
    for start in range(0, 1000, 7):
        chunk = range(start, min(start + 7, 1000))
        engine.upsert([f"d{i}" for i in chunk], ["t"] * len(chunk), [None] * len(chunk),
                      vectors[start : start + len(chunk)])  # fmt: skip
    assert len(engine) == 1000
    engine.delete([f"d{i}" for i in range(990)])
    kept = [f"d{i}" for i in range(990, 1000)]
    np.testing.assert_array_equal(engine.vectors_for(kept), vectors[990:])
    assert_same_hits(
        engine.search(vectors[995], 3),
        brute_force(vectors[990:], kept, [None] * 10, vectors[995], 3),
    )


class EngineMachine(RuleBasedStateMachine):
    """Random upserts and deletes against a dict model: rows and ids never drift apart."""

    def __init__(self) -> None:
        super().__init__()
        self.engine = Engine(DIM)
        self.model: dict[str, tuple[str, Any, np.ndarray]] = {}
        self.rng = np.random.default_rng(0)
        self.exports: list[tuple[Any, ...]] = []

    @rule(ids=st.lists(st.sampled_from([f"d{i}" for i in range(12)]), max_size=6))
    def upsert(self, ids: list[str]) -> None:
        vectors = unit(self.rng, len(ids))
        texts = [f"t{self.rng.integers(1000)}" for _ in ids]
        metas = [{"n": int(self.rng.integers(3))} for _ in ids]
        expected_new = len({i for i in ids if i not in self.model})
        added, updated = self.engine.upsert(ids, texts, metas, vectors)
        assert (added, updated) == (expected_new, len(set(ids)) - expected_new)
        for doc_id, text, meta, vector in zip(ids, texts, metas, vectors, strict=True):
            self.model[doc_id] = (text, meta, vector)

    @rule(ids=st.lists(st.sampled_from([f"d{i}" for i in range(14)]), max_size=4))
    def delete(self, ids: list[str]) -> None:
        expected = len({i for i in ids if i in self.model})
        assert self.engine.delete(ids) == expected
        for doc_id in ids:
            self.model.pop(doc_id, None)

    @rule()
    def export(self) -> None:
        vectors, ids, texts, metas = self.engine.export()
        self.exports.append((vectors.copy(), vectors, list(ids), ids, texts, metas))

    @invariant()
    def matches_model(self) -> None:
        assert len(self.engine) == len(self.model)
        ids = sorted(self.model)
        docs = self.engine.get(ids)
        assert [(d.id, d.text, d.metadata) for d in docs] == [
            (i, self.model[i][0], self.model[i][1]) for i in ids
        ]
        stored = self.engine.vectors_for(ids)
        expected = np.array([self.model[i][2] for i in ids]).reshape(-1, DIM)
        np.testing.assert_array_equal(stored, expected)
        for doc_id in ids[:3]:
            hits = self.engine.search(self.model[doc_id][2], len(ids))
            assert doc_id in [doc.id for doc, _ in hits]
            assert len(hits) == len(ids)

    @invariant()
    def exports_never_change(self) -> None:
        for copy, view, ids_copy, ids, _, _ in self.exports:
            np.testing.assert_array_equal(view, copy)
            assert ids == ids_copy
            assert not view.flags.writeable


TestEngineMachine = EngineMachine.TestCase
TestEngineMachine.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)


def test_export_is_isolated_from_later_writes() -> None:
    engine, vectors = build(6)
    view, ids, texts, metas = engine.export()
    before = view.copy()
    engine.upsert(["d0", "new"], ["x", "y"], [None, None], vectors[:2][::-1].copy())
    engine.delete(["d1", "d2"])
    np.testing.assert_array_equal(view, before)
    assert ids == [f"d{i}" for i in range(6)] and len(texts) == len(metas) == 6
    with pytest.raises(ValueError, match="read-only"):
        view[0, 0] = 1.0
    # Appends right after an export reuse spare capacity without touching the exported rows.
    view2, *_ = engine.export()
    before2 = view2.copy()
    engine.upsert(["z"], ["t"], [None], vectors[:1])
    np.testing.assert_array_equal(view2, before2)


def test_growth_moves_the_matrix_in_place_unless_someone_views_it() -> None:
    rng = np.random.default_rng(14)
    engine = Engine(DIM)
    first = unit(rng, 100)
    engine.upsert([f"a{i}" for i in range(100)], ["t"] * 100, [None] * 100, first)
    engine.upsert([f"b{i}" for i in range(1000)], ["t"] * 1000, [None] * 1000, unit(rng, 1000))
    assert engine._store.vectors.shape[0] >= 1100
    view, *_ = engine.export()
    before = view.copy()
    more = unit(rng, 5000)
    engine.upsert([f"c{i}" for i in range(5000)], ["t"] * 5000, [None] * 5000, more)
    np.testing.assert_array_equal(view, before)  # the export kept the old matrix
    assert len(engine) == 6100
    np.testing.assert_array_equal(engine.vectors_for(["a0", "c4999"]), [first[0], more[-1]])
    hits = engine.search(more[17], 1)
    assert hits[0][0].id == "c17"


# --- reads ----------------------------------------------------------------------------------


def test_stored_doc_is_a_frozen_dataclass_of_its_fields() -> None:
    # StoredDoc sets its slots itself (faster than the dataclass's __init__): still the same
    # fields, by position or keyword, still frozen, still replaceable.
    doc = StoredDoc(text="t", metadata={"k": 1}, id="a")
    assert (doc.id, doc.text, doc.metadata) == ("a", "t", {"k": 1})
    assert doc == StoredDoc("a", "t", {"k": 1}) != StoredDoc("a", "t", None)
    assert repr(doc) == "StoredDoc(id='a', text='t', metadata={'k': 1})"
    assert dataclasses.replace(doc, text="u") == StoredDoc("a", "u", {"k": 1})
    with pytest.raises(dataclasses.FrozenInstanceError):
        doc.id = "b"  # type: ignore[misc]


def test_get_by_ids_filter_and_limit() -> None:
    engine, _ = build(10)
    assert [d.id for d in engine.get(["d3", "nope", "d1", "d3"])] == ["d3", "d1", "d3"]
    assert [d.id for d in engine.get(["d3", "d2", "d4"], filter={"even": True})] == ["d2", "d4"]
    evens = engine.get(filter={"field": "even", "condition": {"$eq": True}})
    assert sorted(d.id for d in evens) == ["d0", "d2", "d4", "d6", "d8"]
    assert len(engine.get(limit=3)) == 3
    assert len(engine.get(filter={"i": {"$gte": 5}}, limit=2)) == 2
    assert engine.get(limit=0) == []
    assert engine.get(["d1"])[0] == StoredDoc("d1", "text 1", {"i": 1, "even": False})
    with pytest.raises(InvalidArgumentError, match="limit"):
        engine.get(limit=-1)
    with pytest.raises(InvalidArgumentError, match="accepted forms"):
        engine.get(filter={"i": {"$bogus": 1}})


def test_vectors_for_returns_copies() -> None:
    engine, vectors = build(4)
    got = engine.vectors_for(["d2", "x", "d0"])
    np.testing.assert_array_equal(got, vectors[[2, 0]])
    got[:] = 0
    np.testing.assert_array_equal(engine.vectors_for(["d2"]), vectors[[2]])


def test_search_validates_arguments() -> None:
    engine, vectors = build(4)
    with pytest.raises(InvalidArgumentError, match="shape"):
        engine.search(np.ones(DIM + 1, np.float32), 1)
    with pytest.raises(InvalidArgumentError, match="shape"):
        engine.search(vectors[:2], 1)
    bad_top_k: list[Any] = [0, -1, True, 1.5]
    for top_k in bad_top_k:
        with pytest.raises(InvalidArgumentError, match="top_k"):
            engine.search(vectors[0], top_k)
    with pytest.raises(InvalidArgumentError, match="accepted forms"):
        engine.search(vectors[0], 1, filter={"$or": {}})


def test_top_k_larger_than_count_returns_all_sorted() -> None:
    engine, vectors = build(5)
    ids = [f"d{i}" for i in range(5)]
    hits = engine.search(vectors[2], 50)
    assert_same_hits(hits, brute_force(vectors, ids, [None] * 5, vectors[2], 50))
    assert len(hits) == 5


def test_min_score_drops_weaker_results() -> None:
    engine, vectors = build(40)
    ids = [f"d{i}" for i in range(40)]
    for min_score in (-1.0, 0.0, 0.3, 0.99, 1.5):
        hits = engine.search(vectors[7], 10, min_score=min_score)
        want = brute_force(vectors, ids, [None] * 40, vectors[7], 10, min_score=min_score)
        assert_same_hits(hits, want)
        assert all(score >= min_score for _, score in hits)


def test_scores_stay_within_cosine_range() -> None:
    engine = Engine(3)
    v = np.array([[0.6, 0.8, 0.0]], dtype=np.float32)
    engine.upsert(["a"], ["t"], [None], v)
    engine.upsert(["b"], ["t"], [None], -v)
    (_, best), (_, worst) = engine.search(v[0], 2)
    assert best == 1.0 or best == pytest.approx(1.0)
    assert -1.0 <= worst <= -0.999 and best <= 1.0


def test_ties_are_broken_by_id_whatever_the_insertion_order() -> None:
    v = np.eye(DIM, dtype=np.float32)[:1]
    ids = ["b", "c", "a", "e", "d"]
    results = []
    for order in (ids, ids[::-1], sorted(ids)):
        engine = Engine(DIM)
        for doc_id in order:
            engine.upsert([doc_id], ["t"], [None], v)
        results.append([doc.id for doc, _ in engine.search(v[0], 3)])
    assert results == [["a", "b", "c"]] * 3


def test_filtered_search_returns_true_top_k_of_matches() -> None:
    # 5% of documents match: a post-filter over an unfiltered top-k would return almost none.
    count = 2000
    meta = [{"group": "rare" if i % 20 == 0 else "common", "i": i} for i in range(count)]
    engine, vectors = build(count, seed=6, meta=meta)
    ids = [f"d{i}" for i in range(count)]
    rng = np.random.default_rng(7)
    for query in unit(rng, 5):
        for flt in (
            {"group": "rare"},  # 5%: gathers the matching rows
            {"group": "common"},  # 95%: scores all rows and selects
            {"$or": [{"group": "rare"}, {"i": {"$lt": 600}}]},  # ~33%
            {"i": {"$in": [3, 1999, 5000]}},
            {"group": "none"},
        ):
            hits = engine.search(query, 10, filter=flt)
            assert_same_hits(hits, brute_force(vectors, ids, meta, query, 10, flt))


def test_bool_is_not_a_number_in_search() -> None:
    meta: list[Any] = [{"flag": True}, {"flag": 1}, {"flag": 1.0}, {"flag": False}, {}, None]
    engine, _ = build(len(meta), meta=meta)
    query = np.ones(DIM, np.float32) / np.sqrt(DIM)

    def found(flt: dict[str, Any]) -> set[str]:
        return {doc.id for doc, _ in engine.search(query, 10, filter=flt)}

    assert found({"flag": True}) == {"d0"}
    assert found({"flag": 1}) == {"d1", "d2"}
    assert found({"flag": {"$in": [0, 1]}}) == {"d1", "d2"}
    assert found({"flag": {"$ne": True}}) == {"d1", "d2", "d3", "d4", "d5"}
    assert found({"flag": {"$gte": 0}}) == {"d1", "d2"}


def test_search_many_equals_search() -> None:
    engine, _ = build(300, seed=8)
    queries = unit(np.random.default_rng(9), 70)  # more than one block of queries
    flt = {"even": True}
    many = engine.search_many(queries, 4, filter=flt, min_score=0.1)
    assert len(many) == 70
    for query, hits in zip(queries, many, strict=True):
        # One matrix product for many queries rounds differently from one per query.
        single = engine.search(query, 4, filter=flt, min_score=0.1)
        assert [doc for doc, _ in hits] == [doc for doc, _ in single]
        np.testing.assert_allclose([s for _, s in hits], [s for _, s in single], atol=1e-6)


@settings(max_examples=80, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 4), st.integers(1, 3000)),
    count=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
    levels=st.sampled_from([3, 50, 10**6]),
    floor=st.one_of(st.none(), st.floats(-1.0, 1.0)),
)
def test_candidates_hold_the_top_k_and_every_tie(
    shape: tuple[int, int], count: int, seed: int, levels: int, floor: float | None
) -> None:
    rng = np.random.default_rng(seed)
    # Few distinct levels make many ties at the cut.
    scores = (rng.integers(0, levels, shape) / levels).astype(np.float32)
    for row, columns in zip(scores, ranking.candidates(scores, count, floor), strict=True):
        kth = np.sort(row)[::-1][min(count, len(row)) - 1]
        needed = set(np.flatnonzero(row >= kth).tolist())
        if floor is not None:
            needed = {c for c in needed if row[c] >= floor}
            assert all(row[c] >= np.float32(floor) for c in columns.tolist())
        assert needed <= set(columns.tolist())
        assert list(columns) == sorted(set(columns.tolist()))


def test_search_many_matches_brute_force_past_the_grouped_bound() -> None:
    rng = np.random.default_rng(12)
    count = 5000  # large enough for the grouped bound on 10 results
    vectors = unit(rng, count)
    ids = [f"d{i}" for i in range(count)]
    metas: list[Any] = [{"k": i % 3} for i in range(count)]
    engine = Engine.from_arrays(vectors.copy(), list(ids), ["t"] * count, list(metas))
    queries = unit(rng, 40)
    for flt, min_score in ((None, None), ({"k": 1}, None), ({"k": {"$ne": 0}}, 0.3)):
        many = engine.search_many(queries, 10, filter=flt, min_score=min_score)
        for query, hits in zip(queries, many, strict=True):
            want = brute_force(vectors, ids, metas, query, 10, flt, min_score)
            assert_same_hits(hits, want)


@settings(max_examples=60, deadline=None)
@given(
    metas=st.lists(metadatas, min_size=0, max_size=40),
    flt=filters,
    top_k=st.integers(1, 12),
    seed=st.integers(0, 2**32 - 1),
    min_score=st.one_of(st.none(), st.floats(-0.5, 0.5)),
)
def test_filtered_search_matches_brute_force(
    metas: list[Any], flt: dict[str, Any], top_k: int, seed: int, min_score: float | None
) -> None:
    rng = np.random.default_rng(seed)
    vectors = unit(rng, len(metas))
    ids = [f"d{i}" for i in range(len(metas))]
    engine = Engine(DIM)
    engine.upsert(ids, ["t"] * len(ids), metas, vectors)
    # Deleting and re-adding a few documents moves rows around (swap-delete).
    moved = ids[::3]
    engine.delete(moved)
    rows = [int(d[1:]) for d in moved]
    engine.upsert(moved, ["t"] * len(moved), [metas[i] for i in rows], vectors[rows])
    query = unit(rng, 1)[0]
    hits = engine.search(query, top_k, filter=flt, min_score=min_score)
    assert_same_hits(hits, brute_force(vectors, ids, metas, query, top_k, flt, min_score))


# --- concurrency ----------------------------------------------------------------------------


def test_concurrent_readers_never_see_half_applied_writes() -> None:
    """Writers replace whole groups at once; readers check every group is from one write."""
    groups, size, rounds = 6, 40, 150
    engine = Engine(DIM)
    basis = np.eye(DIM, dtype=np.float32)

    def batch(group: int, generation: int) -> tuple[list[str], list[str], list[Any], np.ndarray]:
        ids = [f"g{group}-{i}" for i in range(size)]
        meta = [{"group": group, "gen": generation} for _ in ids]
        # The vector encodes the generation, so a torn row shows up as a score mismatch.
        vectors = np.repeat(basis[generation % DIM][None, :], size, axis=0)
        return ids, [f"gen {generation}"] * size, meta, vectors

    for group in range(groups):
        engine.upsert(*batch(group, 0))
    errors: list[BaseException] = []
    reads: list[int] = []
    stop = threading.Event()

    def writer(group: int) -> None:
        try:
            for generation in range(1, rounds):
                ids, texts, meta, vectors = batch(group, generation)
                if generation % 5 == 0:
                    engine.delete(ids)
                engine.upsert(ids, texts, meta, vectors)
        except BaseException as exc:  # surfaced by the main thread
            errors.append(exc)

    def reader() -> None:
        try:
            while not stop.is_set():
                reads.append(1)
                group = int(np.random.default_rng().integers(groups))
                docs = engine.get([f"g{group}-{i}" for i in range(size)])
                gens = {doc.metadata["gen"] for doc in docs if doc.metadata}
                assert len(gens) <= 1 and len(docs) in (0, size)
                vectors, ids, texts, metas = engine.export()
                assert len(vectors) == len(ids) == len(texts) == len(metas)
                for row in range(0, len(ids), 17):
                    meta = metas[row]
                    assert meta is not None
                    gen = meta["gen"]
                    assert texts[row] == f"gen {gen}"
                    np.testing.assert_array_equal(vectors[row], basis[gen % DIM])
                hits = engine.search(basis[3], 5, filter={"group": group})
                for doc, score in hits:
                    assert doc.metadata is not None
                    assert score == (1.0 if doc.metadata["gen"] % DIM == 3 else 0.0)
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=writer, args=(g,)) for g in range(groups)]
    readers = [threading.Thread(target=reader) for _ in range(3)]
    for thread in readers + writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    for thread in readers:
        thread.join()
    assert not errors, errors[0]
    assert len(reads) > 10  # the readers really overlapped the writers
    assert len(engine) == groups * size
    assert {doc.metadata["gen"] for doc in engine.get() if doc.metadata} == {rounds - 1}
