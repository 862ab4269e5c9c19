"""Metadata filters: operator semantics, both filter forms, malformed filters, and a
hypothesis comparison of the compiled filter (per document and column-wise) with a plain
reference implementation of the documented semantics."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moss.errors import InvalidArgumentError
from moss.index.filters import OPERATORS, Filter, compile_filter

# --- reference semantics (written from the spec, deliberately naive) -----------------------


def _is_num(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def same(a: object, b: object) -> bool:
    """moss scalar equality: numbers as numbers, bools only equal bools."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_num(a) and _is_num(b):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    return a is None and b is None


def ref_op(op: str, v: Any, x: Any) -> bool:
    orderable = (_is_num(v) and _is_num(x)) or (isinstance(v, str) and isinstance(x, str))
    if op == "$eq":
        return same(v, x)
    if op == "$ne":
        return not same(v, x)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if not orderable:
            return False
        return bool({"$gt": v > x, "$gte": v >= x, "$lt": v < x, "$lte": v <= x}[op])
    if op == "$in":
        return any(same(v, item) for item in x)
    if op == "$nin":
        return not any(same(v, item) for item in x)
    if op == "$contains":
        if isinstance(v, (list, tuple)):  # validation accepts tuples as JSON arrays
            return any(same(item, x) for item in v)
        return isinstance(v, str) and isinstance(x, str) and x in v
    if op == "$all":
        return isinstance(v, (list, tuple)) and all(any(same(i, w) for i in v) for w in x)
    if op == "$any":
        return isinstance(v, (list, tuple)) and any(any(same(i, w) for i in v) for w in x)
    if op == "$exists":
        return bool(x)
    if op == "$empty":
        return (v is None or v == "" or (isinstance(v, (list, tuple)) and len(v) == 0)) is x
    if op == "$text_match":
        return isinstance(v, str) and x in v
    if op == "$text_match_insensitive":
        return isinstance(v, str) and x.lower() in v.lower()
    raise AssertionError(op)


def ref_condition(meta: dict[str, Any] | None, field: str, condition: dict[str, Any]) -> bool:
    present = meta is not None and field in meta
    for op, x in condition.items():
        if present:
            assert meta is not None
            ok = ref_op(op, meta[field], x)
        else:
            ok = op in ("$ne", "$nin") or (op, x) in (("$exists", False), ("$empty", True))
        if not ok:
            return False
    return True


def ref_match(flt: dict[str, Any], meta: dict[str, Any] | None) -> bool:
    if "field" in flt:
        return ref_condition(meta, flt["field"], flt["condition"])
    for key, value in flt.items():
        if key == "$and":
            ok = all(ref_match(f, meta) for f in value)
        elif key == "$or":
            ok = any(ref_match(f, meta) for f in value)
        elif key == "$not":
            items = value if isinstance(value, list) else [value]
            ok = not all(ref_match(f, meta) for f in items)
        else:
            condition = value if isinstance(value, dict) else {"$eq": value}
            ok = ref_condition(meta, key, condition)
        if not ok:
            return False
    return True


# --- strategies -----------------------------------------------------------------------------

FIELDS = ["a", "b", "c"]
# Small pools, so that filters and metadata often meet (and 1, 1.0 and True often collide).
scalars = st.one_of(
    st.integers(-1, 2),
    st.sampled_from([-1.5, 0.0, 1.0, 0.5]),
    st.sampled_from(["", "x", "y", "xy"]),
    st.booleans(),
    st.none(),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.sampled_from(["k"]), scalars, max_size=1),
)
metadatas = st.one_of(st.none(), st.dictionaries(st.sampled_from(FIELDS), values, max_size=3))

orderable = st.one_of(
    st.integers(-2, 2), st.sampled_from([-1.5, 0.5, 1.0]), st.sampled_from(["", "x", "y"])
)
scalar_lists = st.lists(scalars, max_size=3)
texts = st.sampled_from(["", "x", "X", "xy", "Y"])


def operands(op: str) -> st.SearchStrategy[Any]:
    if op in ("$gt", "$gte", "$lt", "$lte"):
        return orderable
    if op in ("$in", "$nin", "$all", "$any"):
        return scalar_lists
    if op in ("$exists", "$empty"):
        return st.booleans()
    if op in ("$text_match", "$text_match_insensitive"):
        return texts
    return scalars


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, Any]:
    ops = draw(st.lists(st.sampled_from(OPERATORS), min_size=1, max_size=2, unique=True))
    return {op: draw(operands(op)) for op in ops}


@st.composite
def leaves(draw: st.DrawFn) -> dict[str, Any]:
    field = draw(st.sampled_from(FIELDS))
    form = draw(st.sampled_from(["moss", "plain", "implicit"]))
    if form == "implicit":
        return {field: draw(scalars)}
    condition = draw(conditions())
    if form == "moss":
        return {"field": field, "condition": condition}
    return {field: condition}


def _combine(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    lists = st.lists(children, max_size=3)
    return st.one_of(
        st.builds(lambda fs: {"$and": fs}, lists),
        st.builds(lambda fs: {"$or": fs}, lists),
        st.builds(lambda f: {"$not": f}, children),
        st.builds(lambda fs: {"$not": fs}, lists),
        # plain form mixing a field with a logical key (implicit AND over keys)
        st.builds(lambda f, fs: {"c": f, "$or": fs}, scalars, lists),
    )


filters = st.recursive(leaves(), _combine, max_leaves=6)


def check_against_reference(flt: dict[str, Any], metas: list[Any]) -> None:
    compiled = compile_filter(flt)
    expected = [ref_match(flt, meta) for meta in metas]
    if compiled is None:  # only {} compiles to "match all"
        assert flt == {}
        return
    assert [compiled(meta) for meta in metas] == expected
    mask = compiled.mask(metas)
    assert mask.dtype == np.bool_
    assert mask.tolist() == expected


SCALAR_POOL: list[Any] = [-1, 0, 1, 2, -1.5, 0.0, 1.0, 0.5, "", "x", "y", "xy", True, False, None]
# Strings for the text operators: case and a non-ASCII letter, so lowering is exercised.
TEXT_POOL: list[Any] = ["X", "Xy", "äx", "ÄX"]
VALUE_POOL: list[Any] = [
    *SCALAR_POOL,
    *TEXT_POOL,
    *([item] for item in SCALAR_POOL),
    [],
    [1, "x"],
    [True, 0.5],
    [None, "xy"],
    [1.0, 2],
    (0, "y"),
    [[1]],
    {"k": 1},
]


def operand_pool(op: str) -> list[Any]:
    if op in ("$in", "$nin", "$all", "$any"):
        singles = [[a] for a in SCALAR_POOL]
        pairs = [[a, b] for i, a in enumerate(SCALAR_POOL) for b in SCALAR_POOL[i + 1 :]]
        return [[], *singles, *pairs]
    if op in ("$exists", "$empty"):
        return [True, False]
    if op in ("$text_match", "$text_match_insensitive"):
        return ["", "x", "X", "xy", "Y", "ÄX"]
    if op in ("$gt", "$gte", "$lt", "$lte"):
        return [x for x in SCALAR_POOL if not isinstance(x, bool) and x is not None]
    return SCALAR_POOL


@pytest.mark.parametrize("op", OPERATORS)
def test_each_operator_exhaustively_against_reference(op: str) -> None:
    """Every operand of a small pool against every value of a small pool, both paths."""
    metas: list[Any] = [{"f": value} for value in VALUE_POOL] + [{}, None, {"g": 1}]
    for operand in operand_pool(op):
        check_against_reference({"f": {op: operand}}, metas)


@settings(max_examples=200, deadline=None)
@given(leaves(), st.lists(metadatas, min_size=1, max_size=30))
def test_single_conditions_match_reference(flt: dict[str, Any], metas: list[Any]) -> None:
    check_against_reference(flt, metas)


@settings(max_examples=300, deadline=None)
@given(filters, st.lists(metadatas, min_size=1, max_size=20))
def test_nested_filters_match_reference(flt: dict[str, Any], metas: list[Any]) -> None:
    check_against_reference(flt, metas)


# --- operator semantics ---------------------------------------------------------------------

DOC = {
    "s": "shipping",
    "i": 3,
    "f": 2.5,
    "one": 1,
    "onef": 1.0,
    "t": True,
    "n": None,
    "tags": ["a", "b", 1, True],
    "d": {"x": 1},
    "blank": "",
    "none": [],
}


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"s": "shipping"}, True),
        ({"s": {"$eq": "Shipping"}}, False),
        ({"i": 3.0}, True),
        ({"one": True}, False),
        ({"t": 1}, False),
        ({"t": True}, True),
        ({"onef": 1}, True),
        ({"n": None}, True),
        ({"n": {"$ne": None}}, False),
        ({"i": {"$gt": 2, "$lt": 4}}, True),
        ({"i": {"$gte": 3.0}}, True),
        ({"i": {"$lt": 3}}, False),
        ({"f": {"$lte": 2.5}}, True),
        ({"s": {"$gt": "a"}}, True),
        ({"s": {"$gt": 1}}, False),
        ({"i": {"$gt": "a"}}, False),
        ({"t": {"$gt": 0}}, False),
        ({"tags": {"$gt": 0}}, False),
        ({"i": {"$in": [1, 2, 3]}}, True),
        ({"one": {"$in": [True]}}, False),
        ({"t": {"$in": [1]}}, False),
        ({"t": {"$in": [True]}}, True),
        ({"i": {"$nin": [1, 2]}}, True),
        ({"tags": {"$in": ["a"]}}, False),
        ({"tags": {"$nin": ["a"]}}, True),
        ({"tags": {"$contains": "a"}}, True),
        ({"tags": {"$contains": 1}}, True),
        ({"tags": {"$contains": True}}, True),
        ({"tags": {"$contains": "z"}}, False),
        ({"s": {"$contains": "hip"}}, True),
        ({"s": {"$contains": 1}}, False),
        ({"i": {"$contains": 3}}, False),
        ({"tags": {"$all": ["a", "b"]}}, True),
        ({"tags": {"$all": ["a", "z"]}}, False),
        ({"tags": {"$all": []}}, True),
        ({"s": {"$all": ["s"]}}, False),
        ({"tags": {"$any": ["z", "b"]}}, True),
        ({"tags": {"$any": []}}, False),
        ({"d": {"$eq": 1}}, False),
        ({"d": {"$ne": 1}}, True),
        ({"s": {"$exists": True}}, True),
        ({"nope": {"$exists": False}}, True),
        ({"nope": {"$empty": True}}, True),
        ({"n": {"$empty": True}}, True),
        ({"blank": {"$empty": True}}, True),
        ({"none": {"$empty": True}}, True),
        ({"d": {"$empty": True}}, False),
        ({"i": {"$empty": False}}, True),
        ({"s": {"$text_match": "hip"}}, True),
        ({"s": {"$text_match": "HIP"}}, False),
        ({"s": {"$text_match_insensitive": "HIP"}}, True),
        ({"tags": {"$text_match": "a"}}, False),
        ({"field": "i", "condition": {"$gt": 1}}, True),
        ({"$and": [{"s": "shipping"}, {"field": "i", "condition": {"$eq": 4}}]}, False),
        ({"$or": [{"s": "billing"}, {"field": "i", "condition": {"$eq": 3}}]}, True),
        ({"$not": {"s": "shipping"}}, False),
        ({"$not": [{"s": "shipping"}, {"i": 4}]}, True),
        ({"$and": []}, True),
        ({"$or": []}, False),
        ({"s": "shipping", "$or": [{"i": 1}, {"f": 2.5}]}, True),
    ],
)
def test_operator_semantics(flt: dict[str, Any], expected: bool) -> None:
    compiled = compile_filter(flt)
    assert compiled is not None
    assert compiled(DOC) is expected
    assert compiled.mask([DOC]).tolist() == [expected]
    assert ref_match(flt, DOC) is expected  # keeps the reference honest


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"$ne": 1}, True),
        ({"$nin": [1]}, True),
        ({"$exists": False}, True),
        ({"$eq": None}, False),
        ({"$eq": 1}, False),
        ({"$gt": 0}, False),
        ({"$lt": 0}, False),
        ({"$in": [None]}, False),
        ({"$contains": "a"}, False),
        ({"$all": []}, False),
        ({"$any": ["a"]}, False),
        ({"$exists": True}, False),
        ({"$ne": 1, "$gt": 0}, False),
        ({"$ne": 1, "$exists": False}, True),
    ],
)
def test_missing_key_matches_only_negations(condition: dict[str, Any], expected: bool) -> None:
    compiled = compile_filter({"field": "k", "condition": condition})
    assert compiled is not None
    for meta in (None, {}, {"other": 1}):
        assert compiled(meta) is expected
    assert compiled.mask([None, {}, {"other": 1}]).tolist() == [expected] * 3


def test_both_forms_agree() -> None:
    metas = [{"category": c, "price": p} for c in ("a", "b") for p in (5, 50, 150)] + [None]
    moss_form = {
        "$and": [
            {"field": "category", "condition": {"$eq": "a"}},
            {"field": "price", "condition": {"$lt": 100}},
        ]
    }
    plain = compile_filter({"category": "a", "price": {"$lt": 100}})
    moss = compile_filter(moss_form)
    assert plain is not None and moss is not None
    assert plain.mask(metas).tolist() == moss.mask(metas).tolist()
    assert [m for m in metas if plain(m)] == [
        {"category": "a", "price": 5},
        {"category": "a", "price": 50},
    ]


def test_empty_and_none_filters_match_everything() -> None:
    assert compile_filter(None) is None
    assert compile_filter({}) is None


def test_compiled_filter_is_reusable_callable() -> None:
    compiled = compile_filter({"x": 1})
    assert isinstance(compiled, Filter)
    assert compiled({"x": 1}) and not compiled({"x": 2})
    assert compiled.mask([]).tolist() == []


@pytest.mark.parametrize(
    "flt",
    [
        [("a", 1)],
        "category",
        {"x": {"$regex": "a"}},
        {"$nor": [{"x": 1}]},
        {"$and": {"x": 1}},
        {"$or": "x"},
        {"$and": ["x"]},
        {"x": {"$in": "abc"}},
        {"x": {"$nin": 3}},
        {"x": {"$all": "a"}},
        {"x": {"$any": {"a": 1}}},
        {"x": {"$in": [[1]]}},
        {"x": {"$gt": None}},
        {"x": {"$gt": True}},
        {"x": {"$lt": [1]}},
        {"x": {"$eq": [1, 2]}},
        {"x": {"$contains": ["a"]}},
        {"x": {"$exists": 1}},
        {"x": {"$empty": None}},
        {"x": {"$text_match": 1}},
        {"x": {"$text_match_insensitive": ["a"]}},
        {"x": [1, 2]},
        {"x": {}},
        {"x": {"y": 1}},
        {"x": {"$eq": 1, "y": 2}},
        {"field": "x", "condition": 3},
        {"field": 1, "condition": {"$eq": 3}},
        {"field": "x", "condition": {"$eq": 3}, "y": 1},
        {"field": "x", "condition": {"$bad": 3}},
        {1: "x"},
    ],
)
def test_malformed_filters_raise_with_accepted_forms(flt: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="accepted forms"):
        compile_filter(flt)


def test_error_names_the_offending_part() -> None:
    with pytest.raises(InvalidArgumentError, match=r"\$regex"):
        compile_filter({"$or": [{"x": 1}, {"y": {"$regex": "a"}}]})
    with pytest.raises(InvalidArgumentError, match=r"filter\.\$or\[1\]\.y\.\$in"):
        compile_filter({"$or": [{"x": 1}, {"y": {"$in": 5}}]})


def test_matching_never_raises_on_odd_values() -> None:
    compiled = compile_filter({"$or": [{"x": {"$gt": 1}}, {"x": {"$contains": "a"}}]})
    assert compiled is not None
    odd = [{"x": v} for v in ([1, "a"], {"a": 1}, None, "b", 2**70, -0.0, (1, 2), np.float64(3))]
    assert compiled.mask(odd).tolist() == [True, False, False, False, True, False, False, True]


def test_number_subclasses_compare_as_numbers() -> None:
    # np.float64 subclasses float and passes metadata validation: it must not fall off the
    # fast paths.
    metas = [{"p": np.float64(1.0)}, {"p": 1}, {"p": True}]
    cases: list[tuple[dict[str, Any], list[bool]]] = [
        ({"p": 1}, [True, True, False]),
        ({"p": {"$gte": 1}}, [True, True, False]),
        ({"p": {"$in": [1.0]}}, [True, True, False]),
        ({"p": {"$ne": 1}}, [False, False, True]),
    ]
    for flt, expected in cases:
        compiled = compile_filter(flt)
        assert compiled is not None
        assert compiled.mask(metas).tolist() == expected
        assert [compiled(m) for m in metas] == expected


@pytest.mark.parametrize("operand", [[1], {"x": 1}, True, None])
@pytest.mark.parametrize("op", ["$gt", "$gte", "$lt", "$lte"])
def test_ordering_against_an_unorderable_value_is_an_error(op: str, operand: object) -> None:
    with pytest.raises(InvalidArgumentError, match="compares with a number or a string"):
        compile_filter({"price": {op: operand}})
    with pytest.raises(InvalidArgumentError, match="compares with a number or a string"):
        compile_filter({"field": "price", "condition": {op: operand}})
