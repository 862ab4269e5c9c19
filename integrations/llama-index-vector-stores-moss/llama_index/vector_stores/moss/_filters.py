"""LlamaIndex ``MetadataFilters`` for a Moss session: translated where moss can say it, evaluated here where not.

The semantics are SimpleVectorStore's, extended to nesting (``filters`` may hold
``MetadataFilters``) and with no exceptions: a comparison SimpleVectorStore would crash on (a
string against a number, ``text_match`` on a list) is simply false.

- A missing key, or a null value, matches ``!=`` and ``nin`` only (and ``is_empty``).
- ``==``, ``!=``, ``in``, ``nin`` compare with Python's ``==``: ``1 == 1.0`` and, as in Python,
  ``True == 1``. ``>``, ``>=``, ``<``, ``<=`` order numbers with numbers and strings with strings.
- ``contains``: a list value holds the filter value, or a string value has it as a substring.
  ``any`` / ``all``: ``contains`` holds for any / all listed values. A scalar where a list is
  expected (``in``, ``nin``, ``any``, ``all``) counts as a list of one.
- ``text_match`` (``text_match_insensitive``): a string value has the filter string as a
  substring (ignoring case). ``is_empty``: the key is missing, null, ``""`` or ``[]``.
- ``AND`` / ``OR`` / ``NOT`` (none of the filters match); a condition of None is ``AND``; an
  empty ``MetadataFilters`` matches everything, also when nested.

Every leaf moss's filter language can express exactly becomes a moss filter, evaluated by the
engine over its metadata columns. ``text_match``, ``text_match_insensitive``, ``is_empty``, a null
filter value and list-valued comparisons cannot be expressed: a tree that holds one is evaluated
here, by :func:`matches`, on the documents the expressible part of a top-level AND lets through.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from moss import InvalidArgumentError

__all__ = ["Selection", "compile_predicate", "matches", "select", "translate"]

Metadata = Mapping[str, Any]
MossFilter = dict[str, Any]
Predicate = Callable[[Metadata], bool]

_ORDER: dict[FilterOperator, Callable[[Any, Any], bool]] = {
    FilterOperator.GT: operator.gt,
    FilterOperator.GTE: operator.ge,
    FilterOperator.LT: operator.lt,
    FilterOperator.LTE: operator.le,
}
_MOSS_ORDER = {
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
}
_MATCH_ALL: MossFilter = {"$and": []}
_MATCH_NONE: MossFilter = {"$or": []}


@dataclass(frozen=True)
class Selection:
    """Which documents a request may see: a moss filter, then a predicate evaluated here."""

    pushdown: MossFilter | None
    residual: Predicate | None


def select(filters: MetadataFilters | None, doc_ids: Sequence[str] | None = None) -> Selection:
    """Split ``filters`` (and a restriction to source documents) into moss's part and ours."""
    pushed: list[MossFilter] = []
    local: list[MetadataFilter | MetadataFilters] = []
    if doc_ids is not None:
        pushed.append(_condition("ref_doc_id", {"$in": _scalars(list(doc_ids), "doc_ids")}))
    if filters is not None and filters.filters:
        # A top-level AND splits: each child moss can express narrows the candidates first.
        children = filters.filters if _is_and(filters) else [filters]
        for child in children:
            translated = translate(child)
            if translated is None:
                local.append(child)
            else:
                pushed.append(translated)
    pushdown = None if not pushed else pushed[0] if len(pushed) == 1 else {"$and": pushed}
    residual = None
    if local:
        rest = MetadataFilters(filters=local, condition=FilterCondition.AND)
        residual = compile_predicate(rest)
    return Selection(pushdown=pushdown, residual=residual)


# --- translation ----------------------------------------------------------------------------


def translate(node: MetadataFilter | MetadataFilters) -> MossFilter | None:
    """The moss filter equivalent to ``node``, or None if moss cannot express it exactly."""
    if isinstance(node, MetadataFilters):
        parts = [translate(child) for child in node.filters]
        if any(part is None for part in parts):
            return None
        if not parts:
            return _MATCH_ALL
        condition = node.condition or FilterCondition.AND
        if condition == FilterCondition.AND:
            return {"$and": parts}
        if condition == FilterCondition.OR:
            return {"$or": parts}
        if condition == FilterCondition.NOT:
            return {"$not": {"$or": parts}}
        raise _unknown_condition(condition)
    return _translate_leaf(node)


def _translate_leaf(leaf: MetadataFilter) -> MossFilter | None:
    op, key, value = leaf.operator, leaf.key, leaf.value
    if value is None or op in (
        FilterOperator.TEXT_MATCH,
        FilterOperator.TEXT_MATCH_INSENSITIVE,
        FilterOperator.IS_EMPTY,
    ):
        return None
    if op in (FilterOperator.IN, FilterOperator.NIN):
        moss_op = "$in" if op == FilterOperator.IN else "$nin"
        return _condition(key, {moss_op: _with_twins(_as_list(value))})
    if op in (FilterOperator.ANY, FilterOperator.ALL):
        values = _as_list(value)
        if op == FilterOperator.ANY:
            return {"$or": [_contains(key, item) for item in values]}
        if not values:  # all() of nothing: true for every present, non-null value
            return {"$and": [_condition(key, {"$exists": True}), _condition(key, {"$ne": None})]}
        return {"$and": [_contains(key, item) for item in values]}
    if isinstance(value, list):  # a list compared as a whole: Python semantics, here
        return None
    if op == FilterOperator.EQ:
        return _condition(key, _equal_to(value, negate=False))
    if op == FilterOperator.NE:
        return _condition(key, _equal_to(value, negate=True))
    if op in _ORDER:
        return _order(key, op, value)
    if op == FilterOperator.CONTAINS:
        return _contains(key, value)
    raise InvalidArgumentError(f"unknown filter operator {op!r} for key {key!r}")


def _condition(key: str, condition: dict[str, Any]) -> MossFilter:
    # The moss form names the field explicitly, so keys like "$x" or "field" stay plain keys.
    return {"field": key, "condition": condition}


def _twins(value: Any) -> list[bool]:
    """The bools Python calls equal to ``value`` (``True == 1``); moss keeps them apart."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value in (0, 1):
        return [bool(value)]
    return []


def _with_twins(values: list[Any]) -> list[Any]:
    return [twin for value in values for twin in [value, *_twins(value)]]


def _equal_to(value: Any, *, negate: bool) -> dict[str, Any]:
    twins = _twins(value)
    if not twins:
        return {"$ne" if negate else "$eq": value}
    return {"$nin" if negate else "$in": [value, *twins]}


def _order(key: str, op: FilterOperator, value: Any) -> MossFilter:
    compare = _ORDER[op]
    base = _condition(key, {_MOSS_ORDER[op]: value})
    if isinstance(value, str):
        return base
    # Python orders bools as the numbers 0 and 1; moss does not, so name the bools that pass.
    passing = [flag for flag in (False, True) if compare(flag, value)]
    return {"$or": [base, _condition(key, {"$in": passing})]} if passing else base


def _contains(key: str, value: Any) -> MossFilter:
    if isinstance(value, list):
        raise InvalidArgumentError(
            f"filter on {key!r}: contains / any / all take scalar values, got the list {value!r}"
        )
    parts = [_condition(key, {"$contains": item}) for item in [value, *_twins(value)]]
    return parts[0] if len(parts) == 1 else {"$or": parts}


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _scalars(values: list[Any], what: str) -> list[Any]:
    for value in values:
        if not isinstance(value, str):
            raise InvalidArgumentError(f"{what} must be strings, got {value!r}")
    return values


def _is_and(filters: MetadataFilters) -> bool:
    return (filters.condition or FilterCondition.AND) == FilterCondition.AND


def _unknown_condition(condition: object) -> InvalidArgumentError:
    return InvalidArgumentError(f"unknown filter condition {condition!r}: use and, or or not")


# --- evaluation here --------------------------------------------------------------------------
# The tree is compiled once into closures, so evaluating it over many documents does not walk
# pydantic models per document.


def matches(node: MetadataFilter | MetadataFilters, metadata: Metadata | None) -> bool:
    """Whether ``metadata`` passes ``node`` (the reference semantics in the module docstring)."""
    return compile_predicate(node)(metadata or {})


def compile_predicate(node: MetadataFilter | MetadataFilters) -> Predicate:
    """``node`` as a function of a document's metadata (a dict; pass ``{}`` for None)."""
    if isinstance(node, MetadataFilters):
        if not node.filters:
            return lambda metadata: True
        parts = [compile_predicate(child) for child in node.filters]
        condition = node.condition or FilterCondition.AND
        if condition == FilterCondition.AND:
            return lambda metadata: all(part(metadata) for part in parts)
        if condition == FilterCondition.OR:
            return lambda metadata: any(part(metadata) for part in parts)
        if condition == FilterCondition.NOT:
            return lambda metadata: not any(part(metadata) for part in parts)
        raise _unknown_condition(condition)
    key, test = node.key, _leaf_test(node.operator, node.value)
    return lambda metadata: test(metadata.get(key))


def _leaf_test(op: FilterOperator, value: Any) -> Callable[[Any], bool]:
    """The test of one value (None when the key is missing or null)."""
    if op == FilterOperator.IS_EMPTY:
        return lambda actual: actual is None or actual == "" or actual == []
    present = _present_test(op, value)
    absent = op in (FilterOperator.NE, FilterOperator.NIN)
    return lambda actual: absent if actual is None else present(actual)


def _present_test(op: FilterOperator, value: Any) -> Callable[[Any], bool]:
    if op == FilterOperator.EQ:
        return lambda actual: bool(actual == value)
    if op == FilterOperator.NE:
        return lambda actual: bool(actual != value)
    if op in _ORDER:
        return _order_test(_ORDER[op], value)
    values = _as_list(value)
    if op == FilterOperator.IN:
        return lambda actual: any(actual == item for item in values)
    if op == FilterOperator.NIN:
        return lambda actual: not any(actual == item for item in values)
    if op == FilterOperator.CONTAINS:
        return lambda actual: _holds(actual, value)
    if op == FilterOperator.ANY:
        return lambda actual: any(_holds(actual, item) for item in values)
    if op == FilterOperator.ALL:
        return lambda actual: all(_holds(actual, item) for item in values)
    if op in (FilterOperator.TEXT_MATCH, FilterOperator.TEXT_MATCH_INSENSITIVE):
        if not isinstance(value, str):
            return lambda actual: False
        if op == FilterOperator.TEXT_MATCH:
            return lambda actual: isinstance(actual, str) and value in actual
        lowered = value.lower()
        return lambda actual: isinstance(actual, str) and lowered in actual.lower()
    raise InvalidArgumentError(f"unknown filter operator {op!r}")


def _order_test(compare: Callable[[Any, Any], bool], value: Any) -> Callable[[Any], bool]:
    def test(actual: Any) -> bool:
        try:
            return compare(actual, value)
        except TypeError:  # unordered types: no match, where SimpleVectorStore would raise
            return False

    return test


def _holds(actual: Any, value: Any) -> bool:
    """``contains``: list membership, or a substring of a string."""
    if isinstance(actual, list):
        return any(item == value for item in actual)
    return isinstance(actual, str) and isinstance(value, str) and value in actual
