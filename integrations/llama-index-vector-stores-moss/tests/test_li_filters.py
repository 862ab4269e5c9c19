"""MetadataFilters on MossVectorStore: SimpleVectorStore's results, and a brute-force reference for nesting."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores import SimpleVectorStore
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)
from llama_index.core.vector_stores.utils import build_metadata_filter_fn
from llama_index.vector_stores.moss import MossVectorStore
from llama_index.vector_stores.moss._filters import translate

from moss import DocumentInfo, InvalidArgumentError, MossClient

DIM = 8
OPS = FilterOperator
COND = FilterCondition
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- metadata: each key keeps one kind of value, so SimpleVectorStore never raises ----------

words = st.sampled_from(["red", "green", "blue", "Red", "re", "", "teal green"])
numbers = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, 1.0, -1.5, 2.25]))
word_lists = st.lists(st.sampled_from(["a", "b", "c", "ab"]), max_size=3)
number_lists = st.lists(st.integers(0, 4), max_size=3)

MISSING = object()
KEY_VALUES = {
    "n": st.one_of(numbers, st.none(), st.just(MISSING)),
    "flag": st.one_of(st.booleans(), st.just(MISSING)),
    "s": st.one_of(words, st.none(), st.just(MISSING)),
    "tags": st.one_of(word_lists, st.just(MISSING)),
    "nums": st.one_of(number_lists, st.just(MISSING)),
}


@st.composite
def metadata(draw: st.DrawFn) -> dict[str, Any]:
    drawn = {key: draw(values) for key, values in KEY_VALUES.items()}
    return {key: value for key, value in drawn.items() if value is not MISSING}


# --- filters: per key, the operators and values SimpleVectorStore evaluates without raising --

ORDER_OPS = [OPS.EQ, OPS.NE, OPS.GT, OPS.GTE, OPS.LT, OPS.LTE]
flag_numbers = st.sampled_from([0, 1, 2, -1, 0.5, 1.0])


def _leaf(key: str, ops: list[FilterOperator], values: st.SearchStrategy[Any]) -> Any:
    return st.builds(MetadataFilter, key=st.just(key), operator=st.sampled_from(ops), value=values)


LEAVES = st.one_of(
    _leaf("n", ORDER_OPS, numbers),
    _leaf("n", [OPS.IN, OPS.NIN], st.lists(st.integers(-3, 3), max_size=3)),
    _leaf("flag", ORDER_OPS, flag_numbers),
    _leaf("flag", [OPS.IN, OPS.NIN], st.lists(st.integers(-1, 2), max_size=3)),
    _leaf("s", ORDER_OPS, words),
    _leaf("s", [OPS.IN, OPS.NIN, OPS.ANY, OPS.ALL], st.lists(words, max_size=3)),
    _leaf("s", [OPS.CONTAINS, OPS.TEXT_MATCH, OPS.TEXT_MATCH_INSENSITIVE], words),
    _leaf("tags", [OPS.CONTAINS, OPS.EQ, OPS.NE], st.sampled_from(["a", "b", "ab"])),
    _leaf("tags", [OPS.ANY, OPS.ALL, OPS.NIN], word_lists),
    _leaf("nums", [OPS.CONTAINS], st.integers(0, 4)),
    _leaf("nums", [OPS.ANY, OPS.ALL], number_lists),
    _leaf("missing", [OPS.EQ, OPS.NE, OPS.GT], numbers),
    st.builds(
        MetadataFilter,
        key=st.sampled_from(list(KEY_VALUES)),
        operator=st.just(OPS.IS_EMPTY),
        value=st.none(),
    ),
)
conditions = st.sampled_from([COND.AND, COND.OR, COND.NOT])
flat_filters = st.builds(
    MetadataFilters, filters=st.lists(LEAVES, min_size=1, max_size=3), condition=conditions
)
nested_filters = st.recursive(
    flat_filters,
    lambda children: st.builds(
        MetadataFilters,
        filters=st.lists(st.one_of(LEAVES, children), min_size=0, max_size=3),
        condition=st.one_of(conditions, st.none()),
    ),
    max_leaves=8,
)


def reference(node: MetadataFilter | MetadataFilters, meta: dict[str, Any]) -> bool:
    """LlamaIndex's own leaf semantics (build_metadata_filter_fn), combined by hand for nesting."""
    if isinstance(node, MetadataFilters):
        if not node.filters:
            return True
        results = [reference(child, meta) for child in node.filters]
        condition = node.condition or COND.AND
        if condition == COND.AND:
            return all(results)
        if condition == COND.OR:
            return any(results)
        return not any(results)
    leaf = build_metadata_filter_fn(lambda _: meta, MetadataFilters(filters=[node]))
    try:
        return leaf("node")
    except TypeError:  # SimpleVectorStore's crash on unordered types: no match here
        return False


# --- corpus -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MossClient]:
    # Sessions opened on new names never touch the store, so one client serves every example.
    with MossClient(store=tmp_path_factory.mktemp("filters-store")) as made:
        yield made


def _nodes(metas: list[dict[str, Any]], seed: int) -> list[TextNode]:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(len(metas), DIM))
    return [
        TextNode(id_=f"node-{i:02d}", text=f"text {i}", metadata=meta, embedding=vector.tolist())
        for i, (meta, vector) in enumerate(zip(metas, vectors, strict=True))
    ]


def _moss(client: MossClient, nodes: list[TextNode]) -> MossVectorStore:
    store = MossVectorStore(f"filters-{uuid.uuid4().hex}", client=client, model_id="custom")
    store.add(nodes)
    return store


def _simple(nodes: list[TextNode]) -> SimpleVectorStore:
    store = SimpleVectorStore()
    store.add(nodes)
    return store


def assert_same_ranking(
    got_ids: list[str], got: list[float], want_ids: list[str], want: list[float]
) -> None:
    """Same ids in the same order, with the same scores; only near-ties may swap places."""
    assert len(got_ids) == len(want_ids)
    assert got == pytest.approx(want, abs=1e-5)
    for i, (a, b) in enumerate(zip(got_ids, want_ids, strict=True)):
        if a != b:
            near = [j for j in range(len(want)) if abs(want[j] - want[i]) < 1e-5]
            assert a in [want_ids[j] for j in near], (got_ids, want_ids)


# --- tests --------------------------------------------------------------------------------


@SETTINGS
@given(
    metas=st.lists(metadata(), min_size=1, max_size=25),
    flt=flat_filters,
    k=st.integers(1, 8),
    seed=st.integers(0, 2**16),
)
def test_results_equal_simple_vector_store(
    shared_client: MossClient, metas: list[dict[str, Any]], flt: MetadataFilters, k: int, seed: int
) -> None:
    nodes = _nodes(metas, seed)
    query_vector = np.random.default_rng(seed + 1).normal(size=DIM).tolist()
    query = VectorStoreQuery(query_embedding=query_vector, similarity_top_k=k, filters=flt)
    want = _simple(nodes).query(query)
    got = _moss(shared_client, nodes).query(query)
    assert want.ids is not None and want.similarities is not None
    assert got.ids is not None and got.similarities is not None
    assert_same_ranking(got.ids, got.similarities, want.ids, want.similarities)


@SETTINGS
@given(
    metas=st.lists(metadata(), min_size=1, max_size=25),
    flt=nested_filters,
    k=st.integers(1, 8),
    seed=st.integers(0, 2**16),
)
def test_nested_filters_return_the_true_top_k_of_matching_nodes(
    shared_client: MossClient, metas: list[dict[str, Any]], flt: MetadataFilters, k: int, seed: int
) -> None:
    nodes = _nodes(metas, seed)
    query_vector = np.random.default_rng(seed + 1).normal(size=DIM)
    store = _moss(shared_client, nodes)
    got = store.query(
        VectorStoreQuery(query_embedding=query_vector.tolist(), similarity_top_k=k, filters=flt)
    )

    unit = query_vector / np.linalg.norm(query_vector)
    scored = [
        (
            float(np.dot(node.get_embedding(), unit) / np.linalg.norm(node.get_embedding())),
            node.node_id,
        )
        for node in nodes
        if reference(flt, node.metadata)
    ]
    scored.sort(key=lambda pair: (-pair[0], pair[1]))
    want_ids = [node_id for _, node_id in scored[:k]]
    assert got.ids is not None and got.similarities is not None
    assert_same_ranking(got.ids, got.similarities, want_ids, [score for score, _ in scored[:k]])
    # get_nodes and delete_nodes select the same nodes as the query's filter.
    selected = {node.node_id for node in store.get_nodes(filters=flt)}
    assert selected == {node.node_id for node in nodes if reference(flt, node.metadata)}
    store.delete_nodes(filters=flt)
    assert {node.node_id for node in store.get_nodes()} == {n.node_id for n in nodes} - selected


any_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 2),
    st.sampled_from([0.0, 1.0, 0.5]),
    words,
    st.lists(st.one_of(st.booleans(), st.integers(0, 2), words), max_size=3),
    st.dictionaries(st.sampled_from(["x"]), st.integers(0, 1), max_size=1),
)
mixed_metadata = st.dictionaries(st.sampled_from(["n", "flag", "s", "tags"]), any_value, max_size=4)


@SETTINGS
@given(metas=st.lists(mixed_metadata, min_size=1, max_size=20), flt=nested_filters)
def test_translated_filters_agree_with_llamaindex_on_any_value(
    shared_client: MossClient, metas: list[dict[str, Any]], flt: MetadataFilters
) -> None:
    # Any value under any key (bools against numbers, lists against scalars): moss's engine,
    # evaluating the translated filter, selects exactly what LlamaIndex's own leaves select.
    session = shared_client.sync.session(f"agree-{uuid.uuid4().hex}", "custom")
    session.sync.add_docs(
        [
            DocumentInfo(id=f"d{i}", text="t", metadata=m, embedding=[1.0, 0.0])
            for i, m in enumerate(metas)
        ]
    )
    want = {f"d{i}" for i, meta in enumerate(metas) if reference(flt, meta)}
    assert {doc.id for doc in session.sync.get_docs(filter=translate(flt))} == want


def test_bools_compare_as_python_numbers_as_in_simple_vector_store(client: MossClient) -> None:
    nodes = _nodes([{"flag": True}, {"flag": False}, {"flag": 1}, {}], seed=1)
    store = _moss(client, nodes)

    def ids(flt: MetadataFilter) -> set[str]:
        return {n.node_id for n in store.get_nodes(filters=MetadataFilters(filters=[flt]))}

    assert ids(MetadataFilter(key="flag", value=1)) == {"node-00", "node-02"}
    assert ids(MetadataFilter(key="flag", value=0, operator=OPS.NE)) == {
        "node-00",
        "node-02",
        "node-03",
    }
    assert ids(MetadataFilter(key="flag", value=0.5, operator=OPS.GT)) == {"node-00", "node-02"}


def test_scalars_where_lists_are_expected_count_as_lists_of_one(client: MossClient) -> None:
    store = _moss(
        client, _nodes([{"s": "red", "tags": ["a"]}, {"s": "blue", "tags": ["b"]}], seed=2)
    )

    def ids(op: FilterOperator, key: str, value: Any) -> set[str]:
        flt = MetadataFilters(filters=[MetadataFilter(key=key, value=value, operator=op)])
        return {n.node_id for n in store.get_nodes(filters=flt)}

    assert ids(OPS.IN, "s", "red") == {"node-00"}
    assert ids(OPS.NIN, "s", "red") == {"node-01"}
    assert ids(OPS.ANY, "tags", "a") == {"node-00"}
    assert ids(OPS.ALL, "tags", "b") == {"node-01"}


def test_is_empty_and_text_match(client: MossClient) -> None:
    metas: list[dict[str, Any]] = [
        {"s": "Teal Green"},
        {"s": ""},
        {"s": None},
        {},
        {"s": ["green"]},
        {"s": []},
        {"s": 0},
    ]
    store = _moss(client, _nodes(metas, seed=3))

    def ids(op: FilterOperator, value: Any) -> set[str]:
        flt = MetadataFilters(filters=[MetadataFilter(key="s", value=value, operator=op)])
        return {n.node_id for n in store.get_nodes(filters=flt)}

    assert ids(OPS.IS_EMPTY, None) == {"node-01", "node-02", "node-03", "node-05"}
    assert ids(OPS.TEXT_MATCH, "Green") == {"node-00"}
    assert ids(OPS.TEXT_MATCH, "green") == set()  # case-sensitive, and never a list element
    assert ids(OPS.TEXT_MATCH_INSENSITIVE, "green") == {"node-00"}


@pytest.mark.parametrize(
    ("op", "value", "match"),
    [
        (OPS.CONTAINS, ["a"], "compares with one value"),
        (OPS.EQ, ["a", "b"], "compares with one value"),
        (OPS.GT, [1], "compares with one value"),
        (OPS.TEXT_MATCH, 3, "takes a string"),
    ],
)
def test_filters_moss_cannot_express_are_refused(
    client: MossClient, op: FilterOperator, value: Any, match: str
) -> None:
    # Before: evaluated by a second filter engine in this package; now refused, clearly.
    store = _moss(client, _nodes([{"tags": ["a"]}], seed=4))
    flt = MetadataFilters(filters=[MetadataFilter(key="tags", value=value, operator=op)])
    with pytest.raises(InvalidArgumentError, match=match):
        store.get_nodes(filters=flt)
    with pytest.raises(InvalidArgumentError, match=match):
        store.query(VectorStoreQuery(query_embedding=[1.0] * DIM, filters=flt))


def test_bad_doc_ids_raise(client: MossClient) -> None:
    store = _moss(client, _nodes([{"n": 1}], seed=4))
    with pytest.raises(InvalidArgumentError, match="doc_ids"):
        store.query(VectorStoreQuery(query_embedding=[1.0] * DIM, doc_ids=[1]))  # type: ignore[list-item]


def test_null_filter_values_equal_nothing_present(client: MossClient) -> None:
    store = _moss(client, _nodes([{"n": None}, {"n": 1}, {}], seed=5))

    def ids(op: FilterOperator, value: Any) -> set[str]:
        flt = MetadataFilters(filters=[MetadataFilter(key="n", value=value, operator=op)])
        return {n.node_id for n in store.get_nodes(filters=flt)}

    assert ids(OPS.EQ, None) == set()
    assert ids(OPS.NE, None) == {"node-00", "node-01", "node-02"}
    assert ids(OPS.GT, None) == set()
