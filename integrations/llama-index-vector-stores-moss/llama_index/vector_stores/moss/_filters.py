"""LlamaIndex ``MetadataFilters`` translated to moss filters: moss's engine evaluates all of them.

The semantics are SimpleVectorStore's, extended to nesting (``filters`` may hold
``MetadataFilters``) and with no exceptions: a comparison SimpleVectorStore would crash on (a
string against a number) is simply false.

- A missing key, or a null value, matches ``!=`` and ``nin`` only (and ``is_empty``).
- ``==``, ``!=``, ``in``, ``nin`` compare as Python's ``==``: ``1 == 1.0`` and ``True == 1``.
  ``>``, ``>=``, ``<``, ``<=`` order numbers with numbers (bools as 0 and 1) and strings with
  strings.
- ``contains``: a list value holds the filter value, or a string value has it as a substring.
  ``any`` / ``all``: ``contains`` holds for any / all listed values. A scalar where a list is
  expected (``in``, ``nin``, ``any``, ``all``) counts as a list of one.
- ``text_match`` (``text_match_insensitive``): a string value has the filter string as a
  substring (after ``str.lower()``). ``is_empty``: the key is missing, null, ``""`` or ``[]``.
- ``AND`` / ``OR`` / ``NOT`` (none of the filters match); a condition of None is ``AND``; an
  empty ``MetadataFilters`` matches everything, also when nested.
- A null filter value equals nothing present (``==`` matches no node, ``!=`` every node).

What moss cannot express is refused with :class:`~moss.InvalidArgumentError`: a list compared
as a whole (``==``, ``>``, ``contains`` with a list value) and ``text_match`` with a non-string.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from moss import InvalidArgumentError

__all__ = ["to_moss_filter", "translate"]

MossFilter = dict[str, Any]

_ORDER: dict[FilterOperator, tuple[str, Callable[[Any, Any], bool]]] = {
    FilterOperator.GT: ("$gt", lambda a, b: a > b),
    FilterOperator.GTE: ("$gte", lambda a, b: a >= b),
    FilterOperator.LT: ("$lt", lambda a, b: a < b),
    FilterOperator.LTE: ("$lte", lambda a, b: a <= b),
}
_TEXT = {
    FilterOperator.TEXT_MATCH: "$text_match",
    FilterOperator.TEXT_MATCH_INSENSITIVE: "$text_match_insensitive",
}
_SCALAR_ONLY = (FilterOperator.EQ, FilterOperator.NE, *_ORDER, FilterOperator.CONTAINS)
_MATCH_ALL: MossFilter = {"$and": []}
_MATCH_NONE: MossFilter = {"$or": []}


def to_moss_filter(
    filters: MetadataFilters | None, doc_ids: Sequence[str] | None = None
) -> MossFilter | None:
    """The moss filter for ``filters`` and a restriction to source documents (None: no filter)."""
    parts: list[MossFilter] = []
    if doc_ids is not None:
        parts.append(_condition("ref_doc_id", {"$in": _strings(list(doc_ids), "doc_ids")}))
    if filters is not None and filters.filters:
        parts.append(translate(filters))
    return None if not parts else parts[0] if len(parts) == 1 else {"$and": parts}


def translate(node: MetadataFilter | MetadataFilters) -> MossFilter:
    """The moss filter equivalent to ``node``; InvalidArgumentError if moss cannot express it."""
    if isinstance(node, MetadataFilters):
        parts = [translate(child) for child in node.filters]
        condition = node.condition or FilterCondition.AND
        if condition == FilterCondition.AND:
            return {"$and": parts}
        if condition == FilterCondition.OR:
            return {"$or": parts} if parts else _MATCH_ALL
        if condition == FilterCondition.NOT:
            return {"$not": {"$or": parts}} if parts else _MATCH_ALL
        raise InvalidArgumentError(f"unknown filter condition {condition!r}: use and, or or not")
    if not isinstance(node, MetadataFilter):
        raise InvalidArgumentError(
            f"filters hold MetadataFilter or MetadataFilters, got {type(node).__name__}"
        )
    return _leaf(node.key, FilterOperator(node.operator), node.value)


def _leaf(key: str, op: FilterOperator, value: Any) -> MossFilter:
    if op == FilterOperator.IS_EMPTY:
        return _condition(key, {"$empty": True})
    if op in _TEXT:
        if not isinstance(value, str):
            raise InvalidArgumentError(
                f"filter on {key!r}: {op.value} takes a string, got {value!r}"
            )
        return _condition(key, {_TEXT[op]: value})
    if op in _SCALAR_ONLY and isinstance(value, list):
        raise InvalidArgumentError(
            f"filter on {key!r}: {op.value!r} compares with one value, got the list {value!r}; "
            "use 'in' / 'nin' for one of several values, 'any' / 'all' for list metadata"
        )
    if op == FilterOperator.CONTAINS:
        return _contains(key, value)
    if op == FilterOperator.ANY:
        return {"$or": [_contains(key, item) for item in _as_list(value)]}
    if op == FilterOperator.ALL:
        values = _as_list(value)
        if not values:  # all() of nothing: true for every present, non-null value
            return _condition(key, {"$exists": True, "$ne": None})
        return {"$and": [_contains(key, item) for item in values]}
    # A null value or item equals nothing present (a null metadata value counts as absent).
    values = [item for item in _as_list(value) if item is not None]
    if op in (FilterOperator.EQ, FilterOperator.IN):
        return _equal(key, _with_twins(values), negate=False)
    if op in (FilterOperator.NE, FilterOperator.NIN):
        return _equal(key, _with_twins(values), negate=True)
    if op in _ORDER:
        return _order(key, op, value)
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


def _equal(key: str, values: list[Any], *, negate: bool) -> MossFilter:
    # $eq / $ne for one value: the engine has a vectorised path for them.
    if len(values) == 1:
        return _condition(key, {"$ne" if negate else "$eq": values[0]})
    return _condition(key, {"$nin" if negate else "$in": values})


def _order(key: str, op: FilterOperator, value: Any) -> MossFilter:
    if value is None:  # nothing orders against null
        return _MATCH_NONE
    moss_op, compare = _ORDER[op]
    base = _condition(key, {moss_op: value})
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


def _strings(values: list[Any], what: str) -> list[Any]:
    for value in values:
        if not isinstance(value, str):
            raise InvalidArgumentError(f"{what} must be strings, got {value!r}")
    return values
