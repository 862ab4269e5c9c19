"""int8 codes: the hand-encoded onnxruntime product, codes kept in step with engine writes, and
int8 search (scan, then float32 re-rank) against exact search."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moss.errors import InvalidArgumentError
from moss.index import ranking, search_plan
from moss.index.engine import Engine
from moss.index.int8_kernel import scanner
from moss.index.quantize import BLOCK, Int8Codes, Int8Index, quantize_rows


def unit(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    vectors = rng.standard_normal((count, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def codes_of(index: Int8Index) -> np.ndarray:
    """All codes as a (count, dimension) int8 matrix."""
    codes: np.ndarray = index.export().codes
    return codes


def assert_in_step(engine: Engine) -> None:
    """Every row's codes are its current vector quantised with the current scales."""
    index = engine._store.int8
    assert index is not None
    count = len(engine)
    vectors = engine._store.vectors[:count]
    expected, _ = quantize_rows(vectors, index.export().scales)
    assert np.array_equal(codes_of(index), expected)
    assert np.array_equal(index._sums[:count], expected.sum(axis=1, dtype=np.int32))


@pytest.fixture
def int8_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make int8 engines scan in int8 at any size (normally small ones search exactly), whatever
    the kernel timing on this machine says."""
    monkeypatch.setattr(search_plan, "_INT8_MIN_ROWS", 0)
    monkeypatch.setattr(ranking, "_verdicts", {})
    monkeypatch.setattr(ranking, "faster_kernel", lambda int8, exact: True)


def test_onnx_product_is_the_exact_integer_product() -> None:
    rng = np.random.default_rng(0)
    queries = rng.integers(0, 256, (3, 40), dtype=np.uint8)
    codes = rng.integers(-127, 128, (40, 77), dtype=np.int8)
    got = scanner()(queries, codes)
    assert got.dtype == np.int32
    assert np.array_equal(got, queries.astype(np.int32) @ codes.astype(np.int32))


def test_scores_undo_the_query_shift_exactly() -> None:
    rng = np.random.default_rng(1)
    vectors = unit(rng, 300, 24)
    index = Int8Index.build(vectors)
    queries = unit(rng, 4, 24)
    shifted = index._quantize_queries(queries).astype(np.int32) - 128
    expected = shifted @ codes_of(index).astype(np.int32).T
    assert np.array_equal(index.scores(queries), expected)
    # The approximate scores order documents almost like the exact ones.
    exact = queries @ vectors.T
    for row in range(4):
        assert np.corrcoef(index.scores(queries)[row], exact[row])[0, 1] > 0.99


@settings(max_examples=25, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["add", "update", "delete"]), st.integers(1, 40), st.integers(0, 2**16)
        ),
        min_size=1,
        max_size=12,
    )
)
def test_codes_follow_every_write(ops: list[tuple[str, int, int]]) -> None:
    engine = Engine(6, precision="int8")
    next_id = 0
    for op, size, seed in ops:
        rng = np.random.default_rng(seed)
        ids = list(engine._store.ids)
        if op == "add" or not ids:
            new = [f"d{next_id + i}" for i in range(size)]
            next_id += size
            # Growing magnitudes force clipping, and so re-calibration, now and then.
            engine.upsert(new, ["t"] * size, [None] * size, unit(rng, size, 6) * (1 + seed % 3))
        elif op == "update":
            chosen = list(rng.choice(ids, min(size, len(ids)), replace=False))
            engine.upsert(
                chosen, ["u"] * len(chosen), [None] * len(chosen), unit(rng, len(chosen), 6)
            )
        else:
            engine.delete(list(rng.choice(ids, min(size, len(ids)), replace=False)))
        assert_in_step(engine)


def test_codes_cross_block_boundaries() -> None:
    rng = np.random.default_rng(2)
    engine = Engine(2, precision="int8")
    total = BLOCK + 100
    vectors = unit(rng, total, 2)
    for start, end in ((0, 5), (5, BLOCK - 3), (BLOCK - 3, total)):
        engine.upsert(
            [f"d{i}" for i in range(start, end)],
            ["t"] * (end - start),
            [None] * (end - start),
            vectors[start:end],
        )
    assert [block.shape[0] for block in engine._store.int8._blocks] == [2, 2]  # type: ignore[union-attr]
    assert engine._store.int8.export().codes.shape == (total, 2)  # type: ignore[union-attr]
    # Deleting from the first block moves rows over from the second, then drops the block.
    engine.delete([f"d{i}" for i in range(150)])
    assert_in_step(engine)
    assert len(engine._store.int8._blocks) == 1  # type: ignore[union-attr]
    assert engine._store.int8.export().codes.shape == (BLOCK - 50, 2)  # type: ignore[union-attr]


def test_scales_follow_the_data() -> None:
    engine = Engine(3, precision="int8")
    engine.upsert(["a"], ["t"], [None], np.array([[0.1, 0.2, 0.97]], dtype=np.float32))
    first = engine._store.int8.export().scales.copy()  # type: ignore[union-attr]
    assert np.allclose(first, 127 / np.array([0.1, 0.2, 0.97]))
    # A larger component clips under the old scales; with the count doubled, they are redone.
    engine.upsert(["b"], ["t"], [None], np.array([[0.9, 0.1, 0.42]], dtype=np.float32))
    second = engine._store.int8.export().scales  # type: ignore[union-attr]
    assert np.allclose(second, 127 / np.array([0.9, 0.2, 0.97]))
    assert_in_step(engine)


def exact_top(
    vectors: np.ndarray, query: np.ndarray, k: int, rows: np.ndarray | None = None
) -> list[int]:
    rows = np.arange(len(vectors)) if rows is None else rows
    scores = vectors[rows] @ query
    return [int(rows[i]) for i in np.argsort(-scores, kind="stable")[:k]]


@pytest.mark.usefixtures("int8_everywhere")
def test_int8_search_finds_the_exact_top_k_with_exact_scores() -> None:
    rng = np.random.default_rng(3)
    vectors = unit(rng, 3000, 32)
    ids = [f"d{i}" for i in range(3000)]
    engine = Engine.from_arrays(
        vectors.copy(), ids, ["t"] * 3000, [{"i": i} for i in range(3000)], precision="int8"
    )
    assert engine.precision == "int8"
    for query in unit(rng, 20, 32):
        hits = engine.search(query, 10)
        assert [doc.id for doc, _ in hits] == [f"d{i}" for i in exact_top(vectors, query, 10)]
        assert [score for _, score in hits] == pytest.approx(
            sorted(vectors @ query)[::-1][:10], abs=1e-6
        )


@pytest.mark.usefixtures("int8_everywhere")
def test_int8_filtered_search_matches_exact() -> None:
    rng = np.random.default_rng(4)
    vectors = unit(rng, 2000, 16)
    meta: list[dict[str, Any] | None] = [{"k": i % 4} for i in range(2000)]
    engine = Engine.from_arrays(
        vectors.copy(), [f"d{i}" for i in range(2000)], ["t"] * 2000, meta, precision="int8"
    )
    rows = np.flatnonzero(np.arange(2000) % 4 == 1)  # 25%: large enough for the int8 scan
    for query in unit(rng, 10, 16):
        hits = engine.search(query, 5, filter={"k": 1})
        assert [doc.id for doc, _ in hits] == [f"d{i}" for i in exact_top(vectors, query, 5, rows)]


def test_precision_can_be_switched_and_is_checked() -> None:
    rng = np.random.default_rng(5)
    vectors = unit(rng, 50, 8)
    engine = Engine.from_arrays(vectors, [f"d{i}" for i in range(50)], ["t"] * 50, [None] * 50)
    assert engine.precision == "float32" and engine.export_all().int8 is None
    engine.set_precision("int8")
    assert engine.precision == "int8"
    assert_in_step(engine)
    assert engine.export_all().int8 is not None
    engine.set_precision("float32")
    assert engine._store.int8 is None
    with pytest.raises(InvalidArgumentError, match="precision must be one of"):
        Engine(8, precision="float16")
    with pytest.raises(InvalidArgumentError, match="precision must be one of"):
        engine.set_precision("bf16")


def test_from_arrays_adopts_stored_codes_and_refuses_mismatched_ones() -> None:
    rng = np.random.default_rng(6)
    vectors = unit(rng, 40, 8)
    stored = Int8Index.build(vectors).export()
    engine = Engine.from_arrays(
        vectors,
        [f"d{i}" for i in range(40)],
        ["t"] * 40,
        [None] * 40,
        precision="int8",
        int8=stored,
    )
    assert np.array_equal(codes_of(engine._store.int8), stored.codes)  # type: ignore[arg-type]
    wrong = Int8Codes(stored.codes, stored.scales)  # codes of 40 vectors, not 39
    with pytest.raises(InvalidArgumentError, match="int8 codes do not fit"):
        Engine.from_arrays(
            vectors[:39].copy(),
            [f"d{i}" for i in range(39)],
            ["t"] * 39,
            [None] * 39,
            precision="int8",
            int8=wrong,
        )
    # float32 engines ignore codes.
    plain = Engine.from_arrays(
        vectors.copy(), [f"d{i}" for i in range(40)], ["t"] * 40, [None] * 40, int8=stored
    )
    assert plain.precision == "float32"


def test_export_is_a_copy() -> None:
    rng = np.random.default_rng(7)
    engine = Engine(4, precision="int8")
    engine.upsert(["a", "b"], ["t", "t"], [None, None], unit(rng, 2, 4))
    exported = engine.export_all().int8
    assert exported is not None
    before = exported.codes.copy()
    engine.upsert(["a"], ["t"], [None], unit(rng, 1, 4))
    engine.delete(["b"])
    assert np.array_equal(before, exported.codes)


def test_cached_filter_rows_are_dropped_by_writes() -> None:
    rng = np.random.default_rng(8)
    engine = Engine(4)
    engine.upsert(["a", "b", "c"], ["t"] * 3, [{"k": 1}, {"k": 2}, {"k": 1}], unit(rng, 3, 4))
    query = unit(rng, 1, 4)[0]

    def found(flt: dict[str, Any]) -> set[str]:
        return {doc.id for doc, _ in engine.search(query, 10, filter=flt)}

    assert found({"k": 1}) == {"a", "c"}
    engine.upsert(["b"], ["t"], [{"k": 1}], unit(rng, 1, 4))  # metadata changed
    assert found({"k": 1}) == {"a", "b", "c"}
    engine.delete(["a"])  # rows moved
    assert found({"k": 1}) == {"b", "c"}
    assert {doc.id for doc in engine.get(filter={"k": 1})} == {"b", "c"}
    # Same filter written differently: same answer.
    assert found({"k": {"$eq": 1}}) == found({"field": "k", "condition": {"$eq": 1}}) == {"b", "c"}


def test_stored_codes_become_kernel_blocks_across_block_boundaries() -> None:
    rng = np.random.default_rng(9)
    vectors = unit(rng, BLOCK + 7, 3)
    built = Int8Index.build(vectors)
    stored = built.export()
    assert stored.codes.shape == (BLOCK + 7, 3) and stored.codes.flags.c_contiguous
    adopted = Int8Index.from_codes(stored, BLOCK + 7, 3)
    # Adopted as they are: the blocks are built by the first scan.
    assert adopted._blocks == [] and adopted.export().codes is stored.codes
    queries = unit(rng, 2, 3)
    assert np.array_equal(adopted.scores(queries), built.scores(queries))
    assert [block.shape for block in adopted._blocks] == [(3, BLOCK), (3, 7)]
    assert np.array_equal(adopted._sums, stored.codes.sum(axis=1, dtype=np.int32))
    assert np.array_equal(adopted.export().codes, stored.codes)


def test_faster_kernel_is_decided_by_timing() -> None:
    calls: list[str] = []

    def slow() -> None:
        calls.append("slow")
        time.sleep(0.004)

    def fast() -> None:
        calls.append("fast")

    assert ranking.faster_kernel(fast, slow) is True
    assert ranking.faster_kernel(slow, fast) is False
    # One warm-up and three timed runs of each, per decision.
    assert calls.count("slow") == calls.count("fast") == 8


def test_int8_engine_falls_back_to_exact_float32_when_int8_loses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(search_plan, "_INT8_MIN_ROWS", 0)
    monkeypatch.setattr(ranking, "_verdicts", {})
    decisions: list[int] = []

    def int8_loses(int8: Any, exact: Any) -> bool:
        decisions.append(1)
        return False

    monkeypatch.setattr(ranking, "faster_kernel", int8_loses)

    def no_scan(self: Int8Index, queries: np.ndarray) -> np.ndarray:
        raise AssertionError("the int8 scan ran although it measured slower")

    monkeypatch.setattr(Int8Index, "scores", no_scan)
    rng = np.random.default_rng(10)
    vectors = unit(rng, 500, 16)
    engine = Engine.from_arrays(
        vectors.copy(), [f"d{i}" for i in range(500)], ["t"] * 500, [None] * 500, precision="int8"
    )
    queries = unit(rng, 5, 16)
    for query in queries:
        hits = engine.search(query, 7)
        assert [doc.id for doc, _ in hits] == [f"d{i}" for i in exact_top(vectors, query, 7)]
    batched = engine.search_many(queries, 7)
    assert [[doc.id for doc, _ in hits] for hits in batched] == [
        [f"d{i}" for i in exact_top(vectors, query, 7)] for query in queries
    ]
    assert engine.precision == "int8"
    # Measured once for single queries and once for batches, then remembered.
    assert len(decisions) == 2


def test_adopted_codes_are_exported_uncopied_until_a_write_changes_them() -> None:
    rng = np.random.default_rng(11)
    vectors = unit(rng, 30, 4)
    stored = Int8Index.build(vectors).export()
    engine = Engine.from_arrays(
        vectors.copy(),
        [f"d{i}" for i in range(30)],
        ["t"] * 30,
        [None] * 30,
        precision="int8",
        int8=stored,
    )
    first = engine.export_all().int8
    assert first is not None and first.codes is stored.codes and not first.codes.flags.writeable
    before = stored.codes.copy()
    engine.upsert(["d3"], ["t"], [None], unit(rng, 1, 4))
    engine.delete(["d0"])
    assert np.array_equal(stored.codes, before)  # never written in place
    assert_in_step(engine)
    after = engine.export_all().int8
    assert after is not None and after.codes is not stored.codes and len(after.codes) == 29


@pytest.mark.usefixtures("int8_everywhere")
def test_int8_search_many_with_filters_matches_search() -> None:
    rng = np.random.default_rng(13)
    count = 4000
    vectors = unit(rng, count, 16)
    meta: list[dict[str, Any] | None] = [{"k": i % 2} for i in range(count)]
    ids = [f"d{i}" for i in range(count)]
    engine = Engine.from_arrays(vectors.copy(), ids, ["t"] * count, meta, precision="int8")
    queries = unit(rng, 70, 16)  # more than one block of queries
    rows = np.flatnonzero(np.arange(count) % 2 == 1)
    for flt, min_score in ((None, None), ({"k": 1}, 0.2)):
        many = engine.search_many(queries, 5, filter=flt, min_score=min_score)
        assert len(many) == 70
        for query, hits in zip(queries, many, strict=True):
            assert hits == engine.search(query, 5, filter=flt, min_score=min_score)
            top = exact_top(vectors, query, 5, None if flt is None else rows)
            want = [f"d{i}" for i in top if min_score is None or vectors[i] @ query >= min_score]
            assert [doc.id for doc, _ in hits] == want
