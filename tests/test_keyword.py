"""The keyword index: analyzer, BM25 scores, filters, and incremental writes equal to a rebuild."""

from __future__ import annotations

import math
from unittest import mock

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from moss import SnapshotError
from moss.index import keyword
from moss.index.analyzer import TermIds, analyze
from moss.index.filters import compile_filter
from moss.index.keyword import KeywordIndex
from moss.snapshot.keywords import decode_keywords, encode_keywords


def test_analyzer_lowercases_stems_and_drops_stop_words() -> None:
    assert analyze("The Studies were RUNNING") == ["studi", "run"]
    assert analyze("") == []
    assert analyze("the and of") == []


def test_analyzer_keeps_codes_whole_beside_their_parts() -> None:
    terms = analyze("Order ORD-1234 failed with E_TIMEOUT at v2.3.1")
    assert {"ord-1234", "ord", "1234", "e_timeout", "timeout", "v2.3.1"} <= set(terms)
    # Unicode letters are letters: a Greek-letter gene name stays findable.
    assert {"β-catenin", "β", "catenin"} <= set(analyze("β-catenin"))


@given(st.text(alphabet=st.sampled_from("ab1 -_./:#@ÉéThe"), max_size=40))
def test_fast_term_ids_agree_with_the_reference_analyzer(text: str) -> None:
    ids = TermIds()
    got = [i for i in ids.of_text(text) if i >= 0]
    names = {v: k for k, v in ids.terms.items()}
    assert sorted(names[i] for i in got) == sorted(analyze(text))


def test_bm25_scores_match_the_formula() -> None:
    index = KeywordIndex.build(
        ["a", "b", "c"], ["refund refund order", "order shipped", "weather report"], [None] * 3
    )
    scores = index.scores("refund")
    # Only "a" holds the term: df 1 of N 3; a has 3 terms, the average is 7/3.
    idf = math.log(1 + (3 - 1 + 0.5) / (1 + 0.5))
    norm = 1.2 * (1 - 0.75 + 0.75 * 3 / (7 / 3))
    assert scores == {"a": idf * 2 * 2.2 / (2 + norm)}
    assert index.scores("nothing matches") == {}


def test_exact_code_ranks_first_and_a_near_code_shares_only_its_parts() -> None:
    index = KeywordIndex.build(
        ["x", "y", "z"],
        ["order ORD-1235 shipped", "order ORD-1234 refunded", "orders ship daily"],
        [None] * 3,
    )
    ranked = index.search("ORD-1234", 3)
    assert ranked[0][0] == "y"
    assert [doc_id for doc_id, _ in ranked] == ["y", "x"]  # z shares no term
    assert ranked[0][1] > 2 * ranked[1][1]  # the whole code weighs more than its parts


def test_filter_applies_before_ranking() -> None:
    index = KeywordIndex.build(
        [f"d{i}" for i in range(30)],
        ["refund refund" if i < 25 else "refund" for i in range(30)],
        [{"team": "a" if i < 25 else "b"} for i in range(30)],
    )
    found = index.search("refund", 3, compile_filter({"team": "b"}))
    assert [doc_id for doc_id, _ in found] == ["d25", "d26", "d27"]


def test_upsert_replaces_and_delete_forgets() -> None:
    index = KeywordIndex.build(["a", "b"], ["apple pie", "banana bread"], [None, None])
    index.upsert(["a", "a"], ["cherry tart", "plum cake"], [None, None])  # last one wins
    assert len(index) == 2
    assert index.scores("apple") == {} and index.scores("cherry") == {}
    assert set(index.scores("plum")) == {"a"}
    index.delete(["b", "missing"])
    assert len(index) == 1 and index.scores("banana") == {}
    assert index.search("plum cake", 5)[0][0] == "a"


_WORDS = ["refund", "refunds", "order", "ORD-1234", "ord-1235", "shipping", "the", "delay", "x"]
_doc_text = st.lists(st.sampled_from(_WORDS), max_size=6).map(" ".join)
_doc_id = st.sampled_from([f"id{i}" for i in range(12)])
_op = st.one_of(
    st.tuples(st.just("upsert"), st.lists(st.tuples(_doc_id, _doc_text), max_size=5)),
    st.tuples(st.just("delete"), st.lists(_doc_id, max_size=4)),
)
_QUERIES = ["refund", "ORD-1234", "order delay", "shipping refunds the", "x ord-1235", "nothing"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_op, max_size=12))
def test_writes_keep_the_index_equal_to_a_rebuild(ops: list[tuple[str, list]]) -> None:  # type: ignore[type-arg]
    # Small thresholds make segment merges and slot packing happen inside a dozen writes.
    with mock.patch.object(keyword, "_MIN_PACK", 2), mock.patch.object(keyword, "_MERGE_RATIO", 2):
        index = KeywordIndex()
        docs: dict[str, str] = {}
        for kind, items in ops:
            if kind == "upsert":
                ids = [doc_id for doc_id, _ in items]
                texts = [text for _, text in items]
                index.upsert(ids, texts, [{"n": len(t)} for t in texts])
                docs.update(items)
            else:
                index.delete(items)
                for doc_id in items:
                    docs.pop(doc_id, None)
        fresh = KeywordIndex.build(
            list(docs), list(docs.values()), [{"n": len(t)} for t in docs.values()]
        )
    assert len(index) == len(fresh) == len(docs)
    flt = compile_filter({"n": {"$gt": 10}})
    for query in _QUERIES:
        assert index.scores(query) == fresh.scores(query)  # bit-identical, not approximately
        assert index.search(query, 3) == fresh.search(query, 3)
        assert index.search(query, 3, flt) == fresh.search(query, 3, flt)


def test_many_batches_merge_into_few_segments() -> None:
    index = KeywordIndex()
    for i in range(200):
        index.upsert([f"d{i}"], [f"word{i % 7} common"], [None])
    assert len(index._segments) <= 8  # binary-counter merging: O(log n) segments
    index.delete([f"d{i}" for i in range(150)])
    assert len(index) == 50
    assert set(index.scores("word3")) == {f"d{i}" for i in range(150, 200) if i % 7 == 3}


def test_section_round_trip_in_snapshot_row_order() -> None:
    index = KeywordIndex()
    for i in range(40):
        index.upsert([f"d{i}"], [f"{_WORDS[i % len(_WORDS)]} order {i} ORD-{i}"], [{"i": i}])
    index.delete([f"d{i}" for i in range(0, 40, 3)])
    rows = sorted((f"d{i}" for i in range(40) if i % 3), reverse=True)  # any row order
    metadata = [{"i": int(r[1:])} for r in rows]
    decoded = decode_keywords(encode_keywords(index, rows), rows, metadata)
    for query in [*_QUERIES, "ORD-7", "order 13"]:
        assert decoded.scores(query) == index.scores(query)
    flt = compile_filter({"i": {"$gt": 20}})
    assert decoded.search("order", 5, flt) == index.search("order", 5, flt)
    # It keeps working as a live index.
    for live in (index, decoded):
        live.upsert(["d1", "new"], ["refund ORD-99", "order x"], [None, None])
        live.delete(["d2"])
    assert decoded.scores("refund ORD-99 order") == index.scores("refund ORD-99 order")


def test_damaged_sections_are_refused() -> None:
    index = KeywordIndex.build(["a", "b"], ["refund order", "late parcel"], [None, None])
    blob = encode_keywords(index, ["a", "b"])
    with pytest.raises(SnapshotError, match="covers 2 documents"):
        decode_keywords(blob, ["a"], [None])
    for cut in (4, 20, len(blob) - 3):
        with pytest.raises(SnapshotError):
            decode_keywords(blob[:cut], ["a", "b"], [None, None])
    flipped = bytearray(blob)
    flipped[-5] ^= 0x7F  # a term frequency
    with pytest.raises(SnapshotError, match="damaged"):
        decode_keywords(bytes(flipped), ["a", "b"], [None, None])
