"""Hybrid queries through sessions: alpha, cosine scores, filters, writes, snapshots, many indexes."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from moss import (
    DocumentInfo,
    FileStore,
    InvalidArgumentError,
    ModelMismatchError,
    MossClient,
    QueryOptions,
    Session,
)
from moss.index.fusion import RRF_K
from moss.index.keyword import KeywordIndex
from snapshots import snapshot_bytes

DIM = 8


def vec(seed: int) -> list[float]:
    return np.random.default_rng(seed).standard_normal(DIM).tolist()  # type: ignore[no-any-return]


def unit(values: list[float]) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    normalized: np.ndarray = array / np.linalg.norm(array)
    return normalized


TEXTS = [f"ticket {i} about a late parcel" for i in range(30)] + ["refund for order ORD-7731"]
IDS = [f"t{i}" for i in range(30)] + ["hit"]


@pytest.fixture
def client(tmp_path: Path) -> Any:
    with MossClient(store=tmp_path / "store") as made:
        yield made


@pytest.fixture
def session(client: MossClient) -> Session:
    made = client.sync.session("tickets", model_id="custom")
    made.sync.add_docs(
        DocumentInfo(id=i, text=t, metadata={"n": n}, embedding=vec(n))
        for n, (i, t) in enumerate(zip(IDS, TEXTS, strict=True))
    )
    return made


def ask(session: Session, text: str, seed: int = 500, **options: Any) -> list[Any]:
    return session.sync.query(text, QueryOptions(embedding=vec(seed), **options)).docs


def test_keyword_only_finds_the_code_with_its_cosine_as_score(session: Session) -> None:
    by_vector = ask(session, "ORD-7731", alpha=1.0, top_k=1)
    assert [d.id for d in by_vector] != ["hit"]
    found = ask(session, "ORD-7731", alpha=0.0, top_k=3)
    assert [d.id for d in found] == ["hit"]  # no other document shares a term
    assert found[0].score == pytest.approx(float(unit(vec(500)) @ unit(vec(30))), abs=1e-6)
    assert found[0].fused_score == pytest.approx(1 / (RRF_K + 1))
    assert found[0].index_name == "tickets"


def test_vector_only_does_no_keyword_work_and_has_no_fused_score(session: Session) -> None:
    docs = ask(session, "ORD-7731", alpha=1.0, top_k=5)
    assert all(d.fused_score is None for d in docs)
    assert [d.score for d in docs] == sorted((d.score for d in docs), reverse=True)
    assert session._keywords is None  # never built
    ask(session, "ORD-7731", alpha=0.5)
    assert session._keywords is not None


def test_blend_is_the_weighted_rrf_of_both_rankings(session: Session) -> None:
    alpha = 0.3
    vector = [d.id for d in ask(session, "late parcel ORD-7731", alpha=1.0, top_k=20)]
    keyword = [d.id for d in ask(session, "late parcel ORD-7731", alpha=0.0, top_k=20)]
    blended = ask(session, "late parcel ORD-7731", alpha=alpha, top_k=5)

    def fused(doc_id: str) -> float:
        value = alpha / (RRF_K + vector.index(doc_id) + 1) if doc_id in vector else 0.0
        if doc_id in keyword:
            value += (1 - alpha) / (RRF_K + keyword.index(doc_id) + 1)
        return value

    expected = sorted(set(vector) | set(keyword), key=lambda i: -fused(i))[:5]
    assert [d.id for d in blended] == expected
    for doc in blended:
        assert doc.fused_score == pytest.approx(fused(doc.id))
        assert doc.score == pytest.approx(float(unit(vec(500)) @ unit(vec(IDS.index(doc.id)))))


def test_filters_and_min_score_apply_to_the_keyword_side(session: Session) -> None:
    only_low = {"n": {"$lt": 5}}
    docs = ask(session, "ticket parcel ORD-7731", alpha=0.0, top_k=10, filter=only_low)
    assert {d.id for d in docs} == {"t0", "t1", "t2", "t3", "t4"}
    assert ask(session, "ORD-7731", alpha=0.0, filter=only_low) == []
    cosine = float(unit(vec(500)) @ unit(vec(30)))
    assert ask(session, "ORD-7731", alpha=0.0, min_score=cosine + 0.01) == []
    assert [d.id for d in ask(session, "ORD-7731", alpha=0.0, min_score=cosine - 0.01)] == ["hit"]
    blended = ask(session, "ticket parcel", alpha=0.5, top_k=31, min_score=0.2)
    assert blended and all(d.score >= 0.2 for d in blended)


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan, True, "0.5", None])
def test_bad_alpha_is_refused(session: Session, bad: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="alpha"):
        ask(session, "x", alpha=bad)


async def test_async_query_blends_like_sync(session: Session) -> None:
    options = QueryOptions(embedding=vec(500), alpha=0.4, top_k=4)
    assert (await session.aio.query("late ORD-7731", options)).docs == session.sync.query(
        "late ORD-7731", options
    ).docs


def test_empty_session_answers_hybrid_queries(client: MossClient) -> None:
    empty = client.sync.session("empty", model_id="custom")
    assert empty.sync.query("anything", QueryOptions(alpha=0.0, embedding=vec(1))).docs == []


def test_writes_after_the_first_keyword_query_keep_it_current(session: Session) -> None:
    ask(session, "warm", alpha=0.0)
    session.sync.add_docs([DocumentInfo(id="new", text="invoice INV-2", embedding=vec(77))])
    assert ask(session, "INV-2", alpha=0.0)[0].id == "new"
    session.sync.add_docs([DocumentInfo(id="new", text="credit note", embedding=vec(77))])
    assert "new" not in [d.id for d in ask(session, "INV-2", alpha=0.0)]
    assert [d.id for d in ask(session, "credit", alpha=0.0)] == ["new"]
    session.sync.delete_docs(["hit"])
    assert ask(session, "ORD-7731", alpha=0.0) == []


_WORDS = ["refund", "order", "ORD-1", "ORD-2", "parcel", "late", "the"]
_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"),
            st.lists(
                st.tuples(st.integers(0, 9), st.lists(st.sampled_from(_WORDS), max_size=5)),
                max_size=4,
            ),
        ),
        st.tuples(st.just("delete"), st.lists(st.integers(0, 9), max_size=3)),
    ),
    max_size=10,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_ops)
def test_session_writes_keep_the_keyword_index_equal_to_a_rebuild(ops: Any) -> None:
    with tempfile.TemporaryDirectory() as home, MossClient(store=Path(home)) as client:
        session = client.sync.session("h", model_id="custom")
        session.sync.add_docs([DocumentInfo(id="seed", text="refund", embedding=vec(0))])
        ask(session, "warm", alpha=0.0)  # from here on, writes maintain the index
        for kind, items in ops:
            if kind == "add":
                session.sync.add_docs(
                    DocumentInfo(id=f"d{i}", text=" ".join(words), embedding=vec(i))
                    for i, words in items
                )
            else:
                session.sync.delete_docs([f"d{i}" for i in items])
        docs = session.sync.get_docs()
        fresh = KeywordIndex.build([d.id for d in docs], [d.text for d in docs], [None] * len(docs))
        index = session._keywords
        assert index is not None and len(index) == len(docs)
        for query in ("refund ORD-1", "parcel late order", "ORD-2"):
            assert index.scores(query) == fresh.scores(query)


def test_snapshot_round_trip_gives_identical_rankings(session: Session, tmp_path: Path) -> None:
    session.sync.push_index()
    with MossClient(store=tmp_path / "store") as other:
        reopened = other.sync.session("tickets")
        for alpha in (1.0, 0.7, 0.4, 0.0):
            for text in ("late parcel", "ORD-7731 refund", "ticket 7"):
                assert ask(reopened, text, alpha=alpha, top_k=8) == ask(
                    session, text, alpha=alpha, top_k=8
                )


def test_refresh_rebuilds_the_keyword_index_and_replays_local_changes(
    session: Session, tmp_path: Path
) -> None:
    session.sync.push_index()
    ask(session, "warm", alpha=0.0)
    with MossClient(store=tmp_path / "store") as other:
        writer = other.sync.session("tickets")
        writer.sync.add_docs([DocumentInfo(id="remote", text="remote ZX-9", embedding=vec(91))])
        writer.sync.push_index()
    session.sync.add_docs([DocumentInfo(id="local", text="local QQ-5", embedding=vec(92))])
    assert session.sync.refresh()
    assert [d.id for d in ask(session, "remote", alpha=0.0)] == ["remote"]
    assert [d.id for d in ask(session, "local", alpha=0.0)] == ["local"]


def test_snapshots_written_before_keyword_search_still_open(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "old")
    store.put("default", "old", [snapshot_bytes("old", count=5)])
    with MossClient(store=store) as client:
        old = client.sync.session("old")
        found = old.sync.query("text 3", QueryOptions(alpha=0.0, embedding=vec(1), top_k=5))
        # Every document shares "text" and "seed"; only doc-3 also has "3".
        assert found.docs[0].id == "doc-3" and len(found.docs) == 5
    store.close()


def test_query_multi_index_returns_the_global_top_k_with_index_names(client: MossClient) -> None:
    a = client.sync.session("a", model_id="custom")
    b = client.sync.session("b", model_id="custom")
    a.sync.add_docs(DocumentInfo(id=f"x{i}", text=f"alpha {i}", embedding=vec(i)) for i in range(6))
    b.sync.add_docs(
        DocumentInfo(id=f"x{i}", text=f"beta {i}", embedding=vec(i + 6)) for i in range(6)
    )
    options = QueryOptions(embedding=vec(500), alpha=1.0, top_k=4)
    found = client.sync.query_multi_index(["a", "b"], "q", options)
    both = [(d.index_name, d.id, d.score) for d in a.sync.query("q", options).docs]
    both += [(d.index_name, d.id, d.score) for d in b.sync.query("q", options).docs]
    assert [(d.index_name, d.id, d.score) for d in found.docs] == sorted(both, key=lambda t: -t[2])[
        :4
    ]
    assert found.index_name == "a,b"
    keyword = client.sync.query_multi_index(
        ["a", "b"], "beta 2", QueryOptions(embedding=vec(1), alpha=0.0)
    )
    assert (keyword.docs[0].index_name, keyword.docs[0].id) == ("b", "x2")


async def test_query_multi_index_async_twin_and_errors(client: MossClient) -> None:
    a = await client.session("a", model_id="custom")
    await a.add_docs([DocumentInfo(id="one", text="code AB-1", embedding=vec(1))])
    b = await client.session("b", model_id="custom")
    await b.add_docs([DocumentInfo(id="two", text="code AB-2", embedding=vec(2))])
    options = QueryOptions(embedding=vec(2), alpha=0.5, top_k=2)
    found = await client.query_multi_index(["a", "b"], "AB-2", options)
    assert [(d.index_name, d.id) for d in found.docs] == [("b", "two"), ("a", "one")]
    assert found.docs == client.sync.query_multi_index(["a", "b"], "AB-2", options).docs
    with pytest.raises(InvalidArgumentError, match="not open"):
        await client.query_multi_index(["a", "never-opened"], "x", options)
    await b.close()
    with pytest.raises(InvalidArgumentError, match="not open"):
        await client.query_multi_index(["a", "b"], "x", options)
    with pytest.raises(InvalidArgumentError, match="non-empty list"):
        await client.query_multi_index("a", "x", options)
    m = await client.session("m", model_id="moss-minilm")  # kept: the client holds sessions weakly
    with pytest.raises(ModelMismatchError, match="one embedding model"):
        await client.query_multi_index(["a", "m"], "x", options)
    assert m.doc_count == 0


TICKETS = {
    "a": "Customer asked about order ORD-48213: the blue kettle arrived damaged.",
    "b": "Customer asked about order ORD-48231: the blue kettle arrived damaged.",
    "c": "Customer asked about order ORD-42813: the blue kettle arrived late.",
    "d": "Customer asked about order ORD-84213: the kettle arrived damaged.",
    "e": "Error E_TIMEOUT_4412 when the payment gateway did not answer.",
    "f": "Error E_TIMEOUT_4421 when the payment gateway was slow.",
    "g": "Ticket about a damaged kettle delivered to the wrong address.",
}


@pytest.mark.model
@pytest.mark.parametrize(
    ("query", "wanted"),
    [("ORD-48213", "a"), ("order ORD-48213", "a"), ("E_TIMEOUT_4421", "f")],
)
def test_keyword_search_finds_exact_codes_that_the_real_model_misses(
    client: MossClient, query: str, wanted: str
) -> None:
    session = client.sync.session("codes", model_id="moss-minilm")
    session.sync.add_docs([DocumentInfo(id=k, text=v) for k, v in TICKETS.items()])
    top = {
        alpha: session.sync.query(query, QueryOptions(top_k=1, alpha=alpha)).docs[0].id
        for alpha in (1.0, 0.0, QueryOptions().alpha)
    }
    # Near-identical codes embed alike: the model ranks a sibling first; BM25 and the blend do not.
    assert top == {1.0: top[1.0], 0.0: wanted, QueryOptions().alpha: wanted}
    assert top[1.0] != wanted


async def test_pushed_keyword_index_is_carried_and_ranks_identically(tmp_path: Path) -> None:
    client = MossClient("carry", store=FileStore(tmp_path / "carry"))
    session = await client.session("kw", model_id="custom")
    rng = np.random.default_rng(3)
    await session.add_docs(
        [
            DocumentInfo(
                id=f"d{i}",
                text=f"ticket {i} code ERR-{i % 7} refund",
                embedding=rng.standard_normal(8),
            )
            for i in range(40)
        ]
    )
    options = QueryOptions(top_k=10, alpha=0.0, embedding=rng.standard_normal(8))
    before = await session.query("ERR-3 refund", options)  # builds the keyword index
    await session.push_index()
    reopened = await client.session("kw")
    assert reopened._keywords is not None  # carried by the snapshot, not rebuilt
    after = await reopened.query("ERR-3 refund", options)
    assert [(d.id, d.score) for d in after.docs] == [(d.id, d.score) for d in before.docs]
